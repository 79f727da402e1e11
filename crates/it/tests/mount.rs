//! Several apps in one instance under URL prefixes (`mount`, `manage-script-name`,
//! `no-default-app`), as uWSGI: over HTTP, behind a real nginx that sends (or doesn't send)
//! `SCRIPT_NAME`, the `app: N` of the request log, and start-up failures.

use std::time::Duration;

use it::json::{self, Value};
use it::nginx::Nginx;
use it::{app, repo, run_to_exit, Response, Server};

const SECS: Duration = Duration::from_secs(10);

/// `tests/apps`, for `pythonpath` (so `module = mounted` imports `tests/apps/mounted.py`).
fn apps_dir() -> String {
    repo().join("tests/apps").display().to_string()
}

/// (app, `SCRIPT_NAME`, `PATH_INFO`) from the `mounted` app's JSON answer.
fn answer(r: &Response) -> (String, String, String) {
    assert_eq!(r.status, 200, "{}\n{}", r.status_line, r.text());
    let v: Value = json::from_str(&r.text()).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", r.text()));
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_else(|| panic!("no {k} in {v}")).to_owned();
    (field("app"), field("script_name"), field("path_info"))
}

fn triple(app: &str, script_name: &str, path_info: &str) -> (String, String, String) {
    (app.to_owned(), script_name.to_owned(), path_info.to_owned())
}

/// The request-log line of `request` (`GET /path`), once it is written.
fn log_line(srv: &Server, request: &str) -> String {
    let needle = format!("] {request} => generated");
    assert!(srv.wait_log(&needle, SECS), "no log line for {request}:\n{}", srv.log());
    srv.log().lines().find(|l| l.contains(&needle)).map(str::to_owned).unwrap_or_default()
}

/// The default app, a file mount and two module mounts, one nested in the other.
fn four_apps<'a>(apps: &'a str, file: &'a str) -> Vec<&'a str> {
    vec![
        "--pythonpath",
        apps,
        "--module",
        "mounted",
        "--mount",
        file,
        "--mount",
        "/shop=mounted:shop",
        "--mount",
        "/shop/admin/=mounted:shop_admin",
    ]
}

#[test]
fn manage_script_name_over_http_splits_at_the_longest_mountpoint() {
    let apps = apps_dir();
    let file = format!("/blog={}", app("mounted.py"));
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--manage-script-name"];
    args.extend(four_apps(&apps, &file));
    // A second app for a mountpoint already taken is skipped with a warning, as in uWSGI.
    args.extend(["--mount", "/blog=mounted:blog"]);
    let srv = Server::start(&args);
    let log = srv.log();
    for line in [
        "WSGI app 0 (mountpoint='') ready: mounted:application (default app)",
        "WSGI app 1 (mountpoint='/blog') ready: ",
        "WSGI app 2 (mountpoint='/shop') ready: mounted:shop",
        // The trailing '/' of the mountpoint is dropped.
        "WSGI app 3 (mountpoint='/shop/admin') ready: mounted:shop_admin",
        "mountpoint '/blog' already configured. skip.",
    ] {
        assert!(log.contains(line), "no {line:?} in:\n{log}");
    }

    for (path, want) in [
        ("/blog/post/1", triple("file", "/blog", "/post/1")),
        // The mountpoint itself: PATH_INFO is empty, as uWSGI leaves it.
        ("/blog", triple("file", "/blog", "")),
        ("/blog/", triple("file", "/blog", "/")),
        ("/shop/cart?item=3", triple("shop", "/shop", "/cart")),
        // The longest mountpoint wins, whatever the order of the `mount` lines.
        ("/shop/admin/users", triple("shop-admin", "/shop/admin", "/users")),
        ("/shop/administrator", triple("shop", "/shop", "/administrator")),
        // Not at a '/' boundary: no mountpoint matches, the default app gets it untouched.
        ("/blogx", triple("default", "", "/blogx")),
        ("/blogx/post", triple("default", "", "/blogx/post")),
        ("/", triple("default", "", "/")),
        // Matching happens on the decoded PATH_INFO.
        ("/sh%6Fp/x", triple("shop", "/shop", "/x")),
    ] {
        assert_eq!(answer(&srv.get(path)), want, "{path}");
    }

    for (request, app_id) in
        [("GET /blog/post/1", 1), ("GET /shop/cart?item=3", 2), ("GET /shop/admin/users", 3), ("GET /blogx", 0)]
    {
        let line = log_line(&srv, request);
        assert!(line.contains(&format!("|app: {app_id}|")), "{request} should be app {app_id}: {line}");
    }
}

#[test]
fn without_manage_script_name_http_requests_go_to_the_default_app() {
    let apps = apps_dir();
    let file = format!("/blog={}", app("mounted.py"));
    let mut args = vec!["--http-socket", "127.0.0.1:0"];
    args.extend(four_apps(&apps, &file));
    let srv = Server::start(&args);
    // HTTP carries no SCRIPT_NAME, so it is "" and selects app 0, as in uWSGI.
    assert_eq!(answer(&srv.get("/blog/post/1")), triple("default", "", "/blog/post/1"));
    assert!(log_line(&srv, "GET /blog/post/1").contains("|app: 0|"), "{}", srv.log());
}

/// nginx `location`s for the `mounted` apps: `/shop` passes `SCRIPT_NAME`, the rest doesn't.
fn nginx_site(upstream: &str) -> String {
    format!(
        "location /shop {{\n    include uwsgi_params;\n    uwsgi_param SCRIPT_NAME /shop;\n    uwsgi_pass {upstream};\n}}\n\
         location /nowhere {{\n    include uwsgi_params;\n    uwsgi_param SCRIPT_NAME /nowhere;\n    uwsgi_pass {upstream};\n}}\n\
         location / {{\n    include uwsgi_params;\n    uwsgi_pass {upstream};\n}}\n"
    )
}

