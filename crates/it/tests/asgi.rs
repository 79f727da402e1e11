//! ASGI apps (issue 15, `asgi = module:app`): a plain ASGI 3 app, `FastAPI`, `Starlette`'s
//! lifespan and the example Django project's `asgi.py`, over `http-socket` and behind nginx
//! with `uwsgi_pass`; with the worker machinery (lifespan per worker, max-requests,
//! harakiri, the blocked-loop watchdog).

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use it::json::{self, Value};
use it::nginx::Nginx;
use it::{Server, Start};
use nix::sys::signal::Signal;

const SECS: Duration = Duration::from_secs(10);

/// ruwsgi serving `spec` (in tests/apps) over an HTTP socket with `extra` options.
fn asgi_server(spec: &str, extra: &[&str]) -> Server {
    let apps = it::repo().join("tests/apps").display().to_string();
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--chdir", &apps, "--asgi", spec];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn json_of(r: &it::Response) -> Value {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    json::from_str(&r.text()).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", r.text()))
}

fn post(srv: &Server, path: &str, body: &[u8]) -> it::Response {
    let mut raw =
        format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes();
    raw.extend_from_slice(body);
    srv.exchange(&raw)
}

#[test]
fn asgi_app_scope_body_and_streaming_over_http() {
    let srv = asgi_server("asgi_raw:app", &["--threads", "4"]);
    assert!(srv.log().contains("ASGI app 0 (mountpoint='') ready: asgi_raw:app (event loop: "), "{}", srv.log());
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, ASGI!");
    assert_eq!(r.header("content-length"), Some("12"));

    let v = json_of(&srv.get("/scope?a=1%20b"));
    assert_eq!(v["method"], "GET");
    assert_eq!(v["http_version"], "1.1");
    assert_eq!(v["path"], "/scope");
    assert_eq!(v["raw_path"], "/scope");
    assert_eq!(v["query_string"], "a=1%20b");
    assert_eq!(v["root_path"], "");
    assert_eq!(v["client"][0], "127.0.0.1");
    assert_eq!(v["headers"][0], json::json!(["host", "test"]));
    assert_eq!(v["state"], true, "the lifespan state reaches the request scope");

    // A body bigger than what is pre-buffered, by length and chunked.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let r = post(&srv, "/echo", &body);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "echoed body differs ({} bytes back)", r.body.len());
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for part in body.chunks(70_000) {
        raw.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        raw.extend_from_slice(part);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = srv.exchange(&raw);
    assert!(r.body == body, "chunked body echoed ({} bytes back)", r.body.len());

    // A streamed response goes out chunked, piece by piece.
    let r = srv.get("/stream");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "part0\npart1\npart2\n");

    // Keep-alive: two requests on one connection.
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s);
    assert_eq!(it::read_response(&mut reader).unwrap().body, b"Hello, ASGI!");
    assert_eq!(it::read_response(&mut reader).unwrap().text(), "part0\npart1\npart2\n");
    assert!(srv.wait_log("GET /stream => generated 18 bytes", SECS), "{}", srv.log());
}

#[test]
fn asgi_expect_100_continue_is_answered_when_the_app_reads() {
    let srv = asgi_server("asgi_raw:app", &[]);
    let body = vec![b'x'; 200_000];
    let mut s = srv.connect();
    s.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    reader.read_line(&mut line).unwrap();
    s.write_all(&body).unwrap();
    let r = it::read_response(&mut reader).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
}

