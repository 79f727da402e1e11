//! The uwsgi binary protocol behind a real nginx (issue 3): `uwsgi_pass` over TCP and unix
//! sockets, the environ nginx's `uwsgi_params` produce, big bodies both ways, worker deaths,
//! malformed packets, several sockets per instance, socket files (stale, live, vacuum), and
//! the Django example's nginx site.

use std::collections::BTreeSet;
use std::io::{BufReader, Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use it::json::{self, Value};
use it::nginx::Nginx;
use it::{app, Response, Server, Start};
use nix::sys::signal::Signal;
use sha2::{Digest, Sha256};

const SECS: Duration = Duration::from_secs(10);
const MIB: usize = 1024 * 1024;

/// nginx `location /` passing everything to `upstream` (`127.0.0.1:port` or `unix:/path`).
fn pass_all(upstream: &str) -> String {
    format!("location / {{\n    include uwsgi_params;\n    uwsgi_pass {upstream};\n}}\n")
}

/// Starts ruwsgi in `dir` (so a unix socket can live there) with `args`.
/// The uwsgi socket's address as nginx's `uwsgi_pass` wants it. The `socket` option is the
/// only TCP socket in these tests unless they say otherwise.
fn upstream(srv: &Server) -> String {
    srv.addr().to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().fold(String::new(), |mut hex, b| {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// The echo app's JSON answer.
fn echo_json(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    json::from_str(&r.text()).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", r.text()))
}

fn env_str<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get("environ")
        .and_then(|e| e.get(key))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("environ has no string {key}: {v:?}"))
}

fn valid_get(path: &str) -> Vec<u8> {
    it::uwsgi_packet(&[
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", path),
        ("PATH_INFO", path),
        ("QUERY_STRING", ""),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "localhost"),
    ])
}

/// Sends `bytes` straight to a uwsgi socket, then reads until the server closes.
fn raw_uwsgi(addr: std::net::SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = it::connect(addr);
    s.write_all(bytes).expect("write");
    if half_close {
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
    let mut out = Vec::new();
    // A reset counts as closed too: the server may close with our bytes unread.
    let _ = s.read_to_end(&mut out);
    out
}

/// GET, POST and HEAD through nginx to the echo app.
fn check_get_post_head(nginx: &Nginx) {
    let r = nginx.get("/hello?x=1");
    let v = echo_json(&r);
    assert_eq!(env_str(&v, "REQUEST_METHOD"), "GET");
    assert_eq!(env_str(&v, "PATH_INFO"), "/hello");
    assert_eq!(env_str(&v, "QUERY_STRING"), "x=1");

    let body = b"name=ruwsgi&via=nginx";
    let v = echo_json(&nginx.post("/form", "application/x-www-form-urlencoded", body));
    assert_eq!(env_str(&v, "REQUEST_METHOD"), "POST");
    assert_eq!(env_str(&v, "CONTENT_TYPE"), "application/x-www-form-urlencoded");
    assert_eq!(env_str(&v, "CONTENT_LENGTH"), body.len().to_string());
    assert_eq!(v.get("body").and_then(Value::as_str), Some("name=ruwsgi&via=nginx"));

    let r = nginx.exchange_to(b"HEAD /head HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", true);
    assert_eq!(r.status, 200, "{}", nginx.log());
    assert!(r.header("content-length").is_some_and(|n| n != "0"), "HEAD keeps the GET's Content-Length: {r:?}");
}

#[test]
fn get_post_head_over_tcp() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    check_get_post_head(&nginx);
    assert!(srv.wait_log("POST /form => generated", SECS), "{}", srv.log());
}

#[test]
fn get_post_head_over_unix_socket_with_chmod() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let sock_s = sock.display().to_string();
    let srv =
        Server::start_args_in(dir, &["--socket", &sock_s, "--chmod-socket", "666", "--wsgi-file", &app("echo.py")], 1);
    assert!(srv.log().contains(&format!("bound to UNIX address {sock_s}")), "{}", srv.log());
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "chmod-socket 666");
    let nginx = Nginx::start(&pass_all(&format!("unix:{sock_s}")));
    check_get_post_head(&nginx);
}

