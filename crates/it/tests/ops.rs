//! Master process operations (issue 4): graceful reload under load, graceful shutdown,
//! harakiri, recycling, py-autoreload, daemonize, the stats server (read by the real
//! `uwsgitop`), touch-reload, the master FIFO and attached daemons.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use it::{app, read_response, read_to_close, touch_later, wait_file, Server};
use nix::sys::signal::Signal;

/// A one-response WSGI app whose body is `body`.
fn write_app(dir: &Path, body: &str) {
    let src = format!(
        "BODY = b{body:?}\n\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(BODY)))])\n    return [BODY]\n"
    );
    // Written aside and renamed, so a worker loading the app meanwhile (lazy-apps) reads the
    // old or the new file, never a half-written one.
    std::fs::write(dir.join("app.py.new"), src).unwrap();
    std::fs::rename(dir.join("app.py.new"), dir.join("app.py")).unwrap();
}

/// Serves the `write_app` app answering `v1` over HTTP on a free port, plus `extra` flags,
/// from a temp dir where each of `empty_files` exists (e.g. a `touch-*` file).
fn start_v1(empty_files: &[&str], extra: &[&str], workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "v1");
    for name in empty_files {
        std::fs::write(dir.path().join(name), "").unwrap();
    }
    let args = [&["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py"], extra].concat();
    Server::start_args_in(dir, &args, workers)
}

/// Outcome of one client's run.
#[derive(Default)]
struct ClientTally {
    ok: usize,
    failed: Vec<String>,
    /// A reused keep-alive connection closed before any response byte (the server closes
    /// idle keep-alive connections on reload, RFC 9112 §9.6); the request was re-sent on
    /// a new connection, as HTTP clients do for idempotent requests.
    retried: usize,
}

/// One load-generating client: `keep_alive` reuses its connection, else one per request.
fn client(
    addr: SocketAddr,
    keep_alive: bool,
    min: usize,
    stop: &AtomicBool,
    total: &AtomicUsize,
    deadline: Instant,
) -> ClientTally {
    let mut tally = ClientTally::default();
    let mut conn: Option<(BufReader<TcpStream>, usize)> = None;
    let req_close = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let req_keep = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    while (tally.ok + tally.failed.len() < min || !stop.load(Relaxed)) && Instant::now() < deadline {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reused = conn.as_ref().is_some_and(|c| c.1 > 0);
            let (reader, served) = conn.get_or_insert_with(|| (BufReader::new(it::connect(addr)), 0));
            let sent = reader.get_mut().write_all(if keep_alive { req_keep } else { req_close });
            let result = sent.and_then(|()| read_response(reader));
            match result {
                Ok(r) if r.status == 200 && (r.body == b"v1" || r.body == b"v2") => {
                    tally.ok += 1;
                    total.fetch_add(1, Relaxed);
                    *served += 1;
                    if !keep_alive || r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                        conn = None;
                    }
                    break;
                }
                Ok(r) => {
                    tally.failed.push(format!("status {} body {:?}", r.status, r.text()));
                    conn = None;
                    break;
                }
                Err(e) => {
                    conn = None;
                    let closed_early = matches!(
                        e.kind(),
                        std::io::ErrorKind::UnexpectedEof
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::BrokenPipe
                    );
                    if reused && closed_early && attempt == 1 {
                        tally.retried += 1;
                        continue;
                    }
                    tally.failed.push(format!("{e} (reused connection: {reused})"));
                    break;
                }
            }
        }
    }
    tally
}

