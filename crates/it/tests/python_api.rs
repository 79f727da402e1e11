//! `import uwsgi` (issue 13): the uwsgi module and uwsgidecorators under the real server.
//! A Django project (`tests/apps/django_api`, the same ini uWSGI runs) uses `@postfork`,
//! `@timer`, `@cron`, `@spool` (a job writing a row through the ORM), a mule fed by
//! `uwsgi.mule_msg()` and `uwsgi.worker_id()`; `tests/apps/uwsgi_api.py` drives the rest
//! (signals to workers, locks, `opt`, `reload()`, `stop()`, the `AttributeError` of what
//! ruwsgi leaves out).

use std::time::{Duration, Instant};

use it::{app, wait_file, Server, Start};

fn start(dir: tempfile::TempDir, args: &[&str], env: Vec<(&str, String)>, workers: usize) -> Server {
    Server::start_in(dir, Start { args: args.iter().map(|s| (*s).to_owned()).collect(), env, workers })
}

/// The `uwsgi_api.py` app with `extra` options, in a temp dir.
fn api_server(extra: &[&str], workers: usize) -> Server {
    let app = app("uwsgi_api.py");
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--master"];
    args.extend_from_slice(extra);
    start(tempfile::tempdir().unwrap(), &args, vec![], workers)
}

#[test]
fn django_app_with_postfork_timer_cron_spool_mule_and_worker_id() {
    let out = tempfile::tempdir().unwrap();
    let ini = it::repo().join("tests/apps/django_api/uwsgi.ini").display().to_string();
    let srv = start(
        tempfile::tempdir().unwrap(),
        &["--ini", &ini, "--http-socket", "127.0.0.1:0"],
        vec![("API_OUT", out.path().display().to_string())],
        2,
    );
    // @postfork ran in each worker and closed the DB connection the master opened at import.
    for id in [1, 2] {
        let marker = out.path().join(format!("postfork-{id}"));
        let text = wait_file(&marker, Duration::from_secs(10), |t| !t.is_empty());
        assert_eq!(text.as_deref(), Some("inherited=True closed=True\n"), "worker {id}\n{}", srv.log());
    }
    // ...and, as in uWSGI, in the spooler and the mule too (worker_id() is 0 there).
    let marker = out.path().join("postfork-0");
    let text = wait_file(&marker, Duration::from_secs(10), |t| t.lines().count() >= 2);
    assert_eq!(text.as_deref(), Some("inherited=True closed=True\n".repeat(2).as_str()), "{}", srv.log());
    // uwsgi.worker_id() in a view is the worker uwsgi.workers() says has this pid.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let r = srv.get("/worker");
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        let id = v["worker_id"].as_u64().unwrap();
        assert!((1..=2).contains(&id), "{v}");
        assert_eq!(v["pid"], v["pid_of_worker"], "{v}");
        assert_eq!(v["numproc"], 2);
        seen.insert(id);
    }
    // The worker's own connection works.
    assert_eq!(srv.get("/db").text(), "42");
    // @timer(1): the master raises its signal every second; a worker runs the handler.
    let timer = wait_file(&out.path().join("timer.log"), Duration::from_secs(10), |t| t.lines().count() >= 3);
    assert!(timer.is_some(), "timer did not fire 3 times\n{}", srv.log());
    assert!(timer.unwrap().lines().all(|l| l.starts_with("signal 0 in worker ")));
    // @cron(-1, ...): due every minute, so it fires within the first one.
    let cron = wait_file(&out.path().join("cron.log"), Duration::from_secs(10), |t| !t.is_empty());
    assert!(cron.is_some_and(|t| t.starts_with("signal 1 in worker ")), "{}", srv.log());
    assert!(srv.log().contains("[uwsgi-cron] routing signal 1"), "{}", srv.log());
    // @spool: the view spools a job; the spooler runs it and writes a row through the ORM...
    for name in ["alpha", "beta"] {
        let r = srv.get(&format!("/spool?name={name}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.text().contains("/spool/uwsgi_spoolfile_on_"), "{}", r.text());
        let log = wait_file(&out.path().join("spool.log"), Duration::from_secs(10), |t| t.contains(name));
        assert!(log.is_some(), "job {name} did not run\n{}", srv.log());
    }
    let spooled = std::fs::read_to_string(out.path().join("spool.log")).unwrap();
    assert_eq!(spooled, "rows alpha in spooler True\nrows alpha beta in spooler True\n");
    // ...that a worker reads back.
    assert_eq!(srv.get("/rows").text(), "alpha beta");
    // The mule (`mule = apiproj.mule:consume`) records each message a view sends it.
    for msg in ["hello", "world"] {
        assert_eq!(srv.get(&format!("/mule?msg={msg}")).text(), "sent");
    }
    let mule = wait_file(&out.path().join("mule.log"), Duration::from_secs(10), |t| t.lines().count() >= 2);
    assert_eq!(mule.as_deref(), Some("message hello in mule 1\nmessage world in mule 1\n"), "{}", srv.log());
}

#[test]
fn module_values_at_import_and_in_workers() {
    let srv = api_server(&["--processes", "2"], 2);
    // Imported in the master: worker_id() is 0 there, masterpid() the master's pid.
    let at_import = srv.get("/import").text();
    assert!(at_import.contains("'worker_id': 0"), "{at_import}");
    assert!(at_import.contains(&format!("'masterpid': {}", srv.pid())), "{at_import}");
    assert!(at_import.contains(&format!("'pid': {}", srv.pid())), "{at_import}");
    let ids = srv.get("/ids").text();
    assert!(ids.contains(&format!("'masterpid': {}", srv.pid())), "{ids}");
    assert!(ids.contains("'mule_id': 0") && ids.contains("'numproc': 2"), "{ids}");
    assert!(ids.contains("'worker_id': 1") || ids.contains("'worker_id': 2"), "{ids}");
    // As uWSGI on Python 3: version and hostname are bytes.
    assert_eq!(srv.get("/values").text(), "('bytes', (2, 0, 31), 'bytes', True)");
    let workers = srv.get("/workers").text();
    assert!(workers.starts_with("[(1, ") && workers.contains("(2, "), "{workers}");
    assert!(workers.contains("b'idle'") || workers.contains("b'busy'"), "{workers}");
    // Counted when the request-log line is written, after the response.
    assert!(srv.wait_for(Duration::from_secs(10), |log| log.matches("GET /").count() >= 4), "{}", srv.log());
    let total: u64 = srv.get("/total").text().parse().unwrap();
    assert!(total >= 4, "{total}");
}

#[test]
fn opt_holds_the_options_as_written_with_bytes_values() {
    let dir = tempfile::tempdir().unwrap();
    let app = app("uwsgi_api.py");
    std::fs::write(
        dir.path().join("app.ini"),
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nmy-setting = %(processes) workers\nprocesses = 1\nenv = A=1\nenv = B=2\n"
        ),
    )
    .unwrap();
    let srv = start(dir, &["--ini", "app.ini", "--threads", "2"], vec![], 1);
    let opt = srv.get("/opt?my-setting,processes,threads,env,master,spooler").text();
    // Custom keys too, placeholders expanded; a repeated option keeps its last value (what
    // uWSGI 2.0 gives under Python 3); options not set are absent.
    assert_eq!(
        opt,
        "{'my-setting': b'1 workers', 'processes': b'1', 'threads': b'2', 'env': b'B=2', 'master': b'true', 'spooler': None}"
    );
}

