//! Issue 19, items 5 and 6: protocol gaps (Content-Length range and lists, request-target
//! forms, trailers, log-line forgery) and operational gaps (the harakiri stack, `limit-as`,
//! `reload-on-as`, the bytes logged for a cut `wsgi.file_wrapper` response), each checked
//! over a real socket against the real server.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use it::{app_calls, single_thread_server, Server};
use serde_json::Value;

/// Sends `raw` on a fresh connection; returns the first status (0: none) and all the text.
fn send_raw(addr: SocketAddr, raw: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(raw);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.strip_prefix("HTTP/1.1 ").and_then(|t| t.get(..3)).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The environ the echo app saw for `raw`.
fn echoed_environ(srv: &Server, raw: &[u8]) -> Value {
    let r = srv.exchange(raw);
    assert_eq!(r.status, 200, "{r:?}");
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v["environ"].clone()
}

/// Requests that must never reach the app, and the status each gets.
#[test]
fn issue_19_protocol_gaps_never_reach_the_app() {
    let post = |headers: &str, body: &str| format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n{body}");
    let chunked_with_trailer =
        |trailer: &str| post("Transfer-Encoding: chunked\r\n", &format!("5\r\nhello\r\n0\r\n{trailer}\r\n\r\n"));
    let cases: Vec<(&str, String, u16)> = vec![
        // A valid number no app can read (Python's int is fine, read(n) overflows).
        ("cl_u64_max", post("Content-Length: 18446744073709551615\r\n", ""), 413),
        ("cl_past_i64", post("Content-Length: 9223372036854775808\r\n", ""), 413),
        ("cl_past_u64", post("Content-Length: 18446744073709551616\r\n", ""), 413),
        // RFC 9112 §3.2: only origin-form, absolute-form, and `*` with OPTIONS.
        ("asterisk_on_get", "GET * HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("authority_form_on_get", "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("relative_target", "GET foo/bar HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("ftp_absolute_form", "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("connect", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".into(), 405),
        ("connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        // RFC 9110 §6.5.1: framing, routing and content fields are not allowed in trailers.
        ("trailer_content_length", chunked_with_trailer("Content-Length: 5"), 400),
        ("trailer_host", chunked_with_trailer("Host: evil"), 400),
        ("trailer_transfer_encoding", chunked_with_trailer("transfer-encoding: chunked"), 400),
        ("trailer_after_allowed_one", chunked_with_trailer("X-Checksum: 1\r\nContent-Type: text/evil"), 400),
    ];
    let srv = single_thread_server("counter.py", &[]);
    for (name, raw, status) in cases {
        let (got, text) = send_raw(srv.addr(), raw.as_bytes());
        assert_eq!(got, status, "{name}: {text}");
        assert_eq!(app_calls(&srv), 0, "{name}: reached the app");
    }
    // A trailer outside the list is still taken (and dropped).
    let (got, text) = send_raw(
        srv.addr(),
        chunked_with_trailer("X-Checksum: 1").replace("Host: a", "Host: a\r\nConnection: close").as_bytes(),
    );
    assert_eq!(got, 200, "{text}");
    assert!(text.ends_with("hello"), "{text}");
}

/// `Content-Length: 5, 5` (or two equal fields) frames a 5-byte body; the app must see
/// `CONTENT_LENGTH` = `5`, not the list that Django's `int()` refuses.
#[test]
fn issue_19_repeated_content_length_reaches_the_app_as_one_value() {
    let srv = single_thread_server("echo.py", &[]);
    for headers in
        ["Content-Length: 5, 5\r\n", "Content-Length: 5\r\nContent-Length: 5\r\n", "Content-Length: 5 ,5,\r\n"]
    {
        let raw = format!("POST /?read=length HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{headers}\r\nhello");
        let env = echoed_environ(&srv, raw.as_bytes());
        assert_eq!(env["CONTENT_LENGTH"], "5", "{headers:?}: {env}");
    }
}

/// RFC 9112 §3.2.2: an absolute-form target's authority replaces Host; its path is `PATH_INFO`.
#[test]
fn issue_19_absolute_form_takes_host_and_path_from_the_uri() {
    let srv = single_thread_server("echo.py", &[]);
    let env = echoed_environ(
        &srv,
        b"GET http://example.org:8080/p/a%20b?x=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(env["HTTP_HOST"], "example.org:8080", "{env}");
    assert_eq!(env["PATH_INFO"], "/p/a b", "{env}");
    assert_eq!(env["QUERY_STRING"], "x=1", "{env}");
    assert_eq!(env["REQUEST_URI"], "http://example.org:8080/p/a%20b?x=1", "{env}");
    let env = echoed_environ(&srv, b"GET HTTP://example.org?y HTTP/1.0\r\n\r\n");
    assert_eq!((env["HTTP_HOST"].as_str(), env["PATH_INFO"].as_str()), (Some("example.org"), Some("/")), "{env}");
    // `OPTIONS *` is the one asterisk-form request; it reaches the app as PATH_INFO `*`.
    let env = echoed_environ(&srv, b"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!((env["PATH_INFO"].as_str(), env["REQUEST_URI"].as_str()), (Some("*"), Some("*")), "{env}");
}

/// No client byte can start a log line of its own or hide as a terminal control sequence:
/// CR, LF, NUL, ESC and the Unicode line separators are written escaped.
#[test]
fn issue_19_log_lines_escape_control_and_separator_characters() {
    let app = it::app("counter.py");
    let srv = Server::start(&[
        "--socket",
        "127.0.0.1:0",
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--log-x-forwarded-for",
        "--harakiri",
        "30",
    ]);
    let forged = "[pid: 1|app: 0|req: 1/1] 6.6.6.6 () {1 vars in 1 bytes} [Thu Jan  1 00:00:00 1970] GET /forged";
    let uri = format!("/a\r\n{forged}\0\x1b[2J\u{85}\u{2028}\u{2029}z");
    let packet = it::uwsgi_packet::<&[u8], &[u8]>(&[
        (b"REQUEST_METHOD", b"GET"),
        (b"REQUEST_URI", uri.as_bytes()),
        (b"PATH_INFO", b"/a"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REMOTE_ADDR", b"1.2.3.4"),
        (b"HTTP_X_FORWARDED_FOR", "9.9.9.9\u{2028}evil".as_bytes()),
    ]);
    let mut s = TcpStream::connect(srv.addrs[0]).unwrap();
    s.write_all(&packet).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&reply));
    let http = "GET /h HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 8.8.8.8\u{2029}\u{85}x\r\n\r\n";
    assert_eq!(send_raw(srv.addrs[1], http.as_bytes()).0, 200);
    assert!(srv.wait_log("GET /h => generated", Duration::from_secs(5)), "{}", srv.log());
    let log = srv.log();
    let escaped = "GET /a\\x0d\\x0a[pid: 1|app: 0|req: 1/1] 6.6.6.6 () {1 vars in 1 bytes} \
                   [Thu Jan  1 00:00:00 1970] GET /forged\\x00\\x1b[2J\\u0085\\u2028\\u2029z => generated";
    assert!(log.contains(escaped), "{log}");
    assert!(log.contains("] 9.9.9.9\\u2028evil () {"), "{log}");
    assert!(log.contains("] 8.8.8.8\\u2029\\u0085x () {"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with(forged), "forged line: {line:?}");
        assert!(!line.contains(['\0', '\x1b', '\r', '\u{85}', '\u{2028}', '\u{2029}']), "raw control: {line:?}");
    }
}

/// Harakiri logs the stuck thread's Python stack without `harakiri-verbose`/`py-tracebacker`.
#[test]
fn issue_19_harakiri_logs_the_python_stack_by_default() {
    let srv = single_thread_server("counter.py", &["--master", "--harakiri", "1"]);
    let (status, _) = send_raw(srv.addr(), b"GET /deadlock HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 0, "the stuck request gets no answer");
    assert!(srv.wait_log("Respawned uWSGI worker", Duration::from_secs(15)), "{}", srv.log());
    let log = srv.log();
    assert!(log.contains("HARAKIRI ON WORKER 1"), "{log}");
    // faulthandler's dump names the app's frame that is stuck.
    assert!(log.contains("counter.py\", line") && log.contains("in application"), "no Python stack:\n{log}");
}

/// Address space of `pid` in bytes (`VmSize`).
fn vm_size(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmSize");
    kb * 1024
}

fn features_server(extra: &[&str]) -> Server {
    it::single_thread_server("wsgi_features.py", &[&["--master"], extra].concat())
}

/// MiB of address space a fresh worker of `features_server` has, plus `extra`.
fn worker_as_plus(extra: u64) -> u64 {
    let probe = features_server(&[]);
    let pid = probe.worker_pids()[0];
    assert_eq!(probe.get("/pid").status, 200);
    (vm_size(pid) >> 20) + extra
}

/// `limit-as N`: each worker runs with `RLIMIT_AS` = N MiB, so an allocation past it raises
/// `MemoryError` in the app (a 500) instead of growing the worker; the worker serves on.
#[test]
fn limit_as_caps_each_workers_address_space() {
    let limit = worker_as_plus(256);
    let srv = features_server(&["--limit-as", &limit.to_string()]);
    // The worker that answers has set its limit (the master logs the spawn before that).
    let worker: i32 = srv.get("/pid").text().parse().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{worker}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max address space")).unwrap();
    let want = (limit << 20).to_string();
    assert_eq!(line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), [want.as_str(), want.as_str()], "{line}");
    let big = srv.get(&format!("/leak?mb={}", limit + 64));
    assert_eq!(big.status, 500, "{big:?}");
    // The traceback may reach the log just after the response.
    assert!(srv.wait_log("MemoryError", Duration::from_secs(5)), "{}", srv.log());
    assert_eq!(srv.get("/pid").text(), worker.to_string(), "the same worker serves on");
    assert!(srv.log().contains(&format!("your process address space limit is {} bytes ({limit} MB)", limit << 20)));
}

/// `reload-on-as N`: a worker whose address space passes N MiB finishes its request and is
/// replaced, as with `reload-on-rss`.
#[test]
fn reload_on_as_recycles_a_worker_past_the_limit() {
    let limit = worker_as_plus(100);
    let srv = features_server(&["--reload-on-as", &limit.to_string(), "--min-worker-lifetime", "1"]);
    thread::sleep(Duration::from_millis(1100));
    let before = srv.worker_pids();
    assert_eq!(srv.get("/pid").status, 200);
    let leak = srv.get("/leak?mb=200");
    assert_eq!(leak.status, 200, "the request that grew it completes: {leak:?}");
    assert!(srv.wait_log("reload-on-as", Duration::from_secs(15)), "{}", srv.log());
    assert!(srv.wait_log("Respawned uWSGI worker", Duration::from_secs(15)), "{}", srv.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.worker_pids() == before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_ne!(srv.worker_pids(), before);
    assert_eq!(srv.get("/pid").status, 200);
}

/// A `wsgi.file_wrapper` response a stalled client stops taking is cut after
/// `socket-timeout`; the log line counts the body bytes that did go out, not 0. Both
/// kinds: a regular file (sendfile, the rest parked on the connection) and a file-like
/// object the server iterates (here one 32 MiB block, written with plain writes).
#[test]
fn issue_19_cut_file_wrapper_response_logs_the_bytes_sent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![b'x'; 32 << 20]).unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import io\n\
         def application(environ, start_response):\n\
         \x20   start_response('200 OK', [('Content-Type', 'application/octet-stream')])\n\
         \x20   if environ['PATH_INFO'] == '/file':\n\
         \x20       return environ['wsgi.file_wrapper'](open('big.bin', 'rb'), 8192)\n\
         \x20   return environ['wsgi.file_wrapper'](io.BytesIO(b'x' * (32 << 20)), 32 << 20)\n",
    )
    .unwrap();
    let srv = Server::start_in(
        dir,
        it::Start {
            args: ["--http-socket", "127.0.0.1:0", "--wsgi-file", "app.py", "--socket-timeout", "1"]
                .map(String::from)
                .to_vec(),
            env: vec![],
            workers: 1,
        },
    );
    for path in ["/file", "/bytesio"] {
        let mut s = it::connect(srv.addr());
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes()).unwrap();
        // Take a little, then stall.
        let mut first = [0u8; 4096];
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read(&mut first);
        let needle = format!("GET {path} => generated");
        assert!(srv.wait_log(&needle, Duration::from_secs(15)), "{}", srv.log());
        let log = srv.log();
        let line = log.lines().find(|l| l.contains(&needle)).unwrap();
        let generated: u64 = line.split("generated ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
        assert!(generated >= 4096 - 200, "{path}: logged {generated} bytes: {line}");
        assert!(generated < 32 << 20, "{line}");
        drop(s);
    }
}
