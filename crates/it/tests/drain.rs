//! Issue 14 (3): health and drain. A graceful stop (SIGTERM, master FIFO `q`) first reports
//! the instance unhealthy on the `health-path` for `drain-delay` seconds while it keeps
//! serving, then stops accepting, serves every connection already made (those still
//! waiting in the listen backlog too) and exits.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use it::Server;
use nix::sys::signal::Signal;

fn features_server(extra: &[&str]) -> Server {
    it::single_thread_server("wsgi_features.py", extra)
}

/// Sends one request on a new connection, without reading the answer.
fn send(srv: &Server, path: &str) -> TcpStream {
    let mut s = srv.connect();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    s
}

/// Reads the answer of a connection made by `send`: its status and body, or why none came.
fn answer(s: TcpStream) -> Result<(u16, String), String> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    it::read_response(&mut BufReader::new(s)).map(|r| (r.status, r.text())).map_err(|e| e.to_string())
}

/// Before the fix, SIGTERM under overload reset every connection still waiting in the
/// listen backlog: the listening socket was closed while the only thread ran a request.
/// Now each of them is accepted and answered before the worker exits.
#[test]
fn issue_14_sigterm_serves_connections_waiting_in_the_backlog() {
    let mut srv = features_server(&[]);
    // The only thread is busy for 0.5 s; the others queue behind it in the backlog (each
    // connect() returned, so the kernel completed its handshake).
    let busy = send(&srv, "/sleep?s=0.5");
    thread::sleep(Duration::from_millis(100));
    let queued: Vec<TcpStream> = (0..20).map(|_| send(&srv, "/sleep?s=0.02")).collect();
    srv.signal(Signal::SIGTERM);
    assert_eq!(answer(busy), Ok((200, "slept 0.5".to_owned())), "{}", srv.log());
    let failed: Vec<String> = queued
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| match answer(s) {
            Ok((200, _)) => None,
            other => Some(format!("queued connection {i}: {other:?}")),
        })
        .collect();
    assert!(failed.is_empty(), "{} of 20 queued connections lost:\n{}\n{}", failed.len(), failed.join("\n"), srv.log());
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
}

/// After the backlog is served, nothing new is accepted: a client connecting then is
/// refused (or left waiting for its SYN to be answered) rather than queued for a worker that
/// will not come, and the master exits.
#[test]
fn issue_14_sigterm_refuses_new_clients_once_drained() {
    let mut srv = features_server(&[]);
    let addr = srv.addr();
    let busy = send(&srv, "/sleep?s=1");
    thread::sleep(Duration::from_millis(100));
    srv.signal(Signal::SIGTERM);
    assert_eq!(answer(busy), Ok((200, "slept 1".to_owned())));
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "connected after exit");
}

/// The health path answers 200 while serving, 503 from the moment SIGTERM arrives; during
/// `drain-delay` the app still serves new connections; after it, they are refused.
#[test]
fn issue_14_health_reports_draining_during_the_delay_while_serving() {
    let mut srv = features_server(&["--health-path", "/healthz", "--drain-delay", "3"]);
    let addr = srv.addr();
    let ok = srv.get("/healthz");
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"), "{ok:?}");
    assert_eq!(srv.get("/healthz?probe=1").status, 200);
    // Answered without Python: the app would 404 it (and the query string doesn't matter).
    assert_eq!(srv.get("/healthzz").status, 404);
    let signalled = Instant::now();
    srv.signal(Signal::SIGTERM);
    assert!(srv.wait_log("draining for 3 s", Duration::from_secs(5)), "{}", srv.log());
    let draining = srv.get("/healthz");
    assert_eq!((draining.status, draining.text().as_str()), (503, "draining\n"), "{draining:?}");
    let served = srv.get("/sleep?s=0");
    assert_eq!(served.status, 200, "new requests are served during the delay");
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(signalled.elapsed() >= Duration::from_secs(3), "exited before drain-delay");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

/// `q` on the master FIFO is the same graceful stop as SIGTERM, with the same delay.
#[test]
fn issue_14_fifo_q_drains_like_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let fifo_arg = fifo.display().to_string();
    let mut srv = features_server(&["--health-path", "/healthz", "--drain-delay", "1", "--master-fifo", &fifo_arg]);
    std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(b"q").unwrap();
    assert!(srv.wait_log("draining for 1 s", Duration::from_secs(5)), "{}", srv.log());
    assert_eq!(srv.get("/healthz").status, 503);
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
}

/// A health path on a uwsgi socket (nginx `uwsgi_pass`) answers the same way.
#[test]
fn issue_14_health_path_on_a_uwsgi_socket() {
    let app = it::app("wsgi_features.py");
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app, "--health-path", "/healthz"]);
    let mut vars = Vec::new();
    for (k, v) in [("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/healthz"), ("PATH_INFO", "/healthz")] {
        for part in [k, v] {
            vars.extend_from_slice(&u16::try_from(part.len()).unwrap().to_le_bytes());
            vars.extend_from_slice(part.as_bytes());
        }
    }
    let mut packet = vec![0u8];
    packet.extend_from_slice(&u16::try_from(vars.len()).unwrap().to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&vars);
    let r = srv.exchange(&packet);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "{r:?}");
}

/// The same over a unix socket with `vacuum`: the file goes first (no new client finds it),
/// the connections already queued are served.
#[test]
fn issue_14_sigterm_serves_the_backlog_of_a_unix_socket() {
    use std::os::unix::net::UnixStream;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let path_arg = path.display().to_string();
    let app = it::app("wsgi_features.py");
    let mut srv = Server::start(&[
        "--http-socket",
        &path_arg,
        "--wsgi-file",
        &app,
        "--processes",
        "1",
        "--threads",
        "1",
        "--vacuum",
    ]);
    let send = |p: &str| {
        let mut s = UnixStream::connect(&path).unwrap();
        s.write_all(format!("GET {p} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        s
    };
    let busy = send("/sleep?s=0.5");
    thread::sleep(Duration::from_millis(100));
    let queued: Vec<UnixStream> = (0..10).map(|_| send("/sleep?s=0.02")).collect();
    srv.signal(Signal::SIGTERM);
    for (i, s) in std::iter::once(busy).chain(queued).enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let r = it::read_response(&mut BufReader::new(s));
        assert_eq!(r.as_ref().map(|r| r.status).ok(), Some(200), "connection {i}: {r:?}\n{}", srv.log());
    }
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
    assert!(!path.exists());
}
