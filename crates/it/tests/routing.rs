//! Internal routing (issue 12): `route*` rules answered by the worker before Python, checked
//! byte for byte over HTTP and behind nginx `uwsgi_pass`: health checks kept out of the
//! log, host redirects, CORS headers, basic auth, rewrites, conditions and labels.

use std::io::{BufReader, Read, Write};
use std::time::Duration;

use it::json::{self, Value};
use it::nginx::Nginx;
use it::{app, read_response, run_to_exit, Response, Server, Start};

const SECS: Duration = Duration::from_secs(10);

/// Starts ruwsgi with an ini of `lines` under `[uwsgi]` (plus an HTTP socket and the echo
/// app), in its own temp dir.
fn start(lines: &str) -> Server {
    start_with_socket("http-socket", lines)
}

fn start_with_socket(socket: &str, lines: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let ini = format!("[uwsgi]\n{socket} = 127.0.0.1:0\nwsgi-file = {}\n{lines}\n", app("echo.py"));
    std::fs::write(dir.path().join("r.ini"), ini).unwrap();
    Server::start_in(dir, Start { args: vec!["--ini".into(), "r.ini".into()], env: vec![], workers: 1 })
}

/// Sends `raw` and reads until the server closes (everything it sent).
fn raw_exchange(srv: &Server, raw: &[u8]) -> Vec<u8> {
    let mut s = srv.connect();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").into_bytes()
}

fn environ(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    let v: Value = json::from_str(&r.text()).unwrap();
    v["environ"].clone()
}

const HEALTH: &str = "route-run = chunked:\nroute = ^/healthz$ donotlog:\nroute = ^/healthz$ return:200\nroute = ^/readiness donotlog:\n";

#[test]
fn health_check_is_answered_before_python_and_left_out_of_the_log() {
    let srv = start(HEALTH);
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&srv, &get("t", "/healthz"))),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK"
    );
    // A load balancer's keep-alive connection survives the routed answer.
    let mut s = srv.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    for _ in 0..2 {
        let resp = read_response(&mut r).unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, b"OK".as_slice()));
    }
    // `donotlog` alone: the app answers, nothing is logged.
    assert_eq!(srv.get("/readiness").status, 200);
    assert_eq!(srv.get("/after").status, 200);
    assert!(srv.wait_log("GET /after =>", SECS), "{}", srv.log());
    let log = srv.log();
    assert!(!log.contains("/healthz") && !log.contains("/readiness"), "{log}");
}

#[test]
fn donotlog_also_silences_static_files() {
    let srv = start("static-map = /static=files\nroute = ^/static/quiet donotlog:\n");
    let files = srv.dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("quiet.txt"), "q").unwrap();
    std::fs::write(files.join("loud.txt"), "l").unwrap();
    assert_eq!(srv.get("/static/quiet.txt").text(), "q");
    assert_eq!(srv.get("/static/loud.txt").text(), "l");
    assert!(srv.wait_log("GET /static/loud.txt =>", SECS), "{}", srv.log());
    assert!(!srv.log().contains("quiet"), "{}", srv.log());
}

#[test]
fn static_action_serves_a_file_without_python() {
    let srv = start("route = ^/page/(\\w+)$ static:pages/$1.html\nroute = ^/pick static:pages/${qs[f]}\n");
    let pages = srv.dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(pages.join("about.html"), "<p>about</p>").unwrap();
    std::fs::write(srv.dir.path().join("secret"), "s").unwrap();
    let r = srv.get("/page/about");
    assert_eq!((r.status, r.header("content-type"), r.text().as_str()), (200, Some("text/html"), "<p>about</p>"));
    assert_eq!(srv.get("/page/missing").status, 404);
    assert_eq!(srv.get("/pick?f=about.html").status, 200);
    assert_eq!(srv.get("/pick?f=../secret").status, 403);
    // Not a static rule's path: the app.
    assert_eq!(environ(&srv.get("/page/a/b"))["PATH_INFO"], "/page/a/b");
}

