//! Static files (issue 6): static-map/static-map2/check-static answered by the worker
//! without Python: bytes, headers, validators, ranges, gzip variants, expires, mount
//! precedence, index files, zero-copy large files, and a table of path-escape attempts.

use std::io::{BufReader, Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use it::{app, read_response, read_response_to, Response, Server};
use sha2::{Digest, Sha256};

/// Planted just outside the map root; must never appear in any response.
const SECRET: &str = "TOP-SECRET-c0ffee-never-serve-me";
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];
const CSS: &str = "body { color: #333; }\n";
const JS: &str = "console.log('hi');\n";
/// Stand-in for gzip bytes of the variant: what matters is which file is sent.
const GZ: &[u8] = b"\x1f\x8b\x08\x00pretend-gzip";

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

/// Lays out the tree every test server uses and starts one over it:
/// ```text
/// secret.txt                 outside every root
/// static/                    static-map /static (first)
///   hello.txt site.css app.js img/pixel.png sub/index.html nodir/ script.py thing.demo
///   plain.txt(.gz)           gz sibling outside the gzip dir: never chosen
///   gz/app.css(.gz)          static-gzip-dir
///   link-out -> ../secret.txt, dir-link -> .., link-safe -> ../safe/allowed.txt,
///   img/link-in -> ../hello.txt, img-link -> img
/// second/                    static-map /static (second): hello.txt, only-b.txt
/// root2/m2/x.txt             static-map2 /m2
/// docroot/robots.txt         check-static
/// safe/allowed.txt           static-safe
/// ```
fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "secret.txt", SECRET.as_bytes());
    write(d, "static/hello.txt", b"hello from static\n");
    write(d, "static/site.css", CSS.as_bytes());
    write(d, "static/app.js", JS.as_bytes());
    write(d, "static/img/pixel.png", PNG);
    write(d, "static/sub/index.html", b"<h1>index</h1>\n");
    std::fs::create_dir_all(d.join("static/nodir")).unwrap();
    write(d, "static/nodir/file.txt", b"x");
    write(d, "static/script.py", b"print('source')\n");
    write(d, "static/thing.demo", b"demo\n");
    write(d, "static/plain.txt", b"plain\n");
    write(d, "static/plain.txt.gz", GZ);
    write(d, "static/gz/app.css", CSS.as_bytes());
    write(d, "static/gz/app.css.gz", GZ);
    write(d, "second/hello.txt", b"hello from second\n");
    write(d, "second/only-b.txt", b"only in b\n");
    write(d, "root2/m2/x.txt", b"map2\n");
    write(d, "docroot/robots.txt", b"User-agent: *\n");
    write(d, "safe/allowed.txt", b"allowed by static-safe\n");
    write(d, "mime.types", b"# test\ntext/x-demo demo\n");
    symlink("../secret.txt", d.join("static/link-out")).unwrap();
    symlink("..", d.join("static/dir-link")).unwrap();
    symlink("../safe/allowed.txt", d.join("static/link-safe")).unwrap();
    symlink("../hello.txt", d.join("static/img/link-in")).unwrap();
    symlink("img", d.join("static/img-link")).unwrap();
    let p = |rel: &str| d.join(rel).display().to_string();
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--static-map",
        &format!("/static={}", p("static")),
        "--static-map",
        &format!("/static={}", p("second")),
        "--static-map2",
        &format!("/m2={}", p("root2")),
        "--check-static",
        &p("docroot"),
        "--static-index",
        "index.html",
        "--static-safe",
        &p("safe"),
        "--static-gzip-dir",
        &p("static/gz"),
        "--static-skip-ext",
        ".py",
        "--static-expires-type",
        "text/css=3600",
        "--static-expires",
        "\\.js$ 600",
        "--static-expires-uri",
        "^/static/img/ 86400",
        "--mimefile",
        &p("mime.types"),
    ];
    Server::start_args_in(dir, &args, 1)
}