#[test]
fn chmod_socket_bare_means_666_and_chown_socket_applies() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("bare.sock");
    let sock_s = sock.display().to_string();
    let meta = std::fs::metadata(dir.path()).unwrap();
    let owner =
        format!("{}:{}", std::os::unix::fs::MetadataExt::uid(&meta), std::os::unix::fs::MetadataExt::gid(&meta));
    let ini = dir.path().join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nsocket = {sock_s}\nchmod-socket =\nchown-socket = {owner}\nlisten = 16\nwsgi-file = {}\n",
            app("echo.py")
        ),
    )
    .unwrap();
    let ini_s = ini.display().to_string();
    let srv = Server::start_args_in(dir, &["--ini", &ini_s], 1);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "bare chmod-socket means 666");
    let nginx = Nginx::start(&pass_all(&format!("unix:{sock_s}")));
    assert_eq!(nginx.get("/").status, 200, "{}", srv.log());
}

#[test]
fn environ_matches_what_nginx_sent() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let body = b"\x00binary\xffbody\r\n".repeat(100);
    let mut raw = format!(
        "PUT /caf%C3%A9/a%20b/x?q=%2F%20&empty=&dup=1&dup=2 HTTP/1.1\r\n\
         Host: localhost\r\n\
         User-Agent: it-test/1.0\r\n\
         X-Dup: one\r\n\
         X-Dup: two\r\n\
         Cookie: a=1\r\n\
         Cookie: b=2\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let v = echo_json(&nginx.exchange(&raw));
    assert_eq!(env_str(&v, "REQUEST_METHOD"), "PUT");
    // REQUEST_URI is the raw target; PATH_INFO nginx's decoded path, as latin-1 (PEP 3333).
    assert_eq!(env_str(&v, "REQUEST_URI"), "/caf%C3%A9/a%20b/x?q=%2F%20&empty=&dup=1&dup=2");
    assert_eq!(env_str(&v, "PATH_INFO"), "/caf\u{c3}\u{a9}/a b/x");
    assert_eq!(env_str(&v, "QUERY_STRING"), "q=%2F%20&empty=&dup=1&dup=2");
    assert_eq!(env_str(&v, "SCRIPT_NAME"), "");
    assert_eq!(env_str(&v, "SERVER_PROTOCOL"), "HTTP/1.1");
    assert_eq!(env_str(&v, "SERVER_NAME"), "localhost");
    assert_eq!(env_str(&v, "SERVER_PORT"), nginx.addr.port().to_string());
    assert_eq!(env_str(&v, "REMOTE_ADDR"), "127.0.0.1");
    assert!(env_str(&v, "REMOTE_PORT").parse::<u16>().is_ok());
    assert_eq!(env_str(&v, "REQUEST_SCHEME"), "http");
    assert_eq!(env_str(&v, "wsgi.url_scheme"), "http");
    assert_eq!(env_str(&v, "HTTP_HOST"), "localhost");
    assert_eq!(env_str(&v, "HTTP_USER_AGENT"), "it-test/1.0");
    assert_eq!(env_str(&v, "HTTP_X_DUP"), "one, two");
    assert_eq!(env_str(&v, "HTTP_COOKIE"), "a=1; b=2");
    assert_eq!(env_str(&v, "CONTENT_TYPE"), "application/octet-stream");
    assert_eq!(env_str(&v, "CONTENT_LENGTH"), body.len().to_string());
    assert!(v.get("environ").and_then(|e| e.get("HTTPS")).is_none(), "no HTTPS over plain http");
    assert_eq!(v.get("body_sha256").and_then(Value::as_str), Some(sha256_hex(&body).as_str()));
    assert_eq!(
        v.get("types").and_then(|t| t.get("wsgi.input")).and_then(Value::as_str).map(str::is_empty),
        Some(false)
    );
}

#[test]
fn chunked_post_through_nginx_arrives_with_a_length() {
    // nginx buffers a chunked request body and passes CONTENT_LENGTH upstream.
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let raw =
        b"POST /c?read=n:7 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    let v = echo_json(&nginx.exchange(raw));
    assert_eq!(v.get("body").and_then(Value::as_str), Some("hello, world"));
    assert_eq!(env_str(&v, "CONTENT_LENGTH"), "12");
}

#[test]
fn app_ignoring_a_big_body_still_answers_through_nginx() {
    // The app never reads wsgi.input; closing on the unread body must not cost nginx the reply.
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let body = vec![b'z'; 8 * MIB];
    for _ in 0..3 {
        let v = echo_json(&nginx.post("/ignore?read=none", "application/octet-stream", &body));
        assert_eq!(v.get("body_len").and_then(Value::as_f64), Some(0.0));
    }
    assert_eq!(nginx.get("/after").status, 200);
}

