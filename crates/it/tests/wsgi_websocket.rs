//! uWSGI's WebSocket API for WSGI apps (issue 15: `uwsgi.websocket_handshake()`,
//! `websocket_recv()`, `websocket_recv_nb()`, `websocket_send()`, `websocket_send_binary()`):
//! `tests/apps/wsgi_websocket.py`, an echo written as uWSGI's own example is, driven by a
//! raw-frame client over `http-socket` and through nginx `proxy_pass`.

use std::io::{Read, Write};
use std::time::Duration;

use it::nginx::Nginx;
use it::ws::Ws;
use it::Server;
use nix::sys::signal::Signal;

const SECS: Duration = Duration::from_secs(10);

/// ruwsgi serving the echo app over an HTTP socket with `extra` options.
fn server(extra: &[&str]) -> Server {
    let apps = it::repo().join("tests/apps").display().to_string();
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--chdir", &apps, "--module", "wsgi_websocket"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The connection was closed by the server (after its close frame).
fn assert_eof(ws: &mut Ws) {
    let mut rest = Vec::new();
    assert_eq!(ws.reader.read_to_end(&mut rest).unwrap(), 0, "{rest:?}");
}

#[test]
fn wsgi_websocket_echo_text_binary_ping_fragments_and_client_close() {
    let srv = server(&["--http-websockets"]);
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws", Some("chat, echo"));
    assert!(head.starts_with("HTTP/1.1 101 Web Socket Protocol Handshake\r\n"), "{head}\n{}", srv.log());
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Origin: *\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Protocol: chat\r\n"), "{head}");
    ws.send(true, 1, "héllo".as_bytes());
    assert_eq!(ws.recv(), (1, "echo: héllo".as_bytes().to_vec()));
    ws.send(true, 2, b"bin:\x00\x01\xff");
    assert_eq!(ws.recv(), (2, vec![0, 1, 255]));
    // A ping gets its pong (with its payload), even between the fragments of a message,
    // and the fragments come back as one message.
    ws.send(false, 1, b"frag");
    ws.send(true, 9, b"are you there");
    assert_eq!(ws.recv(), (10, b"are you there".to_vec()));
    ws.send(false, 0, b"men");
    ws.send(true, 0, b"ted");
    assert_eq!(ws.recv(), (1, b"echo: fragmented".to_vec()));
    // The client closes: the close is echoed, the app's recv raises, the connection ends.
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv(), (8, 1000u16.to_be_bytes().to_vec()));
    assert_eof(&mut ws);
    assert!(srv.wait_log("websocket ended: unable to receive websocket message", SECS), "{}", srv.log());
    assert!(srv.wait_log("GET /ws => generated", SECS), "{}", srv.log());
    assert!(srv.log().contains("(HTTP/1.1 101) 5 headers"), "{}", srv.log());
}

#[test]
fn wsgi_websocket_message_over_max_size_closes_with_1009() {
    let srv = server(&["--websockets-max-size", "64"]);
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 2, &vec![b'a'; 60 * 1024]);
    assert_eq!(ws.recv().1.len(), 6 + 60 * 1024);
    ws.send(true, 2, &vec![0u8; 70 * 1024]);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1009u16.to_be_bytes()[..]));
    // The server skipped the rest of the big frame and waited for the client's close: it
    // then closes the connection (no reset that could lose its close frame).
    ws.send(true, 8, &1009u16.to_be_bytes());
    assert_eof(&mut ws);
    assert!(srv.wait_log("closing the WebSocket with 1009: message too big", SECS), "{}", srv.log());
}

#[test]
fn wsgi_websocket_protocol_errors_close_with_their_codes() {
    let srv = server(&[]);
    // An unmasked frame (1002), text that isn't UTF-8 (1007).
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.writer.write_all(&[0x81, 0x01, b'a']).unwrap();
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1002u16.to_be_bytes()[..]));
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, &[0xff, 0xfe]);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1007u16.to_be_bytes()[..]));
}

