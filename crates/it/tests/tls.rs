//! HTTPS (issue 17): `https`/`https-socket` with rustls, checked with real clients — curl,
//! `openssl s_client` and Python's `ssl`/`http.client` — for the offered protocol versions,
//! the environ (`HTTPS`, `wsgi.url_scheme`, client certificate), mutual TLS, SNI, certificate
//! reload under an open keep-alive connection, static files and the Django example. The
//! certificates are made here with rcgen: a test CA, server certificates and a client one.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use it::tls::{
    curl, dir_of, guestbook_post, python_client, run, start, start_django_https, start_in, url, write_certs, Ca,
};
use it::{app, json, Server};
use sha2::{Digest, Sha256};

/// Python's `ssl` + `http.client` against the server (the test CA trusted), running one of
/// the operations of `CLIENT`; returns its JSON answer.
fn python(srv: &Server, args: &[&str]) -> json::Value {
    python_client(srv, "client.py", CLIENT, args)
}

const CLIENT: &str = r#"
import hashlib, http.client, json, os, shutil, socket, ssl, sys, time

port, cafile, op, *args = sys.argv[1:]
port = int(port)

def context(cert=None, key=None, version=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert, key)
    if version:
        ctx.minimum_version = ctx.maximum_version = getattr(ssl.TLSVersion, version)
    return ctx

class Conn(http.client.HTTPSConnection):
    """Connects to 127.0.0.1 but names `host` in SNI and checks the certificate for it."""
    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), 20)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)

def peer_cn(conn):
    subject = dict(x[0] for x in conn.sock.getpeercert()["subject"])
    return subject.get("commonName")

def get(conn, path, body=None):
    conn.request("POST" if body is not None else "GET", path, body=body)
    r = conn.getresponse()
    return r.status, r.read()

if op == "env":  # env HOST PATH [CERT KEY]: the echo app's environ
    host, path, *cert = args
    conn = Conn(host, port, context=context(*cert))
    status, body = get(conn, path)
    print(json.dumps({"status": status, "environ": json.loads(body)["environ"], "cn": peer_cn(conn), "version": conn.sock.version()}))
elif op == "cn":  # cn HOST: the subject CN of the certificate served for HOST
    conn = Conn(args[0], port, context=context())
    status, _ = get(conn, "/")
    print(json.dumps({"status": status, "cn": peer_cn(conn)}))
elif op == "keepalive":  # keepalive: requests on one connection, big bodies both ways
    conn = Conn("localhost", port, context=context())
    out = []
    for path, body in [("/?read=all", None), ("/?read=n:1000", os.urandom(300_000)), ("/?read=length", b"x" * 10)]:
        status, answer = get(conn, path, body)
        got = json.loads(answer)
        want = hashlib.sha256(body or b"").hexdigest()
        out.append({"status": status, "same_sha": got["body_sha256"] == want, "port": conn.sock.getsockname()[1]})
    print(json.dumps(out))
elif op == "reload":  # reload NEW_CRT NEW_KEY: swap the certificate under an open connection
    new_crt, new_key = args
    conn = Conn("localhost", port, context=context())
    first, _ = get(conn, "/one")
    before = (peer_cn(conn), conn.sock.getsockname())
    for new, live in [(new_key, "site.key"), (new_crt, "site.crt")]:
        shutil.copy(new, live + ".tmp")
        os.replace(live + ".tmp", live)
    seen = None
    for _ in range(100):  # at most 20 s
        fresh = Conn("localhost", port, context=context())
        get(fresh, "/probe")
        seen = peer_cn(fresh)
        fresh.close()
        if seen != before[0]:
            break
        time.sleep(0.2)
    second, _ = get(conn, "/two")
    print(json.dumps({"first": first, "second": second, "old_cn": before[0], "new_cn": seen,
                      "same_connection": conn.sock.getsockname() == before[1], "cn_on_old": peer_cn(conn)}))