#[test]
fn route_host_redirects_permanently_with_the_request_uri() {
    let srv = start(
        "route-host = ^old\\.example\\.com$ redirect-301:https://new.example.com${REQUEST_URI}\n\
         route = ^/go/(.*)$ redirect:/went/$1?from=${REMOTE_ADDR}\n",
    );
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&srv, &get("old.example.com", "/a/b?c=d"))),
        "HTTP/1.1 301 Moved Permanently\r\nLocation: https://new.example.com/a/b?c=d\r\nContent-Length: 17\r\nConnection: close\r\n\r\nMoved Permanently"
    );
    let moved = srv.get("/go/x/y");
    assert_eq!((moved.status, moved.header("location")), (302, Some("/went/x/y?from=127.0.0.1")));
    assert_eq!(moved.text(), "Moved");
    // Another host reaches the app.
    assert_eq!(environ(&srv.exchange(&get("new.example.com", "/a")))["PATH_INFO"], "/a");
    assert!(srv.wait_log("GET /a/b?c=d => generated 17 bytes", SECS), "{}", srv.log());
    assert!(srv.log().contains("(HTTP/1.1 301)"), "{}", srv.log());
}

#[test]
fn addheader_and_delheader_change_the_app_response() {
    let srv = start(
        "route = ^/api addheader:Access-Control-Allow-Origin: *\n\
         route = ^/api/plain delheader:Content-Type\n\
         route-run = addheader:X-Path: ${PATH_INFO}\n\
         route = ^/api/teapot return:418\n",
    );
    let r = srv.get("/api/x");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-path"), Some("/api/x"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let plain = srv.get("/api/plain");
    assert_eq!((plain.status, plain.header("content-type")), (200, None), "{:?}", plain.headers);
    assert_eq!(srv.get("/other").header("access-control-allow-origin"), None);
    // Headers added by earlier rules go on a routed answer too.
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&srv, &get("t", "/api/teapot"))),
        "HTTP/1.1 418 I'm a teapot\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\
         Connection: close\r\nAccess-Control-Allow-Origin: *\r\nX-Path: /api/teapot\r\n\r\nI'm a teapot"
    );
}