#[test]
fn sighup_reload_under_load_drops_no_request() {
    let srv = start_v1(&[], &["--processes", "2", "--threads", "2"], 2);
    let addr = srv.addr();
    let master = srv.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(90);
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (stop, total) = (Arc::clone(&stop), Arc::clone(&total));
            std::thread::spawn(move || client(addr, i % 2 == 0, 250, &stop, &total, deadline))
        })
        .collect();
    while total.load(Relaxed) < 400 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    write_app(srv.dir.path(), "v2");
    srv.signal(Signal::SIGHUP);
    let reloaded = srv.wait_for(Duration::from_secs(30), |log| {
        log.contains("binary reloading uWSGI")
            && log.matches("*** Starting ruwsgi").count() >= 2
            && log.matches("spawned uWSGI worker").count() >= 4
    });
    // Keep the load going a little on the new workers.
    let after = total.load(Relaxed);
    while total.load(Relaxed) < after + 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Relaxed);
    let tallies: Vec<ClientTally> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(reloaded, "no reload:\n{}", srv.log());
    let ok: usize = tallies.iter().map(|t| t.ok).sum();
    let retried: usize = tallies.iter().map(|t| t.retried).sum();
    let failed: Vec<&String> = tallies.iter().flat_map(|t| &t.failed).collect();
    assert!(
        failed.is_empty(),
        "{} failed requests (of {ok} ok, {retried} retried): {:?}\n{}",
        failed.len(),
        &failed[..failed.len().min(10)],
        srv.log()
    );
    assert!(ok >= 2000, "only {ok} requests");
    assert_eq!(srv.get("/").body, b"v2", "the reloaded app must serve the edited code");
    assert_eq!(srv.pid(), master);
    assert_eq!(it::thread_count(master), 1, "the master must stay single-threaded after a reload");
    assert_eq!(srv.worker_pids().len(), 2);
    eprintln!("reload under load: {ok} ok, {retried} keep-alive retries");
}

#[test]
fn sigterm_lets_the_in_flight_request_finish() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let pidfile = dir.path().join("app.pid");
    let (sock_s, pid_s) = (sock.display().to_string(), pidfile.display().to_string());
    let mut srv = Server::start_args_in(
        dir,
        &["--http-socket", &sock_s, "--wsgi-file", &app("wsgi_features.py"), "--pidfile", &pid_s, "--vacuum"],
        1,
    );
    assert!(sock.exists() && pidfile.exists());
    let client = {
        let sock = sock.clone();
        std::thread::spawn(move || {
            let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.write_all(b"GET /sleep?s=2 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            read_response(&mut BufReader::new(s))
        })
    };
    // The request sleeps 2 s in the app; give it time to get there.
    std::thread::sleep(Duration::from_millis(500));
    srv.signal(Signal::SIGTERM);
    let response = client.join().unwrap().expect("the in-flight request must complete");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"slept 2");
    assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0), "{}", srv.log());
    assert!(!sock.exists(), "vacuum must remove the socket");
    assert!(!pidfile.exists(), "vacuum must remove the pidfile");
}

#[test]
fn harakiri_kills_the_stuck_worker_and_logs_its_stack() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--processes",
        "2",
        "--harakiri",
        "2",
        "--harakiri-verbose",
    ]);
    let addr = srv.addr();
    let started = Instant::now();
    let stuck = std::thread::spawn(move || {
        let mut s = it::connect(addr);
        s.write_all(b"GET /sleep?s=30 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        read_response(&mut BufReader::new(s))
    });
    assert!(srv.wait_log("HARAKIRI ON WORKER", Duration::from_secs(10)), "{}", srv.log());
    // Other workers keep answering.
    assert_eq!(srv.get("/pid").status, 200);
    assert!(srv.wait_log("Respawned uWSGI worker", Duration::from_secs(10)), "{}", srv.log());
    // The client sees a closed connection (or a 5xx), not the 30 s answer.
    if let Ok(r) = stuck.join().unwrap() {
        assert!(r.status >= 500, "the stuck client got {}", r.status);
    }
    assert!(started.elapsed() < Duration::from_secs(15), "the stuck request was not cut");
    let log = srv.log();
    assert!(log.contains("GET /sleep?s=30"), "the request is named:\n{log}");
    assert!(log.contains(" in sleep") && log.contains("wsgi_features.py"), "the Python stack is logged:\n{log}");
    for _ in 0..4 {
        assert_eq!(srv.get("/").status, 200);
    }
}

#[test]
fn max_requests_rotates_worker_pids() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--max-requests",
        "50",
        "--min-worker-lifetime",
        "0",
    ]);
    let mut pids = std::collections::BTreeSet::new();
    // The worker notices its count on its next check (a fraction of a second): past the 50th
    // request, keep asking until a new pid answers, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0;
    while sent < 130 || (pids.len() < 2 && Instant::now() < deadline) {
        let r = srv.get("/pid");
        assert_eq!(r.status, 200);
        pids.insert(r.text());
        sent += 1;
    }
    assert!(pids.len() >= 2, "worker pids did not rotate after {sent} requests: {pids:?}\n{}", srv.log());
    assert!(srv.log().contains("max requests reached"), "{}", srv.log());
}