#[test]
fn signals_reach_the_targeted_workers() {
    let srv = api_server(&["--processes", "2"], 2);
    let dir = srv.dir.path().to_path_buf();
    let exists = |name: &str| wait_file(&dir.join(name), Duration::from_secs(10), |t| !t.is_empty()).is_some();
    // worker2: only worker 2 runs it, whichever worker raised it.
    assert_eq!(srv.get("/raise?20").text(), "raised");
    assert!(exists("signal-20-worker-2"), "{}", srv.log());
    // workers: every worker.
    srv.get("/raise?21");
    assert!(exists("signal-21-worker-1") && exists("signal-21-worker-2"), "{}", srv.log());
    // active-workers: every running worker.
    srv.get("/raise?23");
    assert!(exists("signal-23-worker-1") && exists("signal-23-worker-2"), "{}", srv.log());
    // "" (any worker): exactly one runs it.
    srv.get("/raise?22");
    assert!(srv.wait_for(Duration::from_secs(10), |_| {
        dir.join("signal-22-worker-1").exists() || dir.join("signal-22-worker-2").exists()
    }));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!(dir.join("signal-22-worker-1").exists() && dir.join("signal-22-worker-2").exists()));
    assert!(!dir.join("signal-20-worker-1").exists(), "worker2's signal ran in worker 1");
    // The workers count the signals they ran, as the stats server shows.
    let log = srv.log();
    assert!(log.contains("[uwsgi-signal] signum 20 registered (wid: 0 modifier1: 0 target: worker2)"), "{log}");
}

