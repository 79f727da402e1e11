//! Real-world config files (issue 11): an ini written like public configs that uWSGI 2.0
//! serves (comments after numbers, `post-buffering = true`, placeholder arithmetic, an unset
//! `$(VAR)`, `show-config`/`print` in the file, `for-glob`, `if-*` blocks) starts, serves,
//! and logs what it read; `if-reload` holds after a graceful reload.

use std::time::Duration;

use it::{Server, Start};
use nix::sys::signal::Signal;

/// Answers with `NAME=value` lines for the variables the ini sets with `env`.
const APP: &str = "import os\n\n\
def application(environ, start_response):\n    \
    names = ['FLAVOUR', 'FROM_GLOB_A', 'FROM_GLOB_B', 'NO_MISSING', 'UNSET', 'PHASE']\n    \
    body = ''.join('%s=%s\\n' % (n, os.environ.get(n)) for n in names).encode()\n    \
    start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
    return [body]\n";

const INI: &str = "[uwsgi]
; like configs found in the wild
http-socket = 127.0.0.1:0   # loopback only
wsgi-file = app.py
master = true
processes = %(%k * 2)
threads = %(2 + 1)
harakiri = 60 ; seconds
max-requests = 1000  # restart workers
post-buffering = true
env = UNSET=$(RUWSGI_IT_SURELY_UNSET)
show-config = true
print = hello from print, %(threads) threads
for-glob = conf.d/*.ini
include = %(_)
endfor =
if-env = RUWSGI_IT_FLAVOUR
env = FLAVOUR=%(_)
endif =
if-not-exists = missing.txt
env = NO_MISSING=yes
endif =
if-not-reload =
env = PHASE=first
endif =
if-reload =
env = PHASE=reloaded
endif =
";

#[test]
fn real_world_ini_serves_and_logs_what_it_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), APP).unwrap();
    std::fs::write(dir.path().join("app.ini"), INI).unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/a.ini"), "[uwsgi]\nenv = FROM_GLOB_A=1\n").unwrap();
    std::fs::write(dir.path().join("conf.d/b.ini"), "[uwsgi]\nenv = FROM_GLOB_B=2\n").unwrap();
    let workers = 2 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let srv = Server::start_in(
        dir,
        Start { args: vec!["app.ini".to_owned()], env: vec![("RUWSGI_IT_FLAVOUR", "blue".to_owned())], workers },
    );
    let reply = srv.get("/");
    assert_eq!(reply.status, 200, "{}", srv.log());
    assert_eq!(
        reply.text(),
        "FLAVOUR=blue\nFROM_GLOB_A=1\nFROM_GLOB_B=2\nNO_MISSING=yes\nUNSET=$(RUWSGI_IT_SURELY_UNSET)\nPHASE=first\n"
    );
    let log = srv.log();
    assert!(log.contains("hello from print, 3 threads\n"), "{log}");
    // show-config in the file: the resolved config is logged, and the server still starts.
    assert!(log.contains(";uWSGI instance configuration\n[uwsgi]\n"), "{log}");
    for line in [format!("processes = {workers}"), "threads = 3".to_owned(), "harakiri = 60".to_owned()] {
        assert!(log.contains(&format!("\n{line}\n")), "{line}: {log}");
    }
    assert!(log.contains("WARNING: app.ini:10: post-buffering = \"true\": read as 0"), "{log}");
    assert!(log.contains("WARNING: app.ini:11: env: environment variable RUWSGI_IT_SURELY_UNSET is not set"), "{log}");
    // Comments after a value are read silently, as uWSGI does.
    assert!(!log.contains("harakiri = \"60"), "{log}");
    assert!(!log.contains("max-requests = \"1000"), "{log}");
    assert_eq!(log.lines().filter(|l| l.starts_with("WARNING: app.ini")).count(), 2, "{log}");

    // The re-executed master reads its config again, now with `if-reload` holding.
    srv.signal(Signal::SIGHUP);
    let reloaded = srv.wait_for(Duration::from_secs(30), |l| {
        l.matches("*** Starting ruwsgi").count() >= 2 && l.matches("spawned uWSGI worker").count() >= 2 * workers
    });
    assert!(reloaded, "{}", srv.log());
    assert!(srv.get("/").text().ends_with("PHASE=reloaded\n"), "{}", srv.log());
}
