//! Logging as uWSGI does it (issue 12): `log-format`, `logformat-strftime`, `log-date`,
//! `logger`/`req-logger`, `log-route`, `log-encoder`, `log-master` under load and
//! `log-json`. Each test writes the ini lines users write (paths in its temp dir), starts
//! the real `ruwsgi` and reads the bytes of the log files.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use it::{app, read_response, Server};

/// Starts ruwsgi on `ini` (written into a fresh temp dir, `DIR` replaced by its path).
fn start_ini(ini: &str, workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let text = ini.replace("DIR", &dir.path().display().to_string()).replace("APP", &app("hello.py"));
    Server::start_ini_in(dir, &text, workers, vec![])
}

/// Waits until the file holds at least `lines` lines; returns its text.
fn wait_lines(path: &Path, lines: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the file contains `needle`; returns its text.
fn wait_contains(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const BROWSER_GET: &[u8] =
    b"GET /a?b=1 HTTP/1.1\r\nHost: h.example\r\nReferer: http://r/\r\nUser-Agent: ua/1\r\nX-Id: 77\r\n\r\n";

#[test]
fn log_format_nginx_combined_to_a_request_logger_file() {
    let srv = start_ini(
        r#"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
log-format = %(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)" %(msecs)ms
logformat-strftime = true
log-date = %%Y-%%m-%%d %%H:%%M:%%S
log-master = true
logger = file:DIR/uwsgi.log
logger = stdio
req-logger = file:DIR/access.log
"#,
        1,
    );
    assert_eq!(srv.exchange(BROWSER_GET).status, 200);
    let access = wait_lines(&srv.dir.path().join("access.log"), 1);
    // uWSGI 2.0.31, same config and request:
    // 127.0.0.1 - - [06/Dec/2026:22:06:55 +0000] "GET /a?b=1 HTTP/1.1" 200 78 "http://r/" "ua/1" 0ms
    let (head, rest) = access.split_once(" [").unwrap_or_else(|| panic!("{access}"));
    assert_eq!(head, "127.0.0.1 - -");
    let (time, rest) = rest.split_once("] ").unwrap();
    assert_eq!(time.len(), "06/Dec/2026:22:06:55 +0000".len(), "{time}");
    assert_eq!(&time[2..3], "/");
    assert!(rest.starts_with(r#""GET /a?b=1 HTTP/1.1" 200 "#), "{rest}");
    assert!(rest.contains(r#" "http://r/" "ua/1" "#) && rest.ends_with("ms\n"), "{rest}");
    assert_eq!(access.lines().count(), 1, "request lines go to the req-logger only:\n{access}");
    // Server messages: `log-date` prefix, to both unnamed loggers, never in the access log.
    let server = wait_lines(&srv.dir.path().join("uwsgi.log"), 3);
    let spawned = server.lines().find(|l| l.contains("spawned uWSGI worker 1")).unwrap_or_else(|| panic!("{server}"));
    let (date, _) = spawned.split_once(" - ").unwrap();
    assert_eq!(date.len(), "2026-12-06 22:06:55".len(), "{spawned}");
    assert_eq!(&date[4..5], "-");
    assert!(!server.contains("GET /a"), "{server}");
    assert!(srv.log().contains(spawned), "stdio logger gets the same lines:\n{}", srv.log());
}

#[test]
fn log_format_fields_read_request_variables() {
    let srv = start_ini(
        r"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
logformat = %(host)|%(var.HTTP_X_ID)|%(var.QUERY_STRING)|%(cl)|%(status)|%(rsize)|%(wid)|%(core)|%(pid)|%(nope)|%(modifier1)|%(ftime)
req-logger = file:DIR/access.log
",
        1,
    );
    srv.exchange(BROWSER_GET);
    let line = wait_lines(&srv.dir.path().join("access.log"), 1);
    let pid = srv.worker_pids()[0];
    // Without logformat-strftime, %(ftime) is %(ltime).
    let want = format!("h.example|77|b=1|0|200|13|1|0|{pid}|-|0|");
    assert!(line.starts_with(&want), "{line}\nwant {want}");
    let zone = line.trim_end().rsplit(' ').next().unwrap();
    assert!(zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')), "{line}");
}

#[test]
fn log_encoders_chain_json_then_newline() {
    let srv = start_ini(
        r#"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
logger = stdio
log-encoder = json {"time":"${strftime:%%d/%%m/%%Y %%H:%%M:%%S}","source":"uwsgi","msg":"${msg}"}
log-encoder = nl
"#,
        1,
    );
    srv.get("/");
    assert!(srv.wait_log("GET /", Duration::from_secs(10)), "{}", srv.log());
    let log = srv.log();
    let mut seen_request = false;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["source"], "uwsgi");
        assert_eq!(v["time"].as_str().unwrap().len(), "06/12/2026 22:06:48".len());
        let msg = v["msg"].as_str().unwrap();
        assert!(!msg.ends_with('\n'), "{line}");
        seen_request |= msg.starts_with("[pid: ") && msg.contains("GET / => generated");
    }
    assert!(seen_request, "{log}");
}

#[test]
fn log_route_sends_matching_lines_to_the_named_logger_only() {
    let srv = start_ini(
        r"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
logger = file1 file:DIR/requests.log
logger = stdio
log-route = file1 ^\[pid
",
        1,
    );
    srv.get("/one");
    srv.get("/two");
    let routed = wait_lines(&srv.dir.path().join("requests.log"), 2);
    assert_eq!(routed.lines().count(), 2, "{routed}");
    assert!(routed.lines().all(|l| l.starts_with("[pid: ")), "{routed}");
    assert!(routed.contains(" GET /one => ") && routed.contains(" GET /two => "), "{routed}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!srv.log().contains("[pid: "), "routed lines must not reach the unnamed logger:\n{}", srv.log());
}

#[test]
fn rsyslog_logger_sends_rfc3164_datagrams() {
    let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = receiver.local_addr().unwrap().port();
    let ini = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nlogger = rsyslog:127.0.0.1:{port},myapp\nlogger = stdio\n"
    );
    let _srv = start_ini(&ini, 1);
    let mut buf = [0; 2048];
    let n = receiver.recv(&mut buf).unwrap();
    let packet = String::from_utf8_lossy(&buf[..n]).into_owned();
    // <29>Dec  6 22:06:55 myapp: *** Starting ruwsgi ...
    assert!(packet.starts_with("<29>"), "{packet}");
    assert_eq!(&packet[19..27], " myapp: ", "{packet}");
    assert!(!packet.ends_with('\n'), "{packet}");
}

#[test]
fn log_json_makes_request_and_server_lines_json() {
    let srv = start_ini("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nlog-json = true\n", 1);
    assert_eq!(srv.exchange(BROWSER_GET).status, 200);
    assert!(srv.wait_log("\"uri\":\"/a?b=1\"", Duration::from_secs(10)), "{}", srv.log());
    let log = srv.log();
    let mut requests = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v.get("uri").is_some() {
            requests += 1;
            assert_eq!(v["status"], 200);
            assert_eq!(v["method"], "GET");
            assert_eq!(v["host"], "h.example");
            assert_eq!(v["referer"], "http://r/");
            assert_eq!(v["uagent"], "ua/1");
            assert_eq!(v["addr"], "127.0.0.1");
            assert_eq!(v["size"], 13);
        } else {
            assert_eq!(v["source"], "ruwsgi", "{line}");
            assert!(v["msg"].is_string() && v["time"].is_string(), "{line}");
        }
    }
    assert_eq!(requests, 1, "{log}");
}

#[test]
fn log_master_loses_and_interleaves_no_line_under_load() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nprocesses = 4\nthreads = 4\nlog-master = true\n\
         req-logger = file:DIR/access.log\nlog-format = %(method) %(uri) %(status) %(pid) %(core) %(var.HTTP_X_PAD) end\n",
        4,
    );
    let addr = srv.addr();
    let clients = 8;
    let per_client = 100;
    // A long header makes each line ~2 KiB, so a torn or merged write would show.
    let pad = "p".repeat(2000);
    std::thread::scope(|s| {
        for c in 0..clients {
            let pad = &pad;
            s.spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                for i in 0..per_client {
                    let req = format!("GET /c{c}/r{i} HTTP/1.1\r\nHost: t\r\nX-Pad: {pad}\r\n\r\n");
                    stream.write_all(req.as_bytes()).unwrap();
                    let resp = read_response(&mut reader).unwrap();
                    assert_eq!(resp.status, 200);
                }
            });
        }
    });
    let total = clients * per_client;
    let text = wait_lines(&srv.dir.path().join("access.log"), total);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), total, "lines lost or split");
    let mut uris: Vec<&str> = Vec::new();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 7, "interleaved line: {}", &line[..line.len().min(200)]);
        assert_eq!((fields[0], fields[2], fields[6]), ("GET", "200", "end"));
        assert_eq!(fields[5], pad, "torn line");
        uris.push(fields[1]);
    }
    uris.sort_unstable();
    uris.dedup();
    assert_eq!(uris.len(), total, "every request logged exactly once");
    let mut pids: Vec<&str> = lines.iter().map(|l| l.split(' ').nth(3).unwrap()).collect();
    pids.sort_unstable();
    pids.dedup();
    eprintln!("{total} lines from {} workers", pids.len());
}

