//! Reliability under churn (issue 19): graceful reloads with busy keep-alive clients,
//! SIGTERM while requests run, a worker out of file descriptors, and the memory cost of
//! many idle connections. Each test drives the real server and counts what a client sees.

use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use it::Server;
use nix::sys::signal::Signal;

/// A keep-alive client sending POST requests in a loop until `stop`: reconnects after a response with
/// `Connection: close`; returns one line per request that got no response.
fn keepalive_client(addr: SocketAddr, stop: &AtomicBool, served: &AtomicU64) -> Vec<String> {
    const REQUEST: &[u8] = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    let mut failures = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    'connections: while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let s = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("connect: {e}"));
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut answered = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = (&s).write_all(REQUEST) {
                failures.push(format!("write after {answered} responses on the connection: {e}"));
                continue 'connections;
            }
            match it::read_response(&mut reader) {
                Ok(r) => {
                    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]), "{r:?}");
                    served.fetch_add(1, Ordering::Relaxed);
                    answered += 1;
                    if r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                        continue 'connections;
                    }
                }
                Err(e) => {
                    failures.push(format!("no response after {answered} responses on the connection: {e}"));
                    continue 'connections;
                }
            }
        }
    }
    failures
}

/// Waits until `served` grew by `n` (panics after 30 s).
fn wait_served(served: &AtomicU64, n: u64) {
    let want = served.load(Ordering::Relaxed) + n;
    let deadline = Instant::now() + Duration::from_secs(30);
    while served.load(Ordering::Relaxed) < want {
        assert!(Instant::now() < deadline, "clients made no progress");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Issue 19 (1): 6 keep-alive clients POST in a loop through two graceful reloads; every
/// request they send is answered (a stopping worker ends with `Connection: close`, and
/// closes idle connections only between requests).
#[test]
fn issue_19_reload_answers_every_keepalive_request() {
    let srv = it::http_server("counter.py", "2", "1", &["--disable-logging"]);
    let addr = srv.addr();
    let stop = AtomicBool::new(false);
    let served = AtomicU64::new(0);
    let failures: Vec<String> = thread::scope(|s| {
        let clients: Vec<_> = (0..6).map(|_| s.spawn(|| keepalive_client(addr, &stop, &served))).collect();
        wait_served(&served, 100);
        for round in 1..=2 {
            srv.signal(Signal::SIGHUP);
            let reloaded =
                srv.wait_for(Duration::from_secs(30), |t| t.matches("spawned uWSGI worker").count() >= 2 + 2 * round);
            assert!(reloaded, "reload {round} did not finish:\n{}", srv.log());
            wait_served(&served, 100);
        }
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().flat_map(|c| c.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} requests without a response:\n{}", failures.len(), failures.join("\n"));
}

fn features_server(processes: &str, threads: &str) -> Server {
    it::http_server("wsgi_features.py", processes, threads, &[])
}

fn is_close(r: &it::Response) -> bool {
    r.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// Issue 19 (1): when a worker stops, the response it is computing goes out with
/// `Connection: close`, a request pipelined behind one in flight is still answered (the last
/// one with `Connection: close`), and an idle keep-alive connection is closed without a byte.
#[test]
fn issue_19_stopping_worker_answers_in_flight_and_pipelined_requests() {
    let srv = features_server("1", "2");
    let mut idle = srv.connect();
    idle.write_all(b"GET /pid HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let first = it::read_response(&mut BufReader::new(idle.try_clone().unwrap())).unwrap();
    assert!(!is_close(&first), "{first:?}");
    let mut single = srv.connect();
    single.write_all(b"GET /sleep?s=1.5 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let mut piped = srv.connect();
    piped.write_all(b"GET /sleep?s=1.5 HTTP/1.1\r\nHost: a\r\n\r\nGET /pid HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(300));
    srv.signal(Signal::SIGHUP);

    let mut r = BufReader::new(single.try_clone().unwrap());
    let answer = it::read_response(&mut r).expect("in-flight request answered");
    assert_eq!((answer.status, answer.text().as_str()), (200, "slept 1.5"));
    assert!(is_close(&answer), "the last response of a stopping worker says Connection: close: {answer:?}");

    let mut r = BufReader::new(piped.try_clone().unwrap());
    let slept = it::read_response(&mut r).expect("first pipelined request answered");
    assert_eq!(slept.text(), "slept 1.5");
    let pid = it::read_response(&mut r).expect("request pipelined behind it answered too");
    assert_eq!(pid.status, 200);
    assert!(is_close(&pid), "{pid:?}");

    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let rest =
        it::read_until_eof_or_reset(&mut idle).expect("idle keep-alive connection closed by the stopping worker");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

/// Issue 19 (2): after SIGTERM no new client joins the listen backlog, not even while
/// requests are still running: its SYN goes unanswered, and once the backlog the server
/// had is served, it is refused (issue 14: a client that connected as the signal arrived
/// is served, not reset); those in flight finish with `Connection: close`; the master
/// exits before the mercy runs out and nothing is respawned.
#[test]
fn issue_19_sigterm_stops_accepting_at_once() {
    let mut srv = features_server("1", "2");
    let addr = srv.addr();
    let mut slow: Vec<TcpStream> = (0..2).map(|_| srv.connect()).collect();
    for s in &mut slow {
        s.write_all(b"GET /sleep?s=3 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    }
    thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    srv.signal(Signal::SIGTERM);
    let mut raced = Vec::new();
    let refused = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break sent.elapsed(),
            // Kept out: the SYN was dropped while the server serves what it has.
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {}
            Err(e) => panic!("connect: {e}"),
            Ok(mut s) => {
                s.write_all(b"GET /sleep?s=0 HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
                raced.push(s);
            }
        }
        assert!(sent.elapsed() < Duration::from_secs(10), "still accepting 10 s after SIGTERM:\n{}", srv.log());
        thread::sleep(Duration::from_millis(20));
    };
    // Only while the master had not acted on the signal yet (20 ms apart): a few at most.
    assert!(raced.len() < 5, "{} connections joined the backlog after SIGTERM", raced.len());
    assert!(refused < Duration::from_secs(8), "refused only {refused:?} after SIGTERM");
    for s in slow {
        let r = it::read_response(&mut BufReader::new(s)).expect("request in flight at SIGTERM answered");
        assert_eq!((r.status, r.text().as_str()), (200, "slept 3"));
        assert!(is_close(&r), "{r:?}");
    }
    for s in raced {
        let r = it::read_response(&mut BufReader::new(s));
        assert!(r.as_ref().is_ok_and(|r| r.status == 200), "connection made as SIGTERM came: {r:?}\n{}", srv.log());
    }
    assert_eq!(srv.wait_exit(Duration::from_secs(10)), Some(0), "{}", srv.log());
    let log = srv.log();
    assert!(!log.contains("respawn") && !log.contains("killing them"), "{log}");
}

/// Issue 19 (3): a worker out of file descriptors stops polling its listener instead of
/// spinning on `accept()`: it uses (almost) no CPU, logs the shortage once, and serves
/// again as soon as connections close.
#[test]
fn issue_19_out_of_fds_backs_off_logs_once_and_recovers() {
    let srv = it::http_server("counter.py", "1", "1", &[]);
    let worker = srv.worker_pids()[0];
    // A served request means the worker has opened everything it keeps open (its epoll,
    // its wake-up fds): fds it opens later would eat into the room left for connections.
    assert_eq!(srv.get("/count").status, 200);
    // The limit bounds fd numbers: room for 8 more above the highest one in use.
    let highest = std::fs::read_dir(format!("/proc/{worker}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
        .max()
        .unwrap();
    let limit = highest + 9;
    let status = std::process::Command::new("prlimit")
        .args([format!("--pid={worker}"), format!("--nofile={limit}:{limit}")])
        .status()
        .expect("prlimit (util-linux)");
    assert!(status.success());
    // Each sends part of a request line and stops: connections that hold an fd each.
    let held: Vec<TcpStream> = (0..limit)
        .map(|_| {
            let mut s = srv.connect();
            s.write_all(b"GET /cou").unwrap();
            s
        })
        .collect();
    assert!(srv.wait_log("Too many open files", Duration::from_secs(5)), "{}", srv.log());
    let cpu = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{worker}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu();
    thread::sleep(Duration::from_secs(2));
    let ticks = cpu() - before;
    eprintln!(
        "worker CPU while out of fds: {ticks} ticks in 2 s; {} log lines",
        srv.log().matches("Too many open files").count()
    );
    // 2 s of spinning is 200 ticks (USER_HZ = 100); a paused worker wakes a few times a second.
    assert!(ticks < 40, "worker used {ticks} CPU ticks in 2 s while out of fds");
    assert_eq!(srv.log().matches("Too many open files").count(), 1, "{}", srv.log());
    drop(held);
    let mut s = srv.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /count HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    let r = it::read_response(&mut BufReader::new(s));
    assert!(r.as_ref().is_ok_and(|r| r.status == 200), "not served once connections closed: {r:?}\n{}", srv.log());
}

/// RSS of a process in bytes, from `/proc/PID/status`.
fn rss(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok()))?
        })
        .unwrap_or(0)
        * 1024
}

fn total_rss(srv: &Server) -> u64 {
    rss(srv.pid()) + srv.worker_pids().into_iter().map(rss).sum::<u64>()
}

/// Issue 19 (4): 10,000 idle keep-alive connections on 2 workers cost little memory, and
/// it is given back when they close.
#[test]
fn issue_19_ten_thousand_idle_keepalive_connections_cost_little_memory() {
    const CONNECTIONS: usize = 10_000;
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(hard >= CONNECTIONS as u64 + 500, "this test needs {CONNECTIONS} fds; hard limit is {hard}");
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let srv = it::http_server("hello.py", "2", "1", &["--listen", "1024", "--disable-logging"]);
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    // Warm up both workers (first requests allocate in Python) before the baseline.
    let warm: Vec<TcpStream> = (0..50).map(|_| srv.connect()).collect();
    for s in &warm {
        (&*s).write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(it::read_response(&mut BufReader::new(s)).unwrap().status, 200);
    }
    drop(warm);
    let idle_before = total_rss(&srv);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut s = TcpStream::connect(srv.addr()).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        conns.push(s);
    }
    for s in &mut conns {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = BufReader::new(&*s);
        let r = it::read_response(&mut reader).expect("response");
        assert_eq!(r.status, 200);
    }
    assert!(started.elapsed() < Duration::from_mins(1));
    let held = total_rss(&srv);
    drop(conns);
    // Wait until the workers have closed their side (their RSS stops falling) or 10 s.
    let mut after = total_rss(&srv);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(250));
        let now = total_rss(&srv);
        if now >= after && srv.get("/").status == 200 {
            after = now;
            break;
        }
        after = now;
    }
    eprintln!(
        "RSS master+2 workers: {:.1} MiB idle, {:.1} MiB with {CONNECTIONS} idle keep-alive connections, {:.1} MiB after they closed",
        mib(idle_before),
        mib(held),
        mib(after)
    );
    assert!(held < idle_before + (60 << 20), "{:.1} MiB for {CONNECTIONS} idle connections", mib(held - idle_before));
    assert!(
        after < idle_before + (10 << 20),
        "{:.1} MiB kept after they closed ({:.1} MiB idle, {:.1} MiB with them)",
        mib(after - idle_before),
        mib(idle_before),
        mib(held)
    );
}

/// Issue 19 (3): a low soft `RLIMIT_NOFILE` is raised to the hard limit at start-up (as
/// nginx's `worker_rlimit_nofile` does), and the workers inherit it.
#[test]
fn issue_19_soft_fd_limit_raised_to_the_hard_limit() {
    let dir = tempfile::tempdir().unwrap();
    let app = it::app("hello.py");
    let mut child = std::process::Command::new("prlimit")
        .args(["--nofile=256:4096", "--"])
        .arg(it::ruwsgi_command())
        .args(["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--processes", "1"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux)");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.contains("spawned uWSGI worker") && Instant::now() < deadline {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap_or(0) == 0 {
            break;
        }
        log.push_str(&line);
    }
    let pid = child.id() as i32;
    let limits = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/limits"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| l.split_whitespace().skip(3).take(2).collect::<Vec<_>>().join(" "))
            .unwrap()
    };
    let worker = it::children(pid);
    let master_limits = limits(pid);
    let worker_limits = worker.first().map(|w| limits(*w));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
    for w in worker {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(w), Signal::SIGKILL);
    }
    let _ = child.wait();
    assert!(log.contains("detected max file descriptor number: 4096"), "{log}");
    assert_eq!(master_limits, "4096 4096");
    assert_eq!(worker_limits.as_deref(), Some("4096 4096"));
}

/// Issue 19 (1), with `wrk` (its keep-alive connections are never idle for long): two
/// reloads under `wrk -c16` cost no socket error and no non-2xx answer.
#[test]
fn issue_19_wrk_sees_no_error_through_reloads() {
    let srv = it::http_server("hello.py", "2", "1", &["--disable-logging"]);
    let wrk = std::process::Command::new("wrk")
        .args(["-t1", "-c16", "-d60s", &format!("http://{}/", srv.addr())])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("wrk is needed (apt-get install wrk)");
    // The load runs for a while before, between and after the reloads.
    let load = || thread::sleep(Duration::from_millis(700));
    load();
    for round in 1..=2 {
        srv.signal(Signal::SIGHUP);
        let reloaded =
            srv.wait_for(Duration::from_secs(30), |t| t.matches("spawned uWSGI worker").count() >= 2 + 2 * round);
        assert!(reloaded, "reload {round} did not finish:\n{}", srv.log());
        load();
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(wrk.id() as i32), Signal::SIGINT).unwrap();
    let out = wrk.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("requests in"), "{report}");
    assert!(!report.contains("Socket errors") && !report.contains("Non-2xx"), "{report}");
}
