//! Real-world uWSGI configs (issue 11, item 5): every `tests/configs/*.ini` is a pattern seen
//! in public Django/Flask deployments (docs/real-configs.md lists where), rewritten to run
//! here. Each fixture is started with `--ini` exactly as a user would, and its `; expect…`
//! comment lines say what uWSGI 2.0.31 does with it: serve requests (over HTTP, the uwsgi
//! protocol, or behind nginx), print log lines, write files, or refuse to start with a
//! message. One `#[test]` per fixture, named after the file, so one fixture runs alone with
//! `cargo test -p it --test real_configs -- NAME` (or `scripts/real-config NAME`).
//!
//! The same tests run against real uWSGI (`RUWSGI=/path/to/uwsgi`, the reference run): a
//! directive written `KEY@uwsgi:` applies only there and `KEY@ruwsgi:` only to ruwsgi, for
//! ruwsgi's warnings and its documented differences; everything else applies to both.
//!
//! Fixture directives (comment lines starting `; `, anywhere before `[uwsgi]`):
//! ```text
//! ; expect: VIA TARGET PATH STATUS [BODY TEXT]   VIA: http | uwsgi | nginx
//!                                    TARGET: TEST_ADDR | TEST_ADDR2 | TEST_HTTP | unix:NAME
//! ; expect-header: NAME: VALUE        in the response to the first `expect:`
//! ; expect-log: TEXT                  both servers print TEXT (stdout/stderr or log-file)
//! ; expect-no-log: TEXT               nobody prints TEXT (checked after stop)
//! ; expect-file: NAME [TEXT]          NAME exists in the fixture dir after stop [containing TEXT]
//! ; expect-no-file: NAME              NAME is gone after stop (vacuum)
//! ; expect-fail: TEXT                 the server exits non-zero at start-up, printing TEXT
//! ; expect-exit: N                    …with exit code N
//! ; section: NAME                     run `--ini FILE:NAME`
//! ; env: KEY=VALUE                    extra environment ($TEST_* names are replaced)
//! ; file: NAME CONTENT                write NAME (in the fixture dir) before start; `\n` in
//!                                     CONTENT starts a new line
//! ; log-file: NAME                    the server logs to NAME (logto/logger): read it too
//! ; daemon: PIDFILE                   it daemonizes: the started process exits, PIDFILE
//!                                     (in the fixture dir) names the master to stop
//! ; workers: N                        wait for N "spawned uWSGI worker" lines (default 1)
//! ; stop: INT | TERM | QUIT           signal that must stop it (default INT)
//! ; KEY@ruwsgi: … / KEY@uwsgi: …      any of the above, for one server only
//! ```
//! Environment every fixture gets: `TEST_DIR` (its temp dir, where the ini is copied, so `%d`
//! is that dir), `TEST_APPS` (tests/apps), `TEST_DJANGO` (examples/django), `TEST_FLASK`
//! (examples/flask), `TEST_VENV` (the virtualenv of the server under test), and free loopback
//! addresses `TEST_ADDR`, `TEST_ADDR2`, `TEST_HTTP`, and a free port `TEST_PORT` (for `:PORT`).
//! `$TEST_*` in `env:`, `file:` and the expected texts is replaced by its value.

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use it::nginx::{free_port, Nginx};
use it::{read_response, Response};
use nix::sys::signal::Signal;

/// How long a fixture may take to come up, to answer, to print a line, to stop.
const START: Duration = Duration::from_secs(30);
const LOG_WAIT: Duration = Duration::from_secs(10);
const STOP_WAIT: Duration = Duration::from_secs(20);

/// One `; expect: …` request.
#[derive(Debug)]
struct Request {
    via: String,
    target: String,
    path: String,
    status: u16,
    body: Option<String>,
}

/// What a fixture's comment lines ask for.
#[derive(Debug, Default)]
struct Fixture {
    name: String,
    text: String,
    requests: Vec<Request>,
    headers: Vec<(String, String)>,
    logs: Vec<String>,
    no_logs: Vec<String>,
    files_expected: Vec<(String, Option<String>)>,
    files_gone: Vec<String>,
    fail: Vec<String>,
    exit: Option<i32>,
    section: Option<String>,
    env: Vec<(String, String)>,
    files: Vec<(String, String)>,
    log_file: Option<String>,
    daemon: Option<String>,
    workers: usize,
    stop: Option<Signal>,
}

fn configs_dir() -> PathBuf {
    it::repo().join("tests/configs")
}

