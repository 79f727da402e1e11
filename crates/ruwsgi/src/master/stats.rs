//! The stats server (`stats = 127.0.0.1:9191`, a unix path, or `@abstract`): served by the
//! master from its poll loop. Each connection gets one JSON document, shaped as uWSGI's
//! (so `uwsgitop` and the Prometheus exporters that scrape uWSGI read it), and is closed.
//! With `stats-http` the JSON comes after an HTTP/1.0 response head. The same figures are
//! served in Prometheus text format on the `metrics` address (ruwsgi only).
//!
//! The figures come from the scoreboard (requests, exceptions, tx, per-core state) and
//! `/proc` (rss/vsz per worker, the TCP accept queues). No Python here.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::{Context, Result};
use ruwsgi_config::{Config, SocketProtocol};
use serde_json::{json, Value};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::net::listener::Listener;
use crate::scoreboard::{Scoreboard, Status};

/// What a stats socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// uWSGI's JSON; `http` = `stats-http`, `minified` = `stats-minified`.
    Json { http: bool, minified: bool },
    /// Prometheus text exposition format, always over HTTP (`metrics`).
    Prometheus,
}

/// A listening stats socket.
pub struct StatsServer {
    socket: Socket,
    /// What it serves.
    format: Format,
    /// Unix socket file, removed on shutdown.
    pub unix_path: Option<PathBuf>,
}

impl StatsServer {
    /// Binds `address` (`host:port`, `:port`, a unix path or `@abstract`), non-blocking.
    pub fn bind(address: &str, format: Format) -> Result<Self> {
        let (socket, unix_path) = if address.contains('/') || address.starts_with('@') || !address.contains(':') {
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
            let (addr, path) = if let Some(name) = address.strip_prefix('@') {
                (SockAddr::unix(format!("\0{name}"))?, None)
            } else {
                let _ = std::fs::remove_file(address);
                (SockAddr::unix(address)?, Some(PathBuf::from(address)))
            };
            socket.bind(&addr).with_context(|| format!("cannot bind the stats server to {address}"))?;
            (socket, path)
        } else {
            let full = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_owned() };
            let addr = full.to_socket_addrs()?.next().with_context(|| format!("stats = {address}: no address"))?;
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into()).with_context(|| format!("cannot bind the stats server to {address}"))?;
            (socket, None)
        };
        socket.listen(100)?;
        socket.set_nonblocking(true)?;
        let shown =
            socket.local_addr().ok().and_then(|a| a.as_socket()).map_or_else(|| address.to_owned(), |a| a.to_string());
        let what = if format == Format::Prometheus { "metrics (Prometheus)" } else { "stats" };
        tracing::info!("{what} server enabled on {shown} fd: {}", std::os::fd::AsRawFd::as_raw_fd(&socket));
        Ok(Self { socket, format, unix_path })
    }

    /// For the master's poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Answers every waiting connection with `render()`.
    pub fn serve_pending(&self, render: impl Fn() -> Value) {
        loop {
            let (conn, _) = match self.socket.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("stats server: accept() failed: {e}");
                    return;
                }
            };
            // The document is a few KiB: a blocking write with a short timeout keeps a slow
            // reader from stalling the master for long.
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let doc = render();
            let (http, body, content_type) = match self.format {
                Format::Json { http, minified } => (
                    http,
                    if minified { serde_json::to_vec(&doc) } else { serde_json::to_vec_pretty(&doc) }
                        .unwrap_or_default(),
                    "application/json",
                ),
                Format::Prometheus => (true, render_prometheus(&doc).into_bytes(), "text/plain; version=0.0.4"),
            };
            let mut out = Vec::with_capacity(body.len() + 160);
            if http {
                // Read the request head first: closing with it unread would reset the
                // connection and could destroy the response in flight.
                read_request_head(&conn);
                let _ = write!(out, "HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: {content_type}\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: {}\r\n\r\n", body.len());
            }
            out.extend_from_slice(&body);
            let mut conn = std::fs::File::from(std::os::fd::OwnedFd::from(conn));
            let _ = conn.write_all(&out);
        }
    }
}