#[test]
fn basicauth_asks_checks_and_sets_remote_user() {
    let srv = start(
        "route = ^/admin basicauth:Admin Area,admin:s3cret\n\
         route = ^/sha basicauth:Sha,htpasswd\n",
    );
    // htpasswd -s: {SHA} base64(sha1("pw")).
    std::fs::write(srv.dir.path().join("htpasswd"), "bob:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=\nnocolon\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&srv, &get("t", "/admin/"))),
        "HTTP/1.1 401 Authorization Required\r\nWWW-Authenticate: Basic realm=\"Admin Area\"\r\n\
         Content-Length: 12\r\nConnection: close\r\n\r\nUnauthorized"
    );
    let with = |auth: &str, path: &str| {
        srv.exchange(
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    // admin:s3cret
    assert_eq!(environ(&with("YWRtaW46czNjcmV0", "/admin/"))["REMOTE_USER"], "admin");
    // admin:wrong
    assert_eq!(with("YWRtaW46d3Jvbmc=", "/admin/").status, 401);
    // bob:pw and bob:px
    assert_eq!(environ(&with("Ym9iOnB3", "/sha"))["REMOTE_USER"], "bob");
    assert_eq!(with("Ym9iOnB4", "/sha").status, 401);
}

#[test]
fn rewrite_changes_path_info_and_query_string() {
    let srv = start(
        "route = ^/old/(.*)$ rewrite:/new/$1?via=rewrite\n\
         route = ^/new/stop rewrite-last:/stopped\n\
         route = ^/stopped return:500\n\
         route = ^/var addvar:MY_VAR=${REQUEST_METHOD}-${qs[k]}\n",
    );
    let env = environ(&srv.get("/old/a%20b?x=1"));
    assert_eq!((env["PATH_INFO"].as_str(), env["QUERY_STRING"].as_str()), (Some("/new/a b"), Some("via=rewrite&x=1")));
    assert_eq!(env["REQUEST_URI"], "/old/a%20b?x=1");
    // rewrite-last stops routing: the return:500 after it never runs.
    assert_eq!(environ(&srv.get("/old/stop"))["PATH_INFO"], "/stopped");
    assert_eq!(environ(&srv.get("/var?k=v&z=1"))["MY_VAR"], "GET-v");
}

#[test]
fn conditions_labels_and_flow_actions() {
    let srv = start(
        "route-if = equal:${QUERY_STRING};teapot return:418\n\
         route-if-not = startswith:${PATH_INFO};/app break:403\n\
         route-if = regexp:${HTTP_USER_AGENT};^curl/(\\d+) addheader:X-Curl: $1\n\
         route = ^/app/skip goto:later\n\
         route = ^/app/ return:503\n\
         route-label = later\n\
         route = ^/app/skip/last last:\n\
         route-run = return:204\n",
    );
    assert_eq!(srv.get("/app/x?teapot").status, 418);
    assert_eq!(
        raw_exchange(&srv, &get("t", "/elsewhere")),
        b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n"
    );
    assert_eq!(srv.get("/app/x").status, 503);
    // goto jumps over the 503 rule; after the label the run rule answers 204.
    let r = srv.exchange(b"GET /app/skip HTTP/1.1\r\nHost: t\r\nUser-Agent: curl/8.1\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("x-curl"), r.body.len()), (204, Some("8"), 0));
    // last: stops routing, the app answers.
    assert_eq!(environ(&srv.get("/app/skip/last"))["PATH_INFO"], "/app/skip/last");
}

#[test]
fn log_and_send_actions() {
    let srv = start(
        "route = ^/logged/(.*) log:ROUTED $1 from ${REMOTE_ADDR}\n\
         route = ^/raw send-crnl:RAW\n\
         route = ^/raw break:\n",
    );
    assert_eq!(srv.get("/logged/abc").status, 200);
    assert!(srv.wait_log("ROUTED abc from 127.0.0.1\n", SECS), "{}", srv.log());
    assert_eq!(raw_exchange(&srv, &get("t", "/raw")), b"RAW\r\n");
}

#[test]
fn routing_over_the_uwsgi_protocol_behind_nginx() {
    let srv = start_with_socket(
        "socket",
        &format!(
            "{HEALTH}route-host = ^old\\.example\\.com redirect-301:https://new.example.com${{REQUEST_URI}}\n\
                  route = ^/api addheader:Access-Control-Allow-Origin: *\n"
        ),
    );
    let nginx =
        Nginx::start(&format!("location / {{\n    include uwsgi_params;\n    uwsgi_pass {};\n}}\n", srv.addr()));
    let health = nginx.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "OK"));
    let moved = nginx.exchange(b"GET /p?q=1 HTTP/1.1\r\nHost: old.example.com\r\nConnection: close\r\n\r\n");
    assert_eq!((moved.status, moved.header("location")), (301, Some("https://new.example.com/p?q=1")));
    let api = nginx.get("/api/x");
    assert_eq!((api.status, api.header("access-control-allow-origin")), (200, Some("*")));
    assert!(srv.wait_log("GET /api/x =>", SECS), "{}", srv.log());
    assert!(!srv.log().contains("/healthz"), "{}", srv.log());
}

#[test]
fn bad_rules_stop_start_up_in_every_chain() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.ini"), "[uwsgi]\nhttp-socket = 127.0.0.1:0\nroute = ^/x signal:15\n").unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--ini", "bad.ini"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad.ini:3: route = \"^/x signal:15\": routing action \"signal\" is not supported"), "{out}");
    // A final rule can't answer: the response is already sent.
    std::fs::write(dir.path().join("late.ini"), "[uwsgi]\nhttp-socket = 127.0.0.1:0\nfinal-route = ^/x redirect:/y\n")
        .unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--ini", "late.ini"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("late.ini:3: final-route = \"^/x redirect:/y\": action \"redirect\" cannot run in final-route"),
        "{out}"
    );
    // Head rules add and drop headers or log; they can't answer.
    std::fs::write(
        dir.path().join("head.ini"),
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nresponse-route = ^/x return:404\n",
    )
    .unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--ini", "head.ini"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "head.ini:3: response-route = \"^/x return:404\": action \"return\" is not supported in response-route"
        ),
        "{out}"
    );
}

