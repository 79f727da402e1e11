//! Core server, WSGI side (PEP 3333): the app wrapped in `wsgiref.validate`, every way of
//! reading `wsgi.input`, the environ, `threading.local`, `close()` on the iterable.

use std::io::{BufReader, Read, Write};
use std::time::Duration;

use it::{app, json, read_response, read_response_to, Server, Start};

const SECS: Duration = Duration::from_secs(10);

fn serve(app_file: &str, extra: &[&str]) -> Server {
    let app_path = app(app_file);
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &app_path];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Text the validator or the interpreter prints when the server breaks PEP 3333.
fn assert_no_validator_errors(srv: &Server) {
    let log = srv.log();
    for bad in ["AssertionError", "WSGIWarning", "garbage collected without being closed", "Exception ignored"] {
        assert!(!log.contains(bad), "the log shows {bad:?}:\n{log}");
    }
}

fn sha256_hex(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

/// A body of lines of varied length (with non-ASCII bytes), about `size` bytes.
fn lines_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 200);
    let mut i = 0;
    while body.len() < size {
        body.extend_from_slice(format!("line {i} ").as_bytes());
        body.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 131));
        body.extend_from_slice(&[0xE9, 0x00, 0xFF, b'\n']);
        i += 1;
    }
    body
}

fn post(srv: &Server, target: &str, body: &[u8]) -> it::Response {
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    srv.exchange(&raw)
}

