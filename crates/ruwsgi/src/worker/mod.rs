//! A worker process: created by the master's fork, it restores its signal set-up, loads
//! the app if `lazy-apps`, runs `threads` connection-loop threads (each attached to Python
//! for its whole life), and exits when told to stop or when it must be recycled. Its hook
//! phases run on the main thread before the loop threads start: `post-fork`, then (with
//! `lazy-apps`) `pre-app`/`post-app` around the app load, then the `accepting*` ones.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags};
use nix::sys::signal::{SigSet, SigmaskHow};
use ruwsgi_config::hooks::HookPhase;
use ruwsgi_config::Config;
use ruwsgi_proto::Limits;

use crate::hooks::run_phase;
use crate::log::LogPolicy;
use crate::net::connection::{self, LoopContext, LoopSettings};
use crate::net::http2::{Http2, Http2Settings};
use crate::net::listener::{ListenGate, Listener};
use crate::scoreboard::{Scoreboard, Status, WorkerSlot};
use crate::static_files::StaticFiles;
use crate::wsgi::{self, App};

/// Exit status of a process that could not load the app (uWSGI's `need-app` code).
pub const EXIT_NO_APP: i32 = 22;
/// Exit status of a worker whose fatal hook failed: the master stops the instance (ruwsgi's
/// own code; uWSGI's worker signals the master instead).
pub const EXIT_HOOK_FAILED: i32 = 23;

/// Per-worker facts the connection loops use for bookkeeping and the request log.
pub struct WorkerInfo {
    /// 1-based worker id.
    pub id: usize,
    /// This process.
    pub pid: i32,
    /// Shared counters.
    pub board: Scoreboard,
    /// Which requests get a log line.
    pub log: LogPolicy,
    /// `log-micros`.
    pub log_micros: bool,
    /// `max-requests` for this worker (delta included); 0 = off.
    pub max_requests: u64,
    /// Written by the thread that serves request number `max_requests`, so the main thread
    /// recycles the worker right away instead of on its next tick.
    pub recycle_wake: OwnedFd,
    /// Start (µs) of the current shortage of file descriptors (`accept()` failing with
    /// EMFILE and the like), 0 when none: logged once per episode, not per failure.
    pub fd_shortage_since: AtomicU64,
}

impl WorkerInfo {
    /// This worker's shared slot.
    pub fn slot(&self) -> &WorkerSlot {
        self.board.worker(self.id)
    }

    /// Called after each request with this worker's request count (`max-requests`).
    pub fn count_request(&self, served: u64) {
        if self.max_requests > 0 && served == self.max_requests {
            let _ = nix::unistd::write(&self.recycle_wake, b"x");
        }
    }
}

/// Runs worker `id` in the freshly forked child (`first`: its slot's first spawn by this
/// master image). Never returns.
pub fn run(id: usize, cfg: &Config, listeners: &[Listener], app: Option<&App>, board: Scoreboard, first: bool) -> ! {
    let code = serve(id, cfg, listeners, app, board, first);
    wsgi::run_atexit();
    wsgi::flush_std_streams();
    std::process::exit(code)
}

