//! A master killed with SIGKILL takes its workers with it (uWSGI's `no-orphans`, which
//! ruwsgi's option table says is always on): no orphan keeps serving on the sockets, so
//! the instance can be started again on the same addresses (the cluster test's `kill -9`
//! scenario, issue 14).

use std::time::{Duration, Instant};

use it::Server;
use nix::sys::signal::Signal;

#[test]
fn issue_14_workers_exit_when_the_master_is_killed() {
    let mut srv =
        Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &it::app("hello.py"), "--processes", "2"]);
    let workers = srv.worker_pids();
    assert_eq!(workers.len(), 2);
    let addr = srv.addr();
    srv.signal(Signal::SIGKILL);
    srv.wait_exit(Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = |pid: &i32| std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(*pid);
    while workers.iter().any(alive) {
        assert!(Instant::now() < deadline, "orphan workers {workers:?} still run:\n{}", srv.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing listens any more: a new instance can bind the same address.
    assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let again = Server::start(&["--http-socket", &addr.to_string(), "--wsgi-file", &it::app("hello.py")]);
    assert_eq!(again.get("/").status, 200);
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}