#[test]
fn log_maxsize_rotates_a_file_logger() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nreq-logger = file:DIR/access.log\nlog-maxsize = 2000\n",
        1,
    );
    for _ in 0..30 {
        srv.get("/rotate-me");
    }
    let dir = srv.dir.path().to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let rotated = loop {
        let found: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("access.log."))
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            break found;
        }
        // Rotation is checked once a second; a request keeps the master's loop turning.
        srv.get("/rotate-me");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!rotated.is_empty(), "no rotated file in {}", dir.display());
    let mut old = String::new();
    std::fs::File::open(dir.join(&rotated[0])).unwrap().read_to_string(&mut old).unwrap();
    assert!(old.contains("GET /rotate-me"), "{old}");
    srv.get("/after");
    let new = wait_contains(&dir.join("access.log"), "GET /after");
    assert!(new.contains("GET /after"), "{new}");
}

#[test]
fn bad_logging_options_name_the_option() {
    let dir = tempfile::tempdir().unwrap();
    for (line, want) in [
        ("logger = redislog:127.0.0.1", "logger = redislog:127.0.0.1: unable to find logger \"redislog\""),
        ("log-encoder = rot13", "log-encoder = rot13: log encoder \"rot13\" not found"),
        ("log-route = nobody ^x", "log-route = nobody ^x: no logger named \"nobody\""),
        ("log-date = %Q", "log-date: invalid strftime format"),
    ] {
        let ini = format!("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n{line}\n", app("hello.py"));
        std::fs::write(dir.path().join("bad.ini"), ini).unwrap();
        let (code, out) = it::run_to_exit(dir.path(), &["--ini", "bad.ini"], Duration::from_secs(20));
        assert_eq!(code, Some(1), "{line}: {out}");
        assert!(out.contains(want), "{line}: {out}");
    }
}