/// Parses the directives of `tests/configs/NAME.ini`; panics on a malformed one so a typo in a
/// fixture can't pass as "nothing to check".
fn load(name: &str) -> Fixture {
    let path = configs_dir().join(format!("{name}.ini"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut f = Fixture { name: name.to_owned(), workers: 1, ..Fixture::default() };
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("; ") else { continue };
        let Some((key, value)) = rest.split_once(':') else { continue };
        let key = match key.split_once('@') {
            Some((key, server)) if server == current_server() => key,
            Some(_) => continue,
            None => key,
        };
        let value = value.trim();
        let word =
            |v: &str| v.split_once(' ').map_or((v.to_owned(), None), |(a, b)| (a.to_owned(), Some(b.to_owned())));
        match key {
            "expect" => {
                let parts: Vec<&str> = value.splitn(5, ' ').collect();
                assert!(parts.len() >= 4, "{name}: bad expect line {line:?}");
                f.requests.push(Request {
                    via: parts[0].to_owned(),
                    target: parts[1].to_owned(),
                    path: parts[2].to_owned(),
                    status: parts[3].parse().unwrap_or_else(|_| panic!("{name}: bad status in {line:?}")),
                    body: parts.get(4).map(|s| (*s).to_owned()),
                });
            }
            "expect-header" => {
                let (k, v) = value.split_once(':').unwrap_or_else(|| panic!("{name}: bad header {line:?}"));
                f.headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "expect-log" => f.logs.push(value.to_owned()),
            "expect-no-log" => f.no_logs.push(value.to_owned()),
            "expect-file" => f.files_expected.push(word(value)),
            "expect-no-file" => f.files_gone.push(value.to_owned()),
            "expect-fail" => f.fail.push(value.to_owned()),
            "expect-exit" => f.exit = Some(value.parse().unwrap_or_else(|_| panic!("{name}: bad exit {line:?}"))),
            "section" => f.section = Some(value.to_owned()),
            "env" => {
                let (k, v) = value.split_once('=').unwrap_or_else(|| panic!("{name}: bad env {line:?}"));
                f.env.push((k.to_owned(), v.to_owned()));
            }
            "file" => {
                let (n, c) = word(value);
                f.files.push((n, c.unwrap_or_default()));
            }
            "log-file" => f.log_file = Some(value.to_owned()),
            "daemon" => f.daemon = Some(value.to_owned()),
            "workers" => f.workers = value.parse().unwrap_or_else(|_| panic!("{name}: bad workers {line:?}")),
            "stop" => {
                f.stop = Some(match value {
                    "INT" => Signal::SIGINT,
                    "TERM" => Signal::SIGTERM,
                    "QUIT" => Signal::SIGQUIT,
                    _ => panic!("{name}: bad stop signal {line:?}"),
                });
            }
            _ => {}
        }
    }
    assert!(
        !f.requests.is_empty() || !f.fail.is_empty(),
        "{name}: a fixture must expect at least one request or a refusal"
    );
    f.text = text;
    f
}

/// True when the server under test is real uWSGI (the reference run).
fn reference_run() -> bool {
    Path::new(&it::ruwsgi_command()).file_name().is_some_and(|n| n == "uwsgi")
}

/// The `@server` suffix of the directives meant for the server under test.
fn current_server() -> &'static str {
    if reference_run() {
        "uwsgi"
    } else {
        "ruwsgi"
    }
}

/// A started fixture: its process group, temp dir and environment.
struct Running {
    child: Child,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    log_file: Option<PathBuf>,
    /// The pidfile of a daemonized master.
    daemon: Option<PathBuf>,
    /// The daemonized master, read from the pidfile once the workers are up: before that it
    /// may still name the launcher (uWSGI's daemonize2 writes it before detaching and again
    /// after), and at exit vacuum removes it.
    daemon_pid: Option<i32>,
}

impl Running {
    /// Everything printed so far: the captured stdout/stderr and the fixture's log file.
    fn log(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.path().join(".output")).unwrap_or_default();
        if let Some(f) = &self.log_file {
            text.push_str(&std::fs::read_to_string(f).unwrap_or_default());
        }
        text
    }

    /// Polls the output until `pred` holds, the process exits, or `timeout` passes.
    fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.log()) {
                return true;
            }
            if Instant::now() >= deadline || !self.alive() {
                return pred(&self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `text` with every `$TEST_*` name replaced by its value.
    fn expand(&self, text: &str) -> String {
        expand(text, &self.env)
    }

    fn var(&self, name: &str) -> &str {
        self.env.iter().find(|(k, _)| k == name).map_or_else(|| panic!("no {name} in the environment"), |(_, v)| v)
    }

    /// The master: the started process, or the daemon.
    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.daemon_pid.unwrap_or(self.child.id() as i32))
    }

    /// Marks the start as done: a daemon's pidfile now names the master.
    fn started(&mut self) {
        let pid = self.daemon.as_ref().map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("pidfile {}: {e}", p.display()));
            text.trim().parse().unwrap_or_else(|_| panic!("pidfile {}: {text:?}", p.display()))
        });
        self.daemon_pid = pid;
    }

    /// Whether the server still runs. A daemon's launcher exits at once (with 0): then the
    /// pidfile's process counts, once it is written.
    fn alive(&mut self) -> bool {
        let status = self.child.try_wait().expect("try_wait");
        if self.daemon.is_none() {
            return status.is_none();
        }
        if status.is_some_and(|s| !s.success()) {
            return false;
        }
        if self.daemon_pid.is_none() {
            return true;
        }
        // A process that exited but isn't reaped yet (state Z) counts as gone.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A daemon sits in a session of its own: kill its group too.
        let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// The virtualenv the server under test runs from (`…/bin/ruwsgi` → `…`).
fn server_venv() -> String {
    let venv_python = it::venv_python();
    venv_python.parent().and_then(Path::parent).map(|p| p.display().to_string()).unwrap_or_default()
}

/// `text` with every `$NAME` of `env` replaced by its value (longest names first, so
/// `$TEST_ADDR2` isn't read as `$TEST_ADDR` and a `2`).
fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut vars: Vec<&(String, String)> = env.iter().collect();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    vars.iter().fold(text.to_owned(), |acc, (k, v)| acc.replace(&format!("${k}"), v))
}

