//! Issue 18: a large WSGI body already in memory (the last `bytes` of a list result) that a
//! client doesn't take at once is parked in the connection loop, so the worker thread goes
//! on with its other connections instead of waiting for that client to read.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use it::Server;
use nix::sys::signal::Signal;

const SECS: Duration = Duration::from_secs(10);
/// 32 MiB: far more than the kernel's socket buffers on both ends hold.
const MB: usize = 32;

/// One worker of one thread, and a socket-timeout far longer than any wait below: a thread
/// held by the slow client would hold it for a minute.
fn one_thread_server() -> Server {
    it::single_thread_server("wsgi_features.py", &["--socket-timeout", "60"])
}

/// Asks for the 32 MiB list body and reads none of it yet.
fn request_big(srv: &Server, close: bool) -> TcpStream {
    let mut s = srv.connect();
    let connection = if close { "Connection: close\r\n" } else { "" };
    s.write_all(format!("GET /big-list?mb={MB} HTTP/1.1\r\nHost: t\r\n{connection}\r\n").as_bytes()).unwrap();
    s
}

/// `GET path` on a fresh connection, answered within `within` (None: no answer by then).
fn get_within(srv: &Server, path: &str, within: Duration) -> Option<it::Response> {
    let s = srv.connect();
    s.set_read_timeout(Some(within)).unwrap();
    let mut w = s.try_clone().unwrap();
    write!(w, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    it::read_response(&mut BufReader::new(s)).ok()
}

/// The body `/big-list` sends: byte p is p % 251.
fn is_pattern(body: &[u8]) -> bool {
    body.len() == MB << 20 && body.iter().enumerate().all(|(p, &b)| usize::from(b) == p % 251)
}

/// Waits until the server has written what it can to the slow client (its log shows the
/// request only once the whole body is out, so there is no line to wait for): the send
/// queue stops growing within a second on loopback.
fn let_the_socket_fill() {
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn issue_18_unread_list_body_does_not_hold_the_only_thread() {
    let srv = one_thread_server();
    let slow = request_big(&srv, true);
    let_the_socket_fill();
    // Before the fix the only thread waited in the write for the slow client (up to
    // socket-timeout, 60 s): this request got no answer.
    let quick = get_within(&srv, "/pid", SECS).expect("answered while a big body waits for its client");
    assert_eq!(quick.status, 200);
    assert!(!srv.log().contains(&format!("GET /big-list?mb={MB} =>")), "logged before it was sent: {}", srv.log());
    let r = it::read_response(&mut BufReader::new(slow)).expect("the big response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some((MB << 20).to_string().as_str()));
    assert!(is_pattern(&r.body), "the body arrives whole and in order ({} bytes)", r.body.len());
    // Logged once, when the rest went out, with the body size.
    let line = format!("GET /big-list?mb={MB} => generated {} bytes", MB << 20);
    assert!(srv.wait_log(&line, SECS), "{}", srv.log());
    assert_eq!(srv.log().matches(&format!("GET /big-list?mb={MB} =>")).count(), 1, "{}", srv.log());
}

#[test]
fn issue_18_parked_body_then_pipelined_request_and_close_called() {
    let srv = one_thread_server();
    let before: u64 = srv.get("/close-count").text().parse().unwrap();
    // The big request and, behind it on the same connection, a small one.
    let mut s = request_big(&srv, false);
    s.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let_the_socket_fill();
    // The thread serves others meanwhile, and the list's close() was called (PEP 3333).
    let count = get_within(&srv, "/close-count", SECS).expect("answered while a big body waits for its client");
    assert_eq!(count.text().parse::<u64>().unwrap(), before + 1, "close() of the result");
    let mut r = BufReader::new(s);
    let big = it::read_response(&mut r).expect("the big response");
    assert!(is_pattern(&big.body), "the body arrives whole ({} bytes)", big.body.len());
    let next = it::read_response(&mut r).expect("the pipelined request, answered after it");
    assert_eq!(next.status, 200);
    assert_eq!(next.text().parse::<i32>().ok(), Some(srv.worker_pids()[0]));
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "closed after the pipelined request: {rest:?}");
}

#[test]
fn issue_18_graceful_stop_finishes_a_parked_body() {
    let mut srv = one_thread_server();
    let slow = request_big(&srv, true);
    let_the_socket_fill();
    srv.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    let r = it::read_response(&mut BufReader::new(slow)).expect("the big response, while the worker stops");
    assert!(is_pattern(&r.body), "the body arrives whole ({} bytes)", r.body.len());
    assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "{}", srv.log());
}

/// Over TLS the session already took all of a body and left its records to the loop (so
/// this passed on main too); the parked end must still arrive whole.
#[test]
fn issue_18_parked_body_over_tls_to_a_slow_reader() {
    use it::tls::{curl, start, url};
    let srv = start("site.crt,site.key", "wsgi_features.py", &["--threads", "1", "--socket-timeout", "60"]);
    let slow_url = url(&srv, "/big-list?mb=8");
    // 8 MiB at 2 MB/s: about 4 s of downloading.
    let slow = std::thread::scope(|scope| {
        let slow = scope.spawn(|| curl(&srv, &["--limit-rate", "2M", "-o", "/dev/stdout", &slow_url]));
        std::thread::sleep(Duration::from_millis(500));
        let (code, body, err) = curl(&srv, &[&url(&srv, "/pid")]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(String::from_utf8_lossy(&body).parse::<i32>().ok(), Some(srv.worker_pids()[0]));
        assert!(!slow.is_finished(), "answered only after the slow download ended");
        slow.join().unwrap()
    });
    let (code, body, err) = slow;
    assert_eq!(code, 0, "{err}");
    assert_eq!(body.len(), 8 << 20);
    assert!(body.iter().enumerate().all(|(p, &b)| usize::from(b) == p % 251), "the body arrives whole and in order");
}