/// Reads (and drops) an HTTP request head, waiting at most 200 ms in all: the master must
/// not stall on a client that connects and sends nothing.
fn read_request_head(conn: &Socket) {
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || conn.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match std::io::Read::read(&mut &*conn, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// One worker as the master knows it, for `render`.
pub struct WorkerView {
    /// 1-based id.
    pub id: usize,
    /// Running pid, if any.
    pub pid: Option<i32>,
}

/// The stats document (uWSGI's `uwsgi_master_generate_stats` shape).
pub fn render(cfg: &Config, listeners: &[Listener], board: Scoreboard, workers: &[WorkerView], cwd: &str) -> Value {
    let queues = listen_queues();
    let mut total_queue = 0;
    let sockets: Vec<Value> = listeners
        .iter()
        .map(|l| {
            let inode = nix::sys::stat::fstat(l.fd()).map_or(0, |s| s.st_ino);
            let queue = queues.iter().find(|q| q.0 == inode).map_or(0, |q| q.1);
            total_queue += queue;
            json!({
                "name": crate::net::listener::describe(l),
                "proto": match l.protocol {
                    SocketProtocol::Http if l.tls.is_some() => "https",
                    SocketProtocol::Http => "http",
                    SocketProtocol::Uwsgi => "uwsgi",
                },
                "queue": queue,
                "max_queue": cfg.listen,
                "shared": 0,
                "can_offload": 0,
            })
        })
        .collect();
    let workers: Vec<Value> = workers.iter().map(|w| render_worker(cfg, board, w)).collect();
    json!({
        "version": format!("ruwsgi-{}", env!("CARGO_PKG_VERSION")),
        "listen_queue": total_queue,
        "listen_queue_errors": 0,
        "signal_queue": 0,
        "load": total_queue,
        "pid": std::process::id(),
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "cwd": cwd,
        "locks": crate::signals::hub().map_or_else(Vec::new, crate::signals::Hub::lock_stats),
        "sockets": sockets,
        "workers": workers,
    })
}

fn render_worker(cfg: &Config, board: Scoreboard, w: &WorkerView) -> Value {
    let slot = board.worker(w.id);
    let requests = slot.requests.load(Relaxed);
    let busy_micros = slot.busy_micros.load(Relaxed);
    let (rss, vsz) = w.pid.map_or((0, 0), memory);
    let cores: Vec<Value> = slot
        .cores
        .iter()
        .take(cfg.threads.max(1) as usize)
        .enumerate()
        .map(|(i, c)| {
            let start = c.request_start.load(Relaxed);
            json!({
                "id": i,
                "requests": c.requests.load(Relaxed),
                "static_requests": c.static_requests.load(Relaxed),
                "routed_requests": 0,
                "offloaded_requests": 0,
                "write_errors": 0,
                "read_errors": 0,
                "in_request": u8::from(start != 0),
                "vars": [],
                "req_info": if start != 0 { json!({"request_start": start / 1_000_000, "request": c.request()}) } else { json!({}) },
            })
        })
        .collect();
    let busy = cores.iter().any(|c| c["in_request"] == 1);
    let status = if w.pid.is_none() {
        "cheap"
    } else if busy {
        "busy"
    } else if slot.status.load(Relaxed) == Status::Stopping as u8 {
        "sig1"
    } else {
        "idle"
    };
    let last_spawn = slot.last_spawn.load(Relaxed);
    json!({
        "id": w.id,
        "pid": w.pid.unwrap_or(0),
        "accepting": slot.accepting.load(Relaxed),
        "requests": requests,
        "delta_requests": requests,
        "exceptions": slot.exceptions.load(Relaxed),
        "harakiri_count": slot.harakiri_count.load(Relaxed),
        "signals": crate::signals::hub().map_or(0, |h| h.delivered(w.id)),
        "signal_queue": 0,
        "status": status,
        "rss": rss,
        "vsz": vsz,
        "running_time": busy_micros,
        "last_spawn": last_spawn,
        "respawn_count": slot.respawn_count.load(Relaxed),
        "tx": slot.tx.load(Relaxed),
        "avg_rt": busy_micros.checked_div(requests).unwrap_or(0),
        "apps": [{
            "id": 0,
            "modifier1": 0,
            "mountpoint": "",
            "startup_time": 0,
            "requests": requests,
            "exceptions": slot.exceptions.load(Relaxed),
            "chdir": "",
        }],
        "cores": cores,
    })
}

/// (rss, vsz) of `pid` in bytes, from `/proc/<pid>/statm`.
pub fn memory(pid: i32) -> (u64, u64) {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().unwrap_or(4096) as u64;
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else { return (0, 0) };
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().unwrap_or(0));
    let vsz = fields.next().unwrap_or(0) * page;
    let rss = fields.next().unwrap_or(0) * page;
    (rss, vsz)
}

/// The longest accept queue of the listening TCP sockets: uWSGI's `backlog`, which the
/// `backlog` and `busyness` cheaper algorithms read.
pub fn listen_backlog(listeners: &[Listener]) -> u64 {
    let queues = listen_queues();
    listeners
        .iter()
        .filter_map(|l| {
            let inode = nix::sys::stat::fstat(l.fd()).ok()?.st_ino;
            queues.iter().find(|q| q.0 == inode).map(|q| q.1)
        })
        .max()
        .unwrap_or(0)
}

/// (socket inode, connections waiting in its accept queue) for every listening TCP socket
/// of the machine: for a socket in LISTEN state, `/proc/net/tcp`'s `rx_queue` column is the
/// accept queue's current length.
fn listen_queues() -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode
            if cols.len() < 10 || cols[3] != "0A" {
                continue;
            }
            let rx = cols[4].split(':').nth(1).and_then(|v| u64::from_str_radix(v, 16).ok()).unwrap_or(0);
            if let Ok(inode) = cols[9].parse() {
                out.push((inode, rx));
            }
        }
    }
    out
}