fn echo_json(r: &it::Response) -> json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    json::from_str::<json::Value>(&r.text()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

fn assert_body_seen(v: &json::Value, body: &[u8], what: &str) {
    assert_eq!(v.get("body_len").and_then(json::Value::as_f64), Some(body.len() as f64), "{what}: body length");
    assert_eq!(
        v.get("body_sha256").and_then(json::Value::as_str),
        Some(sha256_hex(body).as_str()),
        "{what}: body sha256"
    );
}

#[test]
fn validated_get_stream_write_file_head_exc_info() {
    let srv = serve("validated.py", &[]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/threadlocal"), "{}", r.text());

    let r = srv.get("/stream");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "a generator without Content-Length is streamed chunked"
    );
    assert_eq!(r.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n");

    let r = srv.get("/write");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "write 0\nwrite 1\nwrite 2\n");

    let r = srv.get("/file");
    assert_eq!(r.status, 200);
    let file = std::fs::read(app("wsgi_features.py")).unwrap();
    assert_eq!(r.header("content-length"), Some(file.len().to_string().as_str()));
    assert!(r.body == file, "file_wrapper body differs from the file");

    let r = srv.get("/exc-info");
    assert_eq!(r.status, 500, "start_response(..., exc_info) before the body replaces the status");
    assert_eq!(r.text(), "recovered via exc_info");

    // HEAD: headers (with the app's Content-Length) and not one body byte on the wire.
    let mut s = srv.connect();
    s.write_all(b"HEAD /head HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.to_ascii_lowercase().contains("content-length: 12\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD response carries body bytes: {text:?}");

    // HEAD then GET on one keep-alive connection: the framing stays in step.
    let mut s = srv.connect();
    s.write_all(b"HEAD /head HTTP/1.1\r\nHost: test\r\n\r\nGET /head HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let head = read_response_to(&mut r, true).unwrap();
    assert_eq!(head.status, 200);
    let get = read_response(&mut r).unwrap();
    assert_eq!(get.text(), "body-for-get");

    assert!(srv.wait_log("GET /file", SECS));
    assert_no_validator_errors(&srv);
}

#[test]
fn validated_post_body_every_read_style() {
    let srv = serve("validated.py", &[]);
    // Small (arrives with the head) and large (read from the socket while the app runs).
    for size in [700, 300 * 1024] {
        let body = lines_body(size);
        for mode in ["n:1024", "n:1", "length", "line", "line:100", "lines", "iter"] {
            if mode == "n:1" && size > 1000 {
                continue;
            }
            let v = echo_json(&post(&srv, &format!("/echo?read={mode}"), &body));
            assert_body_seen(&v, &body, &format!("read={mode} size={size}"));
        }
    }
    // A body the app never reads must not confuse the next request on the connection.
    let mut s = srv.connect();
    s.write_all(b"POST /echo?read=none HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(echo_json(&read_response(&mut r).unwrap()).get("body_len").and_then(json::Value::as_f64), Some(0.0));
    let v = echo_json(&read_response(&mut r).unwrap());
    assert_eq!(v.get("environ").and_then(|e| e.get("REQUEST_METHOD")).and_then(json::Value::as_str), Some("GET"));
    assert_no_validator_errors(&srv);
}

#[test]
fn post_body_read_all_without_validator() {
    // read() without a size is legal WSGI 1.0.1 usage that the validator forbids.
    let srv = serve("echo.py", &[]);
    for size in [10, 200 * 1024] {
        let body = lines_body(size);
        for mode in ["all", "length", "n:65536"] {
            let v = echo_json(&post(&srv, &format!("/?read={mode}"), &body));
            assert_body_seen(&v, &body, &format!("read={mode} size={size}"));
        }
    }
    let v = echo_json(&post(&srv, "/?read=all", b""));
    assert_body_seen(&v, b"", "empty body");
}

#[test]
fn validated_chunked_upload() {
    let srv = serve("validated.py", &[]);
    let body = lines_body(150 * 1024);
    for mode in ["n:1024", "line", "iter"] {
        let mut s = srv.connect();
        s.write_all(
            format!("POST /echo?read={mode} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
        )
        .unwrap();
        // Chunks of odd sizes in separate writes, the first after a pause.
        std::thread::sleep(Duration::from_millis(50));
        for piece in body.chunks(7001) {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
            s.write_all(piece).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\n\r\n").unwrap();
        let mut r = BufReader::new(s);
        let v = echo_json(&read_response(&mut r).unwrap());
        assert_body_seen(&v, &body, &format!("chunked read={mode}"));
        // The connection stays usable after a chunked body.
        r.get_mut().write_all(b"GET /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut r).unwrap().status, 200);
    }
    assert_no_validator_errors(&srv);
}

#[test]
fn app_exception_gives_500_and_the_worker_keeps_serving() {
    let srv = serve("validated.py", &[]);
    let pid = srv.get("/pid").text();
    let r = srv.get("/error");
    assert_eq!(r.status, 500);
    assert!(srv.wait_log("RuntimeError: wsgi_features: /error raised before start_response", SECS), "{}", srv.log());
    assert!(srv.log().contains("Traceback (most recent call last)"), "{}", srv.log());
    assert_eq!(srv.get("/pid").text(), pid, "same worker serves after the exception");
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn exception_mid_body_truncates_and_worker_survives() {
    let srv = serve("wsgi_features.py", &[]);
    let mut s = srv.connect();
    s.write_all(b"GET /error-after-start HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap(); // the server closes the connection
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("first chunk"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "a failed body must not look complete: {text:?}");
    assert!(srv.wait_log("/error-after-start raised mid-body", SECS), "{}", srv.log());
    assert_eq!(srv.get("/pid").status, 200);
}

fn environ_of(r: &it::Response) -> (json::Value, json::Value) {
    let v = echo_json(r);
    (v.get("environ").cloned().unwrap(), v.get("types").cloned().unwrap())
}

fn env_str<'a>(env: &'a json::Value, key: &str) -> Option<&'a str> {
    env.get(key).and_then(json::Value::as_str)
}

#[test]
fn environ_keys_types_and_values() {
    let srv = serve("echo.py", &[]);
    let mut s = srv.connect();
    let local_port = s.local_addr().unwrap().port().to_string();
    s.write_all(
        b"GET /caf%C3%A9%20x/%2Fy?a=1&b=%20c HTTP/1.1\r\nHost: test.example:81\r\nX-Dup: one\r\nUser-Agent: it\r\nX-Dup: two\r\n\
          Cookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let (env, types) = environ_of(&read_response(&mut BufReader::new(s)).unwrap());
    // PATH_INFO: percent-decoded bytes, as latin-1 code points (PEP 3333).
    assert_eq!(env_str(&env, "PATH_INFO"), Some("caf\u{c3}\u{a9} x//y").map(|p| format!("/{p}")).as_deref());
    assert_eq!(env_str(&env, "QUERY_STRING"), Some("a=1&b=%20c"));
    assert_eq!(env_str(&env, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(env_str(&env, "SCRIPT_NAME"), Some(""));
    assert_eq!(env_str(&env, "SERVER_PROTOCOL"), Some("HTTP/1.1"));
    assert_eq!(env_str(&env, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(env_str(&env, "REMOTE_PORT"), Some(local_port.as_str()));
    assert_eq!(env_str(&env, "SERVER_PORT"), Some(srv.addr().port().to_string().as_str()));
    assert!(env_str(&env, "SERVER_NAME").is_some_and(|n| !n.is_empty()));
    assert_eq!(env_str(&env, "HTTP_HOST"), Some("test.example:81"));
    assert_eq!(env_str(&env, "HTTP_USER_AGENT"), Some("it"));
    assert_eq!(env_str(&env, "HTTP_X_DUP"), Some("one, two"), "repeated headers are combined with ', '");
    assert_eq!(env_str(&env, "HTTP_COOKIE"), Some("a=1; b=2"), "repeated Cookie headers are combined with '; '");
    assert_eq!(env_str(&env, "wsgi.url_scheme"), Some("http"));
    assert_eq!(env.get("wsgi.version"), Some(&json::json!([1, 0])));
    assert_eq!(env.get("wsgi.run_once"), Some(&json::Value::Bool(false)));
    assert_eq!(env.get("wsgi.multithread"), Some(&json::Value::Bool(false)), "1 thread");
    assert_eq!(env.get("wsgi.multiprocess"), Some(&json::Value::Bool(false)), "1 process");
    for key in [
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "HTTP_HOST",
    ] {
        assert_eq!(env_str(&types, key), Some("str"), "type of {key}");
    }
    assert_eq!(env_str(&types, "wsgi.version"), Some("tuple"));
    for key in ["wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"] {
        assert_eq!(env_str(&types, key), Some("bool"), "type of {key}");
    }
    assert!(
        types.get("wsgi.input").is_some()
            && types.get("wsgi.errors").is_some()
            && types.get("wsgi.file_wrapper").is_some()
    );

    // A POST: CONTENT_TYPE / CONTENT_LENGTH as str, no HTTP_ duplicates of them.
    let (env, types) = environ_of(&post(&srv, "/p", b"12345"));
    assert_eq!(env_str(&env, "CONTENT_LENGTH"), Some("5"));
    assert_eq!(env_str(&env, "CONTENT_TYPE"), Some("application/octet-stream"));
    assert_eq!(env_str(&types, "CONTENT_LENGTH"), Some("str"));
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none() && env.get("HTTP_CONTENT_TYPE").is_none());

    // HTTP/1.0.
    let (env, _) = environ_of(&srv.exchange(b"GET /old HTTP/1.0\r\n\r\n"));
    assert_eq!(env_str(&env, "SERVER_PROTOCOL"), Some("HTTP/1.0"));
}

#[test]
fn environ_multithread_multiprocess_follow_the_config() {
    let srv = Server::start_with(Start {
        args: ["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py"), "--processes", "2", "--threads", "2"]
            .map(str::to_owned)
            .to_vec(),
        env: vec![],
        workers: 2,
    });
    let (env, _) = environ_of(&srv.get("/"));
    assert_eq!(env.get("wsgi.multithread"), Some(&json::Value::Bool(true)));
    assert_eq!(env.get("wsgi.multiprocess"), Some(&json::Value::Bool(true)));
    drop(srv);
    let srv = serve("echo.py", &["--threads", "3"]);
    let (env, _) = environ_of(&srv.get("/"));
    assert_eq!(env.get("wsgi.multithread"), Some(&json::Value::Bool(true)));
    assert_eq!(env.get("wsgi.multiprocess"), Some(&json::Value::Bool(false)));
}

#[test]
fn threading_local_survives_between_requests() {
    let srv = serve("wsgi_features.py", &["--processes", "1", "--threads", "1"]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let v = json::from_str::<json::Value>(&srv.get("/threadlocal").text()).unwrap();
        seen.push((
            v.get("count").and_then(json::Value::as_f64).unwrap(),
            v.get("thread").and_then(json::Value::as_f64).unwrap(),
        ));
    }
    let counts: Vec<f64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(counts, [1.0, 2.0, 3.0, 4.0], "threading.local value set in one request is seen by the next");
    assert!(seen.iter().all(|s| s.1.to_bits() == seen[0].1.to_bits()), "same Python thread: {seen:?}");
}

#[test]
fn close_is_called_also_when_the_client_disconnects() {
    let srv = serve("wsgi_features.py", &[]);
    // Normal request, then a client that sends the request and goes away at once.
    assert_eq!(srv.get("/close").text(), "closing body\n");
    let mut s = srv.connect();
    s.write_all(b"GET /close HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    drop(s);
    let deadline = std::time::Instant::now() + SECS;
    loop {
        let n = srv.get("/close-count").text();
        if n == "2" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "close() calls: {n}, want 2");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A long stream the client abandons mid-way: close() still runs.
    let dir = tempfile::tempdir().unwrap();
    let stream_app = dir.path().join("endless.py");
    std::fs::write(
        &stream_app,
        r#"
import sys

class Endless:
    def __init__(self, limit):
        self.sent = 0
        self.limit = limit
    def __iter__(self):
        return self
    def __next__(self):
        self.sent += 1
        if self.sent > self.limit:
            raise StopIteration
        return b"x" * 65536
    def close(self):
        sys.stderr.write("endless: close() called after %d chunks\n" % self.sent)

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Endless(int(environ.get("QUERY_STRING") or 100000))
"#,
    )
    .unwrap();
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", stream_app.to_str().unwrap()]);
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < buf.len() {
        got += s.read(&mut buf[got..]).unwrap();
    }
    drop(s);
    assert!(
        srv.wait_log("endless: close() called after", SECS),
        "close() not called after the client left:\n{}",
        srv.log()
    );
    assert_eq!(srv.get("/?2").body.len(), 2 * 65536, "still serving");
}

/// Sends `method path` plus a pipelined `GET /`; returns everything until EOF or 3 s of quiet.
fn raw_with_follow_up(srv: &Server, method: &str, path: &str) -> String {
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(format!("{method} {path} HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                out.extend_from_slice(b"<EOF>");
                break;
            }
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn response_framing_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let edge = dir.path().join("edge.py");
    std::fs::write(
        &edge,
        r#"
import sys

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/short":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return iter([b"12345"])
    if path == "/long":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return iter([b"abcdefghij"])
    if path == "/late-exc-info":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"never"]
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
        return [b"x"]
    if path == "/head-empty":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"get body"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"#,
    )
    .unwrap();
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", edge.to_str().unwrap()]);
    let ok_follow_up = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

    // Fewer bytes than Content-Length: what there is, then the connection closes.
    let out = raw_with_follow_up(&srv, "GET", "/short");
    assert!(out.ends_with("\r\n\r\n12345<EOF>"), "{out:?}");
    // More: cut at Content-Length, then close (the pipelined request is not answered).
    let out = raw_with_follow_up(&srv, "GET", "/long");
    assert!(out.ends_with("\r\n\r\nabc<EOF>"), "{out:?}");
    // exc_info after the head went out: the exception is re-raised, the body stays
    // incomplete (no last chunk) and the connection closes.
    let out = raw_with_follow_up(&srv, "GET", "/late-exc-info");
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n") && out.ends_with("7\r\npartial\r\n<EOF>"), "{out:?}");
    assert!(srv.wait_log("ValueError: late failure", SECS), "{}", srv.log());
    // A header with CR LF is refused before anything is sent: 500, and the connection
    // carries on.
    let out = raw_with_follow_up(&srv, "GET", "/bad-header");
    assert!(out.starts_with("HTTP/1.1 500 "), "{out:?}");
    assert!(!out.contains("Injected"), "{out:?}");
    assert!(out.ends_with(ok_follow_up), "{out:?}");
    // HEAD answered with an empty body: no made-up Content-Length: 0, framing intact.
    let out = raw_with_follow_up(&srv, "HEAD", "/head-empty");
    assert!(!out.to_ascii_lowercase().contains("content-length: 0"), "{out:?}");
    assert_eq!(out, format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n{ok_follow_up}"));
}

#[test]
fn objects_an_app_keeps_never_reach_a_later_request() {
    // write(), start_response and wsgi.input kept by the app past their request stay bound
    // to it: a late call fails or reads nothing, and never touches the request running now.
    // A thread reuses these objects for its next request when the app kept none of them
    // (`/plain` before `/keep`): the ones kept are never reused.
    let dir = tempfile::tempdir().unwrap();
    let keeper = dir.path().join("keeper.py");
    std::fs::write(
        &keeper,
        r#"
kept = {}

def application(environ, start_response):
    if environ["PATH_INFO"] == "/plain":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain"]
    if environ["PATH_INFO"] == "/keep":
        kept["write"] = start_response("200 OK", [("Content-Type", "text/plain")])
        kept["start_response"] = start_response
        kept["input"] = environ["wsgi.input"]
        return [b"kept"]
    seen = []
    try:
        kept["write"](b"LEAK")
        seen.append("write ok")
    except Exception as e:
        seen.append("write " + type(e).__name__)
    try:
        kept["start_response"]("500 Leak", [])
        seen.append("start_response ok")
    except Exception as e:
        seen.append("start_response " + type(e).__name__)
    seen.append("input " + repr(kept["input"].read()))
    seen.append("body " + repr(environ["wsgi.input"].read()))
    out = "; ".join(seen).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]
"#,
    )
    .unwrap();
    let srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", keeper.to_str().unwrap(), "--processes", "1"]);
    for _ in 0..2 {
        assert_eq!(srv.get("/plain").text(), "plain");
    }
    assert_eq!(srv.get("/keep").text(), "kept");
    for body in ["hello", "again"] {
        let r = post(&srv, "/late", body.as_bytes());
        assert_eq!(
            r.text(),
            format!("write OSError; start_response AssertionError; input b''; body b'{body}'"),
            "{}",
            srv.log()
        );
    }
}

/// PEP 3333: header values are latin-1 text, so `é` goes out as the one byte 0xE9 (as
/// uWSGI sends it), not as UTF-8's two.
#[test]
fn latin1_header_values_go_out_one_byte_per_character() {
    let srv = serve("latin1_header.py", &[]);
    let mut s = srv.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let want: &[u8] = b"Content-Disposition: attachment; filename=\"caf\xe9.pdf\"\r\n";
    assert!(raw.windows(want.len()).any(|w| w == want), "{}", String::from_utf8_lossy(&raw));
}

#[test]
fn hop_by_hop_headers_from_the_app_are_refused_with_a_500_naming_the_header() {
    // PEP 3333 (wsgiref's list): a WSGI app may not set hop-by-hop headers. Every one of
    // them, in any case, is refused whichever of the two checks catches it; an ordinary
    // header of the same length passes.
    let srv = serve("wsgi_features.py", &[]);
    for name in [
        "Connection",
        "keep-alive",
        "TE",
        "Trailers",
        "Upgrade",
        "Transfer-Encoding",
        "Proxy-Authenticate",
        "PROXY-AUTHORIZATION",
    ] {
        let r = srv.get(&format!("/header?name={name}&value=x"));
        assert_eq!(r.status, 500, "{name}: {}", r.text());
        assert!(srv.wait_log(&format!("{name:?}"), SECS), "{name}: the log names the header:\n{}", srv.log());
    }
    for name in ["X-Connection", "Transfer-Encodinx", "Proxy-Authenticatx", "X-Proxy-Authorizat"] {
        let r = srv.get(&format!("/header?name={name}&value=x"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        assert_eq!(r.header(name), Some("x"), "{name}");
    }
}