/// Copies the fixture into a fresh temp dir and starts the server on it.
fn spawn(f: &Fixture) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    let ini = dir.path().join(format!("{}.ini", f.name));
    std::fs::write(&ini, &f.text).expect("copy fixture");
    let addr = || format!("127.0.0.1:{}", free_port());
    let repo = it::repo();
    let mut env: Vec<(String, String)> = vec![
        ("TEST_DIR".into(), d.clone()),
        ("TEST_APPS".into(), repo.join("tests/apps").display().to_string()),
        ("TEST_DJANGO".into(), repo.join("examples/django").display().to_string()),
        ("TEST_FLASK".into(), repo.join("examples/flask").display().to_string()),
        ("TEST_VENV".into(), server_venv()),
        ("TEST_ADDR".into(), addr()),
        ("TEST_ADDR2".into(), addr()),
        ("TEST_HTTP".into(), addr()),
        ("TEST_PORT".into(), free_port().to_string()),
        // The Django example keeps its database in the fixture dir (GETs of the login page
        // don't touch it, but nothing may be written into the repository).
        ("DEMO_DB".into(), format!("{d}/db.sqlite3")),
    ];
    for (k, v) in &f.env {
        let v = expand(v, &env);
        env.push((k.clone(), v));
    }
    for (name, content) in &f.files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("{}\n", expand(content, &env).replace("\\n", "\n"))).unwrap();
    }
    let ini_arg = match &f.section {
        Some(s) => format!("{}:{s}", ini.display()),
        None => ini.display().to_string(),
    };
    let out = std::fs::File::create(dir.path().join(".output")).expect("output file");
    let child = Command::new(it::ruwsgi_command())
        .args(["--ini", &ini_arg])
        .current_dir(dir.path())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", it::ruwsgi_command()));
    let log_file = f.log_file.as_ref().map(|n| dir.path().join(n));
    let daemon = f.daemon.as_ref().map(|n| dir.path().join(n));
    Running { child, dir, env, log_file, daemon, daemon_pid: None }
}

/// Connects to `target`, retrying briefly while nothing listens yet (uWSGI's `http` router
/// comes up after the workers are announced).
fn connect_with_retry<T>(what: &str, mut connect: impl FnMut() -> std::io::Result<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect() {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("cannot connect to {what}: {e}"),
        }
    }
}

