//! Test harness: starts the real `ruwsgi` command (from `$RUWSGI`, else `PATH`) in its own
//! process group and temp dir, waits for its start-up log lines (never a fixed sleep), and
//! speaks raw HTTP/uwsgi bytes to it. `Server` kills the whole group on drop.
#![allow(clippy::missing_panics_doc, clippy::must_use_candidate, clippy::needless_pass_by_value)]

pub mod nginx;
pub mod tls;
pub mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

/// Path of a test app in `tests/apps/`.
pub fn app(name: &str) -> String {
    repo().join("tests/apps").join(name).display().to_string()
}

/// The `ruwsgi` command to run.
pub fn ruwsgi_command() -> String {
    std::env::var("RUWSGI").unwrap_or_else(|_| "ruwsgi".to_owned())
}

/// Collected output of the server, with a condvar to wait on.
#[derive(Default)]
struct LogBuf {
    text: Mutex<String>,
    grew: Condvar,
}

/// A running `ruwsgi`.
pub struct Server {
    child: Child,
    log: Arc<LogBuf>,
    /// Temp dir the server runs in (and where tests put sockets, inis, files).
    pub dir: tempfile::TempDir,
    /// Addresses of the TCP sockets, in config order.
    pub addrs: Vec<SocketAddr>,
}

/// Options for starting a server.
pub struct Start<'a> {
    /// Arguments after `ruwsgi`.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(&'a str, String)>,
    /// Wait for this many "spawned uWSGI worker" lines (0: don't wait for workers).
    pub workers: usize,
}

impl Server {
    /// Starts `ruwsgi ARGS` and waits until it serves. Use `127.0.0.1:0` for ports.
    pub fn start(args: &[&str]) -> Server {
        let processes = args
            .iter()
            .position(|a| *a == "--processes" || *a == "--workers" || *a == "-p")
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(1);
        Self::start_with(Start {
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: vec![],
            workers: processes,
        })
    }

    /// Starts with full options; panics with the log if it doesn't come up in 20 s.
    pub fn start_with(opts: Start<'_>) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, opts)
    }

    /// Starts `ruwsgi ARGS` in an existing temp dir, waiting for `workers` workers.
    pub fn start_args_in(dir: tempfile::TempDir, args: &[&str], workers: usize) -> Server {
        Self::start_in(dir, Start { args: args.iter().map(|s| (*s).to_owned()).collect(), env: vec![], workers })
    }

    /// Writes `ini` as `app.ini` into `dir` and starts `ruwsgi --ini app.ini` there.
    pub fn start_ini_in(dir: tempfile::TempDir, ini: &str, workers: usize, env: Vec<(&str, String)>) -> Server {
        std::fs::write(dir.path().join("app.ini"), ini).expect("write ini");
        Self::start_in(dir, Start { args: vec!["--ini".into(), "app.ini".into()], env, workers })
    }

    /// Starts in an existing temp dir (for inis written there first).
    pub fn start_in(dir: tempfile::TempDir, opts: Start<'_>) -> Server {
        Self::start_wrapped(dir, &[], opts)
    }

    /// Starts `WRAPPER... ruwsgi ARGS` (e.g. `systemd-socket-activate -l ADDR`), the wrapper
    /// exec'ing ruwsgi in the same process.
    pub fn start_wrapped(dir: tempfile::TempDir, wrapper: &[&str], opts: Start<'_>) -> Server {
        let ruwsgi = ruwsgi_command();
        let mut cmd = match wrapper.split_first() {
            Some((program, rest)) => {
                let mut cmd = Command::new(program);
                cmd.args(rest).arg(&ruwsgi);
                cmd
            }
            None => Command::new(&ruwsgi),
        };
        cmd.args(&opts.args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", ruwsgi_command()));
        let log = Arc::new(LogBuf::default());
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    log.text.lock().unwrap().push_str(&line);
                    log.grew.notify_all();
                    line.clear();
                }
            });
        }
        let mut server = Server { child, log, dir, addrs: Vec::new() };
        let want = opts.workers;
        let ok = server.wait_for(Duration::from_secs(20), |text| {
            text.matches("spawned uWSGI worker").count() >= want && (want > 0 || text.contains("bound to"))
        });
        assert!(ok, "ruwsgi did not start:\n{}", server.log());
        server.addrs = server
            .log()
            .lines()
            .filter_map(|l| l.split("bound to TCP address ").nth(1)?.split(' ').next()?.parse().ok())
            .collect();
        server
    }

    /// Everything the server has printed so far.
    pub fn log(&self) -> String {
        self.log.text.lock().unwrap().clone()
    }

    /// Waits until `pred(log)` holds; false on timeout.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.log.text.lock().unwrap();
        loop {
            if pred(&text) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.log.grew.wait_timeout(text, left.min(Duration::from_millis(100))).unwrap().0;
        }
    }

    /// Waits for `needle` to appear in the log.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for(timeout, |t| t.contains(needle))
    }

    /// The first TCP address.
    /// The address the log names in `<what> server enabled on ADDRESS` (e.g. `stats`,
    /// `metrics (Prometheus)`), once that line is logged.
    pub fn logged_address(&self, what: &str) -> String {
        let needle = format!("{what} server enabled on ");
        assert!(self.wait_log(&needle, Duration::from_secs(5)), "{}", self.log());
        self.log().lines().find_map(|l| Some(l.split(&needle).nth(1)?.split(' ').next()?.to_owned())).unwrap()
    }

    pub fn addr(&self) -> SocketAddr {
        *self.addrs.first().expect("no TCP socket bound")
    }

    /// Master pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal to the master.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Waits for the master to exit; returns its exit code (None on timeout or signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Connects to the first TCP socket.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr())
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn exchange(&self, raw: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(raw).expect("write");
        read_response(&mut BufReader::new(s)).expect("response")
    }

    /// `GET path` with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.exchange(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes())
    }

    /// Worker pids, from `/proc` (children of the master).
    pub fn worker_pids(&self) -> Vec<i32> {
        children(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid()), nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Children of `pid`, from `/proc/<pid>/task/*/children`.
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
    }
    out.sort_unstable();
    out
}