elif op == "pipeline":  # pipeline N: N requests in one TLS write, then read N answers
    n = int(args[0])
    sock = context().wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    reqs = b"".join(b"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(n - 1))
    body = b"z" * 70000
    reqs += b"POST /last?read=all HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
    sock.sendall(reqs)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    print(json.dumps({"answers": data.count(b"HTTP/1.1 200 OK"), "last_sha": hashlib.sha256(body).hexdigest() in data.decode("latin-1")}))
elif op == "wss":  # wss PATH: a WebSocket over TLS, one text message echoed, then close
    sock = context().wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Protocol: echo\r\n\r\n" % args[0]).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    def frame(opcode, payload):
        mask = os.urandom(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + data
    def read_exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out
    sock.sendall(frame(1, "hi over tls".encode()))
    b0, b1 = read_exact(2)
    reply = read_exact(b1 & 0x7F).decode()
    sock.sendall(frame(8, b"\x03\xe8"))
    b0c, _ = read_exact(2)
    print(json.dumps({"status": head.split(b"\r\n")[0].decode(), "reply": reply, "close_opcode": b0c & 0x0F}))
elif op == "refused":  # refused HOST [CERT KEY]: the handshake or first request must fail
    host, *cert = args
    try:
        conn = Conn(host, port, context=context(*cert))
        status, _ = get(conn, "/")
        print(json.dumps({"refused": False, "status": status}))
    except (ssl.SSLError, ConnectionError, OSError) as e:
        print(json.dumps({"refused": True, "error": str(e)}))
"#;

#[test]
fn https_serves_curl_with_https_on_and_the_https_scheme() {
    let srv = start("site.crt,site.key", "echo.py", &[]);
    assert!(srv.log().contains("https socket 0 bound to TCP address"), "{}", srv.log());
    for version in [["--tlsv1.2", "--tls-max", "1.2"], ["--tlsv1.3", "--tls-max", "1.3"]] {
        let (code, body, err) = curl(&srv, &[&version[..], &[&url(&srv, "/x?y=1")]].concat());
        assert_eq!(code, 0, "curl {version:?}: {err}");
        let answer: json::Value = json::from_slice(&body).unwrap();
        let env = &answer["environ"];
        assert_eq!(env["HTTPS"], "on", "{env}");
        assert_eq!(env["wsgi.url_scheme"], "https", "{env}");
        assert_eq!(env["PATH_INFO"], "/x", "{env}");
        assert_eq!(env["QUERY_STRING"], "y=1", "{env}");
        assert!(env.get("HTTPS_DN").is_none(), "no client certificate: {env}");
    }
    // A 1 MiB upload read back whole.
    let upload = dir_of(&srv).join("upload.bin");
    let data: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&upload, &data).unwrap();
    let (code, body, err) =
        curl(&srv, &["--data-binary", &format!("@{}", upload.display()), &url(&srv, "/up?read=n:65536")]);
    assert_eq!(code, 0, "{err}");
    let answer: json::Value = json::from_slice(&body).unwrap();
    assert_eq!(answer["body_len"], 1_048_576);
    assert_eq!(answer["body_sha256"], hex(&Sha256::digest(&data)));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What `openssl s_client` reports for one protocol version: the negotiated protocol, or
/// `None` when the handshake failed.
fn s_client(srv: &Server, version: &str) -> Option<String> {
    let out = run(Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &srv.addr().to_string(), version, "-servername", "localhost"])
        .stdin(Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("New, "))?;
    (!line.contains("(NONE)")).then(|| line.split(',').nth(1).unwrap_or_default().trim().to_owned())
}

#[test]
fn only_tls12_and_tls13_are_offered() {
    let srv = start("site.crt,site.key", "hello.py", &[]);
    assert_eq!(s_client(&srv, "-tls1_3").as_deref(), Some("TLSv1.3"));
    assert_eq!(s_client(&srv, "-tls1_2").as_deref(), Some("TLSv1.2"));
    // OpenSSL may refuse to even offer these (security level); either way there is no session.
    assert_eq!(s_client(&srv, "-tls1_1"), None);
    assert_eq!(s_client(&srv, "-tls1"), None);
}

#[test]
fn asgi_app_over_https_sees_the_https_scheme() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    let apps = it::repo().join("tests/apps").display().to_string();
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let args = ["--https", &https, "--chdir", &apps, "--asgi", "asgi_raw:app", "--threads", "2"];
    // Relative certificate paths are read from the start directory, before `chdir`.
    let srv = Server::start_args_in(dir, &args, 1);
    let (code, body, err) = curl(&srv, &[&url(&srv, "/scope")]);
    assert_eq!(code, 0, "{err}");
    let scope: json::Value = json::from_slice(&body).unwrap();
    assert_eq!(scope["scheme"], "https", "{scope}");
    assert_eq!(scope["path"], "/scope", "{scope}");
}