/// A stream to `target`: `unix:NAME` (in the fixture dir) or an env var holding `host:port`.
fn open(run: &Running, target: &str) -> Box<dyn ReadWrite> {
    if let Some(name) = target.strip_prefix("unix:") {
        let path = run.dir.path().join(name);
        let s = connect_with_retry(&path.display().to_string(), || UnixStream::connect(&path));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Box::new(s)
    } else {
        // A bare port (`:PORT` sockets listen on every interface) is reached on loopback.
        let addr = run.var(target).to_owned();
        let addr = if addr.contains(':') { addr } else { format!("127.0.0.1:{addr}") };
        let s = connect_with_retry(&addr, || std::net::TcpStream::connect(&addr));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Box::new(s)
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A uwsgi-protocol GET as nginx's `uwsgi_params` would send it.
fn uwsgi_get(path: &str) -> Vec<u8> {
    let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path_info),
        ("QUERY_STRING", query),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "40000"),
        ("HTTP_HOST", "localhost"),
    ];
    it::uwsgi_packet(&vars)
}

/// Sends one `; expect:` request and returns the response.
fn send(run: &Running, req: &Request, nginx: &mut Option<(String, Nginx)>) -> Response {
    match req.via.as_str() {
        "http" => {
            let mut s = open(run, &req.target);
            s.write_all(
                format!("GET {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", req.path).as_bytes(),
            )
            .expect("write");
            read_response(&mut BufReader::new(s)).unwrap_or_else(|e| panic!("no HTTP response: {e}\n{}", run.log()))
        }
        "uwsgi" => {
            let mut s = open(run, &req.target);
            s.write_all(&uwsgi_get(&req.path)).expect("write");
            let mut raw = Vec::new();
            let _ = s.read_to_end(&mut raw);
            read_response(&mut &raw[..]).unwrap_or_else(|e| panic!("no uwsgi response: {e}\n{}", run.log()))
        }
        "nginx" => {
            let upstream = match req.target.strip_prefix("unix:") {
                Some(name) => format!("unix:{}", run.dir.path().join(name).display()),
                None => run.var(&req.target).to_owned(),
            };
            if nginx.as_ref().is_none_or(|(u, _)| *u != upstream) {
                let site = format!("location / {{\n    include uwsgi_params;\n    uwsgi_pass {upstream};\n}}\n");
                *nginx = Some((upstream, Nginx::start(&site)));
            }
            nginx.as_ref().unwrap().1.get(&req.path)
        }
        other => panic!("{}: unknown request kind {other:?}", run.dir.path().display()),
    }
}