#[test]
fn ipv6_socket_behind_nginx() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine: nothing to test");
        return;
    }
    let srv = Server::start(&["--socket", "[::1]:0", "--wsgi-file", &app("echo.py")]);
    assert!(srv.addr().is_ipv6(), "{}", srv.log());
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let v = echo_json(&nginx.get("/v6"));
    assert_eq!(env_str(&v, "PATH_INFO"), "/v6");
}

#[test]
fn https_from_nginx_sets_url_scheme() {
    // nginx sends HTTPS=on behind TLS; fake it with uwsgi_param as a TLS server would.
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&format!(
        "location / {{\n    include uwsgi_params;\n    uwsgi_param HTTPS on;\n    uwsgi_pass {};\n}}\n",
        upstream(&srv)
    ));
    let v = echo_json(&nginx.get("/"));
    assert_eq!(env_str(&v, "wsgi.url_scheme"), "https");
}

/// `manage.py` of the Django example with a settings module that puts `STATIC_ROOT` and the
/// database in `tmp`, so the test writes nothing into the repository.
fn django_env(tmp: &Path) -> Vec<(&'static str, String)> {
    std::fs::write(
        tmp.join("it_settings.py"),
        format!("from demo.settings import *  # noqa\nSTATIC_ROOT = {:?}\n", tmp.join("static").display().to_string()),
    )
    .unwrap();
    vec![
        ("DJANGO_SETTINGS_MODULE", "it_settings".to_owned()),
        ("PYTHONPATH", tmp.display().to_string()),
        ("DEMO_DB", tmp.join("db.sqlite3").display().to_string()),
    ]
}

fn manage(tmp: &Path, env: &[(&str, String)], args: &[&str]) {
    let example = it::repo().join("examples/django");
    let out = Command::new(it::venv_python())
        .arg(example.join("manage.py"))
        .args(args)
        .current_dir(&example)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run manage.py");
    assert!(out.status.success(), "manage.py {args:?} in {}: {}", tmp.display(), String::from_utf8_lossy(&out.stderr));
}

/// The example's `nginx-site.conf` with its placeholders pointed at this test's port,
/// static dir and socket.
fn example_site(listen: std::net::SocketAddr, static_dir: &Path, socket: &str) -> String {
    let text = std::fs::read_to_string(it::repo().join("examples/django/nginx-site.conf")).unwrap();
    let mut site = text.clone();
    for (from, to) in [
        ("listen 80;", format!("listen {listen};")),
        ("/path/to/examples/django/static/", format!("{}/", static_dir.display())),
        ("127.0.0.1:9009", socket.to_owned()),
    ] {
        assert!(site.contains(from), "examples/django/nginx-site.conf no longer contains {from:?}");
        site = site.replace(from, &to);
    }
    site
}

fn cookie_value(r: &Response, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}="))?.split(';').next().map(str::to_owned))
}

#[test]
fn django_example_through_nginx_with_static_and_csrf() {
    let tmp = tempfile::tempdir().unwrap();
    let env = django_env(tmp.path());
    manage(tmp.path(), &env, &["migrate", "--noinput", "-v", "0"]);
    manage(tmp.path(), &env, &["collectstatic", "--noinput", "-v", "0"]);
    let static_dir = tmp.path().join("static");
    let css = std::fs::read(static_dir.join("guestbook/style.css")).expect("collectstatic output");

    let example = it::repo().join("examples/django").display().to_string();
    let srv = Server::start_with(Start {
        args: [
            "--socket",
            "127.0.0.1:0",
            "--chdir",
            &example,
            "--module",
            "demo.wsgi:application",
            "--processes",
            "2",
            "--threads",
            "2",
        ]
        .map(str::to_owned)
        .to_vec(),
        env: env.clone(),
        workers: 2,
    });
    let nginx = Nginx::start_http(|addr| example_site(addr, &static_dir, &upstream(&srv)));

    let page = nginx.get("/");
    assert_eq!(page.status, 200, "{}\n{}", page.text(), srv.log());
    let html = page.text();
    assert!(html.contains("/static/guestbook/style.css"), "{html}");

    // /static comes from nginx's alias, never from the app.
    let r = nginx.get("/static/guestbook/style.css");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, css);
    assert!(r.header("content-type").is_some_and(|t| t.starts_with("text/css")), "{r:?}");
    assert!(r.header("expires").is_some(), "the site's `expires 1h` applies: {r:?}");
    assert!(!srv.log().contains("GET /static/"), "static request reached the app:\n{}", srv.log());

    // The form: CSRF cookie + hidden token, posted back through nginx.
    let cookie = cookie_value(&page, "csrftoken").expect("csrftoken cookie");
    let token = it::csrf_token(&html);
    let body = format!("csrfmiddlewaretoken={token}&name=nginx&message=hello+through+uwsgi_pass");
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nCookie: csrftoken={cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = nginx.exchange(raw.as_bytes());
    assert_eq!(r.status, 303, "{}\n{}", r.text(), srv.log());
    assert_eq!(r.header("location"), Some("/"));
    assert!(nginx.get("/").text().contains("hello through uwsgi_pass"));

    // Without the token Django refuses it: the CSRF check really ran.
    let r = nginx.post("/", "application/x-www-form-urlencoded", b"name=x&message=y");
    assert_eq!(r.status, 403);
}