#[test]
fn reload_on_rss_recycles_a_leaking_worker() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--reload-on-rss",
        "100",
        "--min-worker-lifetime",
        "0",
    ]);
    let first = srv.get("/pid").text();
    assert_eq!(srv.get("/leak?mb=150").status, 200);
    assert!(srv.wait_log("reload-on-rss", Duration::from_secs(10)), "{}", srv.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = first.clone();
    while now == first && Instant::now() < deadline {
        now = srv.get("/pid").text();
    }
    assert_ne!(now, first, "the leaking worker was not replaced\n{}", srv.log());
}

#[test]
fn py_autoreload_serves_an_edited_module_within_3s() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.py"), "TEXT = b'one'\n").unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import greeting\n\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [greeting.TEXT]\n",
    )
    .unwrap();
    // Some file systems keep mtimes in whole seconds: the module is older than the server,
    // and the edit comes a second after the start, so their mtimes differ everywhere.
    let old = std::time::SystemTime::now() - Duration::from_secs(10);
    std::fs::File::options().write(true).open(dir.path().join("greeting.py")).unwrap().set_modified(old).unwrap();
    let srv = Server::start_args_in(
        dir,
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py", "--py-autoreload", "1"],
        1,
    );
    assert_eq!(srv.get("/").body, b"one");
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(srv.dir.path().join("greeting.py"), "TEXT = b'two'\n").unwrap();
    let edited = Instant::now();
    let mut body = Vec::new();
    while edited.elapsed() < Duration::from_secs(3) {
        body = srv.get("/").body;
        if body == b"two" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(body, b"two", "edited module not served after {:?}\n{}", edited.elapsed(), srv.log());
    assert!(srv.log().contains("[uWSGI Python autoreloader] module greeting modified"), "{}", srv.log());
}

/// Kills a daemonized master (and so its workers) when the test ends.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{}", self.0)).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    }
}

#[test]
fn daemonize_returns_and_logs_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let pidfile = dir.path().join("app.pid");
    let started = Instant::now();
    let status = Command::new(it::ruwsgi_command())
        .args(["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py")])
        .arg("--daemonize")
        .arg(&log)
        .arg("--pidfile")
        .arg(&pidfile)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(started.elapsed() < Duration::from_secs(10), "the command must return");
    let text = wait_file(&pidfile, Duration::from_secs(10), |t| t.trim().parse::<i32>().is_ok()).expect("pidfile");
    let pid: i32 = text.trim().parse().unwrap();
    let _guard = KillOnDrop(pid);
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the pidfile names a live master");
    let text = wait_file(&log, Duration::from_secs(20), |t| t.contains("spawned uWSGI worker 1"))
        .expect("worker spawned in the log");
    let addr: SocketAddr =
        text.lines().find_map(|l| l.split("bound to TCP address ").nth(1)?.split(' ').next()?.parse().ok()).unwrap();
    let mut s = it::connect(addr);
    s.write_all(b"GET /daemon HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    assert!(
        wait_file(&log, Duration::from_secs(10), |t| t.contains("GET /daemon =>")).is_some(),
        "request line in the log file"
    );
}

/// The `uwsgitop` and `python` installed next to `ruwsgi`.
fn venv_bin(name: &str) -> PathBuf {
    let cmd = PathBuf::from(it::ruwsgi_command());
    let dir = if cmd.is_absolute() {
        cmd.parent().unwrap().to_path_buf()
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .find(|d| d.join(&cmd).is_file())
            .expect("ruwsgi on PATH")
    };
    dir.join(name)
}

/// Runs `uwsgitop ADDRESS` on a pseudo-terminal for a couple of refreshes, quits it with
/// `q`, and returns what it drew.
const UWSGITOP_DRIVER: &str = r#"
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.environ["TERM"] = "xterm"
    os.execv(sys.argv[1], [sys.argv[1], sys.argv[2]])
