//! Issue 14 (1): ruwsgi under systemd. `systemd-socket-activate` (systemd's own tool for
//! trying socket units) binds the sockets and execs ruwsgi with `LISTEN_FDS`, as a `.socket`
//! unit does; the test binds the `NOTIFY_SOCKET` a `Type=notify` service would get and
//! checks what ruwsgi tells systemd on start, reload and stop.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use it::{Server, Start};
use nix::sys::signal::Signal;

/// The notify socket: every datagram ruwsgi sent, in order.
struct Notifications {
    socket: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    fn bind(dir: &Path) -> (Self, String) {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        (Self { socket, seen: Vec::new() }, path.display().to_string())
    }

    /// Reads datagrams until one has the line `line`; returns that datagram.
    fn wait_for(&mut self, line: &str) -> String {
        self.wait_until(line, |l| l == line)
    }

    /// Reads datagrams until one has a line starting with `prefix`; returns that line.
    fn wait_for_prefix(&mut self, prefix: &str) -> String {
        let msg = self.wait_until(prefix, |l| l.starts_with(prefix));
        msg.lines().find(|l| l.starts_with(prefix)).unwrap_or_default().to_owned()
    }

    fn wait_until(&mut self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.push(msg.clone());
                if msg.lines().any(&found) {
                    return msg;
                }
            }
        }
        panic!("no {what} among the notifications: {:#?}", self.seen);
    }
}

/// A TCP port nothing listens on (for systemd-socket-activate to bind).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// GET /pid on a new connection, retried while the socket is not there yet.
fn get_pid(addr: SocketAddr) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = loop {
        match TcpStream::connect(addr) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "connect {addr}: {e}"),
        }
        thread::sleep(Duration::from_millis(20));
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let r = it::read_response(&mut BufReader::new(s)).expect("response");
    assert_eq!(r.status, 200, "{r:?}");
    r.text().parse().expect("pid")
}

/// A `Type=notify` service with a socket unit: started by the first connection, which it
/// serves on systemd's socket (fd 3); `READY=1` once both workers accept, `STATUS=` lines,
/// `WATCHDOG=1`; on SIGHUP `RELOADING=1`, the socket kept across the re-exec and `READY=1`
/// again; on SIGTERM `STOPPING=1` and a clean exit.
#[test]
fn issue_14_notify_unit_with_socket_activation_starts_reloads_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (mut notes, notify_path) = Notifications::bind(dir.path());
    let addr = free_port();
    let listen = addr.to_string();
    let app = it::app("wsgi_features.py");
    // systemd sets WATCHDOG_PID to the service's pid: the shell's, which execs on.
    // systemd-socket-activate passes on only the variables named by `-E`.
    let wrapper = [
        "sh",
        "-c",
        "export WATCHDOG_PID=$$; exec \"$@\"",
        "sh",
        "systemd-socket-activate",
        "-l",
        &listen,
        "--fdname=web",
        "-E",
        "NOTIFY_SOCKET",
        "-E",
        "WATCHDOG_USEC",
        "-E",
        "WATCHDOG_PID",
    ];
    // Socket activation starts the service on the first connection.
    let first = thread::spawn(move || get_pid(addr));
    let mut srv = Server::start_wrapped(
        dir,
        &wrapper,
        Start {
            args: ["--http-socket", &listen, "--wsgi-file", &app, "--processes", "2"].map(str::to_owned).to_vec(),
            env: vec![("NOTIFY_SOCKET", notify_path), ("WATCHDOG_USEC", "400000".to_owned())],
            workers: 2,
        },
    );
    let served_first = first.join().unwrap();
    assert!(srv.worker_pids().contains(&served_first), "{}", srv.log());
    let log = srv.log();
    assert!(log.contains("- SystemD socket activation detected -"), "{log}");
    assert!(log.contains(&format!("http socket 0 bound to TCP address {listen} fd 3")), "{log}");

    assert_eq!(notes.wait_for("STATUS=starting"), "STATUS=starting\n");
    let ready = notes.wait_for("READY=1");
    assert!(ready.contains("STATUS=serving: 2 of 2 workers accepting"), "{ready}");
    notes.wait_for("WATCHDOG=1");

    srv.signal(Signal::SIGHUP);
    let reloading = notes.wait_for("RELOADING=1");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading}");
    notes.wait_for("READY=1");
    assert!(srv.wait_log("found fd 3 mapped to socket 0", Duration::from_secs(5)), "{}", srv.log());
    let after_reload = get_pid(addr);
    assert!(srv.worker_pids().contains(&after_reload), "{}", srv.log());
    notes.wait_for("WATCHDOG=1");

    srv.signal(Signal::SIGTERM);
    let stopping = notes.wait_for("STOPPING=1");
    assert!(stopping.contains("STATUS=stopping: SIGTERM received"), "{stopping}");
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
}