#[test]
fn hundred_mib_post_through_nginx_reaches_wsgi_input() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let body: Vec<u8> = (0..100 * MIB).map(|i| (i % 253) as u8).collect();
    let v = echo_json(&nginx.post("/upload?read=n:65536", "application/octet-stream", &body));
    assert_eq!(v.get("body_len").and_then(Value::as_f64), Some((100 * MIB) as f64));
    assert_eq!(v.get("body_sha256").and_then(Value::as_str), Some(sha256_hex(&body).as_str()));
}

/// Peak and current resident set of `pid`, in KiB.
fn rss_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[test]
fn hundred_mib_response_through_nginx_with_bounded_worker_memory() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    let worker = srv.worker_pids()[0];
    // Warm up so the app's imports are not counted as growth.
    assert_eq!(nginx.get("/big?mb=1").status, 200);
    let (_, before) = rss_kib(worker);
    let r = nginx.get("/big?mb=100");
    assert_eq!(r.status, 200, "{}", nginx.log());
    assert_eq!(r.body.len(), 100 * MIB);
    let bad = r.body.iter().enumerate().position(|(i, &b)| usize::from(b) != i % 251);
    assert_eq!(bad, None, "response corrupted");
    let (peak, _) = rss_kib(worker);
    let growth_mib = peak.saturating_sub(before) / 1024;
    eprintln!("worker RSS before {before} KiB, peak after {peak} KiB");
    assert!(growth_mib < 64, "worker peak RSS grew by {growth_mib} MiB for a streamed 100 MiB response");
}

#[test]
fn nginx_keeps_working_while_a_worker_is_killed() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py"), "--processes", "2"]);
    let nginx = Nginx::start(&pass_all(&upstream(&srv)));
    assert_eq!(nginx.get("/pid").status, 200);
    let pids = srv.worker_pids();
    assert_eq!(pids.len(), 2);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0]), Signal::SIGKILL).unwrap();
    let mut failures = 0;
    for _ in 0..20 {
        let r = nginx.get("/pid");
        if r.status != 200 {
            failures += 1;
            continue;
        }
        assert_ne!(r.text().trim(), pids[0].to_string(), "a killed worker answered");
    }
    assert!(failures <= 1, "{failures} requests failed after the kill:\n{}", nginx.log());
    assert!(srv.wait_log("Respawned uWSGI worker", SECS), "{}", srv.log());
    let now = srv.worker_pids();
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&pids[0]));
    for _ in 0..5 {
        assert_eq!(nginx.get("/pid").status, 200);
    }
}

