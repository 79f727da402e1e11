//! Core server behaviour (issue: core server): HTTP/1.1, WSGI, processes, logs.

use it::{app, Server};

#[test]
fn hello_world() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py")]);
    let r = srv.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("content-length"), Some("13"));
    assert!(srv.wait_log("GET / => generated 13 bytes", std::time::Duration::from_secs(5)), "{}", srv.log());
}

#[test]
fn processes_and_single_threaded_master() {
    let srv = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("hello.py"), "--processes", "2", "--threads", "2"]);
    assert_eq!(srv.get("/").status, 200);
    assert_eq!(srv.worker_pids().len(), 2);
    assert_eq!(it::thread_count(srv.pid()), 1, "the master must have exactly one thread");
}