#[test]
fn nginx_script_name_selects_the_app() {
    let apps = apps_dir();
    let file = format!("/blog={}", app("mounted.py"));
    let mut args = vec!["--socket", "127.0.0.1:0"];
    args.extend(four_apps(&apps, &file));
    let srv = Server::start(&args);
    let nginx = Nginx::start(&nginx_site(&srv.addr().to_string()));
    // SCRIPT_NAME equals a mountpoint: that app, with PATH_INFO as nginx sent it (uWSGI leaves
    // it whole; `manage-script-name` or nginx's own split is what removes the prefix).
    assert_eq!(answer(&nginx.get("/shop/cart")), triple("shop", "/shop", "/shop/cart"));
    assert!(log_line(&srv, "GET /shop/cart").contains("|app: 2|"), "{}", srv.log());
    // SCRIPT_NAME must match exactly: no mountpoint "/nowhere", so the default app.
    assert_eq!(answer(&nginx.get("/nowhere/x")), triple("default", "/nowhere", "/nowhere/x"));
    // No SCRIPT_NAME at all: "" selects app 0 even under a mounted prefix.
    assert_eq!(answer(&nginx.get("/blog/post/1")), triple("default", "", "/blog/post/1"));
}

#[test]
fn nginx_with_manage_script_name() {
    let apps = apps_dir();
    let file = format!("/blog={}", app("mounted.py"));
    let mut args = vec!["--socket", "127.0.0.1:0", "--manage-script-name"];
    args.extend(four_apps(&apps, &file));
    let srv = Server::start(&args);
    let nginx = Nginx::start(&nginx_site(&srv.addr().to_string()));
    // The usual deployment: nginx passes everything, ruwsgi splits by mountpoint.
    assert_eq!(answer(&nginx.get("/blog/post/1")), triple("file", "/blog", "/post/1"));
    assert_eq!(answer(&nginx.get("/blog")), triple("file", "/blog", ""));
    assert_eq!(answer(&nginx.get("/blogx")), triple("default", "", "/blogx"));
    assert_eq!(answer(&nginx.get("/shop/admin/x")), triple("shop-admin", "/shop/admin", "/x"));
    // A SCRIPT_NAME nginx sent is replaced by the mountpoint found in PATH_INFO, as uWSGI.
    assert_eq!(answer(&nginx.get("/shop/cart")), triple("shop", "/shop", "/cart"));
    assert!(log_line(&srv, "GET /blog/post/1").contains("|app: 1|"), "{}", srv.log());
    assert!(log_line(&srv, "GET /shop/admin/x").contains("|app: 3|"), "{}", srv.log());
}

#[test]
fn first_mount_is_the_default_app_unless_no_default_app() {
    let apps = apps_dir();
    let mounts = ["--pythonpath", &apps, "--mount", "/blog=mounted:blog", "--mount", "/shop=mounted:shop"];
    // Without `module`, app 0 is the first mount and takes what no mountpoint matches.
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--manage-script-name"];
    args.extend(mounts);
    let srv = Server::start(&args);
    assert!(srv.log().contains("WSGI app 0 (mountpoint='/blog') ready: mounted:blog (default app)"), "{}", srv.log());
    assert_eq!(answer(&srv.get("/elsewhere")), triple("blog", "", "/elsewhere"));
    assert_eq!(answer(&srv.get("/shop/x")), triple("shop", "/shop", "/x"));
    drop(srv);

    // With no-default-app it gets uWSGI's 500 and a log line naming the request.
    args.push("--no-default-app");
    let srv = Server::start(&args);
    let r = srv.get("/elsewhere/page");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(
        srv.wait_log(
            "--- no python application found, check your startup logs for errors --- (GET /elsewhere/page:",
            SECS
        ),
        "{}",
        srv.log()
    );
    assert!(log_line(&srv, "GET /elsewhere/page").contains("|app: -1|"), "{}", srv.log());
    assert_eq!(answer(&srv.get("/blog/x")), triple("blog", "/blog", "/x"));
}

#[test]
fn a_mount_that_fails_to_load_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let apps = apps_dir();
    let hello = app("hello.py");
    let broken_file = format!("/broken={}", app("broken_import.py"));
    // The traceback as Python prints it (a module that isn't found has no frames to show).
    for (mount, error) in [
        (broken_file.as_str(), "Traceback (most recent call last)"),
        (broken_file.as_str(), "ImportError: broken_import: this module deliberately fails to import"),
        ("/missing=no_such_module:app", "ModuleNotFoundError: No module named 'no_such_module'"),
        ("/nocallable=mounted:nothing_here", "AttributeError: module 'mounted' has no attribute 'nothing_here'"),
    ] {
        let args = ["--http-socket", "127.0.0.1:0", "--pythonpath", &apps, "--wsgi-file", &hello, "--mount", mount];
        let (code, out) = run_to_exit(dir.path(), &args, SECS);
        assert_eq!(code, Some(22), "{mount}: {out}");
        let mountpoint = mount.split('=').next().unwrap_or_default();
        assert!(out.contains(&format!("unable to load app 1 (mountpoint='{mountpoint}')")), "{mountpoint}: {out}");
        assert!(out.contains(error), "{mount}: {out}");
    }
}

#[test]
fn mount_without_equals_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run_to_exit(dir.path(), &["--http-socket", "127.0.0.1:0", "--mount", "blog/wsgi.py"], SECS);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("mount") && out.contains("\"blog/wsgi.py\": expected /prefix=app"), "{out}");
}