#[test]
fn malformed_packets_close_the_connection_not_the_worker() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py"), "--buffer-size", "4096"]);
    let addr = srv.addr();
    let pids = srv.worker_pids();
    let valid = valid_get("/ok");

    let mut lying_length = it::uwsgi_packet(&[("REQUEST_METHOD", "GET")]);
    // The key claims 200 bytes in a block that has 21.
    lying_length[4] = 200;
    let mut unknown_modifier = valid.clone();
    unknown_modifier[0] = 10;
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("truncated packet", valid[..valid.len() / 2].to_vec(), true, ""),
        ("truncated header", valid[..3].to_vec(), true, ""),
        ("key length past the block", lying_length, false, "uwsgi vars block truncated"),
        (
            "packet larger than buffer-size",
            {
                let mut p = vec![0, 0xff, 0xff, 0];
                p.extend(std::iter::repeat_n(b'x', 1000));
                p
            },
            false,
            "invalid request block size: 65535 (max 4096)...skip",
        ),
        (
            "HTTP sent to a uwsgi socket",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            false,
            "looks like HTTP sent to a uwsgi socket",
        ),
        ("unknown modifier1", unknown_modifier, false, "modifier1 10"),
    ];
    for (what, bytes, half_close, log) in cases {
        let reply = raw_uwsgi(addr, &bytes, half_close);
        assert!(
            reply.is_empty(),
            "{what}: expected the connection closed without a reply, got {:?}",
            String::from_utf8_lossy(&reply)
        );
        if !log.is_empty() {
            assert!(srv.wait_log(log, SECS), "{what}: no {log:?} in the log:\n{}", srv.log());
        }
        assert_eq!(srv.worker_pids(), pids, "{what}: the worker must survive");
        let ok = raw_uwsgi(addr, &valid, false);
        let ok =
            it::read_response(&mut BufReader::new(&ok[..])).unwrap_or_else(|e| panic!("{what}: next request: {e}"));
        assert_eq!(ok.status, 200, "{what}: next request");
    }
    assert!(!srv.log().contains("DAMN"), "{}", srv.log());
}

#[test]
fn plain_uwsgi_reply_is_http_and_closes() {
    let srv = Server::start(&["--socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")]);
    // No Content-Length from the app: over uwsgi the end of the body is the close, never chunked.
    let reply = raw_uwsgi(srv.addr(), &valid_get("/stream"), false);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(!text.to_ascii_lowercase().contains("transfer-encoding"), "{text}");
    assert!(text.ends_with("chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"), "{text}");
}

/// `GET path` straight to an HTTP socket.
fn http_get(addr: std::net::SocketAddr, path: &str) -> Response {
    let mut s = it::connect(addr);
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes()).expect("write");
    it::read_response(&mut BufReader::new(s)).expect("response")
}

/// The pid of the worker that answered a `/pid` request.
fn pid_of(r: &Response) -> i32 {
    assert_eq!(r.status, 200);
    String::from_utf8_lossy(&r.body).trim().parse().expect("pid body")
}

/// Every worker serves every socket. With one thread per worker, a worker busy in a slow
/// request accepts nothing, so keeping one worker busy steers quick requests on both
/// sockets to the other; then the roles swap.
fn assert_every_worker_serves_both(srv: &Server, http: std::net::SocketAddr, nginx: &Nginx) {
    let workers: BTreeSet<i32> = srv.worker_pids().into_iter().collect();
    assert_eq!(workers.len(), 2);
    let mut over_http = BTreeSet::new();
    let mut over_uwsgi = BTreeSet::new();
    std::thread::scope(|s| {
        // First worker busy until t=0.8 s; the other takes both quick requests.
        let first = s.spawn(|| http_get(http, "/sleep?s=0.8"));
        std::thread::sleep(Duration::from_millis(150));
        over_http.insert(pid_of(&http_get(http, "/pid")));
        over_uwsgi.insert(pid_of(&nginx.get("/pid")));
        // Second worker busy until t≈1.2 s; once the first is free it takes both.
        let second = s.spawn(|| http_get(http, "/sleep?s=1"));
        assert_eq!(first.join().unwrap().status, 200);
        over_http.insert(pid_of(&http_get(http, "/pid")));
        over_uwsgi.insert(pid_of(&nginx.get("/pid")));
        assert_eq!(second.join().unwrap().status, 200);
    });
    assert_eq!(over_http, workers, "HTTP socket: {}", srv.log());
    assert_eq!(over_uwsgi, workers, "uwsgi socket: {}", srv.log());
}

#[test]
fn http_socket_and_uwsgi_socket_served_by_every_worker() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--processes",
        "2",
    ]);
    assert_eq!(srv.addrs.len(), 2, "{}", srv.log());
    let nginx = Nginx::start(&pass_all(&srv.addrs[1].to_string()));
    assert_every_worker_serves_both(&srv, srv.addrs[0], &nginx);
}

