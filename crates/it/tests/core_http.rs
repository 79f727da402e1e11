//! Core server, HTTP/1.1 side (RFC 9112): 100-continue, connection close, HTTP/1.0,
//! pipelining, idle and slow clients that must not hold a worker thread, oversized heads.
#![allow(clippy::float_cmp)] // JSON numbers compared with exact small integers

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use it::{app, json, read_response, Server, Start};

const SECS: Duration = Duration::from_secs(10);

fn start(app_file: &str, processes: usize, threads: usize) -> Server {
    Server::start_with(Start {
        args: vec![
            "--http-socket".into(),
            "127.0.0.1:0".into(),
            "--wsgi-file".into(),
            app(app_file),
            "--processes".into(),
            processes.to_string(),
            "--threads".into(),
            threads.to_string(),
        ],
        env: vec![],
        workers: processes,
    })
}

/// Reads what arrives within `wait` (the connection stays open).
fn read_available(s: &mut TcpStream, wait: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    out
}

/// True when the server closed the connection (EOF within `wait`).
fn closed_by_server(r: &mut impl Read, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn body_len(r: &it::Response) -> f64 {
    json::from_str::<json::Value>(&r.text()).unwrap().get("body_len").and_then(json::Value::as_f64).unwrap()
}

#[test]
fn expect_100_continue() {
    let srv = start("echo.py", 1, 1);
    // Small body (the server buffers it before calling the app) and large body (the app reads it).
    for size in [10usize, 300 * 1024] {
        let mut s = srv.connect();
        s.write_all(
            format!("POST /?read=n:4096 HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\nExpect: 100-continue\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let interim = read_available(&mut s, Duration::from_secs(5));
        assert_eq!(
            String::from_utf8_lossy(&interim),
            "HTTP/1.1 100 Continue\r\n\r\n",
            "size {size}: no 100 Continue before the body was sent"
        );
        s.write_all(&vec![b'z'; size]).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(body_len(&resp), size as f64);
        // And the connection carries the next request.
        r.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).unwrap().status, 200);
    }
    // A body the client already sends with the head gets no stray 100 in the stream.
    let r = srv.exchange(
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(r.status, 200);
    assert_eq!(body_len(&r), 3.0);
}

#[test]
fn connection_close_and_http10_close_the_connection() {
    let srv = start("hello.py", 1, 1);
    let cases: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: t\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    ];
    for (i, raw) in cases.iter().enumerate() {
        let mut s = srv.connect();
        s.write_all(raw).unwrap();
        let mut r = BufReader::new(s);
        let answers = if i == 2 { 2 } else { 1 };
        for _ in 0..answers {
            let resp = read_response(&mut r).unwrap();
            assert_eq!(resp.text(), "Hello, World!", "case {i}");
        }
        r.get_mut().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        assert!(closed_by_server(&mut r, Duration::from_secs(5)), "case {i}: the server kept the connection open");
    }
    // HTTP/1.1 without Connection: close stays open for another request.
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r).unwrap().status, 200);
    r.get_mut().set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    assert!(!closed_by_server(&mut r, Duration::from_millis(600)), "HTTP/1.1 keep-alive connection was closed");
}