#[test]
fn asgi_app_exception_gives_500_and_traceback() {
    let srv = asgi_server("asgi_raw:app", &[]);
    let r = srv.get("/raise");
    assert_eq!(r.status, 500);
    assert!(srv.wait_log("RuntimeError: boom from the ASGI app", SECS), "{}", srv.log());
    assert!(srv.log().contains("GET /raise: the ASGI app raised:"), "{}", srv.log());
    // The worker serves on.
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn asgi_http_disconnect_is_delivered() {
    let srv = asgi_server("asgi_raw:app", &[]);
    let mut s = srv.connect();
    s.write_all(b"GET /wait-disconnect HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&first));
    drop(s);
    assert!(srv.wait_log("saw http.disconnect", SECS), "{}", srv.log());
}

#[test]
fn asgi_lifespan_runs_in_each_worker_and_shuts_down_on_stop() {
    let mut srv = asgi_server("asgi_raw:app", &["--processes", "2", "--master"]);
    assert!(srv.wait_for(SECS, |t| t.matches("lifespan startup in").count() == 2), "{}", srv.log());
    let pids = srv.worker_pids();
    assert_eq!(srv.get("/").status, 200);
    srv.signal(Signal::SIGTERM);
    assert_eq!(srv.wait_exit(SECS), Some(0), "{}", srv.log());
    for pid in pids {
        assert!(srv.log().contains(&format!("lifespan shutdown in {pid}")), "{pid}: {}", srv.log());
    }
}

#[test]
fn asgi_blocked_event_loop_is_logged_with_its_stack() {
    let srv = asgi_server("asgi_raw:app", &[]);
    assert_eq!(srv.get("/block").status, 200);
    assert!(srv.wait_log("ASGI event loop blocked for", SECS), "{}", srv.log());
    assert!(srv.log().contains("time.sleep(2.5)"), "the stack names the blocking line: {}", srv.log());
}

#[test]
fn asgi_max_requests_recycles_the_worker_with_a_new_lifespan() {
    let srv = asgi_server("asgi_raw:app", &["--master", "--max-requests", "2", "--min-worker-lifetime", "0"]);
    let first = srv.worker_pids();
    for _ in 0..2 {
        assert_eq!(srv.get("/").status, 200);
    }
    assert!(
        srv.wait_for(SECS, |t| t.contains("max requests reached") && t.matches("lifespan startup in").count() >= 2),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains(&format!("lifespan shutdown in {}", first[0])), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn asgi_harakiri_kills_a_stuck_request() {
    let srv = asgi_server("asgi_raw:app", &["--master", "--harakiri", "1"]);
    let mut s = srv.connect();
    s.write_all(b"GET /sleep?30 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(srv.wait_log("HARAKIRI", Duration::from_secs(15)), "{}", srv.log());
    assert!(srv.wait_for(SECS, |t| t.matches("lifespan startup in").count() >= 2), "{}", srv.log());
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn fastapi_json_streaming_upload_and_lifespan_state() {
    let srv = asgi_server("fastapi_app:app", &["--processes", "2", "--threads", "4"]);
    let v = json_of(&srv.get("/items/5?q=x"));
    assert_eq!(v, json::json!({"item_id": 5, "q": "x"}));
    let v = json_of(&srv.get("/state"));
    assert_eq!(v["greeting"], "hello from lifespan", "Starlette's lifespan state reaches request.state");
    let r = srv.get("/stream");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    let v = json_of(&post(&srv, "/upload", &vec![7u8; 1_000_000]));
    assert_eq!(v["size"], 1_000_000);
    assert!(srv.wait_for(SECS, |t| t.matches("fastapi startup").count() == 2), "{}", srv.log());
}

#[test]
fn fastapi_behind_nginx_uwsgi_pass() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--chdir", &apps, "--asgi", "fastapi_app:app"]);
    let nginx = Nginx::start(&format!(
        "location / {{\n    include uwsgi_params;\n    uwsgi_pass {};\n}}\n\
         location /api/ {{\n    include uwsgi_params;\n    uwsgi_param SCRIPT_NAME /api;\n    uwsgi_pass {};\n}}\n",
        srv.addr(),
        srv.addr()
    ));
    let v = json_of(&nginx.get("/items/7?q=nginx"));
    assert_eq!(v, json::json!({"item_id": 7, "q": "nginx"}));
    let r = nginx.get("/stream");
    assert_eq!(r.text(), "line 0\nline 1\nline 2\nline 3\nline 4\n", "{}", nginx.log());
    let v = json_of(&nginx.post("/upload", "application/octet-stream", &vec![1u8; 500_000]));
    assert_eq!(v["size"], 500_000);
    // nginx's SCRIPT_NAME becomes root_path; FastAPI routes on the path below it.
    let v = json_of(&nginx.get("/api/state"));
    assert_eq!(v["root_path"], "/api");
    assert_eq!(v["greeting"], "hello from lifespan");
}

/// The example Django project, migrated into a temp database, served through its asgi.py.
fn django_asgi(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let django = it::repo().join("examples/django");
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("db.sqlite3").display().to_string();
    let out = std::process::Command::new(it::venv_python())
        .args(["manage.py", "migrate", "--noinput"])
        .current_dir(&django)
        .env("DEMO_DB", &db)
        .output()
        .expect("run manage.py migrate");
    assert!(out.status.success(), "migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    let ini = std::fs::read_to_string(django.join("uwsgi-asgi.ini"))
        .unwrap()
        .replace("http = :8080", &extra.join("\n"))
        .replace("vacuum = true", &format!("vacuum = true\nchdir = {}", django.display()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.ini"), ini).unwrap();
    let srv = Server::start_in(
        dir,
        Start { args: vec!["--ini".into(), "app.ini".into()], env: vec![("DEMO_DB", db)], workers: 2 },
    );
    (srv, db_dir)
}

#[test]
fn django_asgi_py_with_an_async_view() {
    // `http` (served by the workers, as `http-socket`).
    let (srv, _db) = django_asgi(&["http = 127.0.0.1:0"]);
    let r = srv.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<h1>Guestbook</h1>"), "{}", r.text());
    let v = json_of(&srv.get("/async"));
    assert_eq!(v["async"], true);
    assert_eq!(v["entries"], 0);
    assert_eq!(srv.get("/missing").status, 404);
}

#[test]
fn django_asgi_behind_nginx() {
    let (srv, _db) = django_asgi(&["socket = 127.0.0.1:0"]);
    let nginx =
        Nginx::start(&format!("location / {{\n    include uwsgi_params;\n    uwsgi_pass {};\n}}\n", srv.addr()));
    let r = nginx.get("/");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), nginx.log());
    assert!(r.text().contains("<h1>Guestbook</h1>"), "{}", r.text());
    let v = json_of(&nginx.get("/async"));
    assert_eq!(v["async"], true);
}

#[test]
fn asgi_with_module_is_refused() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = it::run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--chdir", &apps, "--asgi", "asgi_raw:app", "--module", "hello"],
        SECS,
    );
    assert_ne!(code, Some(0), "{log}");
    assert!(log.contains("asgi can't be combined with module"), "{log}");
}

/// A minimal WebSocket client for the tests: raw frames over a `TcpStream`.
struct Ws {
    reader: BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
}

impl Ws {
    /// Opens `path` (offering `protocol`, if any); returns the client and the 101 response head.
    fn connect(addr: std::net::SocketAddr, path: &str, protocol: Option<&str>) -> (Ws, String) {
        let offer = protocol.map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n")).unwrap_or_default();
        Self::connect_with(addr, path, &offer)
    }

    /// Opens `path` with `extra` header lines.
    fn connect_with(addr: std::net::SocketAddr, path: &str, offer: &str) -> (Ws, String) {
        let s = it::connect(addr);
        let mut writer = s.try_clone().unwrap();
        write!(
            writer,
            "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        (Ws { reader, writer }, head)
    }

    /// Sends one masked frame.
    fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![if fin { 0x80 } else { 0 } | opcode];
        if payload.len() < 126 {
            frame.push(0x80 | payload.len() as u8);
        } else {
            frame.push(0x80 | 0x7f);
            frame.extend_from_slice(&(payload.len() as u64).to_be_bytes());
        }
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame).unwrap();
    }

    /// Reads one frame: (opcode, payload).
    fn recv(&mut self) -> (u8, Vec<u8>) {
        let (b0, payload) = self.recv_raw();
        assert_eq!(b0 & 0x70, 0, "no RSV bits without an extension");
        (b0 & 0x0f, payload)
    }

    /// Reads one frame: (its first byte, payload).
    fn recv_raw(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.reader.read_exact(&mut h).unwrap();
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b).unwrap();
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b).unwrap();
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        self.reader.read_exact(&mut payload).unwrap();
        (h[0], payload)
    }
}

#[test]
fn fastapi_websocket_echo_ping_fragments_and_close() {
    let srv = asgi_server("fastapi_app:app", &["--threads", "4", "--websockets-max-size", "64"]);
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws", Some("chat, echo"));
    assert!(head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"), "{head}\n{}", srv.log());
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    assert!(head.contains("Sec-WebSocket-Protocol: echo\r\n"), "{head}");
    ws.send(true, 1, "héllo".as_bytes());
    assert_eq!(ws.recv(), (1, "echo: héllo".as_bytes().to_vec()));
    ws.send(true, 2, &[0, 1, 2, 255]);
    assert_eq!(ws.recv(), (2, vec![0, 1, 2, 255]));
    // A ping gets its pong, even between the fragments of a message.
    ws.send(false, 1, b"frag");
    ws.send(true, 9, b"are you there");
    assert_eq!(ws.recv(), (10, b"are you there".to_vec()));
    ws.send(false, 0, b"men");
    ws.send(true, 0, b"ted");
    assert_eq!(ws.recv(), (1, b"echo: fragmented".to_vec()));
    // A message bigger than websockets-max-size (64 KiB) closes with 1009.
    ws.send(true, 2, &vec![0u8; 70 * 1024]);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1009u16.to_be_bytes()[..]));
    assert!(srv.wait_log("websocket closed by the client with 1009", SECS), "{}", srv.log());
    assert!(srv.wait_log("GET /ws => generated", SECS), "{}", srv.log());
    assert!(srv.log().contains("(HTTP/1.1 101)"), "{}", srv.log());

    // The client closes: the close is echoed and the app sees the code.
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, b"x");
    assert_eq!(ws.recv(), (1, b"echo: x".to_vec()));
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv(), (8, 1000u16.to_be_bytes().to_vec()));
    assert!(srv.wait_log("websocket closed by the client with 1000", SECS), "{}", srv.log());

    // The app closes: its code and reason in the close frame.
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, b"close");
    let (op, payload) = ws.recv();
    assert_eq!(op, 8);
    assert_eq!(&payload[..2], &4001u16.to_be_bytes());
    assert_eq!(&payload[2..], b"asked to");
    ws.send(true, 8, &4001u16.to_be_bytes());

    // Protocol errors: an unmasked frame (1002), text that isn't UTF-8 (1007).
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.writer.write_all(&[0x81, 0x01, b'a']).unwrap();
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1002u16.to_be_bytes()[..]));
    let (mut ws, _) = Ws::connect(srv.addr(), "/ws", None);
    ws.send(true, 1, &[0xff, 0xfe]);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1007u16.to_be_bytes()[..]));
}