#[test]
fn asgi_websocket_over_https() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    let apps = it::repo().join("tests/apps").display().to_string();
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let args = ["--https", &https, "--chdir", &apps, "--asgi", "fastapi_app:app", "--threads", "2"];
    let srv = Server::start_args_in(dir, &args, 1);
    let got = python(&srv, &["wss", "/ws"]);
    assert_eq!(got["status"], "HTTP/1.1 101 Switching Protocols", "{got}");
    assert_eq!(got["reply"], "echo: hi over tls", "{got}");
    assert_eq!(got["close_opcode"], 8, "{got}");
}

#[test]
fn alpn_offers_http11_after_h2() {
    // HTTP/2 clients get h2 (tests/http2.rs); a client that offers only http/1.1 gets it.
    let srv = start("site.crt,site.key", "hello.py", &[]);
    let (code, body, err) =
        curl(&srv, &["--http1.1", "-v", "-o", "/dev/null", "-w", "%{http_version}", &url(&srv, "/")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&body), "1.1", "{err}");
    assert!(err.contains("ALPN: server accepted http/1.1"), "{err}");
}

#[test]
fn cipher_list_restricts_the_tls12_suites() {
    let srv = start("site.crt,site.key,ECDHE-ECDSA-CHACHA20-POLY1305:HIGH", "hello.py", &[]);
    let (code, _, err) = curl(&srv, &["--tlsv1.2", "--tls-max", "1.2", "-v", &url(&srv, "/")]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("ECDHE-ECDSA-CHACHA20-POLY1305"), "{err}");
    let (code, _, _) =
        curl(&srv, &["--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256", &url(&srv, "/")]);
    assert_ne!(code, 0, "a suite the list leaves out is refused");
    assert!(srv.log().contains("HIGH not a TLS 1.2/1.3 suite rustls has"), "{}", srv.log());
}

#[test]
fn python_client_keeps_the_connection_across_requests_with_bodies() {
    let srv = start("site.crt,site.key", "echo.py", &[]);
    let answers = python(&srv, &["keepalive"]);
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 3);
    for a in answers {
        assert_eq!(a["status"], 200, "{answers:?}");
        assert_eq!(a["same_sha"], true, "{answers:?}");
        assert_eq!(a["port"], answers[0]["port"], "one connection: {answers:?}");
    }
}

#[test]
fn pipelined_requests_in_one_tls_record_are_all_answered() {
    // Requests decrypted together wait in the TLS session, where epoll can't see them.
    let srv = start("site.crt,site.key", "echo.py", &[]);
    let got = python(&srv, &["pipeline", "20"]);
    assert_eq!(got["answers"], 20, "{got}");
    assert_eq!(got["last_sha"], true, "{got}");
}