fn serve(id: usize, cfg: &Config, listeners: &[Listener], app: Option<&App>, board: Scoreboard, first: bool) -> i32 {
    let pid = std::process::id() as i32;
    if cfg.limit_as > 0 {
        if let Err(e) = limit_address_space(cfg.limit_as) {
            // As uWSGI: say so and serve on (exiting would only make the master respawn
            // a worker that fails the same way, e.g. above a hard limit set by `ulimit -v`).
            tracing::error!(
                "worker {id} (pid: {pid}): limit-as = {}: setrlimit(RLIMIT_AS) failed: {e}; serving without it",
                cfg.limit_as
            );
        }
    }
    if cfg.sched_batch {
        if let Err(e) = sched_batch() {
            tracing::warn!("worker {id} (pid: {pid}): sched-batch: cannot switch to SCHED_BATCH ({e}); serving with the default policy");
        }
    }
    // Written by a thread that serves request number `max_requests`, and by the signal
    // handlers below: either wakes the main loop.
    let Ok((recycle_read, recycle_wake)) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
    else {
        tracing::error!("worker {id}: cannot create a pipe");
        return 1;
    };
    let signals = match WorkerSignals::install(&recycle_wake) {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!("worker {id}: cannot install signal handlers: {e}");
            return 1;
        }
    };

    // `uwsgi.worker_id()`, then `uwsgi.post_fork_hook` (`@postfork`): as uWSGI, before the
    // `post-fork` hooks and the `lazy-apps` load.
    wsgi::enter_worker(id);
    if let Err(e) = run_phase(&cfg.hooks, HookPhase::PostFork) {
        tracing::error!("worker {id} (pid: {pid}): {e:#}");
        return EXIT_HOOK_FAILED;
    }
    let loaded;
    let app = match app {
        Some(app) => app,
        None => match run_phase(&cfg.hooks, HookPhase::PreApp).map(|()| App::load(cfg, cfg.processes, cfg.threads)) {
            Err(e) => {
                tracing::error!("worker {id} (pid: {pid}): {e:#}");
                return EXIT_HOOK_FAILED;
            }
            Ok(Ok(app)) => {
                loaded = app;
                if let Err(e) = run_phase(&cfg.hooks, HookPhase::PostApp) {
                    tracing::error!("worker {id} (pid: {pid}): {e:#}");
                    return EXIT_HOOK_FAILED;
                }
                &loaded
            }
            Ok(Err(e)) => {
                tracing::error!("worker {id} (pid: {pid}): cannot load the app: {}", e.0);
                return EXIT_NO_APP;
            }
        },
    };
    let max_requests = if cfg.max_requests > 0 { cfg.max_requests + cfg.max_requests_delta * id as u64 } else { 0 };
    let info = WorkerInfo {
        id,
        pid,
        board,
        log: LogPolicy {
            all: !cfg.disable_logging,
            status_4xx: cfg.log_4xx,
            status_5xx: cfg.log_5xx,
            slow_ms: cfg.log_slow,
            big_bytes: cfg.log_big,
            zero: cfg.log_zero,
            sendfile: cfg.log_sendfile,
            memory: cfg.memory_report,
        },
        log_micros: cfg.log_micros,
        max_requests,
        recycle_wake,
        fd_shortage_since: AtomicU64::new(0),
    };
    let settings = LoopSettings {
        limits: Limits { max_head: cfg.buffer_size, ..Limits::default() },
        idle_timeout: Duration::from_secs(cfg.http_timeout.max(1)),
        request_timeout: Duration::from_secs(cfg.socket_timeout.max(1)),
        prebuffer: cfg.post_buffering.max(64 * 1024),
        limit_post: cfg.limit_post,
        // Both are per worker in the config; each thread holds its share.
        max_conns: (cfg.max_fd as usize).div_ceil(cfg.threads.max(1) as usize),
        max_keepalive: (cfg.http_keepalive as usize).div_ceil(cfg.threads.max(1) as usize),
        so_keepalive: cfg.so_keepalive,
        log_forwarded_for: cfg.log_x_forwarded_for,
        proxy_protocol: cfg.enable_proxy_protocol,
        health_path: cfg.health_path.clone(),
        processes: cfg.processes.max(1) as usize,
        threads: cfg.threads.max(1) as usize,
    };
    // Built once per worker (after `chdir`): canonical roots, compiled expires regexps.
    let statics = match StaticFiles::new(cfg) {
        Ok(statics) => statics,
        Err(e) => {
            tracing::error!("worker {id}: {e}");
            return 1;
        }
    };
    let router = crate::routing::Router::new(cfg);
    let http2 = match start_http2(cfg, listeners, &settings) {
        Ok(http2) => http2,
        Err(e) => {
            tracing::error!("worker {id}: cannot start the HTTP/2 thread: {e}");
            return 1;
        }
    };
    let Ok((stop_read, stop_write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        tracing::error!("worker {id}: cannot create a pipe");
        return 1;
    };
    if cfg.harakiri > 0 {
        wsgi::install_tracebacker();
    }
    wsgi::start_signal_thread(id);
    if id == 1 && cfg.py_autoreload > 0 {
        // As in uWSGI, worker 1 runs the module scanner; it SIGHUPs the master on a change.
        let started = board.board().started.load(Relaxed) as f64 / 1e6;
        wsgi::start_autoreloader(
            cfg.py_autoreload,
            &cfg.py_autoreload_ignore,
            nix::unistd::getppid().as_raw(),
            started,
        );
    }
    // As uWSGI: `accepting` in every worker, `-once` only in a slot's first spawn, `1` only
    // in worker 1.
    let mut phases = vec![HookPhase::Accepting];
    if first {
        phases.push(HookPhase::AcceptingOnce);
    }
    if id == 1 {
        phases.push(HookPhase::Accepting1);
        if first {
            phases.push(HookPhase::Accepting1Once);
        }
    }
    for phase in phases {
        if let Err(e) = run_phase(&cfg.hooks, phase) {
            tracing::error!("worker {id} (pid: {pid}): {e:#}");
            return EXIT_HOOK_FAILED;
        }
    }
    // With `log-master` the worker's stderr is the master's pipe: nothing to follow.
    let log_file = if cfg.log_master || cfg.log_json {
        None
    } else {
        cfg.daemonize.as_ref().or(cfg.daemonize2.as_ref()).or(cfg.logto.as_ref()).or(cfg.logto2.as_ref())
    };
    if let Err(e) = app.start_worker() {
        tracing::error!("worker {id} (pid: {pid}): ASGI {e}");
        return EXIT_NO_APP;
    }
    let stopping = Arc::new(AtomicBool::new(false));
    // One epoll set per loop thread, made here so that the stop can take the listeners out
    // of all of them at once, even of a thread busy running a request.
    let gate = ListenGate::default();
    let mut epolls = Vec::with_capacity(cfg.threads as usize);
    for _ in 0..cfg.threads {
        match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
            Ok(epoll) => {
                gate.set_polled(&epoll, listeners, true);
                epolls.push(epoll);
            }
            Err(e) => {
                tracing::error!("worker {id}: cannot create an epoll set: {e}");
                return 1;
            }
        }
    }
    let running = AtomicUsize::new(cfg.threads as usize);
    // A loop thread ended while the worker wasn't stopping: exit non-zero so the master
    // replaces this process instead of it serving on with fewer threads.
    let died = AtomicBool::new(false);
    let spawned = Instant::now();
    let mut exit_code = 0;
    std::thread::scope(|s| {
        for (core, epoll) in epolls.iter().enumerate() {
            let ctx = LoopContext {
                listeners,
                app,
                settings: &settings,
                stopping: &stopping,
                winding_down: &signals.graceful,
                epoll,
                gate: &gate,
                stop_fd: stop_read.as_fd(),
                core,
                worker: &info,
                statics: statics.as_ref(),
                router: router.as_ref(),
                http2: http2.as_ref(),
            };
            let (running, died, stopping) = (&running, &died, &stopping);
            let spawned = std::thread::Builder::new()
                .name(format!("ruwsgi-core-{core}"))
                .stack_size(8 << 20)
                .spawn_scoped(s, move || {
                    let failure = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        wsgi::python_thread(|| connection::run(&ctx))
                    })) {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(panic) => Some(format!("panicked: {}", crate::log::panic_message(panic.as_ref()))),
                    };
                    if let Some(why) = failure {
                        tracing::error!("worker {id} core {core}: connection loop failed: {why}");
                        if !stopping.load(Relaxed) {
                            died.store(true, Relaxed);
                        }
                    }
                    running.fetch_sub(1, Relaxed);
                });
            if let Err(e) = spawned {
                tracing::error!("worker {id}: cannot start thread {core}: {e}");
                running.fetch_sub(1, Relaxed);
            }
        }
        let stop = |why: &str| {
            // The responses from now on say `Connection: close` (`LoopContext::winding_down`).
            signals.graceful.store(true, Relaxed);
            if !stopping.swap(true, Relaxed) {
                if !why.is_empty() {
                    tracing::info!("{why}");
                }
                info.slot().status.store(Status::Stopping as u8, Relaxed);
                info.slot().accepting.store(0, Relaxed);
                if let Some(http2) = &http2 {
                    // GOAWAY now: clients open no more streams here.
                    http2.stop(Duration::ZERO);
                }
                // Stop accepting at once, in every thread, even one still running a request:
                // once every process has closed its listeners (the master too on SIGTERM),
                // new clients are refused instead of queueing for a worker that won't come.
                gate.close(&epolls, listeners);
                let _ = nix::unistd::write(&stop_write, b"x");
            }
        };
        info.slot().accepting.store(1, Relaxed);
        // When a graceful stop was first seen, and how long serving the backlog may take:
        // half the mercy, so the requests it brings still finish before the master's SIGKILL
        // (a thread at `max-fd` with idle keep-alive clients may not accept meanwhile).
        let mut graceful_since: Option<Instant> = None;
        let backlog_limit = Duration::from_secs(cfg.reload_mercy.unwrap_or(0).max(cfg.worker_reload_mercy) / 2);
        while running.load(Relaxed) > 0 {
            let mut fds = [PollFd::new(recycle_read.as_fd(), PollFlags::POLLIN)];
            // While a stop waits for the backlog to be served, look again soon.
            let wait: u16 = if signals.graceful.load(Relaxed) && !stopping.load(Relaxed) { 10 } else { 200 };
            let _ = poll(&mut fds, PollTimeout::from(wait));
            while nix::unistd::read(&recycle_read, &mut [0u8; 16]).is_ok_and(|n| n > 0) {}
            if signals.immediate.load(Relaxed) {
                wsgi::flush_std_streams();
                std::process::exit(0);
            }
            if signals.graceful.load(Relaxed) {
                let since = *graceful_since.get_or_insert_with(Instant::now);
                if backlog_served(board, listeners) {
                    stop("");
                } else if since.elapsed() >= backlog_limit {
                    stop(&format!(
                        "worker {id} (pid: {pid}): the listen backlog is still not served after {} s: closing the sockets",
                        backlog_limit.as_secs()
                    ));
                }
            }
            if died.load(Relaxed) {
                exit_code = 1;
                stop(&format!(
                    "worker {id} (pid: {pid}): a connection loop died; exiting so the master replaces this worker"
                ));
            }
            let (rss, address_space) = crate::master::stats::memory(pid);
            info.slot().rss.store(rss, Relaxed);
            if let Some(path) = log_file {
                // Follow a rotation done by the master (`log-maxsize`) or logrotate.
                crate::master::logfile::follow(path);
            }
            let lived = spawned.elapsed();
            if lived >= Duration::from_secs(cfg.min_worker_lifetime) {
                let served = info.slot().requests.load(Relaxed);
                if max_requests > 0 && served >= max_requests {
                    stop(&format!("...The work of process {pid} is done (max requests reached: {served}). Seeya!"));
                } else if cfg.max_worker_lifetime > 0 && lived >= Duration::from_secs(cfg.max_worker_lifetime) {
                    stop(&format!(
                        "...The work of process {pid} is done (max lifetime reached: {}s). Seeya!",
                        lived.as_secs()
                    ));
                } else if cfg.reload_on_rss > 0 && rss > cfg.reload_on_rss << 20 {
                    stop(&format!(
                        "...The work of process {pid} is done (reload-on-rss: {} MiB > {} MiB). Seeya!",
                        rss >> 20,
                        cfg.reload_on_rss
                    ));
                } else if cfg.reload_on_as > 0 && address_space > cfg.reload_on_as << 20 {
                    stop(&format!(
                        "...The work of process {pid} is done (reload-on-as: {} MiB > {} MiB). Seeya!",
                        address_space >> 20,
                        cfg.reload_on_as
                    ));
                }
            }
        }
    });
    if let Some(http2) = &http2 {
        // The last streams' responses are still on their way out.
        http2.stop(HTTP2_STOP_GRACE);
    }
    app.stop_worker();
    exit_code
}