#[test]
fn asgi_websocket_refused_before_accept_gets_403() {
    let srv = asgi_server("fastapi_app:app", &[]);
    let (_ws, head) = Ws::connect(srv.addr(), "/ws-refused", None);
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    // The worker serves on.
    assert_eq!(srv.get("/items/1").status, 200);
}

#[test]
fn asgi_websocket_pings_a_quiet_client_and_drops_one_that_does_not_answer() {
    let srv = asgi_server(
        "fastapi_app:app",
        &["--websockets-ping-freq", "1", "--websockets-pong-tolerance", "1", "--harakiri", "1", "--master"],
    );
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws", None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // A quiet client is pinged; answering keeps the session (past harakiri's second, too).
    let (op, _) = ws.recv();
    assert_eq!(op, 9);
    ws.send(true, 10, b"");
    ws.send(true, 1, b"still here");
    assert_eq!(ws.recv(), (1, b"echo: still here".to_vec()));
    // Not answering the next ping ends it: the app is told (1006) and the socket closes.
    let (op, _) = ws.recv();
    assert_eq!(op, 9);
    assert!(srv.wait_log("websocket closed by the client with 1006", SECS), "{}", srv.log());
    assert!(!srv.log().contains("HARAKIRI"), "{}", srv.log());
}