out = b""
def pump(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return False
            if not data:
                return False
            out += data
    return True
pump(2.5)
os.write(fd, b"q")
pump(3)
try:
    os.kill(pid, 9)
except OSError:
    pass
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;

#[test]
fn stats_server_serves_uwsgi_json_and_uwsgitop_reads_it() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--processes",
        "2",
        "--stats",
        "127.0.0.1:0",
    ]);
    for _ in 0..5 {
        assert_eq!(srv.get("/").status, 200);
    }
    let address = srv.logged_address("stats");
    let json = read_to_close(&address, b"");
    for key in [
        "\"version\"",
        "\"listen_queue\"",
        "\"workers\"",
        "\"avg_rt\"",
        "\"harakiri_count\"",
        "\"cores\"",
        "\"sockets\"",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    let pids = srv.worker_pids();
    for pid in &pids {
        assert!(json.contains(&format!("\"pid\": {pid}")), "worker {pid} missing from {json}");
    }
    let out = Command::new(venv_bin("python"))
        .arg("-c")
        .arg(UWSGITOP_DRIVER)
        .arg(venv_bin("uwsgitop"))
        .arg(&address)
        .output()
        .unwrap();
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(
        screen.contains("WID"),
        "uwsgitop drew no worker table:\n{screen}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(screen.contains("req: 5") || screen.contains("req:"), "{screen}");
    for pid in &pids {
        assert!(screen.contains(&pid.to_string()), "uwsgitop does not show worker {pid}:\n{screen}");
    }
}

#[test]
fn stats_http_answers_with_a_http_head() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--stats",
        "127.0.0.1:0",
        "--stats-http",
    ]);
    let text = read_to_close(&srv.logged_address("stats"), b"");
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("\"workers\""), "{text}");
}

#[test]
fn touch_reload_and_master_fifo() {
    let srv = start_v1(&["reload.touch"], &["--touch-reload", "reload.touch", "--master-fifo", "ctl.fifo"], 1);
    assert_eq!(srv.get("/").body, b"v1");
    write_app(srv.dir.path(), "v2");
    touch_later(&srv.dir.path().join("reload.touch"));
    assert!(
        srv.wait_for(Duration::from_secs(20), |l| l.contains("has been touched... grace them all")
            && l.matches("spawned uWSGI worker").count() >= 2),
        "{}",
        srv.log()
    );
    assert_eq!(srv.get("/").body, b"v2");
    // master-fifo: `q` is a graceful shutdown.
    let mut srv = srv;
    assert!(srv.wait_log("master fifo", Duration::from_secs(5)));
    std::fs::OpenOptions::new().write(true).open(srv.dir.path().join("ctl.fifo")).unwrap().write_all(b"q").unwrap();
    assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0), "{}", srv.log());
}

#[test]
fn touch_chain_reload_replaces_lazy_workers_one_at_a_time() {
    let srv =
        start_v1(&["chain.touch"], &["--processes", "2", "--lazy-apps", "--touch-chain-reload", "chain.touch"], 2);
    let before = srv.worker_pids();
    assert_eq!(srv.get("/").body, b"v1");
    write_app(srv.dir.path(), "v2");
    touch_later(&srv.dir.path().join("chain.touch"));
    assert!(srv.wait_log("chain reloading complete", Duration::from_secs(30)), "{}", srv.log());
    let log = srv.log();
    let first = log.find("chain next victim is worker 1").expect("worker 1 replaced");
    let second = log.find("chain next victim is worker 2").expect("worker 2 replaced");
    assert!(first < second);
    // Worker 2 was told to go only after worker 1's replacement was up.
    let respawn_1 = log.find("Respawned uWSGI worker 1").expect("worker 1 respawned");
    assert!(respawn_1 < second, "{log}");
    let after = srv.worker_pids();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|p| !before.contains(p)), "{before:?} -> {after:?}");
    for _ in 0..6 {
        assert_eq!(srv.get("/").body, b"v2");
    }
}

/// Starts `ruwsgi` serving hello.py with `extra` options and `--logto dir/server.log`; returns
/// the process (stopped when the guard drops), the log's path and its text once worker 1 is up.
fn start_logging_to_a_file(dir: &Path, extra: &[&str]) -> (std::process::Child, KillOnDrop, PathBuf, String) {
    let log = dir.join("server.log");
    let child = Command::new(it::ruwsgi_command())
        .args(["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py")])
        .args(extra)
        .arg("--logto")
        .arg(&log)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id() as i32);
    let text =
        wait_file(&log, Duration::from_secs(20), |t| t.contains("spawned uWSGI worker 1")).expect("server started");
    (child, guard, log, text)
}

