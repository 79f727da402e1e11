//! Core server behaviour (issue: core server): HTTP/1.1, WSGI, processes, logs.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use it::{app, Server};

#[test]
fn hello_world() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py")]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(srv.wait_log("GET / => generated 13 bytes", std::time::Duration::from_secs(5)), "{}", srv.log());
}

#[test]
fn processes_and_single_threaded_master() {
    let srv = it::http_server("hello.py", "2", "2", &[]);
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(srv.worker_pids().len(), 2);
    assert_eq!(it::thread_count(srv.pid()), 1, "the master must have exactly one thread");
}

/// Starts from an ini written into the server's temp dir (`{dir}` in `ini` is that dir).
fn start_ini(ini: &str, workers: usize, env: Vec<(&str, String)>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = ini.replace("{dir}", &dir.path().display().to_string());
    Server::start_ini_in(dir, &text, workers, env)
}

#[test]
fn flask_example() {
    let flask = it::repo().join("examples/flask");
    // The example's ini, on a free local port.
    let ini = std::fs::read_to_string(flask.join("uwsgi.ini"))
        .unwrap()
        .replace("http = :8080", "http = 127.0.0.1:0")
        .replace("%d", &format!("{}/", flask.display()));
    let srv = start_ini(&ini, 2, vec![]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Hello from Flask!\n");
    let body = br#"{"a": [1, 2]}"#;
    let mut raw = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).into_bytes();
    raw.extend_from_slice(body);
    let r = srv.exchange(&raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().replace(' ', "").contains(r#""you_sent":{"a":[1,2]}"#), "{}", r.text());
    let r = srv.get("/stream?n=3");
    assert_eq!(r.text(), "line 0\nline 1\nline 2\n");
    assert_eq!(srv.get("/missing").status, 404);
}

/// The example Django project, migrated into a temp database.
fn django_server() -> (Server, tempfile::TempDir) {
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
    let ini = std::fs::read_to_string(django.join("uwsgi.ini"))
        .unwrap()
        .replace("http = :8080", "http = 127.0.0.1:0")
        .replace("processes = 4", "processes = 2")
        .replace("%d", &format!("{}/", django.display()));
    (start_ini(&ini, 2, vec![("DEMO_DB", db)]), db_dir)
}

/// `name=value` of the cookie `name` in the response's Set-Cookie headers.
fn cookie<'a>(r: &'a it::Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| v.split(';').next().filter(|c| c.starts_with(&format!("{name}="))))
}

#[test]
fn django_example_page_form_404_admin() {
    let (srv, _db) = django_server();
    let r = srv.get("/");
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(page.contains("<h1>Guestbook</h1>"), "{page}");
    assert!(page.contains("No entries yet."), "{page}");

    // The form: csrftoken cookie plus the hidden input, then POST -> 303 -> entry listed.
    let csrf_cookie = cookie(&r, "csrftoken").expect("csrftoken cookie").to_owned();
    let token = it::csrf_token(&page);
    let form = format!("csrfmiddlewaretoken={token}&name=Ada+Lovelace&message=Served+by+ruwsgi+%E2%9C%93");
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nCookie: {csrf_cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let r = srv.exchange(raw.as_bytes());
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/"));
    let page = srv.get("/").text();
    assert!(page.contains("<strong>Ada Lovelace</strong>: Served by ruwsgi \u{2713}"), "{page}");

    // Without the token: 403.
    let form = "name=Eve&message=no+token";
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    assert_eq!(srv.exchange(raw.as_bytes()).status, 403);

    assert_eq!(srv.get("/no/such/page").status, 404);
    let r = srv.get("/admin/login/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("csrfmiddlewaretoken") && r.text().contains("id_username"), "{}", r.text());
    assert!(srv.wait_log("POST / => generated", std::time::Duration::from_secs(5)), "{}", srv.log());
}

#[test]
fn disable_logging_with_uwsgi_conditional_logging() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--disable-logging",
        "--log-4xx",
        "--log-5xx",
        "--log-slow",
        "150",
        "--memory-report",
    ]);
    for path in ["/pid", "/missing", "/error", "/sleep?s=0.2", "/missing?last"] {
        srv.get(path);
    }
    // One worker thread serves them in order: once the last line is out, all are.
    assert!(srv.wait_log("GET /missing?last =>", std::time::Duration::from_secs(5)), "{}", srv.log());
    let log = srv.log();
    let logged = |uri: &str| log.lines().any(|l| l.contains(&format!("] GET {uri} => generated")));
    assert!(logged("/missing"), "log-4xx: {log}");
    assert!(logged("/error"), "log-5xx: {log}");
    assert!(logged("/sleep?s=0.2"), "log-slow: {log}");
    assert!(!logged("/pid"), "a quick 200 stays unlogged with disable-logging: {log}");
    let line = log.lines().find(|l| l.contains("GET /missing =>")).unwrap();
    assert!(line.starts_with("{address space usage: ") && line.contains(" {rss usage: "), "memory-report: {line}");
}