#[test]
fn log_req_route_keeps_health_checks_out_of_the_access_log() {
    let srv = start_ini(
        r#"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
log-format = %(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size)
req-logger = file:DIR/access.log
req-logger = health file:DIR/health.log
log-req-route = health "GET /health
logto2 = DIR/server.log
"#,
        0,
    );
    // `logto2` takes the server log after the app is loaded: wait for it there.
    let server = wait_contains(&srv.dir.path().join("server.log"), "spawned uWSGI worker 1");
    assert!(server.contains("spawned uWSGI worker 1"), "{server}");
    srv.get("/health");
    srv.get("/page");
    srv.get("/health");
    let health = wait_lines(&srv.dir.path().join("health.log"), 2);
    let access = wait_lines(&srv.dir.path().join("access.log"), 1);
    assert_eq!(health.lines().count(), 2, "{health}");
    assert!(health.lines().all(|l| l.contains("\"GET /health HTTP/1.1\" 200 ")), "{health}");
    assert_eq!(access.lines().count(), 1, "{access}");
    assert!(access.contains("\"GET /page HTTP/1.1\" 200 "), "{access}");
}

#[test]
fn log_drain_and_log_filter_pick_server_log_lines() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nlog-drain = GET /secret\nlog-filter = GET /\nlog-filter = spawned|bound to\n",
        1,
    );
    srv.get("/secret");
    srv.get("/public");
    assert!(srv.wait_log("GET /public", Duration::from_secs(10)), "{}", srv.log());
    let log = srv.log();
    assert!(!log.contains("/secret"), "{log}");
    assert!(!log.contains("Starting ruwsgi"), "filtered out:\n{log}");
}

