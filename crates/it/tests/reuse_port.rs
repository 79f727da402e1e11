//! Issue 14 (2): `reuse-port`. Two instances bind the same port (an old and a new one
//! overlapping in a blue/green switch); the kernel spreads connections over both, and one
//! can stop gracefully while the other goes on serving, without a client seeing an error.

use std::collections::HashSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use it::Server;
use nix::sys::signal::Signal;

fn instance(address: &str) -> Server {
    let app = it::app("wsgi_features.py");
    Server::start(&["--http-socket", address, "--wsgi-file", &app, "--processes", "1", "--reuse-port"])
}

/// One request on a new connection: the answering worker's pid, or what went wrong.
fn pid_at(addr: SocketAddr) -> Result<i32, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let r = it::read_response(&mut BufReader::new(s)).map_err(|e| format!("read: {e}"))?;
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    r.text().parse().map_err(|e| format!("pid: {e}"))
}

#[test]
fn issue_14_two_instances_share_a_port_and_one_stops_while_the_other_serves() {
    let mut first = instance("127.0.0.1:0");
    let addr = first.addr();
    let second = instance(&addr.to_string());
    assert_eq!(second.addr(), addr);
    let pids: [HashSet<i32>; 2] =
        [first.worker_pids().into_iter().collect(), second.worker_pids().into_iter().collect()];

    // Both serve: the kernel hashes each new connection to one of the two sockets.
    let mut seen = [false, false];
    for _ in 0..200 {
        let pid = pid_at(addr).expect("served");
        for (i, p) in pids.iter().enumerate() {
            seen[i] |= p.contains(&pid);
        }
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(seen, [true, true], "both instances should get connections");

    // A client sends requests throughout the first instance's graceful stop: none fails.
    let stop = AtomicBool::new(false);
    let (failures, served_by_second) = thread::scope(|s| {
        let client = s.spawn(|| {
            let mut failures = Vec::new();
            let mut served_by_second = 0;
            let started = Instant::now();
            for i in 0..2000 {
                if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_mins(1) {
                    break;
                }
                match pid_at(addr) {
                    Ok(pid) if pids[1].contains(&pid) => served_by_second += 1,
                    Ok(_) => {}
                    Err(e) => failures.push(format!("request {i}: {e}")),
                }
            }
            (failures, served_by_second)
        });
        thread::sleep(Duration::from_millis(200));
        first.signal(Signal::SIGTERM);
        assert_eq!(first.wait_exit(Duration::from_secs(20)), Some(0), "{}", first.log());
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        client.join().unwrap()
    });
    assert!(failures.is_empty(), "{} requests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(served_by_second > 0);
    // The second instance alone serves now.
    for _ in 0..20 {
        assert!(pids[1].contains(&pid_at(addr).expect("served by the second instance")));
    }
}

/// Without `reuse-port` a second instance on a taken port fails to start, naming the address.
#[test]
fn issue_14_without_reuse_port_the_port_is_taken() {
    let first = instance("127.0.0.1:0");
    let address = first.addr().to_string();
    let app = it::app("wsgi_features.py");
    let dir = tempfile::tempdir().unwrap();
    let (code, log) =
        it::run_to_exit(dir.path(), &["--http-socket", &address, "--wsgi-file", &app], Duration::from_secs(20));
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&format!("cannot bind {address}")), "{log}");
}