/// `response-route*` rules run on the app's response head before it is sent, with the
/// status known (`-status`); `error-route*` too, before them. They add and drop headers,
/// log, set logvars and keep a request out of the log.
#[test]
fn response_and_error_routes_edit_the_apps_response_head() {
    let dir = tempfile::tempdir().unwrap();
    let ini = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\n\
         log-format = RL %(uri) %(status) miss=%(miss)\n\
         route = ^/gone return:404\n\
         response-route-status = 404 addheader:X-Missing: yes\n\
         response-route-status = 404 logvar:miss=${{PATH_INFO}}\n\
         response-route = ^/quiet donotlog:\n\
         response-route = ^/$ delheader:Content-Type\n\
         error-route-status = 500 log:ERR ${{REQUEST_URI}}\n\
         error-route-status = 500 addheader:X-Error: 1\n",
        app("wsgi_features.py")
    );
    std::fs::write(dir.path().join("r.ini"), ini).unwrap();
    let srv = Server::start_in(dir, Start { args: vec!["--ini".into(), "r.ini".into()], env: vec![], workers: 1 });
    let missing = srv.get("/nope?a=1");
    assert_eq!((missing.status, missing.header("x-missing")), (404, Some("yes")));
    assert_eq!(missing.header("content-type"), Some("text/plain"));
    let index = srv.get("/");
    assert_eq!((index.status, index.header("content-type"), index.header("x-missing")), (200, None, None));
    let failed = srv.get("/error");
    assert_eq!((failed.status, failed.header("x-error"), failed.header("x-missing")), (500, Some("1"), None));
    assert_eq!(srv.get("/quiet").header("x-missing"), Some("yes"));
    // A routed answer's head goes through them too.
    let gone = srv.get("/gone");
    assert_eq!((gone.status, gone.header("x-missing"), gone.text().as_str()), (404, Some("yes"), "Not Found"));
    assert_eq!(srv.get("/last").status, 404);
    assert!(srv.wait_log("RL /last", SECS), "{}", srv.log());
    let log = srv.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("RL ") || l.starts_with("ERR ")).collect();
    assert_eq!(
        lines,
        [
            "RL /nope?a=1 404 miss=/nope",
            "RL / 200 miss=-",
            "ERR /error",
            "RL /error 500 miss=-",
            "RL /gone 404 miss=/gone",
            "RL /last 404 miss=/last"
        ],
        "{log}"
    );
}

/// `final-route*` rules run after the response is sent and before the request-log line,
/// as uWSGI's: `donotlog` keeps a line out, `logvar` fills it, `log` writes its own;
/// `-status` compares the status sent (app responses and routed answers alike).
#[test]
fn final_routes_act_on_the_log_after_the_response() {
    let srv = start(
        "log-format = FL %(uri) %(status) tier=%(tier)\n\
         route = ^/gone return:404\n\
         final-route = ^/healthz donotlog:\n\
         final-route-status = 404 log:MISSING ${REQUEST_URI}\n\
         final-route-host = ^edge\\. logvar:tier=edge\n\
         final-route-if = equal:${PATH_INFO};/skip goto:end\n\
         final-route-run = log:done ${PATH_INFO}\n\
         final-route-label = end\n",
    );
    assert_eq!(srv.get("/healthz").status, 200);
    let gone = String::from_utf8_lossy(&raw_exchange(&srv, &get("t", "/gone?x=1"))).into_owned();
    assert!(gone.starts_with("HTTP/1.1 404 Not Found\r\n"), "{gone}");
    assert_eq!(
        String::from_utf8_lossy(&raw_exchange(&srv, &get("edge.example", "/a%20b"))).split(' ').nth(1),
        Some("200")
    );
    assert_eq!(srv.get("/skip").status, 200);
    assert!(srv.wait_log("FL /skip", SECS), "{}", srv.log());
    let log = srv.log();
    let lines: Vec<&str> =
        log.lines().filter(|l| l.starts_with("FL ") || l.starts_with("MISSING") || l.starts_with("done")).collect();
    assert_eq!(
        lines,
        [
            "done /healthz",
            "MISSING /gone?x=1",
            "done /gone",
            "FL /gone?x=1 404 tier=-",
            "done /a b",
            "FL /a%20b 200 tier=edge",
            "FL /skip 200 tier=-"
        ],
        "{log}"
    );
}

/// `logvar:NAME=VALUE` fills `%(NAME)` in a `log-format`, as uWSGI's logvars, for app
/// responses and routed answers alike; an unset one prints `-`.
#[test]
fn logvar_fills_its_name_in_the_log_format() {
    let srv = start(
        "log-format = LV %(uri) who=%(who) tier=%(tier)\n\
         route = ^/probe logvar:who=kube-$1\n\
         route = ^/probe(.*)$ logvar:tier=edge$1\n\
         route = ^/probe/ready return:200\n",
    );
    assert_eq!(srv.get("/probe/app").status, 200);
    assert_eq!(srv.get("/probe/ready").status, 200);
    assert_eq!(srv.get("/plain").status, 200);
    assert!(srv.wait_log("LV /plain", SECS), "{}", srv.log());
    let log = srv.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("LV ")).collect();
    assert_eq!(
        lines,
        [
            "LV /probe/app who=kube- tier=edge/app",
            "LV /probe/ready who=kube- tier=edge/ready",
            "LV /plain who=- tier=-"
        ],
        "{log}"
    );
}
