//! Hooks, exec-* options, master crons and the reload options of issue 11: each hook phase
//! runs in the process and at the moment uWSGI runs it (markers name the pid that ran
//! them), a failing `exec-pre-app` stops start-up, crons run on the master's tick,
//! `exit-on-reload`, `touch-workers-reload` and `harakiri-graceful-signal`.

use std::path::Path;
use std::time::{Duration, Instant};

use it::{app, Server, Start};
use nix::sys::signal::Signal;

/// The lines of a marker file once `done(lines)` holds (bounded wait); the last read if not.
fn wait_lines(path: &Path, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect();
        if done(&lines) || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pids a phase's marker lines (`phase pid`) name, in order.
fn pids_of(lines: &[String], phase: &str) -> Vec<i32> {
    lines.iter().filter_map(|l| l.strip_prefix(phase)?.strip_prefix(' ')?.trim().parse().ok()).collect()
}

/// The pid of worker `id` as the master's log last announced it.
fn worker_pid(log: &str, id: usize) -> i32 {
    let spawned = format!("spawned uWSGI worker {id} (pid: ");
    let respawned = format!("Respawned uWSGI worker {id} (new pid: ");
    log.lines()
        .rev()
        .filter_map(|l| l.split(&spawned).nth(1).or_else(|| l.split(&respawned).nth(1)))
        .find_map(|rest| rest.split([',', ')']).next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pid for worker {id}:\n{log}"))
}

/// `exec:` lines write `PHASE $PPID`: the shell's parent is the process that ran the hook.
fn marker(phase: &str) -> String {
    format!("exec:echo {phase} $PPID >> markers")
}

#[test]
fn each_hook_phase_runs_once_in_its_process_and_the_once_phases_skip_respawns() {
    let mut args: Vec<String> =
        ["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("wsgi_features.py"), "--processes", "2"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let phases = [
        "asap",
        "pre-app",
        "post-app",
        "master-start",
        "post-fork",
        "accepting",
        "accepting1",
        "accepting-once",
        "accepting1-once",
    ];
    for phase in phases {
        args.push(format!("--hook-{phase}"));
        args.push(marker(phase));
    }
    args.extend(["--exec-pre-app".to_owned(), "echo exec-pre-app $PPID >> markers".to_owned()]);
    let srv = Server::start_with(Start { args, env: vec![], workers: 2 });
    let markers = srv.dir.path().join("markers");
    let lines =
        wait_lines(&markers, |l| pids_of(l, "accepting-once").len() == 2 && pids_of(l, "master-start").len() == 1);
    let log = srv.log();
    let master = srv.pid();
    for phase in ["asap", "pre-app", "exec-pre-app", "post-app", "master-start"] {
        assert_eq!(pids_of(&lines, phase), [master], "{phase} runs once, in the master:\n{lines:?}\n{log}");
    }
    // hook-pre-app runs before exec-pre-app, both before the app loads; post-app after.
    let at = |phase: &str| lines.iter().position(|l| l.starts_with(&format!("{phase} "))).unwrap();
    assert!(at("asap") < at("pre-app") && at("pre-app") < at("exec-pre-app") && at("exec-pre-app") < at("post-app"));
    let workers = {
        let mut w = vec![worker_pid(&log, 1), worker_pid(&log, 2)];
        w.sort_unstable();
        w
    };
    for phase in ["post-fork", "accepting", "accepting-once"] {
        let mut pids = pids_of(&lines, phase);
        pids.sort_unstable();
        assert_eq!(pids, workers, "{phase} runs in each worker:\n{lines:?}\n{log}");
    }
    let first = worker_pid(&log, 1);
    assert_eq!(pids_of(&lines, "accepting1"), [first], "{lines:?}");
    assert_eq!(pids_of(&lines, "accepting1-once"), [first], "{lines:?}");
    assert!(log.contains(&format!("running \"{}\" (accepting1-once)...", marker("accepting1-once"))), "{log}");

    // A respawned worker runs post-fork and accepting again, but not the -once phases.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), Signal::SIGKILL).unwrap();
    assert!(srv.wait_log("Respawned uWSGI worker 1", Duration::from_secs(15)), "{}", srv.log());
    let lines = wait_lines(&markers, |l| pids_of(l, "accepting1").len() == 2);
    let again = worker_pid(&srv.log(), 1);
    assert_eq!(pids_of(&lines, "accepting1"), [first, again], "{lines:?}");
    assert!(pids_of(&lines, "accepting").contains(&again), "{lines:?}");
    assert_eq!(pids_of(&lines, "accepting-once").len(), 2, "{lines:?}");
    assert_eq!(pids_of(&lines, "accepting1-once"), [first], "{lines:?}");
    assert_eq!(pids_of(&lines, "master-start"), [master], "{lines:?}");
}

#[test]
fn lazy_apps_run_the_app_phases_in_each_worker() {
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--processes",
        "2",
        "--lazy-apps",
        "--hook-pre-app",
        &marker("pre-app"),
        "--exec-post-app",
        "echo post-app $PPID >> markers",
    ]);
    let lines = wait_lines(&srv.dir.path().join("markers"), |l| pids_of(l, "post-app").len() == 2);
    let mut workers = srv.worker_pids();
    workers.sort_unstable();
    for phase in ["pre-app", "post-app"] {
        let mut pids = pids_of(&lines, phase);
        pids.sort_unstable();
        assert_eq!(pids, workers, "{phase}: {lines:?}\n{}", srv.log());
    }
}