/// Autobahn 2.5, 3.x, 4.x, 5.1: after a protocol error (here a reserved opcode, RSV bits,
/// an oversized ping) the client answers the server's close and the server then closes
/// the TCP connection at once: the bad frame still buffered must not hide the client's
/// close (the server used to wait out its 2 s close timeout, and the client dropped first).
#[test]
fn wsgi_websocket_closes_the_connection_on_the_clients_close_after_a_protocol_error() {
    let srv = server(&[]);
    for (opcode, payload) in [(3u8, &[][..]), (0x40 | 1, &b"rsv"[..]), (9, &[0u8; 126][..])] {
        let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
        ws.send(true, opcode, payload);
        let (op, payload) = ws.recv();
        assert_eq!((op, &payload[..2]), (8, &1002u16.to_be_bytes()[..]));
        ws.send(true, 8, &1000u16.to_be_bytes());
        // Well under the server's 2 s wait for a close that never comes.
        ws.reader.get_ref().set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        assert_eof(&mut ws);
    }
}

/// Autobahn 7.3.2, 7.5.1, 7.9.x: a client's close frame that is itself bad (a 1-byte
/// payload, a code no endpoint may send) gets a 1002 close and the TCP connection closes at
/// once: the client has sent its close already and won't send another.
#[test]
fn wsgi_websocket_closes_the_connection_after_a_bad_close_frame() {
    let srv = server(&[]);
    for payload in [&[3u8][..], &999u16.to_be_bytes()[..], &1005u16.to_be_bytes()[..]] {
        let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
        ws.send(true, 8, payload);
        let (op, payload) = ws.recv();
        assert_eq!((op, &payload[..2]), (8, &1002u16.to_be_bytes()[..]));
        // Well under the server's 2 s wait for a close that never comes.
        ws.reader.get_ref().set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
        assert_eof(&mut ws);
    }
}

#[test]
fn wsgi_websocket_app_return_closes_with_1000_and_a_raise_with_1011() {
    let srv = server(&[]);
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, b"bye");
    assert_eq!(ws.recv(), (8, 1000u16.to_be_bytes().to_vec()));
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eof(&mut ws);
    // What the app returns after the handshake (`[]`, no start_response) is no error.
    assert!(srv.wait_log("GET /ws => generated 4 bytes", SECS), "{}", srv.log());
    assert!(!srv.log().contains("raised"), "{}", srv.log());

    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, b"boom");
    assert_eq!(ws.recv(), (8, 1011u16.to_be_bytes().to_vec()));
    ws.send(true, 8, &1011u16.to_be_bytes());
    assert_eof(&mut ws);
    assert!(srv.wait_log("RuntimeError: boom after the handshake", SECS), "{}", srv.log());
}

#[test]
fn wsgi_websocket_recv_nb_and_handshake_from_the_request_headers() {
    let srv = server(&[]);
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws-nb", None);
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(!head.contains("Sec-WebSocket-Protocol"), "{head}");
    for word in ["one", "two"] {
        ws.send(true, 1, word.as_bytes());
        assert_eq!(ws.recv(), (1, format!("nb: {word}").into_bytes()));
    }
    ws.send(true, 8, &1001u16.to_be_bytes());
    assert_eq!(ws.recv(), (8, 1001u16.to_be_bytes().to_vec()));
    assert!(srv.wait_log("OSError: unable to receive websocket message", SECS), "{}", srv.log());
}

