//! Real configs' Python start-up and socket options (issue 11): `import`/`shared-import`
//! (where and how often they run), `pyargv`, `optimize`, `lazy`, `honour-stdin`, `umask`,
//! `chmod`, `protocol`, `http11-socket`, the PROXY protocol and `vhost`.

use std::io::{BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use it::json::{self, Value};
use it::{app, read_response, run_to_exit, ruwsgi_command, Response, Server};
use nix::sys::signal::Signal;

const SECS: Duration = Duration::from_secs(10);

/// A module that appends `<tag> <pid>` to `marks` in the working directory when imported.
fn write_marker(dir: &Path, module: &str, tag: &str) {
    std::fs::write(
        dir.join(format!("{module}.py")),
        format!("import os\nwith open('marks', 'a') as f:\n    f.write('{tag} %d\\n' % os.getpid())\n"),
    )
    .unwrap();
}

/// The pids recorded under `tag`.
fn marks(dir: &Path, tag: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(dir.join("marks")).unwrap_or_default();
    text.lines().filter_map(|l| l.strip_prefix(tag)?.trim().parse().ok()).collect()
}

/// An app answering `repr(EXPR)` for a Python expression (with `sys` and `os` imported).
fn write_repr_app(dir: &Path, expr: &str) {
    std::fs::write(
        dir.join("app.py"),
        format!(
            "import os, sys\n\ndef application(environ, start_response):\n    body = repr({expr}).encode()\n    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n    return [body]\n"
        ),
    )
    .unwrap();
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort_unstable();
    v
}

#[test]
fn import_runs_before_the_apps_in_each_lazy_worker_and_shared_import_once_in_the_master() {
    let dir = tempfile::tempdir().unwrap();
    write_marker(dir.path(), "mark_import", "import");
    write_marker(dir.path(), "mark_shared", "shared");
    let path = dir.path().to_path_buf();
    let srv = Server::start_args_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--processes",
            "2",
            "--lazy-apps",
            "--import",
            "mark_import",
            "--shared-pyimport",
            "mark_shared",
        ],
        2,
    );
    assert_eq!(srv.get("/").status, 200);
    // A lazy worker imports after it is spawned: wait for both before reading the marks.
    let both = srv.wait_for(Duration::from_secs(10), |l| l.matches("import: imported mark_import").count() >= 2);
    assert!(both, "{}", srv.log());
    assert_eq!(sorted(marks(&path, "import")), sorted(srv.worker_pids()), "{}", srv.log());
    assert_eq!(marks(&path, "shared"), [srv.pid()], "{}", srv.log());
}

#[test]
fn import_without_lazy_apps_runs_once_in_the_master_and_a_failure_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    write_marker(dir.path(), "mark_import", "import");
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    write_marker(&dir.path().join("pkg"), "by_file", "file");
    let path = dir.path().to_path_buf();
    let srv = Server::start_args_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--processes",
            "2",
            "--py-import",
            "no_such_module_here",
            "--python-import",
            "pkg/by_file.py",
            "--import",
            "mark_import",
        ],
        2,
    );
    assert_eq!(marks(&path, "import"), [srv.pid()], "{}", srv.log());
    // A path is run as a file, from the working directory.
    assert_eq!(marks(&path, "file"), [srv.pid()], "{}", srv.log());
    assert!(srv.log().contains("import = no_such_module_here: import failed"), "{}", srv.log());
    assert!(srv.log().contains("ModuleNotFoundError"), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn pyargv_is_sys_argv_after_uwsgi() {
    let dir = tempfile::tempdir().unwrap();
    write_repr_app(dir.path(), "sys.argv");
    let srv = Server::start_args_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "app.py",
            "--pyargv",
            "--config  prod.yaml\t-v",
            "--gevent-early-monkey-patch",
        ],
        1,
    );
    assert_eq!(srv.get("/").text(), "['uwsgi', '--config', 'prod.yaml', '-v']");
    assert!(srv.log().lines().any(|l| l.contains("gevent-early-monkey-patch") && l.contains("WARN")), "{}", srv.log());
}

#[test]
fn optimize_runs_the_app_at_that_level_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    write_repr_app(dir.path(), "(sys.flags.optimize, __debug__, sys.argv)");
    let ini = dir.path().join("app.ini");
    std::fs::write(&ini, "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = app.py\noptimize = 2\n").unwrap();
    let ini = ini.display().to_string();
    let srv = Server::start_args_in(dir, &["--ini", &ini], 1);
    assert_eq!(srv.get("/").text(), "(2, False, ['uwsgi'])");
    assert!(srv.log().contains("optimize = 2: re-executing the interpreter with -OO"), "{}", srv.log());
    srv.signal(Signal::SIGHUP);
    assert!(srv.wait_for(SECS, |t| t.matches("spawned uWSGI worker 1").count() >= 2), "{}", srv.log());
    // The same socket, inherited by the reloaded master.
    assert_eq!(srv.get("/").text(), "(2, False, ['uwsgi'])");
    assert_eq!(srv.log().matches("re-executing the interpreter").count(), 1, "{}", srv.log());
}