/// How long a stopping worker waits for its HTTP/2 connections to send their last
/// responses and close, after its loop threads have finished.
const HTTP2_STOP_GRACE: Duration = Duration::from_secs(3);

/// Starts the worker's HTTP/2 thread when a socket may speak HTTP/2: an `https` one (ALPN
/// `h2`) or, with `http2-cleartext`, an `http-socket`.
fn start_http2(cfg: &Config, listeners: &[Listener], settings: &LoopSettings) -> std::io::Result<Option<Http2>> {
    let plain_http = |l: &Listener| l.tls.is_none() && l.protocol == ruwsgi_config::SocketProtocol::Http;
    let wanted = listeners.iter().any(|l| l.tls.is_some() || (cfg.http2_cleartext && plain_http(l)));
    if !wanted {
        return Ok(None);
    }
    Http2::start(Http2Settings {
        listeners: listeners.iter().map(|l| (l.server_name.clone(), l.server_port.clone(), l.tls.is_some())).collect(),
        streams_in_flight: settings.threads.saturating_mul(4).max(8),
        max_header_list_size: cfg.buffer_size as u32,
        idle_timeout: settings.idle_timeout,
        request_timeout: settings.request_timeout,
        limit_post: settings.limit_post,
        cleartext: cfg.http2_cleartext,
    })
    .map(Some)
}