#[test]
fn wsgi_websocket_handshake_without_a_key_raises_and_plain_requests_keep_alive() {
    let srv = server(&[]);
    let mut s = srv.connect();
    s.write_all(b"GET /ws-no-key HTTP/1.1\r\nHost: t\r\n\r\nGET /plain HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = std::io::BufReader::new(s);
    let first = it::read_response(&mut r).unwrap();
    assert_eq!(first.status, 400);
    assert_eq!(first.text(), "unable to complete websocket handshake: the request has no Sec-WebSocket-Key");
    let second = it::read_response(&mut r).unwrap();
    assert_eq!((second.status, second.text().as_str()), (200, "plain /plain"));
}

#[test]
fn wsgi_websocket_two_clients_at_once_on_two_threads() {
    let srv = server(&["--processes", "1", "--threads", "2"]);
    let (mut a, _) = Ws::connect(srv.addr(), "/ws", None);
    let (mut b, _) = Ws::connect(srv.addr(), "/ws", None);
    for round in 0..3 {
        b.send(true, 1, format!("b{round}").as_bytes());
        a.send(true, 1, format!("a{round}").as_bytes());
        assert_eq!(a.recv(), (1, format!("echo: a{round}").into_bytes()));
        assert_eq!(b.recv(), (1, format!("echo: b{round}").into_bytes()));
    }
    a.send(true, 1, b"bye");
    assert_eq!(a.recv().0, 8);
    a.send(true, 8, &1000u16.to_be_bytes());
    // The thread is free again for plain requests.
    assert_eq!(srv.get("/plain").status, 200);
    b.send(true, 1, b"still");
    assert_eq!(b.recv(), (1, b"echo: still".to_vec()));
}

#[test]
fn wsgi_websocket_pings_a_quiet_client_and_drops_one_that_does_not_answer() {
    let srv = server(&["--websockets-ping-freq", "1", "--websockets-pong-tolerance", "1"]);
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    let (op, _) = ws.recv();
    assert_eq!(op, 9);
    ws.send(true, 10, b"");
    ws.send(true, 1, b"still here");
    assert_eq!(ws.recv(), (1, b"echo: still here".to_vec()));
    let (op, _) = ws.recv();
    assert_eq!(op, 9);
    assert_eof(&mut ws);
    assert!(srv.wait_log("GET /ws: no WebSocket pong received in 1 seconds: closing", SECS), "{}", srv.log());
}

#[test]
fn wsgi_websocket_is_closed_with_1001_when_the_worker_stops() {
    let mut srv = server(&["--master", "--threads", "2"]);
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, b"hi");
    assert_eq!(ws.recv(), (1, b"echo: hi".to_vec()));
    srv.signal(Signal::SIGTERM);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..]), (8, &1001u16.to_be_bytes()[..]));
    ws.send(true, 8, &1001u16.to_be_bytes());
    assert_eof(&mut ws);
    assert_eq!(srv.wait_exit(SECS), Some(0), "{}", srv.log());
}

#[test]
fn wsgi_websocket_through_nginx_proxy_pass() {
    let srv = server(&[]);
    let nginx = Nginx::start(&format!(
        "location / {{\n    proxy_pass http://{};\n    proxy_http_version 1.1;\n    \
         proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection \"upgrade\";\n}}\n",
        srv.addr()
    ));
    let (mut ws, head) = Ws::connect(nginx.addr, "/ws", None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}\n{}", nginx.log());
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    ws.send(true, 1, b"via nginx");
    assert_eq!(ws.recv(), (1, b"echo: via nginx".to_vec()));
    ws.send(true, 2, &[b"bin:".as_slice(), &[5u8; 1000]].concat());
    assert_eq!(ws.recv(), (2, vec![5u8; 1000]));
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv().0, 8);
    assert!(srv.wait_log("websocket ended: unable to receive websocket message", SECS), "{}", srv.log());
}

/// A uwsgi request packet (modifier1 0) with `vars`.
fn uwsgi_packet(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for s in vars.iter().flat_map(|(k, v)| [k, v]) {
        block.extend_from_slice(&u16::try_from(s.len()).unwrap().to_le_bytes());
        block.extend_from_slice(s.as_bytes());
    }
    let mut out = vec![0];
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

#[test]
fn wsgi_websocket_over_the_uwsgi_protocol() {
    // What uWSGI's HTTP router does with `http-websockets`: the upgrade request arrives as a
    // uwsgi packet, and the connection then carries the frames.
    let apps = it::repo().join("tests/apps").display().to_string();
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--chdir", &apps, "--module", "wsgi_websocket"]);
    let mut writer = srv.connect();
    writer
        .write_all(&uwsgi_packet(&[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/ws"),
            ("PATH_INFO", "/ws"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("HTTP_UPGRADE", "websocket"),
            ("HTTP_CONNECTION", "Upgrade"),
            ("HTTP_SEC_WEBSOCKET_KEY", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("HTTP_SEC_WEBSOCKET_VERSION", "13"),
            ("HTTP_ORIGIN", "http://example.com"),
        ]))
        .unwrap();
    let mut reader = std::io::BufReader::new(writer.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}\n{}", srv.log());
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Origin: http://example.com\r\n"), "{head}");
    let mut ws = Ws { reader, writer };
    ws.send(true, 1, b"over uwsgi");
    assert_eq!(ws.recv(), (1, b"echo: over uwsgi".to_vec()));
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv().0, 8);
    assert_eof(&mut ws);
}