/// The stats document in Prometheus text format: instance gauges plus one series per
/// worker, labelled `worker="N"`.
pub fn render_prometheus(doc: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP ruwsgi_{name} {help}\n# TYPE ruwsgi_{name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "ruwsgi_{name}{labels} {value}");
        }
    };
    let num = |v: &Value| v.as_u64().unwrap_or(0);
    metric(
        "listen_queue",
        "gauge",
        "Connections waiting in the listen queues.",
        &[(String::new(), num(&doc["listen_queue"]))],
    );
    let workers: Vec<&Value> = doc["workers"].as_array().map(|w| w.iter().collect()).unwrap_or_default();
    let per_worker = |field: &str| -> Vec<(String, u64)> {
        workers.iter().map(|w| (format!("{{worker=\"{}\"}}", w["id"]), num(&w[field]))).collect()
    };
    metric("worker_requests_total", "counter", "Requests served by the worker process.", &per_worker("requests"));
    metric("worker_exceptions_total", "counter", "Requests whose app raised.", &per_worker("exceptions"));
    metric("worker_harakiri_total", "counter", "Harakiri kills in this worker slot.", &per_worker("harakiri_count"));
    metric("worker_respawns_total", "counter", "Respawns of this worker slot.", &per_worker("respawn_count"));
    metric("worker_transmitted_bytes_total", "counter", "Response bytes sent.", &per_worker("tx"));
    metric("worker_rss_bytes", "gauge", "Resident set size.", &per_worker("rss"));
    metric("worker_vsz_bytes", "gauge", "Virtual memory size.", &per_worker("vsz"));
    metric("worker_avg_response_time_microseconds", "gauge", "Mean request duration.", &per_worker("avg_rt"));
    let busy: Vec<(String, u64)> = workers
        .iter()
        .map(|w| (format!("{{worker=\"{}\"}}", w["id"]), u64::from(w["status"].as_str() == Some("busy"))))
        .collect();
    metric("worker_busy", "gauge", "1 while the worker runs a request.", &busy);
    // One series per spooler process (`spooler`), labelled with its directory and index.
    if let Some(spoolers) = doc["spoolers"].as_array() {
        let per_spooler = |field: &str| -> Vec<(String, u64)> {
            let label = |i: usize, s: &Value| format!("{{spooler=\"{i}\",dir={}}}", s["dir"]);
            spoolers.iter().enumerate().map(|(i, s)| (label(i, s), num(&s[field]))).collect()
        };
        metric("spooler_tasks_total", "counter", "Tasks the spooler process ran.", &per_spooler("tasks"));
        metric("spooler_respawns_total", "counter", "Respawns of this spooler.", &per_spooler("respawns"));
        metric("spooler_running", "gauge", "1 while the spooler runs a task.", &per_spooler("running"));
    }
    // The figures a HorizontalPodAutoscaler scales on (`master/cheaper.rs`).
    for (name, field, kind, help) in [
        (
            "busy_ratio",
            "busy_ratio",
            "gauge",
            "Share of the capacity (processes x threads) spent in requests over the last 10 s.",
        ),
        ("busy_seconds_total", "busy_seconds", "counter", "Core-seconds spent in requests since start."),
        ("capacity_cores", "capacity", "gauge", "Requests the instance can run at once (processes x threads)."),
        ("workers_active", "active_workers", "gauge", "Workers running (not cheaped)."),
        ("workers_busy", "busy_workers", "gauge", "Workers running a request now."),
    ] {
        let value = doc[field].as_f64().unwrap_or(0.0);
        let _ = writeln!(out, "# HELP ruwsgi_{name} {help}\n# TYPE ruwsgi_{name} {kind}\nruwsgi_{name} {value}");
    }
    out
}

/// Removes the stats server's unix socket file (`vacuum`).
pub fn vacuum(server: &StatsServer) {
    if let Some(path) = &server.unix_path {
        let _ = std::fs::remove_file(path);
    }
}

/// The stats for `SIGUSR1`: one log line per worker.
pub fn log_summary(doc: &Value) {
    tracing::info!("*** ruwsgi stats: pid {} listen_queue {} ***", doc["pid"], doc["listen_queue"]);
    for w in doc["workers"].as_array().into_iter().flatten() {
        tracing::info!(
            "worker {} pid {} status {} requests {} exceptions {} harakiri {} respawns {} avg_rt {}us rss {} MiB tx {}",
            w["id"],
            w["pid"],
            w["status"].as_str().unwrap_or(""),
            w["requests"],
            w["exceptions"],
            w["harakiri_count"],
            w["respawn_count"],
            w["avg_rt"],
            w["rss"].as_u64().unwrap_or(0) >> 20,
            w["tx"],
        );
    }
}