#[test]
fn log_master_carries_the_apps_print_and_stderr_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.py"),
        "import sys\n\ndef application(environ, start_response):\n    print('print from', environ['PATH_INFO'])\n    \
         sys.stderr.write('stderr from %s\\n' % environ['PATH_INFO'])\n    start_response('200 OK', [('Content-Length', '2')])\n    return [b'ok']\n",
    )
    .unwrap();
    let ini = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = app.py\nlogger = file:{0}/all.log\nlogger = stdio\nlog-encoder = prefix [app]>\n",
        dir.path().display()
    );
    let srv = Server::start_ini_in(dir, &ini, 1, vec![]);
    srv.get("/p1");
    let all = wait_contains(&srv.dir.path().join("all.log"), "GET /p1");
    for want in ["[app]>print from /p1\n", "[app]>stderr from /p1\n", "[app]>spawned uWSGI worker 1"] {
        assert!(all.contains(want), "{want:?} missing:\n{all}");
    }
    assert!(all.lines().all(|l| l.starts_with("[app]>")), "every line is one message through the encoder:\n{all}");
}

#[test]
fn log_encoder_gzip_writes_compressed_members_to_a_file_logger() {
    let pad = "pad".repeat(60);
    let srv = start_ini(
        &format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = APP\nreq-logger = file:DIR/access.log.gz\n\
             log-req-encoder = gzip\nlog-format = %(method) %(uri) %(status) {pad}\n"
        ),
        1,
    );
    for i in 0..3 {
        assert_eq!(srv.get(&format!("/gz{i}")).status, 200);
    }
    let path = srv.dir.path().join("access.log.gz");
    let deadline = Instant::now() + Duration::from_secs(20);
    let (raw, text) = loop {
        let raw = std::fs::read(&path).unwrap_or_default();
        // One gzip member per request line: a multi-member stream, as `zcat` reads it.
        let mut text = String::new();
        let _ = flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_string(&mut text);
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break (raw, text);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let want = (0..3).map(|i| format!("GET /gz{i} 200 {pad}")).collect::<Vec<_>>().join("\n") + "\n";
    assert_eq!(text, want);
    assert_eq!(&raw[..3], &[0x1f, 0x8b, 8]);
    assert!(raw.len() < want.len(), "not compressed: {} bytes for {} bytes of lines", raw.len(), want.len());
}

/// `collect-header`: the app's response header is kept in a request variable that
/// `%(var.NAME)` shows; `pull-header` also drops it from the response, as in uWSGI.
#[test]
fn collect_and_pull_header_feed_log_format_vars() {
    let srv = start_ini(
        r"[uwsgi]
http-socket = 127.0.0.1:0
wsgi-file = APP
collect-header = Content-Length CL_SENT
pull-header = content-type CT_SENT
log-format = CH %(uri) cl=%(var.CL_SENT) ct=%(var.CT_SENT) none=%(var.NOPE)
",
        1,
    );
    let reply = srv.get("/collected");
    assert_eq!((reply.status, reply.body.as_slice()), (200, b"Hello, World!".as_slice()));
    assert_eq!(reply.header("content-length"), Some("13"), "collected headers stay");
    assert_eq!(reply.header("content-type"), None, "pulled headers go");
    assert!(srv.wait_log("CH /collected", Duration::from_secs(10)), "{}", srv.log());
    let log = srv.log();
    assert!(log.lines().any(|l| l == "CH /collected cl=13 ct=text/plain none=-"), "{log}");
}