fn get(srv: &Server, target: &str, headers: &str) -> Response {
    srv.exchange(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n").as_bytes())
}

fn wait_log(srv: &Server, needle: &str) {
    assert!(srv.wait_log(needle, Duration::from_secs(5)), "log lacks {needle:?}:\n{}", srv.log());
}

#[test]
fn serves_text_css_js_and_images_with_headers() {
    let srv = start();
    let cases: &[(&str, &[u8], &str)] = &[
        ("/static/hello.txt", b"hello from static\n", "text/plain"),
        ("/static/site.css", CSS.as_bytes(), "text/css"),
        ("/static/app.js", JS.as_bytes(), "javascript"),
        ("/static/img/pixel.png", PNG, "image/png"),
        ("/static/thing.demo", b"demo\n", "text/x-demo"),
    ];
    for (path, body, ctype) in cases {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, *body, "{path}");
        assert!(r.header("content-type").unwrap().contains(ctype), "{path}: {:?}", r.headers);
        assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()));
        assert!(r.header("last-modified").unwrap().ends_with(" GMT"));
        let etag = r.header("etag").unwrap();
        assert!(etag.starts_with('"') && etag.ends_with('"') && etag.contains('-'), "{etag}");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert!(r.header("vary").is_none(), "{path}: no gzip variant, no Vary");
    }
    // Request log: uWSGI's line with the sendfile marker, never via the app.
    wait_log(&srv, &format!("GET /static/img/pixel.png => generated {} bytes in", PNG.len()));
    wait_log(&srv, "via sendfile() (HTTP/1.1 200)");
}

