//! ASGI requests and WebSocket sessions don't hold a thread while the app awaits (issue
//! 15): with one worker and `threads = 1`, many long polls and open `WebSockets` wait on
//! the worker's event loop while other clients are served, and many WebSocket clients on few
//! workers all get their echoes.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use it::ws::Ws;
use it::Server;

const SECS: Duration = Duration::from_secs(10);
/// Requests (or WebSocket sessions) held open at once on one thread.
const N: usize = 50;

fn asgi_server(spec: &str, extra: &[&str]) -> Server {
    let apps = it::repo().join("tests/apps").display().to_string();
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--chdir", &apps, "--asgi", spec];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `GET path` on a fresh connection, or `None` when no answer comes within `within` (a
/// server whose only thread is held doesn't answer).
fn get_within(srv: &Server, path: &str, within: Duration) -> Option<it::Response> {
    let s = TcpStream::connect(srv.addr()).expect("connect");
    s.set_read_timeout(Some(within)).unwrap();
    let mut w = s.try_clone().unwrap();
    write!(w, "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    it::read_response(&mut BufReader::new(s)).ok()
}

#[test]
fn asgi_long_polls_do_not_hold_the_only_connection_thread() {
    let srv = asgi_server("asgi_raw:app", &["--processes", "1", "--threads", "1"]);
    let polls: Vec<TcpStream> = (0..N)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(b"GET /park HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            s
        })
        .collect();
    // Every long poll reaches the app while the others wait in it.
    let deadline = Instant::now() + SECS;
    let mut waiting = String::new();
    while Instant::now() < deadline {
        let r = get_within(&srv, "/parked", Duration::from_secs(3)).expect("/parked answered while polls wait");
        waiting = r.text();
        if waiting == N.to_string() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(waiting, N.to_string(), "{}", srv.log());
    // A quick request is answered while they wait.
    let quick = get_within(&srv, "/", Duration::from_secs(3)).expect("a quick request is answered");
    assert_eq!(quick.body, b"Hello, ASGI!");
    assert_eq!(get_within(&srv, "/release", Duration::from_secs(3)).expect("/release").status, 200);
    for s in polls {
        let r = it::read_response(&mut BufReader::new(s)).expect("the long poll's response");
        assert_eq!((r.status, &r.body[..]), (200, &b"Hello, ASGI!"[..]));
    }
    // Each of them was counted and logged as a request.
    assert!(srv.wait_for(SECS, |l| l.matches("GET /park =>").count() == N), "{}", srv.log());
}

#[test]
fn asgi_response_to_a_client_that_does_not_read_holds_no_thread() {
    let srv = asgi_server("asgi_raw:app", &["--processes", "1", "--threads", "1"]);
    let mut slow = srv.connect();
    slow.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    // The app streams 32 MiB; the client doesn't read, so most of it waits in the app.
    std::thread::sleep(Duration::from_millis(300));
    let quick = get_within(&srv, "/", Duration::from_secs(3)).expect("answered while a response is stuck");
    assert_eq!(quick.body, b"Hello, ASGI!");
    assert!(!srv.log().contains("big response sent"), "the app waits in send() (back pressure): {}", srv.log());
    let r = it::read_response(&mut BufReader::new(slow)).expect("the big response");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 512 * 65536);
    let in_order = r.body.chunks(65536).enumerate().all(|(i, c)| c.iter().all(|&b| usize::from(b) == i % 256));
    assert!(in_order, "the bytes arrive in order");
    assert!(srv.wait_log("big response sent", SECS), "{}", srv.log());
}

#[test]
fn asgi_app_that_reads_its_body_later_than_socket_timeout_still_gets_it() {
    // socket-timeout bounds a wait for the client, which starts when the app asks for the
    // body (here after 2 s of work), not when the request arrived.
    let srv = asgi_server("asgi_raw:app", &["--threads", "1", "--socket-timeout", "1"]);
    let body = vec![b'y'; 200_000];
    let mut s = srv.connect();
    let head = format!(
        "POST /echo?2 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    // The client takes a moment (well within socket-timeout) to start sending.
    std::thread::sleep(Duration::from_millis(500));
    s.write_all(&body).unwrap();
    let r = it::read_response(&mut reader).expect("the echo");
    assert_eq!((r.status, r.body.len()), (200, body.len()), "{}", srv.log());
}

#[test]
fn asgi_open_websockets_hold_no_thread_and_a_new_one_gets_through() {
    let srv = asgi_server("fastapi_app:app", &["--master", "--processes", "1", "--threads", "1"]);
    let mut sockets: Vec<Ws> = (0..N)
        .map(|i| {
            let (mut ws, head) = Ws::connect(srv.addr(), "/ws", None);
            assert!(head.starts_with("HTTP/1.1 101"), "{i}: {head}");
            ws.send(true, 1, format!("ws{i}").as_bytes());
            ws
        })
        .collect();
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(ws.recv(), (1, format!("echo: ws{i}").into_bytes()));
    }
    // A new WebSocket and a plain request get through while all of them are open.
    let (mut late, head) = Ws::connect(srv.addr(), "/ws", None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    late.send(true, 1, b"late");
    assert_eq!(late.recv(), (1, b"echo: late".to_vec()));
    assert_eq!(get_within(&srv, "/items/3", Duration::from_secs(5)).expect("/items/3").status, 200);
    // The sessions wait in the worker's loop, not on threads of their own.
    let worker = srv.worker_pids()[0];
    let threads = it::thread_count(worker);
    assert!(threads < N / 2, "worker {worker} runs {threads} threads for {N} WebSockets");
    for (i, ws) in sockets.iter_mut().enumerate().rev() {
        ws.send(true, 1, format!("again{i}").as_bytes());
        assert_eq!(ws.recv(), (1, format!("echo: again{i}").into_bytes()));
    }
}

#[test]
fn asgi_64_websocket_clients_on_2_workers_all_get_their_echoes() {
    let srv = asgi_server("asgi_ws_echo:app", &["--master", "--processes", "2", "--threads", "1"]);
    let mut clients: Vec<Ws> = (0..64)
        .map(|i| {
            let (ws, head) = Ws::connect(srv.addr(), "/", None);
            assert!(head.starts_with("HTTP/1.1 101"), "{i}: {head}");
            ws
        })
        .collect();
    for round in 0..20 {
        for (i, ws) in clients.iter_mut().enumerate() {
            ws.send(true, 1, format!("{i}/{round}").as_bytes());
        }
        for (i, ws) in clients.iter_mut().enumerate() {
            assert_eq!(ws.recv(), (1, format!("{i}/{round}").into_bytes()), "client {i}, round {round}");
        }
    }
    for ws in &mut clients {
        ws.send(true, 8, &1000u16.to_be_bytes());
        assert_eq!(ws.recv().0, 8);
    }
}

#[test]
fn asgi_replies_of_many_requests_started_together_all_reach_their_clients() {
    // The loop's thread holds back the wake-ups of replies made in one batch and writes
    // the doorbell once for several (`Feed::defer`): with 50 keep-alive clients sending
    // at once on one thread, every reply must still reach its client, round after round.
    let srv = asgi_server("asgi_raw:app", &["--processes", "1", "--threads", "1"]);
    let mut clients: Vec<BufReader<TcpStream>> = (0..N).map(|_| BufReader::new(srv.connect())).collect();
    for round in 0..20 {
        for c in &mut clients {
            c.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        }
        for (i, c) in clients.iter_mut().enumerate() {
            let r = it::read_response(c).unwrap_or_else(|e| panic!("client {i}, round {round}: {e}"));
            assert_eq!((r.status, &r.body[..]), (200, &b"Hello, ASGI!"[..]), "client {i}, round {round}");
        }
    }
}