#[test]
fn as_root_and_as_user_hooks_run_around_the_privilege_drop() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--hook-as-root",
        "exec:id -u > root.mark",
        "--exec-as-user",
        "id -u > user.mark",
        "--hook-asap",
        "write:asap.mark ok",
    ];
    if !nix::unistd::getuid().is_root() {
        // As uWSGI: without root there is no privilege drop, and neither phase runs.
        let srv = Server::start_args_in(dir, &args, 1);
        assert_eq!(std::fs::read_to_string(srv.dir.path().join("asap.mark")).unwrap(), "ok");
        assert!(!srv.dir.path().join("root.mark").exists() && !srv.dir.path().join("user.mark").exists());
        return;
    }
    // nobody must be able to read the app's dir and write its marker.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut with_uid = args.to_vec();
    with_uid.extend(["--uid", "nobody"]);
    let srv = Server::start_args_in(dir, &with_uid, 1);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw();
    let read = |name: &str| std::fs::read_to_string(srv.dir.path().join(name)).unwrap().trim().to_owned();
    assert_eq!(read("root.mark"), "0", "{}", srv.log());
    assert_eq!(read("user.mark"), nobody.to_string(), "{}", srv.log());
    assert!(srv.log().contains(&format!("running \"id -u > user.mark\" (as uid: {nobody} gid: ")), "{}", srv.log());
}

#[test]
fn a_failing_exec_pre_app_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = it::run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--exec-pre-app", "echo migrating; exit 4"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("migrating\n"), "the command's output is in the log:\n{log}");
    assert!(log.contains("command \"echo migrating; exit 4\" exited with non-zero code: 4"), "{log}");
    assert!(log.contains("ruwsgi: exec-pre-app = \"echo migrating; exit 4\" failed\n"), "{log}");
    assert!(!log.contains("spawned uWSGI worker"), "no worker starts:\n{log}");
}

#[test]
fn a_failing_worker_hook_stops_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = it::run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--hook-accepting", "exec:false"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("hook-accepting = \"exec:false\" failed"), "{log}");
    assert!(!log.contains("Respawned"), "no respawn loop:\n{log}");
}

#[test]
fn an_unsupported_hook_action_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, log) = it::run_to_exit(
        dir.path(),
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--hook-post-fork", "rpc:hello"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("--hook-post-fork \"rpc:hello\": hook action \"rpc\" is not supported by ruwsgi"), "{log}");
}

#[test]
fn unix_signal_in_master_start_remaps_a_signal() {
    // SIGHUP now shuts down gracefully instead of reloading.
    let mut srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--hook-master-start",
        "unix_signal:1 gracefully_kill_them_all",
    ]);
    srv.signal(Signal::SIGHUP);
    assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0), "{}", srv.log());
    assert!(srv.log().contains("SIGHUP received: gracefully killing workers"), "{}", srv.log());
    assert!(!srv.log().contains("binary reloading"), "{}", srv.log());
}