#[test]
fn head_keep_alive_and_pipelining() {
    let srv = start();
    let mut s = srv.connect();
    s.write_all(b"HEAD /static/site.css HTTP/1.1\r\nHost: t\r\n\r\nGET /static/app.js HTTP/1.1\r\nHost: t\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let head = read_response_to(&mut r, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(CSS.len().to_string().as_str()));
    let js = read_response(&mut r).unwrap();
    assert_eq!(js.body, JS.as_bytes());
    let app = read_response(&mut r).unwrap();
    assert_eq!(app.status, 200, "the app still answers after static replies on the connection");
    wait_log(&srv, "HEAD /static/site.css => generated 0 bytes");
}

#[test]
fn not_modified_on_both_validators() {
    let srv = start();
    let first = srv.get("/static/site.css");
    let etag = first.header("etag").unwrap().to_owned();
    let lm = first.header("last-modified").unwrap().to_owned();
    let r = get(&srv, "/static/site.css", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get(&srv, "/static/site.css", &format!("If-Modified-Since: {lm}\r\n"));
    assert_eq!(r.status, 304);
    let r = get(&srv, "/static/site.css", "If-None-Match: \"stale\"\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, CSS.as_bytes());
    let r = get(&srv, "/static/site.css", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n");
    assert_eq!(r.status, 200);
    wait_log(&srv, "(HTTP/1.1 304)");
}

#[test]
fn ranges_206_and_416() {
    let srv = start();
    let r = get(&srv, "/static/hello.txt", "Range: bytes=6-9\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"from");
    assert_eq!(r.header("content-range"), Some("bytes 6-9/18"));
    let r = get(&srv, "/static/hello.txt", "Range: bytes=-7\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"static\n");
    let r = get(&srv, "/static/hello.txt", "Range: bytes=500-600\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */18"));
    // Several ranges: ignored, whole file.
    let r = get(&srv, "/static/hello.txt", "Range: bytes=0-1,4-5\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello from static\n");
}

#[test]
fn gzip_variant_only_when_accepted() {
    let srv = start();
    let plain = srv.get("/static/gz/app.css");
    assert_eq!(plain.body, CSS.as_bytes());
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert!(plain.header("content-encoding").is_none());
    let gz = get(&srv, "/static/gz/app.css", "Accept-Encoding: br, gzip\r\n");
    assert_eq!(gz.body, GZ);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert!(gz.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    let refused = get(&srv, "/static/gz/app.css", "Accept-Encoding: gzip;q=0\r\n");
    assert_eq!(refused.body, CSS.as_bytes());
    // Outside static-gzip-dir (and no static-gzip-all) the .gz sibling is ignored.
    let other = get(&srv, "/static/plain.txt", "Accept-Encoding: gzip\r\n");
    assert_eq!(other.body, b"plain\n");
    assert!(other.header("vary").is_none());
}

#[test]
fn mount_precedence_fall_through_index_map2_check_static() {
    let srv = start();
    assert_eq!(srv.get("/static/hello.txt").body, b"hello from static\n", "first map wins");
    assert_eq!(srv.get("/static/only-b.txt").body, b"only in b\n", "missing in the first map falls through");
    let missing = srv.get("/static/missing.txt");
    assert_eq!((missing.status, missing.text().as_str()), (404, "not found\n"), "then the app");
    assert_eq!(srv.get("/static/sub/").body, b"<h1>index</h1>\n");
    assert_eq!(srv.get("/static/sub").body, b"<h1>index</h1>\n");
    let listing = srv.get("/static/nodir/");
    assert_eq!((listing.status, listing.text().as_str()), (404, "not found\n"), "directories are never listed");
    assert_eq!(srv.get("/m2/x.txt").body, b"map2\n", "static-map2 keeps the mount");
    assert_eq!(srv.get("/robots.txt").body, b"User-agent: *\n", "check-static");
    assert_eq!(srv.get("/").status, 200, "the app still gets its routes");
    let skipped = srv.get("/static/script.py");
    assert_eq!(skipped.text(), "not found\n", "static-skip-ext goes to the app");
    assert_eq!(srv.get("/static/link-safe").body, b"allowed by static-safe\n");
    assert_eq!(srv.get("/static/img/link-in").body, b"hello from static\n", "a symlink within the root");
    assert_eq!(srv.get("/static/img-link/pixel.png").body, PNG, "a symlinked directory within the root");
    assert_eq!(srv.get("/staticx").status, 404, "mounts match whole segments");
}

#[test]
fn expires_headers() {
    let srv = start();
    let css = srv.get("/static/site.css");
    assert_eq!(css.header("cache-control"), Some("max-age=3600"), "static-expires-type");
    let expires = css.header("expires").unwrap();
    let secs = |d: &str| {
        let t = std::process::Command::new("date").args(["-d", d, "+%s"]).output().unwrap();
        String::from_utf8(t.stdout).unwrap().trim().parse::<i64>().unwrap()
    };
    let now = secs("now");
    let delta = secs(expires) - now;
    assert!((3500..=3700).contains(&delta), "Expires {expires} is {delta}s ahead");
    assert_eq!(srv.get("/static/app.js").header("cache-control"), Some("max-age=600"), "static-expires");
    assert_eq!(srv.get("/static/img/pixel.png").header("cache-control"), Some("max-age=86400"), "static-expires-uri");
    let txt = srv.get("/static/hello.txt");
    assert!(txt.header("expires").is_none() && txt.header("cache-control").is_none());
}

#[test]
fn uwsgi_protocol_static_files() {
    let srv = start();
    let uwsgi = srv.addrs[1];
    let packet = |path: &str, extra: &[(&str, &str)]| {
        let mut vars = vec![
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", path),
            ("PATH_INFO", path),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
        ];
        vars.extend_from_slice(extra);
        let mut body = Vec::new();
        for (k, v) in vars {
            body.extend_from_slice(&(k.len() as u16).to_le_bytes());
            body.extend_from_slice(k.as_bytes());
            body.extend_from_slice(&(v.len() as u16).to_le_bytes());
            body.extend_from_slice(v.as_bytes());
        }
        let mut out = vec![0u8];
        out.extend_from_slice(&(body.len() as u16).to_le_bytes());
        out.push(0);
        out.extend_from_slice(&body);
        let mut s = it::connect(uwsgi);
        s.write_all(&out).unwrap();
        read_response(&mut BufReader::new(s)).unwrap()
    };
    let r = packet("/static/site.css", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, CSS.as_bytes());
    let r = packet("/static/gz/app.css", &[("HTTP_ACCEPT_ENCODING", "gzip")]);
    assert_eq!(r.body, GZ);
    // nginx sends PATH_INFO decoded: a `..` there is refused just the same.
    let r = packet("/static/../secret.txt", &[]);
    assert_eq!(r.status, 403);
    assert!(!r.text().contains(SECRET));
    wait_log(&srv, "GET /static/site.css => generated");
}

/// Every way out of the map root we know of. Each one is refused (400 from the parser,
/// 403 from the static layer, or 404 from the app for paths that aren't static at all),
/// never answered with the planted secret or a system file, and logged.
#[test]
fn traversal_attempts_are_refused() {
    let srv = start();
    let attempts: &[&str] = &[
        "/static/../secret.txt",
        "/static/../../etc/passwd",
        "/static/../../../../../../etc/passwd",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/.%2e/secret.txt",
        "/static/%2e./secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/%252e%252e%252fsecret.txt",
        "/static/..\\secret.txt",
        "/static/..%5csecret.txt",
        "/static/..%5Csecret.txt",
        "/static/%2e%2e%5c%2e%2e%5csecret.txt",
        "/static/hello.txt%00.png",
        "/static/%00../secret.txt",
        "/static/%c0%ae%c0%ae/secret.txt",
        "/static/%c0%ae%c0%ae%c0%afsecret.txt",
        "/static/..%c0%afsecret.txt",
        "/static/%e0%80%ae%e0%80%ae/secret.txt",
        "/static/%u002e%u002e/secret.txt",
        "/static/link-out",
        "/static/dir-link/secret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/secret.txt",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/static//../secret.txt",
        "/static/./../secret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static/../static/../secret.txt",
        "/static/..;/secret.txt",
        "/static/....//secret.txt",
        "/staticx/../secret.txt",
        "/m2/../secret.txt",
        "/m2/%2e%2e/%2e%2e/secret.txt",
        "http://t/static/../secret.txt",
    ];
    assert!(attempts.len() >= 30);
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for target in attempts {
        let r = get(&srv, target, "");
        let body = r.text();
        assert!([400, 403, 404].contains(&r.status), "{target}: status {}", r.status);
        assert!(!body.contains(SECRET), "{target}: served the secret");
        assert!(passwd.is_empty() || !body.contains(passwd.lines().next().unwrap()), "{target}: served /etc/passwd");
        if r.status != 400 {
            wait_log(&srv, &format!("GET {target} => generated"));
        }
    }
    // The raw NUL never gets past the request parser.
    let r = srv.exchange(b"GET /static/hello.txt\0.png HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 400);
    wait_log(&srv, "static file request refused ('..' segment in path): /static/../secret.txt");
    wait_log(&srv, "static file request refused (resolves outside the static root): /static/link-out");
}

#[test]
fn file_wrapper_from_the_app_uses_sendfile() {
    let srv = start();
    let r = srv.get("/file");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, std::fs::read(app("wsgi_features.py")).unwrap());
    wait_log(&srv, "GET /file => generated");
    let line = srv.log().lines().find(|l| l.contains("GET /file =>")).unwrap().to_owned();
    assert!(line.contains("via sendfile()"), "{line}");
}

fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 200 MiB through one worker with one thread: the bytes arrive intact (sha256), the
/// worker's RSS doesn't grow with the file, and while the client dawdles the same thread
/// keeps answering other connections (the transfer waits in epoll, not in a blocking loop).
#[test]
fn big_file_zero_copy_small_rss_and_thread_not_held() {
    const SIZE: u64 = 200 << 20;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("static")).unwrap();
    // Sparse file with a distinct marker every MiB, so an offset mistake changes the hash.
    let path = base.join("static/big.bin");
    let mut big = std::fs::File::create(&path).unwrap();
    big.set_len(SIZE).unwrap();
    for mib in 0..(SIZE >> 20) {
        use std::io::{Seek, SeekFrom};
        big.seek(SeekFrom::Start(mib << 20)).unwrap();
        big.write_all(format!("MiB {mib:04} marker").as_bytes()).unwrap();
    }
    drop(big);
    let mut want = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut file = std::fs::File::open(&path).unwrap();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        want.update(&buf[..n]);
    }
    let want = want.finalize();
    write(base, "static/small.txt", b"small\n");
    let map = format!("/static={}", base.join("static").display());
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--threads",
        "1",
        "--static-map",
        &map,
    ];
    let srv = Server::start_args_in(dir, &args, 1);
    let worker = srv.worker_pids()[0];
    assert_eq!(srv.get("/static/small.txt").body, b"small\n");
    let rss_before = vm_rss_kib(worker);

    let mut stream = srv.connect();
    stream.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        reader.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&format!("Content-Length: {SIZE}")), "{head}");
    // The socket buffers are full now and the transfer is parked: the only thread of the
    // only worker must still answer someone else, quickly.
    let t = Instant::now();
    let other = srv.get("/pid");
    assert_eq!(other.status, 200);
    assert!(t.elapsed() < Duration::from_secs(2), "other request took {:?}", t.elapsed());
    let mut got = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        got.update(&buf[..n]);
    }
    assert_eq!(total, SIZE);
    assert!(got.finalize() == want, "sha256 of the download differs from the file");
    let rss_after = vm_rss_kib(worker);
    assert!(rss_after < rss_before + 16 * 1024, "worker RSS grew from {rss_before} KiB to {rss_after} KiB");
    wait_log(&srv, &format!("GET /static/big.bin => generated {SIZE} bytes in"));
    let line = srv.log().lines().find(|l| l.contains("GET /static/big.bin")).unwrap().to_owned();
    assert!(line.contains("via sendfile()"), "{line}");
}

