//! Core server, processes: workers that die are respawned, the master stays single-threaded,
//! signals stop everything, start-up failures exit with the right code and message.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use it::{app, run_to_exit, Server};
use nix::sys::signal::Signal;

const SECS: Duration = Duration::from_secs(10);

fn pid_alive(pid: i32) -> bool {
    // A zombie is as good as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
}

fn wait_gone(pids: &[i32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !pid_alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn worker_dies_and_is_respawned(route: &str, how: &str) {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")]);
    let before = srv.get("/pid").text();
    let mut s = srv.connect();
    s.write_all(format!("GET {route} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest); // EOF (or reset): the worker is gone
    assert!(
        rest.is_empty() || !String::from_utf8_lossy(&rest).contains("still alive"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(srv.wait_log(how, SECS), "no death message {how:?}:\n{}", srv.log());
    assert!(srv.wait_log("Respawned uWSGI worker 1", SECS), "not respawned:\n{}", srv.log());
    let deadline = Instant::now() + SECS;
    let after = loop {
        let r = srv.get("/pid");
        if r.status == 200 {
            break r.text();
        }
        assert!(Instant::now() < deadline, "no answer after the respawn");
    };
    assert_ne!(before, after, "a new worker process serves");
    for _ in 0..3 {
        assert_eq!(srv.get("/").status, 200);
    }
}

#[test]
fn os_exit_in_a_worker_is_respawned() {
    worker_dies_and_is_respawned("/exit", "worker 1 (pid: ");
    // The exact uWSGI-style line.
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")]);
    let mut s = srv.connect();
    s.write_all(b"GET /exit HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    assert!(srv.wait_log("died with exit code 1", SECS), "{}", srv.log());
}

#[test]
fn segfault_in_a_worker_is_respawned() {
    worker_dies_and_is_respawned("/segfault", "killed by signal 11");
}

#[test]
fn processes_2_threads_2_master_single_threaded_after_respawn() {
    let srv = it::http_server("hello.py", "2", "2", &[]);
    let workers = srv.worker_pids();
    assert_eq!(workers.len(), 2, "{workers:?}");
    // Each worker: its main thread plus 2 request threads (started just after the fork).
    let deadline = Instant::now() + SECS;
    while workers.iter().any(|w| it::thread_count(*w) < 3) {
        let counts: Vec<usize> = workers.iter().map(|w| it::thread_count(*w)).collect();
        assert!(Instant::now() < deadline, "worker thread counts {counts:?}, want 3 each");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(it::thread_count(srv.pid()), 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(workers[0]), Signal::SIGKILL).unwrap();
    assert!(srv.wait_log("Respawned uWSGI worker", SECS), "{}", srv.log());
    let deadline = Instant::now() + SECS;
    while srv.worker_pids().len() != 2 || srv.worker_pids().contains(&workers[0]) {
        assert!(Instant::now() < deadline, "workers: {:?}", srv.worker_pids());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(it::thread_count(srv.pid()), 1, "the master must stay single-threaded after a respawn");
    assert_eq!(srv.get("/").status, 200);
}

fn stop_with(sig: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("ruwsgi.pid");
    let pidfile_arg = pidfile.to_str().unwrap();
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--processes",
        "2",
        "--vacuum",
        "--pidfile",
        pidfile_arg,
    ];
    let mut srv = Server::start_args_in(dir, &args, 2);
    assert_eq!(srv.get("/").status, 200);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(pid, srv.pid());
    let workers = srv.worker_pids();
    // An idle keep-alive client must not delay the stop.
    let mut idle = srv.connect();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    srv.signal(sig);
    let code = srv.wait_exit(SECS);
    assert_eq!(code, Some(0), "{sig} did not stop the master cleanly:\n{}", srv.log());
    assert!(wait_gone(&workers, SECS), "workers still alive after {sig}");
    assert!(!pidfile.exists(), "vacuum did not remove the pidfile");
    assert!(srv.log().contains("goodbye to uWSGI"), "{}", srv.log());
}

#[test]
fn sigterm_stops_everything_and_vacuums() {
    stop_with(Signal::SIGTERM);
}

#[test]
fn sigint_stops_everything_and_vacuums() {
    stop_with(Signal::SIGINT);
}

#[test]
fn need_app_broken_import_exits_22_with_traceback() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("broken_import.py"), "--need-app"],
        SECS,
    );
    assert_eq!(code, Some(22), "{out}");
    assert!(out.contains("Traceback (most recent call last)"), "{out}");
    assert!(out.contains("ImportError: broken_import: this module deliberately fails to import"), "{out}");
    // The same with lazy-apps: the workers fail to load, the master gives up with 22.
    let (code, out) = run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("broken_import.py"), "--lazy-apps"],
        SECS,
    );
    assert_eq!(code, Some(22), "{out}");
    assert!(out.contains("ImportError: broken_import"), "{out}");
}

#[test]
fn threads_started_at_import_are_named_in_a_warning() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("threads_at_import.py")]);
    assert!(srv.log().contains("started-at-import"), "no warning naming the thread:\n{}", srv.log());
    assert_eq!(srv.get("/").text(), "Hello from threads_at_import!");
}