#[test]
fn locks_are_shared_between_workers_and_bounded_by_the_locks_option() {
    let srv = api_server(&["--processes", "2", "--locks", "2"], 2);
    assert_eq!(srv.get("/is_locked?2").text(), "False");
    assert_eq!(srv.get("/lock?2").text(), "True");
    // Every worker sees it held (shared memory), until it is released.
    for _ in 0..6 {
        assert_eq!(srv.get("/is_locked?2").text(), "True");
    }
    assert_eq!(srv.get("/unlock?2").text(), "False");
    assert_eq!(srv.get("/is_locked?0").text(), "False");
    // Lock 0 always exists; `locks = 2` makes 1 and 2; 3 is out of range, as in uWSGI.
    assert_eq!(srv.get("/lock?3").text(), "ValueError: Invalid lock number");
    let dir = tempfile::tempdir().unwrap();
    let app = app("uwsgi_api.py");
    let (code, log) = it::run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--locks", "65"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("locks") && log.contains("at most 64"), "{log}");
}

#[test]
fn what_ruwsgi_leaves_out_raises_attribute_error_naming_the_docs() {
    let srv = api_server(&[], 1);
    let text = srv.get("/missing?cache_get").text();
    assert!(text.starts_with("AttributeError: uwsgi.cache_get is not provided by ruwsgi"), "{text}");
    assert!(text.contains("docs/python-api.md"), "{text}");
    assert_eq!(
        srv.get("/missing?no_such_name").text(),
        "AttributeError: module 'uwsgi' has no attribute 'no_such_name'"
    );
    assert_eq!(srv.get("/missing?worker_id").text(), "present");
}

#[test]
fn setprocname_renames_the_worker_and_log_writes_to_the_server_log() {
    let srv = api_server(&[], 1);
    let pid = srv.get("/setprocname?api-worker-1").text();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim_end(), "api-worker-1");
    assert!(srv.wait_log("renamed worker 1 to api-worker-1", Duration::from_secs(10)), "{}", srv.log());
}

#[test]
fn logvars_and_connection_fd_belong_to_the_request() {
    let srv = api_server(&["--log-format", "%(method) %(uri) user=%(user_id)"], 1);
    assert_eq!(srv.get("/logvar?ada").text(), "b'ada'");
    assert!(srv.wait_log("GET /logvar?ada user=ada", Duration::from_secs(10)), "{}", srv.log());
    assert_eq!(srv.get("/fd").text(), "True");
}

#[test]
fn reload_from_the_app_replaces_the_workers() {
    let srv = api_server(&[], 1);
    let before = srv.get("/ids").text();
    assert_eq!(srv.get("/is_a_reload").text(), "False");
    assert_eq!(srv.get("/reload").text(), "True");
    assert!(
        srv.wait_for(Duration::from_secs(30), |log| log.matches("spawned uWSGI worker").count() >= 2),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("SIGHUP received"), "{}", srv.log());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = srv.get("/ids").text();
    while after == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = srv.get("/ids").text();
    }
    assert_ne!(after, before, "still the old worker\n{}", srv.log());
    assert!(after.contains(&format!("'masterpid': {}", srv.pid())), "the master keeps its pid: {after}");
    assert_eq!(srv.get("/is_a_reload").text(), "True");
}

#[test]
fn stop_from_the_app_shuts_the_server_down() {
    let mut srv = api_server(&[], 1);
    assert_eq!(srv.get("/stop").text(), "True");
    assert!(srv.wait_exit(Duration::from_secs(20)).is_some(), "{}", srv.log());
    assert!(srv.log().contains("SIGINT/SIGQUIT received"), "{}", srv.log());
}