#[test]
fn bad_expires_regexp_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(it::ruwsgi_command())
        .args([
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("hello.py"),
            "--check-static",
            ".",
            "--static-expires",
            "([ 60",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("static-expires = \"([ 60\": bad regexp"), "{err}");
}

/// The Django example's `uwsgi-static.ini` after `collectstatic` (into a temp
/// `STATIC_ROOT`, so the repository stays clean): CSS from `static-map`, pages from Django.
#[test]
fn django_example_with_static_map() {
    let django = it::repo().join("examples/django");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let static_root = t.join("static");
    std::fs::write(
        t.join("it_settings.py"),
        format!("from demo.settings import *  # noqa\nSTATIC_ROOT = {:?}\n", static_root.display().to_string()),
    )
    .unwrap();
    let env = vec![
        ("DJANGO_SETTINGS_MODULE", "it_settings".to_owned()),
        ("PYTHONPATH", t.display().to_string()),
        ("DEMO_DB", t.join("db.sqlite3").display().to_string()),
    ];
    // The python of the venv `ruwsgi` was installed into.
    let python = Path::new(&it::ruwsgi_command()).with_file_name("python");
    for args in [&["collectstatic", "--noinput"][..], &["migrate", "--noinput"][..]] {
        let out = std::process::Command::new(&python)
            .arg(django.join("manage.py"))
            .args(args)
            .current_dir(&django)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run manage.py");
        assert!(out.status.success(), "manage.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let ini = std::fs::read_to_string(django.join("uwsgi-static.ini"))
        .unwrap()
        .replace("http = :8080", "http = 127.0.0.1:0")
        .replace("processes = 4", "processes = 2")
        .replace("static-map = /static=%dstatic", &format!("static-map = /static={}", static_root.display()))
        .replace("%d", &format!("{}/", django.display()));
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_ini_in(dir, &ini, 2, env);
    let css = srv.get("/static/guestbook/style.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.body, std::fs::read(django.join("guestbook/static/guestbook/style.css")).unwrap());
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(css.header("cache-control"), Some("max-age=3600"));
    let page = srv.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/static/guestbook/style.css"), "{}", page.text());
    wait_log(&srv, "GET /static/guestbook/style.css => generated");
}

/// A client that stops reading mid-download is dropped after `socket-timeout`, the partial
/// transfer is logged, and the worker keeps serving.
#[test]
fn stalled_download_is_dropped_after_socket_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("static")).unwrap();
    let big = std::fs::File::create(base.join("static/stall.bin")).unwrap();
    big.set_len(64 << 20).unwrap();
    drop(big);
    let map = format!("/static={}", base.join("static").display());
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--socket-timeout",
        "1",
        "--static-map",
        &map,
    ];
    let srv = Server::start_args_in(dir, &args, 1);
    let mut stream = srv.connect();
    stream.write_all(b"GET /static/stall.bin HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Read nothing: the server must give up on its own.
    assert!(
        srv.wait_for(Duration::from_secs(10), |log| log
            .lines()
            .any(|l| l.contains("GET /static/stall.bin => generated")
                && !l.contains(&format!("generated {} bytes", 64 << 20)))),
        "no partial-transfer log line:\n{}",
        srv.log()
    );
    assert_eq!(srv.get("/pid").status, 200);
    drop(stream);
}

/// A `wsgi.file_wrapper` body that a client doesn't take at once goes out from the worker's
/// event loop: with one worker and one thread, another client is answered meanwhile, and
/// the slow client still gets every byte.
#[test]
fn slow_client_of_a_file_wrapper_body_holds_no_thread() {
    const SIZE: usize = 32 << 20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let args = ["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py")];
    let srv = Server::start_args_in(dir, &args, 1);
    let mut slow = srv.connect();
    let request = format!("GET /file?path={} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", path.display());
    slow.write_all(request.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // The only thread is free although the download has barely started.
    let mut quick = srv.connect();
    quick.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    quick.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let r = read_response(&mut BufReader::new(quick)).expect("answered while the download waits");
    assert_eq!(r.status, 200);
    let r = read_response(&mut BufReader::new(slow)).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), SIZE);
    assert!(r.body == data, "body differs");
    wait_log(&srv, &format!("GET /file?path={} => generated {SIZE} bytes", path.display()));
}