/// `Threads:` of `/proc/<pid>/status`.
pub fn thread_count(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().ok()))?)
        .unwrap_or(0)
}

/// TCP connect with a read timeout so a broken server fails the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Status line.
    pub status_line: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// De-chunked body.
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length, chunked, or until close). Pass `head_request` when the
/// response answers a HEAD (no body follows).
pub fn read_response_to(r: &mut impl BufRead, head_request: bool) -> std::io::Result<Response> {
    let mut status_line = String::new();
    loop {
        status_line.clear();
        if r.read_line(&mut status_line)? == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before a response"));
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            headers.push((k.to_owned(), v.trim().to_owned()));
        }
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if status == 100 {
            continue;
        }
        let mut resp = Response { status, status_line: status_line.trim_end().to_owned(), headers, body: Vec::new() };
        if head_request || status == 204 || status == 304 {
            return Ok(resp);
        }
        if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().unwrap_or(0);
            resp.body.resize(len, 0);
            r.read_exact(&mut resp.body)?;
        } else if resp.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad chunk size {size:?}"))
                })?;
                if n == 0 {
                    let mut crlf = String::new();
                    r.read_line(&mut crlf)?;
                    break;
                }
                let start = resp.body.len();
                resp.body.resize(start + n, 0);
                r.read_exact(&mut resp.body[start..])?;
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok(resp);
    }
}

/// Reads one response to a non-HEAD request.
pub fn read_response(r: &mut impl BufRead) -> std::io::Result<Response> {
    read_response_to(r, false)
}

/// The Python of the virtualenv `ruwsgi` was installed into (next to the `ruwsgi` script).
pub fn venv_python() -> PathBuf {
    let cmd = PathBuf::from(ruwsgi_command());
    let dir = if cmd.is_absolute() {
        cmd.parent().map(Path::to_path_buf)
    } else {
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find(|d| d.join(&cmd).is_file()))
    };
    dir.map_or_else(|| PathBuf::from("python3"), |d| d.join("python"))
}

/// Runs `ruwsgi ARGS` in `dir` to completion (for start-up failures); returns (exit code, output).
pub fn run_to_exit(dir: &Path, args: &[&str], timeout: Duration) -> (Option<i32>, String) {
    let out_path = dir.join(".ruwsgi-output");
    let out = std::fs::File::create(&out_path).expect("output file");
    let mut child = Command::new(ruwsgi_command())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", ruwsgi_command()));
    let deadline = Instant::now() + timeout;
    let code = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status.code();
        }
        if Instant::now() >= deadline {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&out_path).unwrap_or_default())
}

/// The CSRF token of the Django guestbook's form in `page`.
pub fn csrf_token(page: &str) -> String {
    page.split("name=\"csrfmiddlewaretoken\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("hidden csrf input")
        .to_owned()
}

/// A uwsgi request packet (modifier1 0, modifier2 0) carrying `vars`, as nginx sends it.
pub fn uwsgi_packet<K: AsRef<[u8]>, V: AsRef<[u8]>>(vars: &[(K, V)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for s in [k.as_ref(), v.as_ref()] {
            block.extend_from_slice(&u16::try_from(s.len()).unwrap().to_le_bytes());
            block.extend_from_slice(s);
        }
    }
    let mut out = vec![0];
    out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

/// Connects to a TCP `address`, sends `request` (may be empty) and reads until the server
/// closes (the stats and metrics servers).
pub fn read_to_close(address: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(address).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// Reads `s` until EOF or a reset (a reset after the reply still leaves what was read);
/// `Err` on its read timeout.
pub fn read_until_eof_or_reset(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(e)
            }
            Err(_) => return Ok(out),
        }
    }
}

/// Sets the mtime of `path` 2 s ahead, so a `touch-*` watcher sees a change even on file
/// systems with a coarse (1 s) granularity.
pub fn touch_later(path: &Path) {
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(later).unwrap();
}

/// Waits (bounded by `timeout`) until `path` exists and `pred` holds for its text.
pub fn wait_file(path: &Path, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if pred(&text) {
                return Some(text);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// JSON of the test apps' answers and the stats server.
pub use serde_json as json;

/// Starts ruwsgi serving `tests/apps/<app_file>` over HTTP on a free port with `processes`
/// workers of `threads` threads each, plus the `extra` flags.
pub fn http_server(app_file: &str, processes: &str, threads: &str, extra: &[&str]) -> Server {
    let app = app(app_file);
    let mut args =
        vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", &app, "--processes", processes, "--threads", threads];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// [`http_server`] with one worker of one thread (the set-up of the hardening tests).
pub fn single_thread_server(app_file: &str, extra: &[&str]) -> Server {
    http_server(app_file, "1", "1", extra)
}

/// Requests the `counter.py` app has seen (`/count` itself isn't counted).
pub fn app_calls(srv: &Server) -> u64 {
    let r = srv.get("/count");
    assert_eq!(r.status, 200, "{r:?}");
    r.text().parse().expect("count")
}
