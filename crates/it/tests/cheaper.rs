//! Adaptive workers (`cheaper`, `cheaper-algo`, `idle`): a load step made of requests that
//! `tests/apps/hold.py` holds until the test removes a gate file scales the workers up, and
//! they go back down once it ends; the stats server reports what the master sees. Each
//! server reads a uWSGI-style ini. Waits are on log lines, never fixed sleeps.

use std::io::{BufReader, Write};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use it::json::Value;
use it::{read_response, Server};

const LONG: Duration = Duration::from_secs(40);

/// Starts ruwsgi on `ini` (written into its temp dir, `{dir}` replaced by that dir) and
/// waits for `workers` spawned workers.
fn start_ini(ini: &str, workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let text = ini.replace("{dir}", &dir.path().display().to_string()).replace("{app}", &it::app("hold.py"));
    Server::start_ini_in(dir, &text, workers, vec![])
}

/// `n` concurrent `GET /hold`, each on its own connection; joined for their statuses.
fn hold_requests(srv: &Server, n: usize) -> Vec<JoinHandle<u16>> {
    (0..n)
        .map(|_| {
            let mut s = srv.connect();
            s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
            s.write_all(b"GET /hold HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
            std::thread::spawn(move || read_response(&mut BufReader::new(s)).map_or(0, |r| r.status))
        })
        .collect()
}

fn count(srv: &Server, needle: &str) -> usize {
    srv.log().matches(needle).count()
}

fn wait_count(srv: &Server, needle: &str, n: usize) {
    assert!(srv.wait_for(LONG, |t| t.matches(needle).count() >= n), "{n} x {needle:?}:\n{}", srv.log());
}

fn stats(srv: &Server) -> Value {
    let text = it::read_to_close(&srv.logged_address("stats"), b"");
    it::json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Runs one load step of `n` held requests; returns once they all answered 200.
fn load_step(srv: &Server, gate: &Path, n: usize, during: impl FnOnce()) {
    std::fs::write(gate, b"").unwrap();
    let held = hold_requests(srv, n);
    during();
    std::fs::remove_file(gate).unwrap();
    for h in held {
        assert_eq!(h.join().unwrap(), 200, "{}", srv.log());
    }
}

#[test]
fn spare_adds_workers_under_a_load_step_and_cheaps_them_after() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 4\n\
         cheaper = 1\ncheaper-initial = 1\ncheaper-overload = 1\nenv = HOLD_GATE={dir}/gate\n\
         stats = 127.0.0.1:0\n",
        1,
    );
    assert_eq!(count(&srv, "spawned uWSGI worker"), 1, "cheaper-initial = 1:\n{}", srv.log());
    let doc = stats(&srv);
    assert_eq!((doc["active_workers"].as_u64(), doc["cheaper"]["algo"].as_str()), (Some(1), Some("spare")));
    let gate = srv.dir.path().join("gate");
    load_step(&srv, &gate, 4, || {
        // Every worker busy for more than `cheaper-overload` checks adds one, up to 4.
        wait_count(&srv, "spawned uWSGI worker", 4);
        // The master counts busy workers on its tick; a new worker takes its request soon after.
        let deadline = std::time::Instant::now() + LONG;
        while stats(&srv)["busy_workers"].as_u64() != Some(4) {
            assert!(std::time::Instant::now() < deadline, "{}", srv.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        let doc = stats(&srv);
        assert_eq!(doc["active_workers"].as_u64(), Some(4));
        assert!(doc["busy_ratio"].as_f64().unwrap() > 0.0, "{doc}");
        let statuses: Vec<&str> =
            doc["workers"].as_array().unwrap().iter().map(|w| w["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["busy"; 4]);
    });
    // The step is over: one worker goes every `cheaper-overload` idle checks, down to 1.
    wait_count(&srv, "cheaped.", 3);
    assert_eq!(count(&srv, "killed successfully"), 3);
    let doc = stats(&srv);
    assert_eq!(doc["active_workers"].as_u64(), Some(1), "{doc}");
    let cheap = doc["workers"].as_array().unwrap().iter().filter(|w| w["status"] == "cheap").count();
    assert_eq!(cheap, 3);
    // A second step scales up again: cheaped slots are spawned anew.
    load_step(&srv, &gate, 2, || wait_count(&srv, "spawned uWSGI worker", 5));
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn busyness_spawns_above_max_and_cheaps_below_min() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 3\n\
         cheaper = 1\ncheaper-algo = busyness\ncheaper-overload = 1\ncheaper-busyness-multiplier = 2\n\
         cheaper-busyness-verbose = true\nenv = HOLD_GATE={dir}/gate\nstats = 127.0.0.1:0\n",
        1,
    );
    assert!(srv.wait_log("[busyness] settings: min=25%, max=50%, overload=1, multiplier=2", LONG), "{}", srv.log());
    let gate = srv.dir.path().join("gate");
    load_step(&srv, &gate, 3, || {
        wait_count(&srv, "will spawn 1 new worker(s)", 2);
        wait_count(&srv, "spawned uWSGI worker", 3);
        assert_eq!(stats(&srv)["cheaper"]["algo"], "busyness");
    });
    wait_count(&srv, "cheap one of", 2);
    wait_count(&srv, "cheaped.", 2);
    let doc = stats(&srv);
    assert_eq!(doc["active_workers"].as_u64(), Some(1), "{doc}");
    assert!(doc["cheaper"]["busyness"].as_u64().is_some(), "{doc}");
}

#[test]
fn backlog_spawns_while_connections_queue() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 3\n\
         cheaper = 1\ncheaper-algo = backlog\ncheaper-overload = 2\nenv = HOLD_GATE={dir}/gate\n\
         stats = 127.0.0.1:0\n",
        1,
    );
    let gate = srv.dir.path().join("gate");
    // One request holds the only worker; the other five wait in the listen queue, longer
    // than `cheaper-overload`: a worker is added per check until 3 run.
    load_step(&srv, &gate, 6, || {
        wait_count(&srv, "spawned uWSGI worker", 3);
    });
    // An empty queue removes one per check down to `cheaper`.
    wait_count(&srv, "cheaped.", 2);
    assert_eq!(stats(&srv)["active_workers"].as_u64(), Some(1));
}

#[test]
fn idle_stops_the_workers_until_a_connection_arrives() {
    let srv =
        start_ini("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 2\nidle = 1\n", 2);
    assert_eq!(srv.get("/").status, 200);
    assert!(srv.wait_log("cheap mode enabled: waiting for socket connection...", LONG), "{}", srv.log());
    assert!(srv.wait_log("workers have been inactive for more than 1 seconds", LONG));
    wait_count(&srv, "cheaped.", 2);
    assert!(srv.wait_for(LONG, |_| srv.worker_pids().is_empty()), "{:?}", srv.worker_pids());
    // The master saw the connection and started the workers; the request waited for them.
    assert_eq!(srv.get("/").status, 200);
    wait_count(&srv, "spawned uWSGI worker", 4);
}

#[test]
fn die_on_idle_exits() {
    let mut srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 2\nidle = 1\n\
         die-on-idle = true\n",
        2,
    );
    assert_eq!(srv.wait_exit(LONG), Some(0), "{}", srv.log());
    assert!(srv.log().contains("workers have been inactive for more than 1 seconds"));
}