#[test]
fn log_maxsize_rotates_and_workers_follow() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, guard, log, text) = start_logging_to_a_file(dir.path(), &["--log-maxsize", "4000"]);
    let addr: SocketAddr =
        text.lines().find_map(|l| l.split("bound to TCP address ").nth(1)?.split(' ').next()?.parse().ok()).unwrap();
    let get = |path: &str| {
        let mut s = it::connect(addr);
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(read_response(&mut BufReader::new(s)).unwrap().status, 200);
    };
    let rotated = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("server.log."))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    while !rotated() && Instant::now() < deadline {
        get(&format!("/fill-{n}"));
        n += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(rotated(), "no rotated file after {n} requests");
    // The worker reopens the new file: its next request line lands there.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut found = false;
    while !found && Instant::now() < deadline {
        get("/after-rotation");
        found = std::fs::read_to_string(&log).unwrap_or_default().contains("GET /after-rotation");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        found,
        "request lines do not reach the new log file:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(guard);
    let _ = child.wait();
}

#[test]
fn sigusr1_logs_worker_stats() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--processes", "2"]);
    assert_eq!(srv.get("/").status, 200);
    srv.signal(Signal::SIGUSR1);
    assert!(
        srv.wait_for(Duration::from_secs(5), |l| l.contains("worker 1 pid") && l.contains("worker 2 pid")),
        "{}",
        srv.log()
    );
}

#[test]
fn metrics_serves_prometheus_text() {
    let srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--metrics", "127.0.0.1:0"]);
    for _ in 0..3 {
        assert_eq!(srv.get("/").status, 200);
    }
    let address = srv.logged_address("metrics (Prometheus)");
    let mut s = TcpStream::connect(&address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap_or("").starts_with("text/plain"));
    let text = r.text();
    assert!(text.contains("# TYPE ruwsgi_worker_requests_total counter"), "{text}");
    assert!(text.contains("ruwsgi_worker_requests_total{worker=\"1\"} 3"), "{text}");
}

/// The `Uid:`/`Gid:` lines of /proc/PID/status, real ids only.
fn ids_of(pid: i32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let id = |key: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (id("Uid:"), id("Gid:"))
}

#[test]
fn uid_and_gid_drop_privileges_after_binding() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import os\n\ndef application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'%d %d' % (os.getuid(), os.getgid())]\n",
    )
    .unwrap();
    // The user switched to must be able to read the app.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py", "--uid", "nobody", "--gid", "nogroup"];
    if !nix::unistd::geteuid().is_root() {
        // Without root the switch is impossible: one line naming it, and no server.
        let (code, log) = it::run_to_exit(dir.path(), &args, Duration::from_secs(20));
        assert_ne!(code, Some(0), "{log}");
        assert!(log.contains("setgid(65534)"), "{log}");
        return;
    }
    let srv = Server::start_args_in(dir, &args, 1);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw();
    let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap().gid.as_raw();
    // The app runs as nobody:nogroup, and so do the master and the worker.
    assert_eq!(srv.get("/").text(), format!("{nobody} {nogroup}"));
    assert_eq!(ids_of(srv.pid()), (nobody, nogroup));
    for pid in srv.worker_pids() {
        assert_eq!(ids_of(pid), (nobody, nogroup));
    }
    assert!(srv.log().contains(&format!("setuid() to {nobody}")), "{}", srv.log());
    assert!(!srv.log().contains("running ruwsgi as root"), "{}", srv.log());
}