/// Whether a worker told to stop gracefully may close its listeners now. During a reload
/// (the sockets stay open for the next workers) at once. When the instance stops
/// (`master/drain.rs`: no new client joins the backlog any more), once no listener has a
/// connection waiting: until then the loop threads go on accepting and serving them, so
/// closing the sockets resets nobody.
fn backlog_served(board: Scoreboard, listeners: &[Listener]) -> bool {
    if board.board().closing.load(Relaxed) == 0 {
        return true;
    }
    // systemd keeps activated sockets open after the instance is gone: their backlog waits
    // for the next start (and new clients still join it).
    let mut fds: Vec<PollFd<'_>> =
        listeners.iter().filter(|l| !l.activated).map(|l| PollFd::new(l.fd(), PollFlags::POLLIN)).collect();
    // A listening socket polls readable while its accept queue holds a connection.
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(ready) => ready == 0,
        Err(e) => e != nix::errno::Errno::EINTR,
    }
}

/// `limit-as`: caps this process's address space at `mib` MiB (soft and hard `RLIMIT_AS`,
/// as uWSGI sets them), so an allocation past it fails (Python raises `MemoryError`) instead
/// of the worker growing until the OOM killer picks a victim.
// Differs from uWSGI: set in each worker after the fork, not in the master at start-up, so
// the master (which re-executes itself on reload, and can't raise a hard limit back) isn't
// limited.
fn limit_address_space(mib: u64) -> nix::Result<()> {
    let bytes = mib.saturating_mul(1 << 20);
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, bytes, bytes)
}