#[test]
fn asgi_websocket_is_closed_with_1001_when_the_worker_stops() {
    let mut srv = asgi_server("fastapi_app:app", &["--master", "--threads", "2"]);
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws", None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.send(true, 1, b"hi");
    assert_eq!(ws.recv(), (1, b"echo: hi".to_vec()));
    srv.signal(Signal::SIGTERM);
    let (op, payload) = ws.recv();
    assert_eq!((op, &payload[..2]), (8, &1001u16.to_be_bytes()[..]));
    ws.send(true, 8, &1001u16.to_be_bytes());
    assert_eq!(srv.wait_exit(SECS), Some(0), "{}", srv.log());
    assert!(srv.log().contains("websocket closed by the client with 1001"), "{}", srv.log());
    assert!(srv.log().contains("fastapi shutdown"), "{}", srv.log());
}

#[test]
fn asgi_lifespan_startup_failure_stops_the_instance() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let mut srv = Server::start_with(Start {
        args: ["--http-socket", "127.0.0.1:0", "--chdir", &apps, "--asgi", "asgi_raw:app", "--master"]
            .map(String::from)
            .to_vec(),
        env: vec![("ASGI_FAIL_STARTUP", "1".into())],
        workers: 1,
    });
    assert_eq!(srv.wait_exit(SECS), Some(22), "{}", srv.log());
    assert!(srv.log().contains("): ASGI lifespan startup failed: no database"), "{}", srv.log());
}