/// Runs fixture `name`: start, requests, logs, stop, files; or the refusal it expects.
fn run_fixture(name: &str) {
    let f = load(name);
    let reference = reference_run();
    let mut run = spawn(&f);
    if !f.fail.is_empty() {
        let deadline = Instant::now() + START;
        let code = loop {
            if let Some(status) = run.child.try_wait().expect("try_wait") {
                break status.code();
            }
            assert!(Instant::now() < deadline, "{name}: expected a refusal, but it kept running:\n{}", run.log());
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = run.log();
        assert_ne!(code, Some(0), "{name}: expected a refusal, it exited 0:\n{log}");
        if let Some(want) = f.exit {
            assert_eq!(code, Some(want), "{name}: exit code\n{log}");
        }
        for want in &f.fail {
            let want = run.expand(want);
            assert!(log.contains(want.as_str()), "{name}: refusal should say {want:?}:\n{log}");
        }
        return;
    }
    let want = f.workers;
    let up = |t: &str| t.matches("spawned uWSGI worker").count() >= want;
    let mut started = run.wait_for(START, up);
    // The free ports were free when picked, but a test running alongside may take one first.
    for _ in 0..2 {
        if started || !run.log().contains("Address already in use") {
            break;
        }
        drop(run);
        run = spawn(&f);
        started = run.wait_for(START, up);
    }
    assert!(started, "{name}: did not start ({want} worker(s)):\n{}", run.log());
    run.started();
    let mut nginx = None;
    for (i, req) in f.requests.iter().enumerate() {
        let r = send(&run, req, &mut nginx);
        let log = || run.log() + &nginx.as_ref().map(|(_, n)| n.log()).unwrap_or_default();
        assert_eq!(
            r.status,
            req.status,
            "{name}: {} {} {}: {}\n{}\n{}",
            req.via,
            req.target,
            req.path,
            r.status_line,
            r.text(),
            log()
        );
        if let Some(body) = &req.body {
            assert!(
                r.text().contains(body.as_str()),
                "{name}: {} body should contain {body:?}: {}",
                req.path,
                r.text()
            );
        }
        if i == 0 {
            for (k, v) in &f.headers {
                assert_eq!(r.header(k), Some(v.as_str()), "{name}: header {k} in {:?}", r.headers);
            }
        }
    }
    for want in &f.logs {
        let want = run.expand(want);
        let found = run.wait_for(LOG_WAIT, |t| t.contains(want.as_str()));
        assert!(found, "{name}: log should contain {want:?}:\n{}", run.log());
    }
    // Files the server writes while running (hooks, daemons, request logs written through the
    // master): wait for them before stopping, then check them again after.
    for (file, text) in &f.files_expected {
        let path = run.dir.path().join(file);
        let text = text.as_ref().map(|t| run.expand(t));
        let present =
            || std::fs::read_to_string(&path).is_ok_and(|c| text.as_ref().is_none_or(|t| c.contains(t.as_str())));
        let _ = run.wait_for(LOG_WAIT, |_| present());
    }
    let sig = f.stop.unwrap_or(Signal::SIGINT);
    nix::sys::signal::kill(run.pid(), sig).expect("signal");
    let deadline = Instant::now() + STOP_WAIT;
    let stopped = loop {
        if !run.alive() {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if reference && !stopped {
        // uWSGI 2.0 sometimes leaves a worker behind on SIGINT/SIGTERM (the master waits on
        // it for worker-reload-mercy): a uWSGI bug, not behaviour to copy. Note it and go on.
        eprintln!("{name}: uWSGI still running {STOP_WAIT:?} after {sig} (killed)");
        let _ = nix::sys::signal::killpg(run.pid(), Signal::SIGKILL);
    }
    assert!(stopped || reference, "{name}: still running {STOP_WAIT:?} after {sig}:\n{}", run.log());
    let log = run.log();
    for bad in &f.no_logs {
        let bad = run.expand(bad);
        assert!(!log.contains(bad.as_str()), "{name}: log should not contain {bad:?}:\n{log}");
    }
    for (file, text) in &f.files_expected {
        let path = run.dir.path().join(file);
        let content = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {file}: {e}\n{log}"));
        if let Some(text) = text {
            let text = run.expand(text);
            assert!(content.contains(text.as_str()), "{name}: {file} should contain {text:?}:\n{content}");
        }
    }
    for file in f.files_gone.iter().filter(|_| stopped) {
        assert!(!run.dir.path().join(file).exists(), "{name}: {file} should be gone after stop:\n{log}");
    }
}

/// One test per fixture file; `every_fixture_has_a_test` keeps this list and the directory equal.
macro_rules! fixtures {
    ($($name:ident)*) => {
        $(#[test] fn $name() { run_fixture(stringify!($name)); })*
        const FIXTURES: &[&str] = &[$(stringify!($name)),*];
    };
}

fixtures! {
    bare_boolean_keys
    boolean_words_as_numbers
    check_static_docroot
    chmod_alias_http_router
    colon_port_http_router
    custom_placeholders
    daemonize2_procnames
    daemonize_pidfile
    dev_autoreload
    disable_logging_log_4xx
    django_home_wsgi_file_relative
    django_module_http_socket
    django_socket_behind_nginx
    env_vars_in_values
    flask_unix_socket_nginx
    for_glob_pythonpath
    for_readline_env_file
    gevent_loop
    hooks_exec_attach_daemon
    http11_socket
    http_socket_proxy_protocol
    if_env_processes_math
    if_env_virtualenv
    import_umask_env
    ini_include_relative_file
    ini_section_selected
    ini_section_splice
    inline_comments_after_values
    limits_reload_on_as
    log_route_json_encoder
    logformat_strftime_memory_report
    logger_file
    logto_log_format_rotation
    module_callable_factory
    mount_manage_script_name
    need_app_refuses_broken_app
    no_app_serves_500
    openstack_api_http_socket
    placeholder_math_nested
    plugins_lines
    route_donotlog_probes
    set_placeholder_strict
    socket_protocol_http
    static_map_http_router
    static_map_searxng
    strict_production
    strict_refuses_unknown_key
    tiangolo_docker_socket
    typo_keys_accepted
    uid_gid_root
    unimplemented_options_warn
    unset_env_var_kept_literally
    uwsgidecorators_django
    vassal_name_placeholders
    wsgi_file_and_module_both
}

#[test]
fn every_fixture_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(configs_dir())
        .expect("tests/configs")
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".ini").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|s| (*s).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "tests/configs/*.ini and the fixtures! list differ");
}