#[test]
fn bad_config_lines_stop_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("app.ini");
    let hello = app("hello.py");
    std::fs::write(&ini, format!("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {hello}\nprocesess = 2\nstrict\n"))
        .unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--ini", "app.ini"], SECS);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{out}");
    assert!(lines[0].contains("app.ini:4"), "{out}");
    assert!(lines[0].contains("unknown option \"procesess\""), "{out}");
    assert!(lines[0].contains("did you mean \"processes\"?"), "{out}");
    assert!(lines[0].contains("strict mode"), "{out}");

    // `threads = lots` is 0 in uWSGI (`atoi`), so it starts; a negative count stops it there
    // too ("must be > 0").
    std::fs::write(&ini, format!("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {hello}\n\nthreads = -2\n")).unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--ini", "app.ini"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("app.ini:5") && out.contains("threads") && out.contains("-2"), "{out}");

    let (code, out) =
        run_to_exit(dir.path(), &["--http-socket", "127.0.0.1:0", "--wsgi-file", &hello, "--procesess", "2"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("procesess") && out.contains("processes"), "{out}");
}

/// Lines of a real-world ini that uWSGI 2.0 starts with: typos and custom keys nothing uses
/// (uWSGI ignores them silently), and real uWSGI options ruwsgi doesn't implement (uWSGI runs
/// them). Each with the warning ruwsgi logs for it.
const TYPOS_AND_MISSING: &[(&str, &str)] = &[
    ("vaccum = true", "unknown option \"vaccum\" (did you mean \"vacuum\"?): kept only as a custom placeholder and in uwsgi.opt"),
    ("guid = nogroup", "unknown option \"guid\" (did you mean \"uid\"?): kept only as a custom placeholder and in uwsgi.opt"),
    ("process = 4", "unknown option \"process\" (did you mean \"processes\"?): kept only as a custom placeholder and in uwsgi.opt"),
    ("app = demo", "unknown option \"app\": kept only as a custom placeholder and in uwsgi.opt"),
    ("base_dir = /srv/demo", "unknown option \"base_dir\": kept only as a custom placeholder and in uwsgi.opt"),
    (
        "spooler-external = /tmp/spool",
        "option \"spooler-external\" is not implemented by ruwsgi: ruwsgi spools only to the queues its own spoolers drain",
    ),
    ("freebind = true", "option \"freebind\" is not implemented by ruwsgi: it is ignored"),
];

/// Issue 11: such an ini starts and serves, and the log has one warning line for each, naming
/// the file and line.
#[test]
fn typos_and_not_implemented_options_warn_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let mut ini = format!("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n", app("hello.py"));
    for (line, _) in TYPOS_AND_MISSING {
        ini.push_str(line);
        ini.push('\n');
    }
    let srv = Server::start_ini_in(dir, &ini, 1, vec![]);
    assert_eq!(srv.get("/").status, 200);
    let log = srv.log();
    for (i, (_, warning)) in TYPOS_AND_MISSING.iter().enumerate() {
        let line = format!("WARNING: app.ini:{}: {warning}", i + 4);
        assert_eq!(log.lines().filter(|l| *l == line).count(), 1, "want {line:?} once in:\n{log}");
    }
}

/// With `strict`, uWSGI refuses an unknown key (`[strict-mode] unknown config directive`);
/// ruwsgi refuses each of these lines, with one line naming it.
#[test]
fn strict_refuses_typos_and_not_implemented_options() {
    let dir = tempfile::tempdir().unwrap();
    for (i, (line, _)) in TYPOS_AND_MISSING.iter().enumerate() {
        let ini =
            format!("[uwsgi]\nstrict = true\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n{line}\n", app("hello.py"));
        let name = format!("app{i}.ini");
        std::fs::write(dir.path().join(&name), ini).unwrap();
        let (code, out) = run_to_exit(dir.path(), &["--ini", &name], SECS);
        assert_eq!(code, Some(1), "{line}: {out}");
        let key = line.split(' ').next().unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.starts_with(&format!("ruwsgi: {name}:5: ")), "{out}");
        assert!(out.contains(&format!("\"{key}\"")) && out.contains("strict mode"), "{out}");
    }
}

/// A few options can't be ignored safely (`chroot` would leave the app unconfined,
/// `ssl-socket` would not listen): start-up stops even without `strict`.
#[test]
fn refused_options_stop_start_up_without_strict() {
    let dir = tempfile::tempdir().unwrap();
    for (option, value) in
        [("chroot", "/srv/jail"), ("ssl-socket", "127.0.0.1:0,a.crt,a.key"), ("fastcgi-socket", "127.0.0.1:0")]
    {
        let (code, out) = run_to_exit(
            dir.path(),
            &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), &format!("--{option}"), value],
            SECS,
        );
        assert_eq!(code, Some(1), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(
            out.contains(&format!("option \"{option}\" is not implemented by ruwsgi and can't be ignored: ")),
            "{out}"
        );
    }
}

/// `protocol = http` makes `socket` speak HTTP, as in uWSGI (real configs say it, and
/// `protocol = uwsgi`).
#[test]
fn protocol_http_makes_socket_speak_http() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--protocol", "http", "--wsgi-file", &app("hello.py")]);
    assert_eq!(srv.get("/").status, 200);
}

/// A program the app starts begins with no signal blocked, so SIGTERM stops it.
#[test]
fn programs_the_app_starts_can_be_stopped_with_sigterm() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")]);
    let child: i32 = srv.get("/spawn").text().trim().parse().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap();
    let blocked = status.lines().find_map(|l| l.strip_prefix("SigBlk:")).unwrap().trim();
    assert_eq!(u64::from_str_radix(blocked, 16).unwrap(), 0, "blocked signals in the app's child: {blocked}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), Signal::SIGTERM).unwrap();
    assert!(wait_gone(&[child], SECS), "SIGTERM did not stop the app's child");
}