#[test]
fn seed_form_http_and_socket_in_one_ini() {
    // The seed's deployment: `http = :PORT` and `socket = :PORT` together (on loopback here).
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nhttp = 127.0.0.1:0\nsocket = 127.0.0.1:0\nwsgi-file = {}\nmaster = true\nprocesses = 2\n",
            app("wsgi_features.py")
        ),
    )
    .unwrap();
    let ini_s = ini.display().to_string();
    let srv = Server::start_args_in(dir, &["--ini", &ini_s], 2);
    assert_eq!(srv.addrs.len(), 2, "{}", srv.log());
    let nginx = Nginx::start(&pass_all(&srv.addrs[1].to_string()));
    assert_eq!(http_get(srv.addrs[0], "/pid").status, 200);
    assert_eq!(nginx.get("/pid").status, 200);
    assert_every_worker_serves_both(&srv, srv.addrs[0], &nginx);
}

#[test]
fn stale_unix_socket_is_replaced_and_a_live_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let sock_s = sock.display().to_string();
    // A crashed run leaves its socket file behind with nobody listening.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    assert!(UnixStream::connect(&sock).is_err());
    let other = tempfile::tempdir().unwrap();
    let srv = Server::start_args_in(dir, &["--socket", &sock_s, "--wsgi-file", &app("echo.py")], 1);
    assert!(srv.log().contains(&format!("removing stale unix socket {sock_s}")), "{}", srv.log());
    let nginx = Nginx::start(&pass_all(&format!("unix:{sock_s}")));
    assert_eq!(nginx.get("/").status, 200);

    // A second server on the live socket must refuse to start and leave the first alone.
    let (code, out) = it::run_to_exit(other.path(), &["--socket", &sock_s, "--wsgi-file", &app("echo.py")], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(&sock_s) && out.contains("in use"), "{out}");
    assert_eq!(nginx.get("/").status, 200, "the first server still serves");
    drop(srv);
}

fn vacuum_on(signal: Signal) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let sock_s = sock.display().to_string();
    let mut srv = Server::start_args_in(dir, &["--socket", &sock_s, "--vacuum", "--wsgi-file", &app("echo.py")], 1);
    assert!(sock.exists());
    srv.signal(signal);
    assert_eq!(srv.wait_exit(SECS), Some(0), "{}", srv.log());
    assert!(!sock.exists(), "vacuum must remove {sock_s} on {signal}");
}

#[test]
fn vacuum_removes_the_socket_on_sigterm() {
    vacuum_on(Signal::SIGTERM);
}

#[test]
fn vacuum_removes_the_socket_on_sigint() {
    vacuum_on(Signal::SIGINT);
}

#[test]
fn without_vacuum_the_socket_file_stays_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let sock: PathBuf = dir.path().join("app.sock");
    let sock_s = sock.display().to_string();
    let mut srv = Server::start_args_in(dir, &["--socket", &sock_s, "--wsgi-file", &app("echo.py")], 1);
    srv.signal(Signal::SIGINT);
    assert_eq!(srv.wait_exit(SECS), Some(0), "{}", srv.log());
    assert!(sock.exists(), "like uWSGI, no vacuum leaves the file");
    let dir2 = tempfile::tempdir().unwrap();
    let _again = Server::start_args_in(dir2, &["--socket", &sock_s, "--wsgi-file", &app("echo.py")], 1);
    let nginx = Nginx::start(&pass_all(&format!("unix:{sock_s}")));
    assert_eq!(nginx.get("/").status, 200);
}

#[test]
fn abstract_unix_socket_creates_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("ruwsgi-it-{}-{}", std::process::id(), it::nginx::free_port());
    let address = format!("@{name}");
    let srv = Server::start_args_in(dir, &["--socket", &address, "--vacuum", "--wsgi-file", &app("echo.py")], 1);
    assert!(srv.log().contains(&format!("bound to UNIX address {address}")), "{}", srv.log());
    assert!(!srv.dir.path().join(&address).exists(), "an abstract socket is not a file");
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut s = UnixStream::connect_addr(&addr).expect("connect to the abstract socket");
    s.write_all(&valid_get("/abstract")).unwrap();
    let r = it::read_response(&mut BufReader::new(s)).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("/abstract"));
}

#[test]
fn listen_above_somaxconn_is_refused() {
    let max: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let too_many = (max + 1).to_string();
    let (code, out) = it::run_to_exit(
        dir.path(),
        &["--socket", "127.0.0.1:0", "--listen", &too_many, "--wsgi-file", &app("echo.py")],
        SECS,
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("net.core.somaxconn"), "{out}");
}