#[test]
fn log_x_forwarded_for_shows_the_proxied_client() {
    let srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--log-x-forwarded-for"]);
    let r = srv
        .exchange(b"GET /via-proxy HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(srv.get("/direct").status, 200);
    assert!(srv.wait_log("GET /direct =>", std::time::Duration::from_secs(5)), "{}", srv.log());
    let log = srv.log();
    let line = |uri: &str| log.lines().find(|l| l.contains(&format!("GET {uri} =>"))).unwrap().to_owned();
    assert!(line("/via-proxy").contains("] 203.0.113.9 () {"), "{log}");
    assert!(line("/direct").contains("] 127.0.0.1 () {"), "no header: the peer: {log}");
}

#[test]
fn wsgi_disable_file_wrapper_leaves_it_out_of_the_environ() {
    let echo = app("echo.py");
    let types = |extra: &[&str]| {
        let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &echo];
        args.extend_from_slice(extra);
        let srv = Server::start(&args);
        let v: it::json::Value = it::json::from_str(&srv.get("/").text()).unwrap();
        v["types"].as_object().unwrap().contains_key("wsgi.file_wrapper")
    };
    assert!(types(&[]));
    assert!(!types(&["--wsgi-disable-file-wrapper"]));
}

/// The `tr` (timer) field of the kernel's entry for the TCP socket from `local` to `remote`:
/// 2 means a keepalive timer is armed (`/proc/net/tcp`).
fn tcp_timer(local: std::net::SocketAddr, remote: std::net::SocketAddr) -> Option<u32> {
    let hex = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(ip) => format!("{:08X}:{:04X}", u32::from_le_bytes(ip.octets()), a.port()),
        std::net::IpAddr::V6(_) => String::new(),
    };
    let (l, r) = (hex(local), hex(remote));
    std::fs::read_to_string("/proc/net/tcp").ok()?.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&l.as_str()) && f.get(2) == Some(&r.as_str()))
            .then(|| f.get(5)?.split(':').next()?.parse().ok())
            .flatten()
    })
}

#[test]
fn so_keepalive_arms_tcp_keepalive_on_connections() {
    let hello = app("hello.py");
    for (extra, want) in [(&[][..], 0), (&["--so-keepalive"][..], 2)] {
        let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &hello];
        args.extend_from_slice(extra);
        let srv = Server::start(&args);
        let mut c = srv.connect();
        c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 512];
        let _ = c.read(&mut buf).unwrap();
        // The server's end of this connection: local = the server, remote = us.
        let timer = tcp_timer(c.peer_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(timer, Some(want), "{extra:?}");
    }
}