/// uWSGI's `strict` is about option names only: as root without `uid` it warns and serves,
/// like any other config.
#[test]
fn strict_as_root_without_uid_only_warns() {
    let srv = Server::start_args_in(
        tempfile::tempdir().unwrap(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--strict"],
        1,
    );
    assert_eq!(srv.get("/").status, 200);
    let root_warning = srv.log().contains("*** WARNING: you are running ruwsgi as root !!! (use the --uid flag) ***");
    assert_eq!(root_warning, nix::unistd::geteuid().is_root(), "{}", srv.log());
}

/// Writes `letters` to the master FIFO `ctl.fifo` in `dir`. Non-blocking, so a master that
/// is gone fails the test with its log (`log()`) instead of hanging it.
fn fifo_send(dir: &Path, letters: &str, log: &dyn Fn() -> String) {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fifo = loop {
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(dir.join("ctl.fifo"));
        match opened {
            Ok(f) => break f,
            // ENXIO while no process has the FIFO open for reading (a master re-executing).
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cannot write to the master FIFO: {e}\n{}", log()),
        }
    };
    fifo.write_all(letters.as_bytes()).unwrap();
}

/// Waits until every worker pid differs from `before` and there are `n` of them.
fn wait_new_workers(srv: &Server, before: &[i32], n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = srv.worker_pids();
        if now.len() == n && now.iter().all(|p| !before.contains(p)) {
            return now;
        }
        assert!(Instant::now() < deadline, "workers {before:?} not replaced (now {now:?}):\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn master_fifo_letters_as_in_uwsgi() {
    let srv = start_v1(&[], &["--processes", "2", "--lazy-apps", "--master-fifo", "ctl.fifo"], 2);
    let fifo = srv.dir.path().to_path_buf();
    let master = srv.pid();
    assert!(srv.wait_log("master fifo", Duration::from_secs(5)));
    // s: stats to the log.
    fifo_send(&fifo, "s\n", &|| srv.log());
    assert!(srv.wait_log("*** ruwsgi stats: pid", Duration::from_secs(5)), "{}", srv.log());
    // w: the workers reload (lazy-apps: with the edited app); the master stays.
    let v1_workers = srv.worker_pids();
    write_app(&fifo, "v2");
    fifo_send(&fifo, "w", &|| srv.log());
    let v2_workers = wait_new_workers(&srv, &v1_workers, 2);
    assert_eq!(srv.get("/").body, b"v2");
    // c: chain reload, one worker after the other.
    write_app(&fifo, "v3");
    fifo_send(&fifo, "c", &|| srv.log());
    assert!(srv.wait_log("chain reloading complete", Duration::from_secs(30)), "{}", srv.log());
    let v3_workers = wait_new_workers(&srv, &v2_workers, 2);
    assert_eq!(srv.get("/").body, b"v3");
    // r: full graceful reload; the master re-executes in place and keeps its pid.
    write_app(&fifo, "v4");
    fifo_send(&fifo, "r", &|| srv.log());
    assert!(srv.wait_log("master-fifo r: ...gracefully killing workers...", Duration::from_secs(5)), "{}", srv.log());
    let v4_workers = wait_new_workers(&srv, &v3_workers, 2);
    assert_eq!(srv.get("/").body, b"v4");
    // R: brutal reload: workers are interrupted, not waited for.
    fifo_send(&fifo, "R", &|| srv.log());
    assert!(srv.wait_log("master-fifo R: brutally reloading", Duration::from_secs(5)), "{}", srv.log());
    wait_new_workers(&srv, &v4_workers, 2);
    assert_eq!(srv.get("/").body, b"v4");
    assert_eq!(srv.pid(), master);
    // An unknown letter is named in the log and changes nothing.
    fifo_send(&fifo, "x", &|| srv.log());
    assert!(srv.wait_log("master-fifo: unsupported command 'x'", Duration::from_secs(5)), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
    // Q: immediate shutdown.
    let mut srv = srv;
    fifo_send(&fifo, "Q", &|| srv.log());
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some(), "{}", srv.log());
    assert!(srv.log().contains("killing workers"), "{}", srv.log());
}

#[test]
fn master_fifo_l_reopens_a_moved_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, guard, log, _) = start_logging_to_a_file(dir.path(), &["--master-fifo", "ctl.fifo"]);
    // logrotate's way: move the file away, then tell the master to reopen it.
    std::fs::rename(&log, dir.path().join("server.log.1")).unwrap();
    fifo_send(dir.path(), "l", &|| std::fs::read_to_string(&log).unwrap_or_default());
    fifo_send(dir.path(), "s", &|| std::fs::read_to_string(&log).unwrap_or_default());
    let text = wait_file(&log, Duration::from_secs(10), |t| t.contains("*** ruwsgi stats: pid"));
    assert!(text.is_some(), "the master's lines do not reach the reopened log");
    drop(guard);
    let _ = child.wait();
}