#[test]
fn a_cron_runs_its_command_and_logs_start_and_end() {
    // -1 everywhere: due every minute, so the first tick starts it.
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--cron",
        "-1 -1 -1 -1 -1 echo $PPID > cron.out",
        "--cron2",
        "minute=-1,harakiri=1 sleep 30",
    ]);
    assert!(
        srv.wait_log("[uwsgi-cron] command \"echo $PPID > cron.out\" running with pid ", Duration::from_secs(15)),
        "{}",
        srv.log()
    );
    let log = srv.log();
    assert!(log.contains("[uwsgi-cron] command \"echo $PPID > cron.out\" registered as cron task"), "{log}");
    assert!(log.contains("[uwsgi-cron] running \"echo $PPID > cron.out\" (pid "), "{log}");
    // The master ran it.
    let out = std::fs::read_to_string(srv.dir.path().join("cron.out")).unwrap();
    assert_eq!(out.trim(), srv.pid().to_string());
    // cron2's harakiri kills the sleeper after about a second.
    assert!(srv.wait_log("*** HARAKIRI ON CRON \"sleep 30\" (pid: ", Duration::from_secs(15)), "{}", srv.log());
    assert!(
        srv.wait_log("[uwsgi-cron] command \"sleep 30\" running with pid ", Duration::from_secs(15)),
        "{}",
        srv.log()
    );
    // One master thread all along.
    assert_eq!(it::thread_count(srv.pid()), 1);
}

#[test]
fn exit_on_reload_turns_a_reload_into_an_exit() {
    let mut srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("hello.py"),
        "--exit-on-reload",
        "--exec-as-user-atexit",
        "echo bye > atexit.out",
    ]);
    srv.signal(Signal::SIGHUP);
    assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0), "{}", srv.log());
    let log = srv.log();
    assert!(log.contains("uWSGI: GAME OVER (insert coin)"), "{log}");
    assert!(!log.contains("binary reloading"), "{log}");
    assert_eq!(std::fs::read_to_string(srv.dir.path().join("atexit.out")).unwrap(), "bye\n");
}

#[test]
fn touch_workers_reload_replaces_only_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("workers.touch"), "").unwrap();
    let srv = Server::start_args_in(
        dir,
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            &app("wsgi_features.py"),
            "--touch-workers-reload",
            "workers.touch",
        ],
        1,
    );
    let before = srv.get("/pid").text();
    it::touch_later(&srv.dir.path().join("workers.touch"));
    assert!(
        srv.wait_log("workers.touch has been touched... workers reload !!!", Duration::from_secs(15)),
        "{}",
        srv.log()
    );
    assert!(srv.wait_log("Respawned uWSGI worker 1", Duration::from_secs(15)), "{}", srv.log());
    let after = srv.get("/pid").text();
    assert_ne!(before, after, "the worker was replaced");
    assert!(!srv.log().contains("binary reloading"), "the master did not reload:\n{}", srv.log());
}

#[test]
fn harakiri_graceful_signal_is_sent_first() {
    // SIGINT makes a ruwsgi worker exit at once, even with a request stuck in the app; the
    // default SIGTERM would wait for it and need the SIGKILL after the timeout.
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app("wsgi_features.py"),
        "--harakiri",
        "1",
        "--harakiri-graceful-timeout",
        "10",
        "--harakiri-graceful-signal",
        "2",
    ]);
    let addr = srv.addr();
    let stuck = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = it::connect(addr);
        s.write_all(b"GET /sleep?s=30 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let _ = it::read_response(&mut std::io::BufReader::new(s));
    });
    assert!(
        srv.wait_log("graceful termination attempt on worker 1 with signal 2", Duration::from_secs(15)),
        "{}",
        srv.log()
    );
    assert!(srv.wait_log("Respawned uWSGI worker 1", Duration::from_secs(8)), "{}", srv.log());
    let log = srv.log();
    assert!(log.contains("(pid: ") && log.contains("try: 1, graceful: yes) ***"), "{log}");
    assert!(!log.contains("try: 2"), "the graceful signal was enough:\n{log}");
    stuck.join().unwrap();
}
