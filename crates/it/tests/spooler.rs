//! The spooler and mules (issue 13): `tests/apps/spooler_app` (the same ini uWSGI runs:
//! `@spool`, `@mulefunc`, a mule script reading `mule_get_msg`, a farm) under ruwsgi; a
//! spool directory written by the real uWSGI 2.0.31 drained by ruwsgi and the other way
//! round; spoolers and mules killed with SIGKILL and mules respawned without losing a task or a queued message;
//! the spooler options (`at`, `priority` with `spooler-ordered`, the return codes,
//! `spooler-max-tasks`, `spooler-chdir`, the harakiris) with `tests/apps/spooler_raw.py`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use it::{app, Server, Start};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A test's queue directory and the directory its tasks and mules write to.
struct Dirs {
    tmp: tempfile::TempDir,
    spool: PathBuf,
    out: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let spool = tmp.path().join("queue");
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    Dirs { tmp, spool, out }
}

impl Dirs {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("SPOOL_DIR", self.spool.display().to_string()), ("SPOOLER_OUT", self.out.display().to_string())]
    }

    /// Text of OUT/name once it exists (`None` after `timeout`).
    fn wait_out(&self, name: &str, timeout: Duration) -> Option<String> {
        wait_until(timeout, || std::fs::read_to_string(self.out.join(name)).ok())
    }

    /// The files of OUT whose name starts with `prefix`.
    fn out_files(&self, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.out)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    }

    /// The task files waiting in the queue (and its priority subdirectories).
    fn tasks(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut dirs = vec![self.spool.clone()];
        while let Some(dir) = dirs.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if e.file_name().to_string_lossy().starts_with("uwsgi_spoolfile_on_") {
                    found.push(path);
                }
            }
        }
        found
    }
}

/// Polls `f` every 50 ms until it gives a value.
fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WAIT: Duration = Duration::from_secs(15);

fn ini() -> String {
    it::repo().join("tests/apps/spooler_app/uwsgi.ini").display().to_string()
}