#[test]
fn harakiri_decorator_kills_a_worker_stuck_past_its_seconds() {
    let srv = api_server(&[], 1);
    let before = srv.get("/ids").text();
    let mut stuck = srv.connect();
    std::io::Write::write_all(&mut stuck, b"GET /too-slow HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(srv.wait_log("HARAKIRI ON WORKER 1", Duration::from_secs(10)), "{}", srv.log());
    assert!(srv.wait_log("Respawned uWSGI worker 1", Duration::from_secs(10)), "{}", srv.log());
    let after = srv.get("/ids").text();
    assert_ne!(after, before, "{}", srv.log());
}

#[test]
fn file_monitors_and_rb_timers_raise_their_signals() {
    let srv = api_server(&[], 1);
    let dir = srv.dir.path().to_path_buf();
    // add_rb_timer(25, 1, 2): twice, a second apart.
    let timer = wait_file(&dir.join("signal-25-worker-1"), Duration::from_secs(10), |t| t.lines().count() >= 2);
    assert!(timer.is_some(), "{}", srv.log());
    // add_file_monitor(24, "watched"): a file created in the directory raises it.
    std::fs::write(dir.join("watched/new-file"), "x").unwrap();
    let fsmon = wait_file(&dir.join("signal-24-worker-1"), Duration::from_secs(10), |t| !t.is_empty());
    assert!(fsmon.is_some(), "{}", srv.log());
    // The worker counted what it ran (uwsgi.workers(), the stats server's "signals").
    let workers = srv.get("/workers").text();
    let signals: u64 = workers.trim_end_matches(")]").rsplit(", ").next().unwrap().parse().unwrap();
    assert!(signals >= 3, "{workers}");
}

#[test]
fn lazy_apps_workers_register_their_own_handlers_and_timers_are_not_doubled() {
    let out = tempfile::tempdir().unwrap();
    let ini = it::repo().join("tests/apps/django_api/uwsgi.ini").display().to_string();
    let srv = start(
        tempfile::tempdir().unwrap(),
        &["--ini", &ini, "--http-socket", "127.0.0.1:0", "--lazy-apps"],
        vec![("API_OUT", out.path().display().to_string())],
        2,
    );
    // Each worker imports the app, so each registers the handlers (wid 1 and 2)...
    for wid in [1, 2] {
        let line = format!("[uwsgi-signal] signum 0 registered (wid: {wid} modifier1: 0 target: default, any worker)");
        assert!(srv.wait_log(&line, Duration::from_secs(20)), "{}", srv.log());
    }
    let timer = wait_file(&out.path().join("timer.log"), Duration::from_secs(10), |t| t.lines().count() >= 3);
    assert!(timer.is_some(), "{}", srv.log());
    // ...but the master keeps one timer and one cron for them.
    let log = srv.log();
    assert_eq!(log.matches("timer for signal 0 every 1 seconds").count(), 1, "{log}");
    assert_eq!(log.matches("signal 1 registered as cron task").count(), 1, "{log}");
    // As uWSGI: post_fork_hook runs before a lazy app is imported, so its @postfork never runs.
    assert!(!out.path().join("postfork-1").exists() && !out.path().join("postfork-2").exists());
}

#[test]
fn signal_options_raise_signals_for_the_apps_handlers() {
    // `timer`, `fs-signal` and `touch-signal` in the config; the app registers handlers
    // (its import registers 20-25; these use 30-32 through `handlers.py`).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("fs")).unwrap();
    std::fs::write(dir.path().join("touched"), "").unwrap();
    std::fs::write(
        dir.path().join("handlers.py"),
        "import uwsgi\n\ndef mark(num):\n    open('config-signal-%d' % num, 'a').write('ran\\n')\n\nfor n in (30, 31, 32):\n    uwsgi.register_signal(n, 'worker', mark)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.ini"),
        "[uwsgi]\nmaster = true\nshared-import = handlers.py\ntimer = 30 1\nfs-signal = fs 31\ntouch-signal = touched 32\n",
    )
    .unwrap();
    let app = app("uwsgi_api.py");
    let srv = start(dir, &["--ini", "app.ini", "--http-socket", "127.0.0.1:0", "--wsgi-file", &app], vec![], 1);
    let dir = srv.dir.path().to_path_buf();
    let ran = |n: u8| wait_file(&dir.join(format!("config-signal-{n}")), Duration::from_secs(10), |t| !t.is_empty());
    assert!(ran(30).is_some(), "timer = 30 1\n{}", srv.log());
    std::fs::write(dir.join("fs/new"), "x").unwrap();
    assert!(ran(31).is_some(), "fs-signal = fs 31\n{}", srv.log());
    // touch-signal polls the mtime on the master's tick: make sure it differs.
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(dir.join("touched")).unwrap().set_modified(later).unwrap();
    assert!(ran(32).is_some(), "touch-signal = touched 32\n{}", srv.log());
    assert!(srv.log().contains("[uwsgi-touch-signal] raising 32"), "{}", srv.log());
}