#[test]
fn asgi_graceful_reload_finishes_a_request_and_runs_lifespan_again() {
    let srv = asgi_server("asgi_raw:app", &["--master", "--threads", "2"]);
    let first = srv.worker_pids();
    // A request in flight when the reload starts is answered.
    let mut slow = srv.connect();
    slow.write_all(b"GET /sleep?1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    assert!(srv.wait_log("sleep started", SECS), "{}", srv.log());
    srv.signal(Signal::SIGHUP);
    let r = it::read_response(&mut BufReader::new(slow)).unwrap();
    assert_eq!(r.status, 200);
    assert!(
        srv.wait_for(Duration::from_secs(30), |l| l.matches("lifespan startup in").count() >= 2
            && l.contains(&format!("lifespan shutdown in {}", first[0]))),
        "{}",
        srv.log()
    );
    assert_eq!(srv.get("/").body, b"Hello, ASGI!");
}

#[test]
fn asgi_websockets_do_not_hold_the_connection_threads() {
    // One worker with one connection thread: open WebSockets run on threads of their own.
    let srv = asgi_server("fastapi_app:app", &["--processes", "1", "--threads", "1"]);
    let mut sockets: Vec<Ws> = (0..3)
        .map(|i| {
            let (mut ws, head) = Ws::connect(srv.addr(), "/ws", None);
            assert!(head.starts_with("HTTP/1.1 101"), "{head}");
            ws.send(true, 1, format!("ws{i}").as_bytes());
            ws
        })
        .collect();
    for (i, ws) in sockets.iter_mut().enumerate() {
        assert_eq!(ws.recv(), (1, format!("echo: ws{i}").into_bytes()));
    }
    assert_eq!(srv.get("/items/3").status, 200);
    for (i, ws) in sockets.iter_mut().enumerate().rev() {
        ws.send(true, 1, format!("again{i}").as_bytes());
        assert_eq!(ws.recv(), (1, format!("echo: again{i}").into_bytes()));
    }
}

#[test]
fn asgi_websocket_through_nginx_proxy_pass() {
    let srv = asgi_server("fastapi_app:app", &[]);
    let nginx = Nginx::start(&format!(
        "location / {{\n    proxy_pass http://{};\n    proxy_http_version 1.1;\n    \
         proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection \"upgrade\";\n}}\n",
        srv.addr()
    ));
    let (mut ws, head) = Ws::connect(nginx.addr, "/ws", Some("echo"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}\n{}", nginx.log());
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    ws.send(true, 1, b"via nginx");
    assert_eq!(ws.recv(), (1, b"echo: via nginx".to_vec()));
    ws.send(true, 2, &[5u8; 1000]);
    assert_eq!(ws.recv(), (2, vec![5u8; 1000]));
    ws.send(true, 8, &1000u16.to_be_bytes());
    assert_eq!(ws.recv().0, 8);
    assert!(srv.wait_log("websocket closed by the client with 1000", SECS), "{}", srv.log());
}

#[test]
fn asgi_websocket_permessage_deflate() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    let srv = asgi_server("fastapi_app:app", &[]);
    let (mut ws, head) =
        Ws::connect_with(srv.addr(), "/ws", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    assert!(head.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"), "{head}");
    let mut compress = Compress::new(Compression::default(), false);
    let mut decompress = Decompress::new(false);
    for round in 0..3 {
        // A compressed text message (RSV1), the 4-byte tail left off (RFC 7692 §7.2.1).
        let text = format!("round {round}: ").repeat(50);
        let mut packed = Vec::with_capacity(text.len() + 64);
        compress.compress_vec(text.as_bytes(), &mut packed, FlushCompress::Sync).unwrap();
        assert!(packed.ends_with(&[0, 0, 0xff, 0xff]));
        packed.truncate(packed.len() - 4);
        let mask = [9u8, 8, 7, 6];
        let mut frame = vec![0xc1, 0x80 | u8::try_from(packed.len()).unwrap()];
        frame.extend_from_slice(&mask);
        frame.extend(packed.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        ws.writer.write_all(&frame).unwrap();
        // The echo comes back compressed too, in the server's running context.
        let (b0, payload) = ws.recv_raw();
        assert_eq!(b0, 0xc1, "FIN + RSV1 + text");
        assert!(payload.len() < text.len() / 2);
        let mut input = payload.clone();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(text.len() * 2);
        decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("echo: {text}"));
    }
    // Uncompressed messages stay allowed.
    ws.send(true, 1, b"plain");
    let (b0, payload) = ws.recv_raw();
    assert_eq!(b0 & 0x0f, 1);
    let mut input = payload;
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64);
    decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
    assert_eq!(out, b"echo: plain");
}

#[test]
fn asgi_runs_on_asyncio_without_uvloop() {
    let apps = it::repo().join("tests/apps").display().to_string();
    let no_uvloop = format!("{apps}/no_uvloop.py");
    let srv = asgi_server("fastapi_app:app", &["--import", &no_uvloop, "--threads", "2"]);
    assert!(srv.log().contains("ready: fastapi_app:app (event loop: asyncio)"), "{}", srv.log());
    let r = srv.get("/stream");
    assert_eq!(r.text(), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    let (mut ws, head) = Ws::connect(srv.addr(), "/ws", None);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.send(true, 1, b"asyncio");
    assert_eq!(ws.recv(), (1, b"echo: asyncio".to_vec()));
}