/// ruwsgi with the app's ini, once its spooler and three mules run.
fn start_ini(d: &Dirs, extra: &[&str]) -> Server {
    let ini = ini();
    let mut args = vec!["--ini", &ini, "--http-socket", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let srv =
        Server::start_with(Start { args: args.iter().map(|s| (*s).to_owned()).collect(), env: d.env(), workers: 2 });
    let up = srv.wait_for(WAIT, |t| t.contains("spawned the uWSGI spooler") && t.contains("spawned uWSGI mule 3"));
    assert!(up, "spooler and mules did not start:\n{}", srv.log());
    srv
}

/// The pid in the last log line starting with `prefix` and ending with a pid (`pid: N)` or
/// `with pid N`).
fn last_pid(log: &str, prefix: &str) -> Option<i32> {
    let line = log.lines().rev().find(|l| l.starts_with(prefix))?;
    let digits: String = line
        .trim_end_matches(')')
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// `key=value` from a line the app wrote.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn spool_and_mules_work_under_the_ini_uwsgi_runs() {
    let d = dirs();
    let stats = d.tmp.path().join("stats.sock").display().to_string();
    let metrics = d.tmp.path().join("metrics.sock").display().to_string();
    let srv = start_ini(&d, &["--stats", &stats, "--metrics", &metrics]);
    let queue = d.spool.canonicalize().unwrap();

    // @spool: the task file's path comes back; the spooler runs the task in the queue
    // directory with its arguments and body, then deletes the file.
    let r = srv.get("/spool?n=1&body=hello");
    assert_eq!(r.status, 200, "{}", srv.log());
    let path = PathBuf::from(r.text());
    assert_eq!(path.parent(), Some(queue.as_path()), "{}", r.text());
    let job = d.wait_out("job-1", WAIT).unwrap_or_else(|| panic!("task did not run\n{}", srv.log()));
    assert_eq!(field(&job, "server"), Some("ruwsgi"), "{job}");
    assert_eq!(field(&job, "body"), Some("hello"), "{job}");
    assert_eq!(field(&job, "cwd"), Some(queue.to_str().unwrap()), "{job}");
    let spooler_pid = last_pid(&srv.log(), "spawned the uWSGI spooler").unwrap();
    assert_eq!(field(&job, "pid"), Some(spooler_pid.to_string().as_str()), "{job}");
    assert!(wait_until(WAIT, || d.tasks().is_empty().then_some(())).is_some(), "{:?}", d.tasks());
    assert!(srv.wait_log(&format!("[spooler] written 53 bytes to file {}", path.display()), WAIT), "{}", srv.log());
    assert!(srv.wait_log("done with task uwsgi_spoolfile_on_", WAIT), "{}", srv.log());

    // A message to mule 1, one to the farm (mules 1 and 2), a @mulefunc call (mule 3).
    srv.get("/mule?n=2");
    let m = d.wait_out("mule-2", WAIT).unwrap_or_else(|| panic!("mule 1 got nothing\n{}", srv.log()));
    assert_eq!((field(&m, "mule"), field(&m, "farm"), field(&m, "server")), (Some("1"), Some("pair"), Some("ruwsgi")));
    srv.get("/farm?n=3");
    let m = d.wait_out("mule-3", WAIT).unwrap_or_else(|| panic!("the farm got nothing\n{}", srv.log()));
    assert!(matches!(field(&m, "mule"), Some("1" | "2")), "{m}");
    srv.get("/mulefunc?n=4");
    let m = d.wait_out("mulefunc-4", WAIT).unwrap_or_else(|| panic!("@mulefunc did not run\n{}", srv.log()));
    assert_eq!(field(&m, "mule"), Some("3"), "{m}");

    // uwsgi.spooler_pid(), uwsgi.spooler_jobs().
    assert_eq!(srv.get("/spooler").text(), format!("{spooler_pid} 0"));

    // The stats JSON lists the spooler as uWSGI's does.
    let mut s = std::os::unix::net::UnixStream::connect(&stats).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sp = &doc["spoolers"][0];
    assert_eq!(sp["dir"], queue.display().to_string(), "{doc}");
    assert_eq!(sp["pid"], spooler_pid, "{doc}");
    assert_eq!(sp["tasks"], 1, "{doc}");
    assert_eq!(sp["respawns"], 0, "{doc}");
    assert_eq!(sp["running"], 0, "{doc}");
    // And the Prometheus metrics.
    let mut s = std::os::unix::net::UnixStream::connect(&metrics).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let series = format!("ruwsgi_spooler_tasks_total{{spooler=\"0\",dir=\"{}\"}} 1", queue.display());
    assert!(text.contains(&series), "{text}");
}

#[test]
fn a_spooled_job_survives_a_sigkill_of_its_spooler() {
    let d = dirs();
    let srv = start_ini(&d, &[]);
    assert_eq!(srv.get("/spool?n=k&block=1").status, 200);
    let started = |d: &Dirs| wait_until(WAIT, || d.out_files("started-k-").pop());
    let first = started(&d).unwrap_or_else(|| panic!("task did not start\n{}", srv.log()));
    let pid: i32 = first.rsplit('-').next().unwrap().parse().unwrap();
    assert_eq!(Some(pid), last_pid(&srv.log(), "spawned the uWSGI spooler"));
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(srv.wait_log("OOOPS the spooler is no more...trying respawn...", WAIT), "{}", srv.log());
    // The task is still on disk: the new spooler runs it again, to the end this time.
    let again = wait_until(WAIT, || d.out_files("started-k-").into_iter().find(|n| *n != first));
    let again = again.unwrap_or_else(|| panic!("the task did not run again\n{}", srv.log()));
    let new_pid = again.rsplit('-').next().unwrap().to_owned();
    let respawned = srv.wait_for(WAIT, |t| last_pid(t, "spawned the uWSGI spooler") == new_pid.parse().ok());
    assert!(respawned, "{}", srv.log());
    std::fs::write(d.out.join("release-k"), "").unwrap();
    let job = d.wait_out("job-k", WAIT).unwrap_or_else(|| panic!("task did not finish\n{}", srv.log()));
    assert_eq!(field(&job, "pid"), Some(new_pid.as_str()), "{job}");
    assert!(wait_until(WAIT, || d.tasks().is_empty().then_some(())).is_some(), "{:?}", d.tasks());
}

#[test]
fn a_killed_mule_is_respawned_and_gets_the_queued_messages_and_sighup_reloads_the_mules() {
    let d = dirs();
    let srv = start_ini(&d, &[]);
    srv.get("/mule?n=a");
    let a = d.wait_out("mule-a", WAIT).unwrap_or_else(|| panic!("mule 1 got nothing\n{}", srv.log()));
    let pid: i32 = field(&a, "pid").unwrap().parse().unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    // Sent while mule 1 is dead or being replaced: it waits in the queue.
    srv.get("/mule?n=b");
    let oops = format!("OOOPS mule 1 (pid: {pid}) crippled...trying respawn...");
    assert!(srv.wait_log(&oops, WAIT), "{}", srv.log());
    let b = d.wait_out("mule-b", WAIT).unwrap_or_else(|| panic!("the queued message was lost\n{}", srv.log()));
    let respawned: i32 = field(&b, "pid").unwrap().parse().unwrap();
    assert_ne!(respawned, pid);
    assert_eq!(field(&b, "mule"), Some("1"));

    // SIGHUP: a graceful reload replaces the mules too.
    srv.signal(Signal::SIGHUP);
    let reloaded = srv.wait_for(WAIT, |t| {
        t.contains("this master was reloaded")
            && t.rsplit("this master was reloaded").next().unwrap().contains("spawned uWSGI mule 3")
    });
    assert!(reloaded, "{}", srv.log());
    srv.get("/mule?n=c");
    let c = d.wait_out("mule-c", WAIT).unwrap_or_else(|| panic!("no mule after the reload\n{}", srv.log()));
    let after: i32 = field(&c, "pid").unwrap().parse().unwrap();
    assert!(after != respawned && after != pid, "{c}");
}

/// `spooler_raw.py` with these options.
fn raw_server(d: &Dirs, extra: &[&str]) -> Server {
    let app = app("spooler_raw.py");
    let spool = d.spool.display().to_string();
    let mut args = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--spooler", &spool];
    args.extend_from_slice(extra);
    let srv =
        Server::start_with(Start { args: args.iter().map(|s| (*s).to_owned()).collect(), env: d.env(), workers: 1 });
    assert!(srv.wait_log("spawned the uWSGI spooler", WAIT), "{}", srv.log());
    srv
}

/// The handler's log lines (`name action pid=.. cwd=.. keys=..`).
fn runs(d: &Dirs) -> Vec<String> {
    std::fs::read_to_string(d.out.join("log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn spooler_options_at_priority_ordered_return_codes_max_tasks_chdir_and_signals() {
    let d = dirs();
    let out = d.out.display().to_string();
    let srv = raw_server(
        &d,
        &[
            "--spooler-frequency",
            "1",
            "--spooler-ordered",
            "--spooler-max-tasks",
            "3",
            "--spooler-chdir",
            &out,
            "--mules",
            "1",
        ],
    );
    // Four tasks due in two seconds: `spooler-ordered` runs the priority subdirectories by
    // number, then the queue's own files.
    let at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 2;
    for (name, priority) in [("p5", "&priority=5"), ("p1", "&priority=1"), ("plain", ""), ("p3", "&priority=3")] {
        assert_eq!(srv.get(&format!("/spool?name={name}&at={at}{priority}")).status, 200, "{}", srv.log());
    }
    let four = wait_until(WAIT, || (runs(&d).len() >= 4).then(|| runs(&d)));
    let four = four.unwrap_or_else(|| panic!("tasks did not run: {:?}\n{}", runs(&d), srv.log()));
    let names: Vec<&str> = four.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(names, ["p1", "p3", "p5", "plain"]);
    // None ran before its `at`.
    for line in &four {
        assert!(field(line, "t").unwrap().parse::<u64>().unwrap() >= at, "{line} (at = {at})");
    }
    // `spooler-chdir`; the vars the callable got (bytes keys plus `spooler_task_name`).
    assert_eq!(field(&four[0], "cwd"), Some(out.as_str()), "{four:?}");
    assert_eq!(field(&four[0], "keys"), Some("at,name,priority,spooler_task_name"), "{four:?}");
    // `spooler-max-tasks = 3`: the fourth task ran in the spooler that replaced the first.
    assert!(srv.wait_log("maximum number of tasks reached (3) recycling ...", WAIT), "{}", srv.log());
    assert_ne!(field(&four[0], "pid"), field(&four[3], "pid"), "{four:?}");
    assert!(wait_until(WAIT, || d.tasks().is_empty().then_some(())).is_some(), "{:?}", d.tasks());

    // SPOOL_RETRY runs the task again on the next scan (twice here), SPOOL_OK removes it.
    srv.get("/spool?name=r&action=retry");
    let retried = wait_until(WAIT, || {
        (runs(&d).iter().filter(|l| l.starts_with("r ")).count() == 3 && d.tasks().is_empty()).then_some(())
    });
    assert!(retried.is_some(), "{:?}\n{}", runs(&d), srv.log());
    // SPOOL_IGNORE leaves the task for another callable: it stays and is offered again.
    let ignored_task = srv.get("/spool?name=i&action=ignore").text();
    let ignored = wait_until(WAIT, || (runs(&d).iter().filter(|l| l.starts_with("i ")).count() >= 2).then_some(()));
    assert!(ignored.is_some(), "{:?}", runs(&d));
    assert_eq!(d.tasks().len(), 1);
    assert!(srv.wait_log("unable to find the spooler function", WAIT), "{}", srv.log());
    // uwsgi.spooler_get_task() reads it as the callable gets it; spooler_jobs() lists it.
    let shown = srv.get(&format!("/task?path={ignored_task}")).text();
    let want = format!(
        "([('action', b'ignore'), ('name', b'i'), ('spooler_task_name', b'{ignored_task}')], ['{ignored_task}'])"
    );
    assert_eq!(shown, want);

    // uWSGI signals registered for mule 1 and for the spooler run there.
    for (n, line) in [(17, "signal 17 mule=1 spooler=False"), (18, "signal 18 mule=0 spooler=True")] {
        assert_eq!(srv.get(&format!("/signal?n={n}")).status, 200);
        let ran = wait_until(WAIT, || runs(&d).iter().any(|l| l == line).then_some(()));
        assert!(ran.is_some(), "{line}: {:?}\n{}", runs(&d), srv.log());
    }

    // A bad `spooler` var names no queue: uwsgi.spool() raises.
    let r = srv.get("/spool?name=x&spooler=/nowhere");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(srv.wait_log("unable to find spooler \"/nowhere\"", WAIT), "{}", srv.log());
}

#[test]
fn harakiri_kills_a_stuck_spooler_task_and_mule_handler() {
    let d = dirs();
    let srv = raw_server(&d, &["--spooler-harakiri", "1", "--mules", "1", "--mule-harakiri", "1"]);
    srv.get("/spool?name=s&action=sleep&secs=60");
    assert!(srv.wait_log("*** HARAKIRI ON THE SPOOLER (pid: ", WAIT), "{}", srv.log());
    assert!(srv.wait_log("OOOPS the spooler is no more...trying respawn...", WAIT), "{}", srv.log());
    // The task stays on disk for the next spooler.
    assert_eq!(d.tasks().len(), 1, "{}", srv.log());
    assert_eq!(srv.get("/msg?m=60").text(), "True");
    let mule = last_pid(&srv.log(), "spawned uWSGI mule 1").unwrap();
    assert!(srv.wait_log(&format!("*** HARAKIRI ON MULE 1 (pid: {mule}) ***"), WAIT), "{}", srv.log());
    assert!(srv.wait_log(&format!("OOOPS mule 1 (pid: {mule}) crippled...trying respawn..."), WAIT), "{}", srv.log());
}

// --- the real uWSGI 2.0.31 on the same queue

/// A uWSGI 2.0.31 from `PyPI`, installed into a virtualenv under `dir` (pip's cache makes the
/// second install quick). `None`, with the reason printed, when pip cannot reach the index.
fn install_uwsgi(dir: &Path) -> Option<PathBuf> {
    let venv = dir.join("uwsgi-venv");
    let made = Command::new(it::venv_python()).args(["-m", "venv"]).arg(&venv).status().unwrap();
    assert!(made.success(), "python -m venv failed");
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "--disable-pip-version-check", "--quiet", "uwsgi==2.0.31"])
        .output()
        .unwrap();
    if pip.status.success() {
        return Some(venv.join("bin/uwsgi"));
    }
    let err = String::from_utf8_lossy(&pip.stderr);
    let offline = [
        "NewConnectionError",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "No matching distribution found",
    ];
    if offline.iter().any(|s| err.contains(s)) {
        eprintln!("skipped: pip cannot reach the package index to install uWSGI 2.0.31:\n{err}");
        return None;
    }
    panic!("pip install uwsgi==2.0.31 failed:\n{err}");
}

/// A running uWSGI, killed (its process group) on drop.
struct Uwsgi {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Uwsgi {
    fn start(bin: &Path, d: &Dirs, extra: &[&str]) -> Uwsgi {
        // A port for uWSGI: bound here, released, then bound by uWSGI.
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let log = d.tmp.path().join(format!("uwsgi-{}.log", addr.port()));
        let out = std::fs::File::create(&log).unwrap();
        let home = bin.parent().unwrap().parent().unwrap();
        let child = Command::new(bin)
            .args(["--ini", &ini(), "--http-socket", &addr.to_string()])
            .arg("--home")
            .arg(home)
            .args(extra)
            .envs(d.env())
            .current_dir(d.tmp.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        let u = Uwsgi { child, log, addr };
        let up = wait_until(WAIT, || {
            (u.log().contains("spawned uWSGI mule 3") && TcpStream::connect(addr).is_ok()).then_some(())
        });
        assert!(up.is_some(), "uWSGI did not start:\n{}", u.log());
        u
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    fn get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"), "{reply}\n{}", self.log());
        reply.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
    }

    /// SIGINT (uWSGI's immediate shutdown) and wait for the exit. uWSGI itself may hang
    /// there (a worker still importing the app takes the SIGINT as a `KeyboardInterrupt` and
    /// is never buried): that is the peer's business, not what this test checks, so the
    /// group is killed after the wait. The spool files it wrote are on disk either way.
    fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        if wait_until(WAIT, || self.child.try_wait().unwrap()).is_none() {
            eprintln!("uWSGI did not stop on SIGINT, killing its process group:\n{}", self.log());
            let _ = nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Uwsgi {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[test]
fn uwsgi_and_ruwsgi_drain_each_others_spool_directories() {
    let d = dirs();
    let Some(uwsgi) = install_uwsgi(d.tmp.path()) else { return };

    // uWSGI with `lazy-apps` writes the tasks: its spooler, forked without the app, has no
    // callable for them, so they stay in the queue.
    let writer = Uwsgi::start(&uwsgi, &d, &["--lazy-apps"]);
    let from_uwsgi = [writer.get("/spool?n=u1&body=from-uwsgi"), writer.get("/spool?n=u2")];
    writer.stop();
    assert_eq!(d.tasks().len(), 2, "{from_uwsgi:?}");
    assert!(d.out_files("job-").is_empty());

    // ruwsgi on the same ini runs them.
    let srv = start_ini(&d, &[]);
    for (n, body) in [("u1", "from-uwsgi"), ("u2", "")] {
        let job = d.wait_out(&format!("job-{n}"), WAIT).unwrap_or_else(|| panic!("{n} did not run\n{}", srv.log()));
        assert_eq!((field(&job, "server"), field(&job, "body")), (Some("ruwsgi"), Some(body)), "{job}");
    }
    assert!(wait_until(WAIT, || d.tasks().is_empty().then_some(())).is_some(), "{:?}", d.tasks());
    drop(srv);

    // And the other way round: ruwsgi with `lazy-apps` writes, uWSGI runs them.
    let srv = start_ini(&d, &["--lazy-apps"]);
    for n in ["r1", "r2"] {
        assert_eq!(srv.get(&format!("/spool?n={n}&body=from-ruwsgi")).status, 200, "{}", srv.log());
    }
    // Its spooler, forked without the app, can't run them either (no @spool function is
    // registered in it), so they stay.
    assert!(srv.wait_log("unable to find the spooler function", WAIT), "{}", srv.log());
    drop(srv);
    assert_eq!(d.tasks().len(), 2);
    let runner = Uwsgi::start(&uwsgi, &d, &[]);
    for n in ["r1", "r2"] {
        let job = d.wait_out(&format!("job-{n}"), WAIT).unwrap_or_else(|| panic!("{n} did not run\n{}", runner.log()));
        assert_eq!((field(&job, "server"), field(&job, "body")), (Some("uwsgi"), Some("from-ruwsgi")), "{job}");
    }
    assert!(wait_until(WAIT, || d.tasks().is_empty().then_some(())).is_some(), "{:?}", d.tasks());
    runner.stop();
}

#[test]
fn touch_files_restart_the_spoolers_and_the_mules() {
    let d = dirs();
    let (spoolers, mules) = (d.tmp.path().join("spoolers.touch"), d.tmp.path().join("mules.touch"));
    let srv = raw_server(
        &d,
        &[
            "--mules",
            "1",
            "--touch-spoolers-reload",
            spoolers.to_str().unwrap(),
            "--touch-mules-reload",
            mules.to_str().unwrap(),
        ],
    );
    assert!(srv.wait_log("spawned uWSGI mule 1", WAIT), "{}", srv.log());
    let (spooler, mule) = (
        last_pid(&srv.log(), "spawned the uWSGI spooler").unwrap(),
        last_pid(&srv.log(), "spawned uWSGI mule 1").unwrap(),
    );
    std::fs::write(&spoolers, "").unwrap();
    assert!(srv.wait_log("spoolers.touch has been touched... spoolers reload !!! ***", WAIT), "{}", srv.log());
    let respawned = wait_until(WAIT, || last_pid(&srv.log(), "spawned the uWSGI spooler").filter(|&p| p != spooler));
    assert!(respawned.is_some(), "{}", srv.log());
    std::fs::write(&mules, "").unwrap();
    assert!(srv.wait_log("mules.touch has been touched... mules reload !!! ***", WAIT), "{}", srv.log());
    let respawned = wait_until(WAIT, || last_pid(&srv.log(), "spawned uWSGI mule 1").filter(|&p| p != mule));
    assert!(respawned.is_some(), "{}", srv.log());
    // An expected exit: no "OOOPS".
    assert!(!srv.log().contains("OOOPS"), "{}", srv.log());
    // The new spooler works.
    srv.get("/spool?name=after");
    assert!(wait_until(WAIT, || runs(&d).iter().any(|l| l.starts_with("after ")).then_some(())).is_some());
}

#[test]
fn a_reload_lets_the_spooler_finish_its_task() {
    let d = dirs();
    let srv = raw_server(&d, &[]);
    srv.get("/spool?name=s&action=sleep&secs=2");
    let running = wait_until(WAIT, || runs(&d).iter().any(|l| l.starts_with("s sleep")).then_some(()));
    assert!(running.is_some(), "{}", srv.log());
    srv.signal(Signal::SIGHUP);
    assert!(srv.wait_log("this master was reloaded", WAIT), "{}", srv.log());
    // Differs from uWSGI (which kills its spooler at once, so the task runs again): the task
    // ran to its end, once, before the master re-executed.
    let log = srv.log();
    let (before, _) = log.split_once("this master was reloaded").unwrap();
    assert!(before.contains("done with task uwsgi_spoolfile_on_"), "{log}");
    assert!(!before.contains("NO MERCY"), "{log}");
    assert!(d.tasks().is_empty(), "{:?}", d.tasks());
    assert!(srv.wait_log("spawned the uWSGI spooler", WAIT));
    assert_eq!(runs(&d).iter().filter(|l| l.starts_with("s ")).count(), 1, "{:?}", runs(&d));
}

#[test]
fn lazy_apps_spooler_import_and_a_module_function_mule() {
    let d = dirs();
    let app_file = app("spooler_raw.py");
    let apps = it::repo().join("tests/apps").display().to_string();
    // With `lazy-apps` the master never imports the app: the spooler gets its callable from
    // `spooler-import`, the mule its code from `mule = module:function`.
    let srv = raw_server(
        &d,
        &["--lazy-apps", "--spooler-import", &app_file, "--pythonpath", &apps, "--mule", "spooler_raw:mule_main"],
    );
    assert!(srv.wait_log(&format!("spooler-import: imported {app_file}"), WAIT), "{}", srv.log());
    srv.get("/spool?name=lazy");
    let ran = wait_until(WAIT, || runs(&d).iter().any(|l| l.starts_with("lazy ok")).then_some(()));
    assert!(ran.is_some(), "{:?}\n{}", runs(&d), srv.log());
    let started = wait_until(WAIT, || runs(&d).iter().any(|l| l == "mule-main mule=1").then_some(()));
    assert!(started.is_some(), "{:?}\n{}", runs(&d), srv.log());
    assert_eq!(srv.get("/msg?m=hello").text(), "True");
    let got = wait_until(WAIT, || runs(&d).iter().any(|l| l == "mule-main got hello").then_some(()));
    assert!(got.is_some(), "{:?}\n{}", runs(&d), srv.log());
}

/// `processes = 0` is uWSGI's "no-workers" mode: the master runs its mules (and spoolers,
/// daemons, crons) and no worker; it reloads and stops as usual.
#[test]
fn processes_zero_runs_the_mules_without_workers() {
    let dir = tempfile::tempdir().unwrap();
    let mule = dir.path().join("beat.py");
    let beats = dir.path().join("beats");
    std::fs::write(
        &mule,
        format!(
            "import time, uwsgi\nwhile True:\n    with open({:?}, 'a') as f:\n        f.write('mule %d\\n' % uwsgi.mule_id())\n    time.sleep(0.2)\n",
            beats.display().to_string()
        ),
    )
    .unwrap();
    let app = it::app("hello.py");
    let mut srv = Server::start(&[
        "--master",
        "--processes",
        "0",
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &app,
        "--mule",
        mule.to_str().unwrap(),
    ]);
    assert!(srv.wait_log("Operational MODE: no-workers", WAIT), "{}", srv.log());
    let beating = wait_until(WAIT, || std::fs::read_to_string(&beats).ok().filter(|t| t.lines().count() >= 2));
    assert!(beating.is_some_and(|t| t.starts_with("mule 1\n")), "{}", srv.log());
    srv.signal(Signal::SIGTERM);
    assert_eq!(srv.wait_exit(WAIT), Some(0), "{}", srv.log());
    assert!(!srv.log().contains("spawned uWSGI worker"), "{}", srv.log());
}