#[test]
fn stats_count_static_requests_apart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("files")).unwrap();
    std::fs::write(dir.path().join("files/a.txt"), "static\n").unwrap();
    let srv = Server::start_args_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--static-map",
            "/s=files",
            "--stats",
            "127.0.0.1:0",
        ],
        1,
    );
    assert_eq!(srv.get("/s/a.txt").body, b"static\n");
    assert_eq!(srv.get("/s/a.txt").status, 200);
    assert_eq!(srv.get("/").status, 200);
    let doc = it::json::from_str::<it::json::Value>(&read_to_close(&srv.logged_address("stats"), b"")).unwrap();
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers[0]["requests"].as_u64(), Some(3));
    let cores = workers[0]["cores"].as_array().unwrap();
    let count = |key: &str| cores.iter().filter_map(|c| c[key].as_u64()).sum::<u64>();
    assert_eq!(count("requests"), 3);
    assert_eq!(count("static_requests"), 2);
}

#[test]
fn reload_and_stop_through_the_pidfile() {
    let mut srv = start_v1(&[], &["--pidfile", "app.pid"], 1);
    let here = srv.dir.path().to_path_buf();
    let run = |args: &[&str]| it::run_to_exit(&here, args, Duration::from_secs(10));
    // `ruwsgi --reload PIDFILE`: a graceful reload of that master.
    let before = srv.worker_pids();
    write_app(srv.dir.path(), "v2");
    assert_eq!(run(&["--reload", "app.pid"]).0, Some(0));
    assert!(srv.wait_log("SIGHUP received: ...gracefully killing workers...", Duration::from_secs(5)), "{}", srv.log());
    wait_new_workers(&srv, &before, 1);
    assert_eq!(srv.get("/").body, b"v2");
    // A missing pidfile is one line naming it.
    let (code, out) = run(&["--stop", "nope.pid"]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("ruwsgi: --stop nope.pid: "), "{out}");
    // `ruwsgi --stop PIDFILE`: the master stops.
    assert_eq!(run(&["--stop", "app.pid"]).0, Some(0));
    assert!(srv.wait_exit(Duration::from_secs(10)).is_some(), "{}", srv.log());
}

/// The live pid a daemon wrote to `path` that isn't in `not` (waits up to 20 s).
fn wait_daemon_pid(srv: &Server, path: &Path, not: &[i32]) -> i32 {
    let text = wait_file(path, Duration::from_secs(20), |t| {
        t.trim().parse::<i32>().is_ok_and(|p| !not.contains(&p) && alive(p))
    });
    let text = text.unwrap_or_else(|| panic!("no new live pid in {}:\n{}", path.display(), srv.log()));
    text.trim().parse().unwrap()
}

/// True while `pid` exists and isn't a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

/// SIGKILLs daemons that outlive the server on purpose (smart ones) when the test ends.
struct KillPids(Vec<i32>);