/// Unix sockets from systemd: one the config names (by a relative path) serves its entry's
/// protocol (HTTP here), one it doesn't name is served with the uwsgi protocol, as uWSGI does;
/// `vacuum` leaves both files to systemd.
#[test]
fn issue_14_activated_unix_sockets_match_by_path_and_stay_systemds() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.sock");
    let extra = dir.path().join("extra.sock");
    let (web_arg, extra_arg) = (web.display().to_string(), extra.display().to_string());
    let wrapper = ["systemd-socket-activate", "-l", &web_arg, "-l", &extra_arg];
    let app = it::app("wsgi_features.py");
    let trigger = web.clone();
    let first = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = loop {
            match UnixStream::connect(&trigger) {
                Ok(s) => break s,
                Err(e) => assert!(Instant::now() < deadline, "connect: {e}"),
            }
            thread::sleep(Duration::from_millis(20));
        };
        s.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        it::read_response(&mut BufReader::new(s)).expect("response").status
    });
    let mut srv = Server::start_wrapped(
        dir,
        &wrapper,
        Start {
            args: ["--http-socket", "web.sock", "--wsgi-file", &app, "--vacuum"].map(str::to_owned).to_vec(),
            env: vec![],
            workers: 1,
        },
    );
    assert_eq!(first.join().unwrap(), 200, "{}", srv.log());
    assert!(srv.log().contains("serving the uwsgi protocol on it"), "{}", srv.log());

    let mut vars = Vec::new();
    for (k, v) in [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/pid"), ("PATH_INFO", "/pid")] {
        for part in [k, v] {
            vars.extend_from_slice(&u16::try_from(part.len()).unwrap().to_le_bytes());
            vars.extend_from_slice(part.as_bytes());
        }
    }
    let mut s = UnixStream::connect(&extra).unwrap();
    s.write_all(&[0]).unwrap();
    s.write_all(&u16::try_from(vars.len()).unwrap().to_le_bytes()).unwrap();
    s.write_all(&[0]).unwrap();
    s.write_all(&vars).unwrap();
    let r = it::read_response(&mut BufReader::new(s)).expect("uwsgi response");
    assert_eq!(r.status, 200, "{r:?}");

    srv.signal(Signal::SIGTERM);
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(web.exists() && extra.exists(), "vacuum removed systemd's socket files");
}

/// Without `LISTEN_PID` naming ruwsgi's pid, `LISTEN_FDS` is not ruwsgi's (it was meant for
/// a parent): ruwsgi binds its sockets itself.
#[test]
fn issue_14_listen_fds_for_another_pid_are_ignored() {
    let app = it::app("wsgi_features.py");
    let srv = Server::start_with(Start {
        args: ["--http-socket", "127.0.0.1:0", "--wsgi-file", &app].map(str::to_owned).to_vec(),
        env: vec![("LISTEN_PID", "1".to_owned()), ("LISTEN_FDS", "1".to_owned())],
        workers: 1,
    });
    assert_eq!(srv.get("/pid").status, 200);
    assert!(!srv.log().contains("SystemD"), "{}", srv.log());
}

/// Kills the daemonized master (and its workers, which exit with it) when a test ends.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), Signal::SIGINT);
    }
}

/// `daemonize` under `Type=notify`: the pid systemd started forks and exits; it names its
/// child with `MAINPID=` first, and the child sends `READY=1`.
#[test]
fn issue_14_daemonize_sends_mainpid() {
    let dir = tempfile::tempdir().unwrap();
    let (mut notes, notify_path) = Notifications::bind(dir.path());
    let app = it::app("wsgi_features.py");
    let log = dir.path().join("ruwsgi.log");
    let status = std::process::Command::new(it::ruwsgi_command())
        .args(["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--daemonize"])
        .arg(&log)
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("run ruwsgi");
    assert!(status.success());
    let main = notes.wait_for_prefix("MAINPID=");
    let pid: i32 = main.trim().trim_start_matches("MAINPID=").parse().expect("pid");
    let daemon = Daemon(pid);
    notes.wait_for("READY=1");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.0), Signal::SIGTERM).unwrap();
    notes.wait_for("STOPPING=1");
}