/// `sched-batch`: this thread, and every thread it starts afterwards (the loop threads, the
/// app's own), run as `SCHED_BATCH`. The kernel then never lets a woken worker preempt the
/// task on its CPU: a load balancer or proxy on the same machine goes on writing requests
/// instead of being interrupted after each one, and the worker, when it runs, finds a batch
/// of them. On an idle CPU a woken worker still runs at once. With 2 workers on 2 CPUs and
/// the load generator beside them, hello world went from ~110k to ~150k requests/s, with
/// ~1/30 of the context switches (docs/benchmarks.md).
fn sched_batch() -> std::io::Result<()> {
    // nix has no wrapper for sched_setscheduler.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a system call on the calling thread (pid 0) with a valid `sched_param`.
    #[allow(unsafe_code)]
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &raw const param) };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// How the master's signals reach a worker: SIGTERM/SIGHUP set `graceful` (finish the
/// requests in flight, then exit), SIGINT/SIGQUIT set `immediate`, SIGUSR1 (the master's
/// stats signal) is ignored; each also writes a byte to the main loop's wake-up pipe. The
/// worker's own stops (max-requests, ...) set `graceful` too: it is what tells responses to
/// say `Connection: close`.
///
/// Handlers, not a signalfd: a signalfd needs the signals blocked, and a blocked signal
/// stays blocked in every program the app starts (`subprocess`), which then can't be
/// stopped with SIGTERM. Handlers are reset by `exec`, so those programs start clean.
struct WorkerSignals {
    graceful: Arc<AtomicBool>,
    immediate: Arc<AtomicBool>,
}

impl WorkerSignals {
    /// Installs the handlers, then unblocks everything the master had blocked (signals
    /// that arrived since the fork are delivered to the handlers at that point).
    fn install(wake: &OwnedFd) -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1};
        let graceful = Arc::new(AtomicBool::new(false));
        let immediate = Arc::new(AtomicBool::new(false));
        for (signal, flag) in [
            (SIGTERM, &graceful),
            (SIGHUP, &graceful),
            (SIGINT, &immediate),
            (SIGQUIT, &immediate),
            (SIGUSR1, &Arc::new(AtomicBool::new(false))),
        ] {
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, wake.try_clone()?)?;
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        Ok(Self { graceful, immediate })
    }
}