impl Drop for KillPids {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

#[test]
fn attach_daemon_is_respawned_and_stopped_with_the_server() {
    // Writes its pid, and on SIGTERM a marker: the stop is graceful, not a SIGKILL.
    let daemon = "trap 'echo stopped > stopped.txt; exit 0' TERM; echo $$ > daemon.pid; while true; do sleep 1; done";
    let mut srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--attach-daemon", daemon]);
    let pid_file = srv.dir.path().join("daemon.pid");
    let first = wait_daemon_pid(&srv, &pid_file, &[]);
    assert!(srv.log().contains(&format!("[uwsgi-daemons] spawning \"{daemon}\" (pid: {first} ")), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(it::thread_count(srv.pid()), 1, "the master spawns daemons without threads");

    // A daemon that dies is respawned; the master takes its exit for no worker's.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let second = wait_daemon_pid(&srv, &pid_file, &[first]);
    assert!(srv.wait_log(&format!("[uwsgi-daemons] respawning \"{daemon}\" (pid: {second} "), Duration::from_secs(5)));
    assert!(srv.log().contains(&format!("(pid: {first}) was killed by signal 9")), "{}", srv.log());
    assert!(!srv.log().contains("DAMN"), "no worker died:\n{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(it::thread_count(srv.pid()), 1);

    // Shutdown: the daemon gets SIGTERM and is gone before the master exits.
    srv.signal(Signal::SIGTERM);
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(!alive(second), "daemon {second} outlived the server:\n{}", srv.log());
    let marker = std::fs::read_to_string(srv.dir.path().join("stopped.txt")).unwrap_or_default();
    assert_eq!(marker.trim(), "stopped", "the daemon got no SIGTERM:\n{}", srv.log());
    assert!(!srv.log().contains("did not die in time"), "{}", srv.log());
}

#[test]
fn smart_attach_daemons_survive_reload_and_shutdown_plain_ones_restart() {
    let mut srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--attach-daemon",
        "echo $$ > plain.pid; exec sleep 60",
        // Daemonizes itself and writes its pidfile, as `celery multi` or `memcached -d -P`.
        "--smart-attach-daemon",
        "smart.pid sleep 60 & echo $! > smart.pid",
        // Stays in the foreground; the master writes the pidfile.
        "--smart-attach-daemon2",
        "smart2.pid exec sleep 60",
    ]);
    let dir = srv.dir.path().to_path_buf();
    let plain = wait_daemon_pid(&srv, &dir.join("plain.pid"), &[]);
    let smart = wait_daemon_pid(&srv, &dir.join("smart.pid"), &[]);
    let smart2 = wait_daemon_pid(&srv, &dir.join("smart2.pid"), &[]);
    let _cleanup = KillPids(vec![smart, smart2]);
    assert!(
        srv.wait_log(&format!("\"sleep 60 & echo $! > smart.pid\" is running (pid: {smart})"), Duration::from_secs(5)),
        "{}",
        srv.log()
    );

    srv.signal(Signal::SIGHUP);
    assert!(
        srv.wait_for(Duration::from_secs(20), |l| l.contains("this master was reloaded")
            && l.matches("found valid/active pidfile").count() == 2),
        "{}",
        srv.log()
    );
    let log = srv.log();
    assert!(
        log.contains(&format!("found valid/active pidfile for \"sleep 60 & echo $! > smart.pid\" (pid: {smart})")),
        "{log}"
    );
    assert!(log.contains(&format!("found valid/active pidfile for \"exec sleep 60\" (pid: {smart2})")), "{log}");
    assert!(log.contains(&format!("[uwsgi-daemons] stopping daemon (pid: {plain}): echo $$ > plain.pid")), "{log}");
    let new_plain = wait_daemon_pid(&srv, &dir.join("plain.pid"), &[plain]);
    assert!(!alive(plain), "the plain daemon is restarted on reload, not kept");
    assert!(alive(smart) && alive(smart2), "smart daemons keep running across a reload:\n{log}");
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(it::thread_count(srv.pid()), 1);

    srv.signal(Signal::SIGTERM);
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(!alive(new_plain), "plain daemons stop with the server");
    assert!(alive(smart) && alive(smart2), "smart daemons outlive the server:\n{}", srv.log());
}

#[test]
fn attach_daemon2_touch_restarts_and_a_control_daemon_stops_the_server() {
    let mut srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--attach-daemon2",
        "cmd=echo $$ > touched.pid; exec sleep 60,touch=restart.txt",
        "--attach-daemon2",
        "cmd=while [ ! -f die.txt ]; do sleep 0.1; done; exit 1,control=1",
    ]);
    let dir = srv.dir.path().to_path_buf();
    let first = wait_daemon_pid(&srv, &dir.join("touched.pid"), &[]);
    // A `touch` file that appears or changes restarts that daemon (without throttling).
    std::fs::write(dir.join("restart.txt"), "").unwrap();
    let second = wait_daemon_pid(&srv, &dir.join("touched.pid"), &[first]);
    assert!(srv.log().contains(&format!("(pid: {first}) touched: restarting")), "{}", srv.log());
    assert!(!srv.log().contains("throttling"), "{}", srv.log());
    // A `control` daemon's death shuts the whole server down.
    std::fs::write(dir.join("die.txt"), "").unwrap();
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(srv.log().contains("control daemon \"while [ ! -f die.txt ]"), "{}", srv.log());
    assert!(!alive(second), "{}", srv.log());
}