#[test]
fn lazy_reloads_only_the_workers_on_sighup() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--lazy"]);
    let before = srv.worker_pids();
    srv.signal(Signal::SIGHUP);
    assert!(srv.wait_log("SIGHUP received: lazy mode, gracefully reloading the workers only", SECS), "{}", srv.log());
    assert!(srv.wait_for(SECS, |t| t.matches("spawned uWSGI worker 1").count() >= 2), "{}", srv.log());
    assert_ne!(srv.worker_pids(), before);
    assert_eq!(srv.get("/").status, 200);
    // The master didn't re-execute: no second start banner.
    assert_eq!(srv.log().matches("*** Starting ruwsgi").count(), 1, "{}", srv.log());
}

/// Kills a server's process group when dropped, so a failing assertion leaves no orphans.
struct Killer(std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Starts ruwsgi with a pipe as stdin; returns what the master's fd 0 points to once it
/// serves (the server is stopped on return).
fn master_stdin(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"];
    args.extend(extra);
    write_repr_app(dir.path(), "1");
    let out = std::fs::File::create(&log).unwrap();
    let child = Killer(
        Command::new(ruwsgi_command())
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + SECS;
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("spawned uWSGI worker 1") {
        assert!(Instant::now() < deadline, "no start:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_link(format!("/proc/{}/fd/0", child.0.id())).unwrap().display().to_string()
}

#[test]
fn stdin_is_dev_null_unless_honour_stdin() {
    assert_eq!(master_stdin(&[]), "/dev/null");
    assert!(master_stdin(&["--honour-stdin"]).starts_with("pipe:"));
}

#[test]
fn umask_applies_to_unix_sockets_and_files_the_app_creates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "def application(environ, start_response):\n    open('created', 'w').close()\n    start_response('200 OK', [('Content-Length', '0')])\n    return []\n",
    )
    .unwrap();
    let path = dir.path().to_path_buf();
    let srv = Server::start_args_in(
        dir,
        &["--umask", "027", "--socket", "app.sock", "--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"],
        1,
    );
    let mode = |p: &str| std::fs::metadata(path.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("app.sock"), 0o750, "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(mode("created"), 0o640);
}

#[test]
fn chmod_is_chmod_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("app.ini");
    std::fs::write(&ini, format!("[uwsgi]\nsocket = app.sock\nchmod = 640\nwsgi-file = {}\n", app("hello.py")))
        .unwrap();
    let ini = ini.display().to_string();
    let path = dir.path().to_path_buf();
    let srv = Server::start_args_in(dir, &["--ini", &ini], 1);
    let mode = std::fs::metadata(path.join("app.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "{}", srv.log());
}

#[test]
fn protocol_http_makes_socket_speak_http() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--protocol", "http", "--wsgi-file", &app("hello.py")]);
    assert!(srv.log().contains("http socket 0 bound to TCP address"), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn protocol_fastcgi_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) =
        run_to_exit(dir.path(), &["--socket", ":0", "--socket-protocol", "fastcgi", "--wsgi-file", "x.py"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.trim(), "ruwsgi: --socket-protocol \"fastcgi\": ruwsgi serves only the uwsgi and http protocols");
}

#[test]
fn http11_socket_keeps_the_connection_alive() {
    let srv = Server::start(&["--http11-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py")]);
    let mut conn = srv.connect();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    for _ in 0..3 {
        conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut reader).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Connection"), None, "{}", r.status_line);
    }
}

/// Sends `raw` on a new connection and reads every response until the server closes.
fn responses(srv: &Server, raw: &[u8]) -> Vec<Response> {
    let mut conn = srv.connect();
    conn.write_all(raw).unwrap();
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut reader = BufReader::new(conn);
    std::iter::from_fn(|| read_response(&mut reader).ok()).collect()
}

fn remote(r: &Response) -> (String, String) {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    let v: Value = json::from_str(&r.text()).unwrap();
    let get = |k: &str| v["environ"][k].as_str().unwrap_or_default().to_owned();
    (get("REMOTE_ADDR"), get("REMOTE_PORT"))
}

fn pair(addr: &str, port: &str) -> (String, String) {
    (addr.to_owned(), port.to_owned())
}

#[test]
fn proxy_protocol_v1_and_v2_set_remote_addr() {
    let srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py"), "--enable-proxy-protocol"]);
    let get = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    // v1, then a second request on the same connection keeps the address.
    let rs = responses(&srv, &[&b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\n"[..], get, get].concat());
    assert_eq!(rs.len(), 2);
    assert_eq!(remote(&rs[0]), pair("203.0.113.7", "56324"));
    assert_eq!(remote(&rs[1]), pair("203.0.113.7", "56324"));
    let rs = responses(&srv, &[&b"PROXY TCP6 2001:db8::9 ::1 4000 80\r\n"[..], get].concat());
    assert_eq!(remote(&rs[0]), pair("2001:db8::9", "4000"));
    // v2, IPv4 over TCP, with a TLV after the addresses.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x10".to_vec();
    v2.extend_from_slice(&[198, 51, 100, 20, 10, 0, 0, 1, 0x1f, 0x90, 0, 80, 0x04, 0, 1, b'x']);
    let rs = responses(&srv, &[&v2[..], get].concat());
    assert_eq!(remote(&rs[0]), pair("198.51.100.20", "8080"));
    // No header: an ordinary connection, as in uWSGI.
    let rs = responses(&srv, get);
    assert_eq!(remote(&rs[0]).0, "127.0.0.1");
}

#[test]
fn proxy_protocol_malformed_header_gets_400_and_a_late_one_is_not_trusted() {
    let srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py"), "--enable-proxy-protocol"]);
    let rs = responses(&srv, b"PROXY TCP4 203.0.113.7 10.0.0.1 56324\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 400);
    assert!(srv.wait_log("bad PROXY header from 127.0.0.1: malformed PROXY v1 line -> 400", SECS), "{}", srv.log());
    // Only the connection's first bytes may be a header: one after a request is request data.
    let rs = responses(
        &srv,
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\nPROXY TCP4 6.6.6.6 10.0.0.1 1 2\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(remote(&rs[0]).0, "127.0.0.1");
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[1].status, 400);
}

#[test]
fn proxy_protocol_is_off_by_default() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let rs = responses(&srv, b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(rs[0].status, 400);
}

/// `app` from the `mounted` app's JSON answer.
fn app_name(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    let v: Value = json::from_str(&r.text()).unwrap();
    v["app"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn vhost_picks_the_app_by_host() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--vhost",
        "--pythonpath",
        &apps,
        "--mount",
        "blog.test|=mounted:blog",
        "--mount",
        "shop.test:8080|=mounted:shop",
        "--mount",
        "/=mounted",
        "--mount",
        &format!("echo.test|={}", app("echo.py")),
    ]);
    let r = srv.exchange(b"GET /x HTTP/1.1\r\nHost: echo.test\r\nConnection: close\r\n\r\n");
    let v: Value = json::from_str(&r.text()).unwrap();
    assert_eq!(v["environ"]["UWSGI_APPID"], "echo.test|", "{v}");
    let host = |h: &str| {
        app_name(&srv.exchange(format!("GET /x HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n").as_bytes()))
    };
    assert_eq!(host("blog.test"), "blog");
    assert_eq!(host("shop.test:8080"), "shop");
    // The port is part of the key, as in uWSGI; no match goes to the default app.
    assert_eq!(host("shop.test"), "default");
    assert_eq!(host("other.test"), "default");
    assert!(srv.log().contains("WSGI app 2 (mountpoint='') ready: mounted:application (default app)"), "{}", srv.log());
    // As uWSGI, the request log line starts with the host.
    assert!(srv.wait_log("\nshop.test:8080 [pid: ", SECS), "{}", srv.log());
}

#[test]
fn vhost_over_uwsgi_takes_http_host_then_server_name() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let srv = Server::start(&[
        "--socket",
        "127.0.0.1:0",
        "--vhost",
        "--pythonpath",
        &apps,
        "--mount",
        "blog.test|=mounted:blog",
        "--mount",
        "shop.test|/store=mounted:shop",
        "--mount",
        "=mounted",
    ]);
    let ask = |vars: &[(&str, &str)]| {
        let mut base = vec![("REQUEST_METHOD", "GET"), ("PATH_INFO", "/"), ("SERVER_PROTOCOL", "HTTP/1.1")];
        base.extend_from_slice(vars);
        let mut conn = srv.connect();
        conn.write_all(&it::uwsgi_packet(&base)).unwrap();
        app_name(&read_response(&mut BufReader::new(conn)).unwrap())
    };
    assert_eq!(ask(&[("SERVER_NAME", "blog.test")]), "blog");
    assert_eq!(ask(&[("SERVER_NAME", "shop.test"), ("HTTP_HOST", "blog.test")]), "blog");
    assert_eq!(ask(&[("HTTP_HOST", "shop.test"), ("SCRIPT_NAME", "/store")]), "shop");
    assert_eq!(ask(&[("HTTP_HOST", "shop.test")]), "default");
}

#[test]
fn vhost_without_a_path_mount_answers_500_for_unknown_hosts() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--vhost-host",
        "--pythonpath",
        &apps,
        "--mount",
        "blog.test|=mounted:blog",
    ]);
    let r = srv.exchange(b"GET / HTTP/1.1\r\nHost: blog.test\r\nConnection: close\r\n\r\n");
    assert_eq!(app_name(&r), "blog");
    let r = srv.exchange(b"GET / HTTP/1.1\r\nHost: nope.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 500);
}