#[test]
fn eight_keep_alive_clients_pipelining() {
    let srv = start("echo.py", 2, 2);
    let addr = srv.addr();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = it::connect(addr);
                let mut r = BufReader::new(s.try_clone().unwrap());
                for round in 0..3 {
                    // Five requests in one write; one of them with a body.
                    let mut batch = Vec::new();
                    for i in 0..5 {
                        if i == 2 {
                            batch.extend_from_slice(
                                format!(
                                    "POST /c{c}/r{round}/i{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
                                )
                                .as_bytes(),
                            );
                        } else {
                            batch.extend_from_slice(
                                format!("GET /c{c}/r{round}/i{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
                            );
                        }
                    }
                    s.write_all(&batch).unwrap();
                    for i in 0..5 {
                        let resp = read_response(&mut r).unwrap();
                        let v = json::from_str::<json::Value>(&resp.text()).unwrap();
                        let path = v
                            .get("environ")
                            .and_then(|e| e.get("PATH_INFO"))
                            .and_then(json::Value::as_str)
                            .unwrap()
                            .to_owned();
                        assert_eq!(path, format!("/c{c}/r{round}/i{i}"), "answers out of order");
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client failed");
    }
}

#[test]
fn idle_keep_alive_and_slow_clients_do_not_hold_workers() {
    let srv = start("hello.py", 2, 1);
    let addr = srv.addr();
    // 64 keep-alive connections, each answered once and then left idle.
    let mut idle: Vec<BufReader<TcpStream>> = Vec::new();
    for _ in 0..64 {
        let mut s = it::connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        assert_eq!(read_response(&mut r).unwrap().text(), "Hello, World!");
        idle.push(r);
    }
    // A client that trickles its head, one byte per 100 ms.
    let slow = std::thread::spawn(move || {
        let mut s = it::connect(addr);
        let started = Instant::now();
        for b in b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n" {
            s.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        }
        let resp = read_response(&mut BufReader::new(s)).unwrap();
        (resp.status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    // A fresh client is answered promptly while all of that is going on.
    for _ in 0..4 {
        let t = Instant::now();
        let r = srv.get("/");
        assert_eq!(r.status, 200);
        assert!(t.elapsed() < Duration::from_secs(1), "fresh client waited {:?}", t.elapsed());
    }
    assert!(!slow.is_finished(), "the slow client should still be sending");
    // Every idle connection is then served in turn.
    for (i, r) in idle.iter_mut().enumerate() {
        r.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let resp = read_response(r).unwrap_or_else(|e| panic!("idle connection {i}: {e}"));
        assert_eq!(resp.text(), "Hello, World!");
    }
    let (status, took) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert!(took >= Duration::from_secs(2));
}

#[test]
fn oversized_headers_are_refused() {
    let srv = start("echo.py", 1, 1);
    let mut s = srv.connect();
    let big = "v".repeat(5000);
    s.write_all(format!("GET /oversized-marker HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r).unwrap();
    assert!(resp.status == 431 || resp.status == 400, "status {}", resp.status_line);
    let mut trailing = Vec::new();
    r.read_to_end(&mut trailing).unwrap();
    assert!(trailing.is_empty(), "connection not closed after the error: {trailing:?}");
    // Many small headers adding up over buffer-size count too.
    let mut head = String::from("GET /oversized-marker HTTP/1.1\r\nHost: t\r\n");
    for i in 0..80 {
        let _ = write!(head, "X-H{i}: ");
        head.push_str("01234567890123456789012345678901234567890123456789\r\n");
    }
    head.push_str("\r\n");
    let resp = srv.exchange(head.as_bytes());
    assert!(resp.status == 431 || resp.status == 400, "status {}", resp.status_line);
    // The reason is logged; the app never saw the request.
    assert!(
        srv.wait_for(SECS, |l| l
            .lines()
            .filter(|l| l.contains("request head larger than the buffer-size limit"))
            .count()
            >= 2),
        "reason not logged:\n{}",
        srv.log()
    );
    assert_eq!(srv.get("/after").status, 200);
    assert!(srv.wait_log("GET /after", SECS));
    let log = srv.log();
    assert!(!log.contains("/oversized-marker"), "the app was called or the request was logged as served:\n{log}");
    // Under the limit is fine.
    let ok = format!("GET /ok HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "v".repeat(3000));
    assert_eq!(srv.exchange(ok.as_bytes()).status, 200);
    let _ = BufRead::fill_buf(&mut r);
}

/// An app that answers without reading a large body (Django refusing an upload, say): the
/// client still gets the whole response, not a reset, and the connection stays usable.
#[test]
fn response_to_an_unread_large_body_is_not_reset() {
    let srv = start("hello.py", 1, 1);
    let body = vec![b'x'; 512 * 1024];
    for _ in 0..3 {
        let s = srv.connect();
        let mut writer = s.try_clone().unwrap();
        let body = body.clone();
        let sender = std::thread::spawn(move || {
            let head = format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n", body.len());
            writer.write_all(head.as_bytes())?;
            writer.write_all(&body)
        });
        let mut reader = BufReader::new(s);
        let r = read_response(&mut reader).expect("the response arrives, not a reset");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"Hello, World!");
        sender.join().unwrap().expect("the whole body was taken, not reset");
        // The body was drained, so the connection carries the next request.
        reader.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut reader).unwrap().status, 200);
    }
}