#[test]
fn socket_sndbuf_sets_the_send_buffer_of_connections() {
    let sndbuf = app("sndbuf.py");
    let size_of = |extra: &[&str]| {
        let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &sndbuf];
        args.extend_from_slice(extra);
        let srv = Server::start(&args);
        let reply = srv.get("/");
        assert_eq!(reply.status, 200, "{extra:?}");
        String::from_utf8(reply.body).unwrap().parse::<usize>().unwrap()
    };
    // Linux doubles what is set (room for its bookkeeping), as for every SO_SNDBUF.
    assert_eq!(size_of(&["--socket-sndbuf", "65536"]), 2 * 65536);
    // Not given, a socket bound to a loopback address gets 256 KiB (issue 18); 0 leaves
    // the kernel's autotuning, which starts from tcp_wmem's default (16 KiB).
    assert_eq!(size_of(&[]), 2 * 262_144);
    assert_ne!(size_of(&["--socket-sndbuf", "0"]), 2 * 262_144);
}

#[test]
fn add_header_goes_on_app_and_static_responses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "static\n").unwrap();
    let map = format!("/s={}", dir.path().display());
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--static-map",
        &map,
        "--add-header",
        "X-Frame-Options: DENY",
        "--add-header",
        "X-Served-By:ruwsgi",
    ]);
    for path in ["/", "/s/a.txt"] {
        let r = srv.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(r.header("x-served-by"), Some("ruwsgi"), "{path}");
    }
}

#[test]
fn startup_banner_names_config_file_binary_and_python() {
    let srv =
        start_ini(&format!("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n", app("hello.py")), 1, Vec::new());
    assert_eq!(srv.get("/").status, 200);
    let log = srv.log();
    let at = |needle: &str| log.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{log}"));
    // As uWSGI: the config file first, then the banner, then the facts, then Python.
    assert!(at("[ruwsgi] getting INI configuration from app.ini\n") < at("*** Starting ruwsgi "), "{log}");
    assert!(at("*** Starting ruwsgi ") < at("detected binary path: /"), "{log}");
    let _ = at("detected number of CPU cores: ");
    let _ = at("current working directory: /");
    let _ = at("your processes number limit is ");
    assert!(at("detected binary path: /") < at("Python version: 3."), "{log}");
}

/// The scheduling policy of a process's main thread (field 41 of `/proc/PID/stat`).
fn sched_policy(pid: i32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, fields) = stat.rsplit_once(") ").unwrap();
    fields.split_whitespace().nth(41 - 3).unwrap().parse().unwrap()
}

/// `sched-batch` (issue 18): unset, every thread of every worker, the app's own included,
/// is `SCHED_BATCH` (3), whatever the thread count; the master keeps the default policy (0);
/// `false` keeps the workers at the default too.
#[test]
fn workers_run_as_sched_batch_unless_turned_off() {
    let sched = app("sched.py");
    let start = |threads: &str, extra: &[&str]| {
        let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &sched, "--master", "--processes", "2"];
        args.extend_from_slice(&["--threads", threads]);
        args.extend_from_slice(extra);
        Server::start(&args)
    };
    // Every worker, once started (one switches right after its fork: the second may still
    // be starting when the first answers).
    let workers_are = |srv: &Server, policy: u32| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let all = || {
            let workers = srv.worker_pids();
            workers.len() == 2 && workers.iter().all(|&w| sched_policy(w) == policy)
        };
        while !all() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(all(), "{:?}", srv.worker_pids().iter().map(|&w| (w, sched_policy(w))).collect::<Vec<_>>());
    };
    let srv = start("1", &[]);
    for _ in 0..4 {
        assert_eq!(srv.get("/").text(), "3");
    }
    assert_eq!(sched_policy(srv.pid()), 0, "the master");
    workers_are(&srv, 3);
    let srv = start("1", &["--sched-batch=false"]);
    assert_eq!(srv.get("/").text(), "0");
    workers_are(&srv, 0);
    let srv = start("4", &[]);
    assert_eq!(srv.get("/").text(), "3");
    workers_are(&srv, 3);
    let srv = start("2", &["--sched-batch=false"]);
    assert_eq!(srv.get("/").text(), "0");
    workers_are(&srv, 0);
    let srv = start("2", &["--sched-batch"]);
    assert_eq!(srv.get("/").text(), "3");
    workers_are(&srv, 3);
}