#[test]
fn chunked_upload_and_100_continue_over_tls() {
    let srv = start("site.crt,site.key", "echo.py", &[]);
    let upload = dir_of(&srv).join("upload.bin");
    let data = vec![b'q'; 200_000];
    std::fs::write(&upload, &data).unwrap();
    let (code, body, err) = curl(
        &srv,
        &[
            "--http1.1",
            "-H",
            "Transfer-Encoding: chunked",
            "-H",
            "Expect: 100-continue",
            "--data-binary",
            &format!("@{}", upload.display()),
            &url(&srv, "/?read=line:5000"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let answer: json::Value = json::from_slice(&body).unwrap();
    assert_eq!(answer["body_len"], 200_000, "{answer}");
    assert_eq!(answer["body_sha256"], hex(&Sha256::digest(&data)));
}

#[test]
fn large_app_response_and_file_wrapper_over_tls() {
    let srv = start("site.crt,site.key", "wsgi_features.py", &[]);
    let (code, body, err) = curl(&srv, &[&url(&srv, "/big?mb=8")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body.len(), 8 << 20);
    let features = std::fs::read(app("wsgi_features.py")).unwrap();
    let (code, body, err) = curl(&srv, &[&url(&srv, "/file")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body, features, "wsgi.file_wrapper over TLS is read + encrypt");
}

#[test]
fn static_files_over_tls_are_read_and_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    std::fs::create_dir(dir.path().join("files")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(dir.path().join("files/big.bin"), &data).unwrap();
    let srv = start_in(dir, "site.crt,site.key", "hello.py", &["--static-map", "/static=files"]);
    // Two downloads on one connection, a slow reader first (curl's rate limit).
    let (code, body, err) = curl(
        &srv,
        &["--limit-rate", "2M", "-o", "/dev/stdout", &url(&srv, "/static/big.bin"), &url(&srv, "/static/big.bin")],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(body.len(), 2 * data.len());
    assert_eq!(Sha256::digest(&body[..data.len()]), Sha256::digest(&data));
    assert_eq!(Sha256::digest(&body[data.len()..]), Sha256::digest(&data));
}

/// The subject as OpenSSL's `X509_NAME_oneline` (uWSGI's `HTTPS_DN`) writes it.
fn openssl_subject(cert: &Path) -> String {
    let out = run(Command::new("openssl").args(["x509", "-noout", "-subject", "-nameopt", "compat", "-in"]).arg(cert));
    let text = String::from_utf8_lossy(&out.stdout);
    let subject = text.trim().strip_prefix("subject=").unwrap_or_default().to_owned();
    assert!(subject.contains("/CN=alice") && subject.contains("/O=ruwsgi tests"), "{text}");
    subject
}

#[test]
fn mutual_tls_puts_the_client_subject_in_the_environ() {
    let srv = start("site.crt,site.key,,!ca.pem", "echo.py", &["--https-export-cert"]);
    let got = python(&srv, &["env", "localhost", "/", "client.crt", "client.key"]);
    let env = &got["environ"];
    assert_eq!(got["status"], 200);
    assert_eq!(env["HTTPS_DN"], openssl_subject(&dir_of(&srv).join("client.crt")), "{env}");
    let pem = env["HTTPS_CC"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    let client_pem = std::fs::read_to_string(dir_of(&srv).join("client.crt")).unwrap();
    assert_eq!(pem.trim(), client_pem.trim(), "HTTPS_CC is the client's certificate");
    assert!(env["HTTPS_CLIENT_CERTIFICATE"].as_str().is_some_and(|der| !der.is_empty()), "{env}");
    // `!`: without a certificate there is no session.
    let refused = python(&srv, &["refused", "localhost"]);
    assert_eq!(refused["refused"], true, "{refused}");
}

#[test]
fn optional_client_ca_accepts_clients_without_a_certificate() {
    let srv = start("site.crt,site.key,,ca.pem", "echo.py", &[]);
    let got = python(&srv, &["env", "localhost", "/"]);
    assert_eq!(got["status"], 200);
    assert!(got["environ"].get("HTTPS_DN").is_none(), "{got}");
    let got = python(&srv, &["env", "localhost", "/", "client.crt", "client.key"]);
    assert_eq!(got["environ"]["HTTPS_DN"], openssl_subject(&dir_of(&srv).join("client.crt")), "{got}");
    assert!(got["environ"].get("HTTPS_CC").is_none(), "HTTPS_CC only with https-export-cert: {got}");
}

#[test]
fn sni_picks_the_certificate_by_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    write_certs(dir.path(), &ca);
    let (cert, key) = ca.issue("b.test", None, &["b.test"]);
    std::fs::write(dir.path().join("b.crt"), cert).unwrap();
    std::fs::write(dir.path().join("b.key"), key).unwrap();
    std::fs::create_dir(dir.path().join("sni")).unwrap();
    let (cert, key) = ca.issue("c.test", None, &["c.test"]);
    std::fs::write(dir.path().join("sni/c.test.crt"), cert).unwrap();
    std::fs::write(dir.path().join("sni/c.test.key"), key).unwrap();
    let (cert, key) = ca.issue("regexp match", None, &["x.re.test"]);
    std::fs::write(dir.path().join("re.crt"), cert).unwrap();
    std::fs::write(dir.path().join("re.key"), key).unwrap();
    let srv = start_in(
        dir,
        "site.crt,site.key",
        "hello.py",
        &["--sni", "b.test b.crt,b.key", "--sni-regexp", r"^[a-z]+\.re\.test$ re.crt,re.key", "--sni-dir", "sni"],
    );
    let cn = |host: &str| python(&srv, &["cn", host])["cn"].as_str().unwrap_or_default().to_owned();
    assert_eq!(cn("localhost"), "localhost");
    assert_eq!(cn("b.test"), "b.test");
    assert_eq!(cn("c.test"), "c.test", "from sni-dir");
    assert_eq!(cn("x.re.test"), "regexp match");
    // A renewed sni-dir certificate is read on the next handshake that asks for it.
    let (cert, key) = ca.issue("c.test renewed", None, &["c.test"]);
    let sni = dir_of(&srv).join("sni");
    for (name, pem) in [("c.test.key", key), ("c.test.crt", cert)] {
        std::fs::write(sni.join("tmp"), pem).unwrap();
        std::fs::rename(sni.join("tmp"), sni.join(name)).unwrap();
    }
    assert_eq!(cn("c.test"), "c.test renewed");
}

#[test]
fn changed_certificate_is_served_without_dropping_an_open_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    write_certs(dir.path(), &ca);
    let (cert, key) = ca.issue("renewed", None, &["localhost"]);
    std::fs::write(dir.path().join("new.crt"), cert).unwrap();
    std::fs::write(dir.path().join("new.key"), key).unwrap();
    let srv = start_in(dir, "site.crt,site.key", "hello.py", &["--http-timeout", "60"]);
    let got = python(&srv, &["reload", "new.crt", "new.key"]);
    assert_eq!(got["first"], 200, "{got}");
    assert_eq!(got["old_cn"], "localhost", "{got}");
    assert_eq!(got["new_cn"], "renewed", "new connections get the new certificate: {got}");
    assert_eq!(got["second"], 200, "{got}");
    assert_eq!(got["same_connection"], true, "{got}");
    assert_eq!(got["cn_on_old"], "localhost", "the open connection keeps its session: {got}");
    assert!(srv.log().contains("certificate files changed; new TLS connections use them"), "{}", srv.log());
}

#[test]
fn sighup_reload_keeps_the_https_socket_and_reads_the_certificate_again() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new();
    write_certs(dir.path(), &ca);
    let srv = start_in(dir, "site.crt,site.key", "hello.py", &[]);
    assert_eq!(python(&srv, &["cn", "localhost"])["cn"], "localhost");
    let (cert, key) = ca.issue("after reload", None, &["localhost"]);
    std::fs::write(srv.dir.path().join("site.key"), key).unwrap();
    std::fs::write(srv.dir.path().join("site.crt"), cert).unwrap();
    srv.signal(nix::sys::signal::Signal::SIGHUP);
    let reloaded = srv.wait_for(Duration::from_secs(30), |log| {
        log.contains("binary reloading uWSGI") && log.matches("spawned uWSGI worker").count() >= 2
    });
    assert!(reloaded, "{}", srv.log());
    assert_eq!(python(&srv, &["cn", "localhost"])["cn"], "after reload", "{}", srv.log());
    assert!(srv.log().matches("https socket 0 bound to TCP address").count() >= 2, "{}", srv.log());
}

#[test]
fn a_stalled_handshake_does_not_hold_the_only_thread() {
    // One thread: the handshake of a client that sends half a ClientHello and stops must
    // not keep another client waiting (handshakes run in the epoll loop). socket-timeout is
    // longer than curl's --max-time, so a handshake holding the thread would fail curl.
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let args = [
        "--https",
        &https,
        "--wsgi-file",
        &app("hello.py"),
        "--threads",
        "1",
        "--processes",
        "1",
        "--socket-timeout",
        "60",
    ];
    let srv = Server::start_args_in(dir, &args, 1);
    let mut stalled = it::connect(srv.addr());
    std::io::Write::write_all(&mut stalled, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]).unwrap();
    let _silent = it::connect(srv.addr());
    for _ in 0..3 {
        let (code, body, err) = curl(&srv, &[&url(&srv, "/")]);
        assert_eq!(code, 0, "{err}");
        assert!(!body.is_empty());
    }
}

#[test]
fn https_to_http_redirect_by_routing_and_hsts_by_add_header() {
    // docs/tls.md: the same routing rule on both sockets sends plain HTTP to HTTPS, and
    // add-header gives HTTPS responses the HSTS header.
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--https",
        &https,
        "--wsgi-file",
        &app("hello.py"),
        "--route-if-not",
        "equal:${HTTPS};on redirect-permanent:https://${HTTP_HOST}${REQUEST_URI}",
        "--add-header",
        "Strict-Transport-Security: max-age=31536000",
    ];
    let srv = Server::start_args_in(dir, &args, 1);
    let r = srv.exchange(b"GET /page?q=1 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 301, "{r:?}");
    assert_eq!(r.header("location"), Some("https://example.test/page?q=1"));
    let https_port = srv.addrs[1].port();
    let out = run(Command::new("curl")
        .args(["-sS", "-i", "--http1.1", "--max-time", "20", "--cacert"])
        .arg(srv.dir.path().join("ca.pem"))
        .arg(format!("https://localhost:{https_port}/"))
        .args(["--resolve", &format!("localhost:{https_port}:127.0.0.1")]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("Strict-Transport-Security: max-age=31536000"), "{text}");
}

#[test]
fn plain_http_on_an_https_socket_fails_the_handshake_and_ssl_verbose_logs_it() {
    let srv = start("site.crt,site.key", "hello.py", &["--ssl-verbose"]);
    let mut s = it::connect(srv.addr());
    std::io::Write::write_all(&mut s, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "no HTTP answer on a TLS socket: {answer:?}");
    assert!(srv.wait_log("TLS error: ", Duration::from_secs(10)), "{}", srv.log());
    let (code, _, err) = curl(&srv, &[&url(&srv, "/")]);
    assert_eq!(code, 0, "the socket still serves TLS clients: {err}");
}

#[test]
fn bad_certificate_is_one_error_line_naming_the_socket_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = it::run_to_exit(
        dir.path(),
        &["--https", "127.0.0.1:0,missing.crt,missing.key", "--wsgi-file", &app("hello.py")],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{out}");
    // Relative to where ruwsgi started (as uWSGI, which reads them before `chdir`).
    let want = format!("ruwsgi: https 127.0.0.1:0: cannot read {}/missing.crt: ", dir.path().display());
    assert_eq!(out.lines().filter(|l| l.contains("missing.crt")).count(), 1, "{out}");
    assert!(out.contains(&want), "{out}");
}

#[test]
fn django_example_admin_and_static_files_over_https() {
    let (srv, static_root) = start_django_https();
    let django = it::repo().join("examples/django");
    let (code, body, err) = curl(&srv, &["--http1.1", "-i", &url(&srv, "/admin/login/")]);
    assert_eq!(code, 0, "{err}");
    let page = String::from_utf8_lossy(&body);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("csrfmiddlewaretoken") && page.contains("id_username"), "{page}");
    assert!(page.contains("Strict-Transport-Security: max-age=31536000"), "{page}");
    for (path, file) in [
        ("/static/admin/css/base.css", static_root.join("admin/css/base.css")),
        ("/static/guestbook/style.css", django.join("guestbook/static/guestbook/style.css")),
    ] {
        let (code, body, err) = curl(&srv, &[&url(&srv, path)]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(body, std::fs::read(file).unwrap(), "{path}");
    }
    // The guestbook's form round trip, with the CSRF cookie over HTTPS.
    let posted = guestbook_post(&srv, &[], "name=Ada&message=over+TLS", "%{http_code}");
    assert_eq!(posted, "303", "Django's HTTPS CSRF check (Referer) passes");
    let (_, body, _) = curl(&srv, &[&url(&srv, "/")]);
    assert!(String::from_utf8_lossy(&body).contains("<strong>Ada</strong>: over TLS"));
}