#[test]
fn metrics_export_the_busy_ratio_and_the_backlog() {
    let srv =
        start_ini("[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nprocesses = 2\nmetrics = 127.0.0.1:0\n", 2);
    assert_eq!(srv.get("/").status, 200);
    let text = it::read_to_close(&srv.logged_address("metrics (Prometheus)"), b"GET /metrics HTTP/1.0\r\n\r\n");
    for series in [
        "ruwsgi_busy_ratio ",
        "ruwsgi_busy_seconds_total ",
        "ruwsgi_listen_queue ",
        "ruwsgi_workers_active 2",
        "ruwsgi_capacity_cores 2",
    ] {
        assert!(text.contains(series), "{series}: {text}");
    }
}

#[test]
fn rss_hard_limit_cheaps_workers_down_to_one() {
    // Any worker is above 2 bytes of RSS: the hard limit removes workers one per check while
    // more than one runs (uWSGI's `active_workers > 1`), whatever the algorithm says.
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 4\n\
         cheaper = 1\ncheaper-initial = 3\ncheaper-rss-limit-soft = 1\ncheaper-rss-limit-hard = 2\n\
         stats = 127.0.0.1:0\n",
        3,
    );
    wait_count(&srv, "cheaper hard rss memory limit exceeded, cheap one of", 2);
    wait_count(&srv, "cheaped.", 2);
    assert_eq!(stats(&srv)["active_workers"].as_u64(), Some(1));
    assert_eq!(srv.get("/").status, 200);
}

#[test]
fn spare2_keeps_one_idle_worker_ahead_of_the_load() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 4\n\
         cheaper = 1\ncheaper-algo = spare2\ncheaper-idle = 2\nenv = HOLD_GATE={dir}/gate\n\
         stats = 127.0.0.1:0\n",
        1,
    );
    let gate = srv.dir.path().join("gate");
    // Two held requests: each busy worker is replaced as the idle one, so 3 run.
    load_step(&srv, &gate, 2, || wait_count(&srv, "spawned uWSGI worker", 3));
    // Then three idle workers, two more than `cheaper`: one goes every `cheaper-idle`
    // checks, down to one.
    wait_count(&srv, "cheaped.", 2);
    assert_eq!(stats(&srv)["active_workers"].as_u64(), Some(1));
}

#[test]
fn manual_algo_follows_the_master_fifo() {
    let srv = start_ini(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {app}\nmaster = true\nprocesses = 3\n\
         cheaper = 1\ncheaper-algo = manual\nmaster-fifo = {dir}/fifo\n",
        1,
    );
    let fifo = srv.dir.path().join("fifo");
    let write = |cmd: &[u8]| std::fs::OpenOptions::new().write(true).open(&fifo).unwrap().write_all(cmd).unwrap();
    write(b"+");
    wait_count(&srv, "spawned uWSGI worker", 2);
    write(b"-");
    wait_count(&srv, "cheaped.", 1);
    assert_eq!(srv.get("/").status, 200);
}
