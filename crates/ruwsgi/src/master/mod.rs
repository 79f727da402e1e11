//! The master process: binds the sockets, loads the app (unless `lazy-apps`), forks the
//! workers and supervises them. It stays single-threaded for its whole life (it forks on
//! every respawn and re-executes itself on reload), so its loop is a `poll()` over a
//! signalfd, the stats socket and the master FIFO, with a tick of at most one second.
//!
//! On the tick it respawns dead workers (all of them, or as many as the cheaper subsystem
//! wants: `cheaper.rs`), enforces `harakiri` and `evil-reload-on-rss`,
//! polls the `touch-reload`/`touch-chain-reload` files, drives a chain reload and rotates
//! the log. Signals (uWSGI's meaning, with `die-on-term` semantics for SIGTERM):
//! - SIGHUP: graceful reload (`reload.rs`): workers finish their requests, then re-exec.
//! - SIGTERM: graceful shutdown. Differs from uWSGI 2.0 (where SIGTERM is a brutal reload
//!   unless `die-on-term`): ruwsgi always shuts down, as uWSGI 2.1 and containers expect.
//! - SIGINT/SIGQUIT: immediate shutdown. SIGUSR1: stats to the log.
//!
//! Attached daemons (`daemons.rs`) are started after the workers; plain ones are stopped
//! before a reload's exec and before exit, smart ones are left running. Crons (`cron.rs`)
//! are started on the tick. The start-up hook phases (`asap`, `pre-jail`, `as-root`,
//! `as-user`, `pre-app`, `post-app`, `master-start`) run here, in uWSGI's order, and
//! `as-user-atexit` before every exit and reload exec. Spoolers (`spooler.rs`) and mules
//! (`mules.rs`) are forked after the workers and supervised on the same loop
//! (`background.rs` holds the hooks).

mod background;
mod cheaper;
mod cron;
mod daemons;
mod drain;
mod fifo;
pub mod logfile;
mod mules;
mod notify;
mod reload;
mod signals;
mod spooler;
pub mod stats;

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use ruwsgi_config::hooks::{HookAction, HookPhase, MasterAction};
use ruwsgi_config::{Config, SocketProtocol};

use crate::hooks::run_phase;
use crate::net::listener::{self, Listener};
use crate::scoreboard::{now_micros, Scoreboard};
use crate::worker::{self, EXIT_HOOK_FAILED, EXIT_NO_APP};
use crate::wsgi::{self, App};

use cron::Crons;
use daemons::{Daemons, Reaped};
use fifo::{FifoCommand, MasterFifo};
use stats::StatsServer;

/// How long a harakiri'd worker gets to dump its Python stacks before SIGKILL.
const TRACEBACK_GRACE: Duration = Duration::from_millis(200);
/// The master's tick: the longest the poll waits when nothing is due sooner.
const TICK: Duration = Duration::from_secs(1);

/// Harakiri progress for one worker process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Harakiri {
    /// Nothing stuck.
    #[default]
    None,
    /// Stuck: stacks requested and/or the graceful signal sent (the flag); SIGKILL at this
    /// instant.
    KillAt(Instant, bool),
    /// SIGKILL sent; waiting for the reap.
    Killed,
}

/// One worker slot as the master sees it.
#[derive(Debug, Default)]
struct WorkerProc {
    /// Running process, if any.
    pid: Option<Pid>,
    /// When it was spawned.
    spawned: Option<Instant>,
    /// Respawn not before this (a worker that dies right after spawning is throttled).
    respawn_at: Option<Instant>,
    /// Harakiri state of the running process.
    harakiri: Harakiri,
    /// The master already sent it SIGKILL for `evil-reload-on-rss`.
    evil_killed: bool,
    /// Processes spawned in this slot by this master image (`hook-accepting-once` runs in
    /// the first).
    spawns: u64,
}

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving; dead workers are respawned.
    Running,
    /// Graceful reload: workers were told to finish; when they are gone the master
    /// re-executes itself (`deadline` = `worker-reload-mercy`, then SIGKILL).
    Reloading { since: Instant, deadline: Instant },
    /// Workers were told to finish; exit when they're gone (or SIGKILL them at the deadline).
    ShuttingDown { deadline: Instant },
}

/// A chain reload in progress: workers are replaced one at a time.
#[derive(Debug, Clone, Copy)]
struct Chain {
    /// Index of the next worker to replace.
    next: usize,
    /// The worker being replaced: (index, old pid).
    current: Option<(usize, Pid)>,
}

/// A file whose mtime change triggers a reload.
#[derive(Debug)]
struct Touched {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

impl Touched {
    fn new(path: &PathBuf) -> Self {
        Self { path: path.clone(), mtime: mtime(path) }
    }

    /// True when the file's mtime changed since the last call (or it appeared).
    fn changed(&mut self) -> bool {
        let now = mtime(&self.path);
        let changed = now.is_some() && now != self.mtime;
        self.mtime = now;
        changed
    }
}

fn mtime(path: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

struct Master {
    cfg: Config,
    listeners: Vec<Listener>,
    app: Option<App>,
    board: Scoreboard,
    workers: Vec<WorkerProc>,
    signals: SignalFd,
    phase: Phase,
    exit_code: i32,
    /// Working directory the server was started in (restored before a reload exec).
    start_cwd: PathBuf,
    /// `touch-reload` files.
    touch_reload: Vec<Touched>,
    /// `touch-chain-reload` files.
    touch_chain: Vec<Touched>,
    /// Chain reload in progress.
    chain: Option<Chain>,
    /// `stats` and `metrics` servers.
    stats: Vec<StatsServer>,
    /// `master-fifo`.
    fifo: Option<MasterFifo>,
    /// The log file stdout/stderr go to (`daemonize`, `daemonize2`, `logto`).
    log_file: Option<PathBuf>,
    /// `attach-daemon` and friends.
    daemons: Daemons,
    /// `touch-workers-reload` files.
    touch_workers: Vec<Touched>,
    /// `cron`, `cron2`, `unique-cron`.
    crons: Crons,
    /// `hook-master-start = unix_signal:N function`: what these signals do instead.
    signal_actions: Vec<(Signal, MasterAction)>,
    /// `log-master`: the pipes workers log through.
    log_pipes: Option<crate::log::LogPipes>,
    /// Adaptive process spawning (`cheaper`, `idle`) and the busy figures.
    cheaper: cheaper::Cheaper,
    /// `drain-delay` and the graceful stop that serves the listen backlog (`drain.rs`).
    drain: drain::Drain,
    /// systemd notifications, when `NOTIFY_SOCKET` is set (`notify.rs`).
    notify: Option<notify::Notifier>,
    /// Spoolers and mules (`background.rs`).
    background: background::BackgroundProcs,
    /// uWSGI signals: timers, crons, file monitors and the routing of raised signals.
    uwsgi_signals: signals::SignalRouter,
}

/// Runs the whole server; returns the process exit code. `files_read`: the
/// `getting INI configuration from FILE` lines, logged first.
pub fn run(cfg: Config, files_read: &[String]) -> i32 {
    match start(cfg, files_read) {
        Ok(mut master) => master.supervise(),
        Err(e) => {
            tracing::error!("ruwsgi: {e:#}");
            if e.downcast_ref::<NoApp>().is_some() {
                EXIT_NO_APP
            } else {
                1
            }
        }
    }
}

fn start(mut cfg: Config, files_read: &[String]) -> Result<Master> {
    // uWSGI applies `umask` as soon as it reads the option: before logs, sockets and pidfiles.
    if let Some(mask) = cfg.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }
    let reloaded = reload::take_reloaded_marker();
    // Before `daemonize`: the variables name this pid.
    let activated = crate::net::activation::take()?;
    let notify = notify::Notifier::from_env();
    let start_cwd = std::env::current_dir().context("cannot read the working directory")?;
    crate::net::tls::anchor_paths(&mut cfg, &start_cwd);
    let log_file = cfg
        .daemonize
        .clone()
        .or_else(|| cfg.daemonize2.clone())
        .or_else(|| cfg.logto.clone())
        .or_else(|| cfg.logto2.clone());
    if reloaded {
        // stdout/stderr were inherited across the exec; reopen the file in case it was
        // rotated or removed (`log-reopen`).
        if let Some(path) = &log_file {
            logfile::redirect(path)?;
        }
    } else if let Some(path) = &cfg.daemonize {
        daemonize(path)?;
    } else if let Some(path) = &cfg.logto {
        logfile::redirect(path)?;
    }
    let log_pipes = crate::log::configure(&cfg)?;
    // Differs from uWSGI: these go through the configured loggers and encoders (uWSGI
    // prints them raw to the terminal while it still parses the config).
    for line in files_read {
        tracing::info!("{line}");
    }
    tracing::info!("*** Starting ruwsgi {} (uWSGI-compatible) ***", env!("CARGO_PKG_VERSION"));
    log_host_facts(&start_cwd);
    if reloaded {
        tracing::info!("*** this master was reloaded (pid: {}) ***", std::process::id());
    }
    run_phase(&cfg.hooks, HookPhase::Asap)?;
    if !reloaded {
        run_phase(&cfg.hooks, HookPhase::PreJail)?;
    }
    if let Some(dir) = &cfg.chdir {
        std::env::set_current_dir(dir).with_context(|| format!("chdir = {}", dir.display()))?;
        tracing::info!("chdir() to {}", dir.display());
    }
    if cfg.sockets.is_empty() && activated.is_empty() && std::env::var_os(listener::INHERIT_ENV).is_none() {
        anyhow::bail!("no socket configured: set http, http-socket or socket");
    }
    if cfg.limit_as > 0 {
        // uWSGI's words; the limit is set in each worker (`worker::limit_address_space`).
        tracing::info!("limiting address space of processes...");
        tracing::info!("your process address space limit is {} bytes ({} MB)", cfg.limit_as << 20, cfg.limit_as);
    }
    raise_fd_limit(cfg.max_fd);
    let listeners = listener::bind_all(&cfg, activated)?;
    if !cfg.honour_stdin {
        // As uWSGI, once the sockets are bound: stdin becomes /dev/null unless `honour-stdin`.
        let devnull = std::fs::File::open("/dev/null").context("cannot open /dev/null for stdin")?;
        nix::unistd::dup2_stdin(devnull.as_fd())?;
    }
    for (i, l) in listeners.iter().enumerate() {
        let kind = match l.protocol {
            SocketProtocol::Http if l.tls.is_some() => "https",
            SocketProtocol::Http => "http",
            SocketProtocol::Uwsgi => "uwsgi",
        };
        let family = if l.is_unix() { "UNIX" } else { "TCP" };
        tracing::info!("{kind} socket {i} bound to {family} address {} fd {}", listener::describe(l), l.raw_fd());
    }
    let mut stats = Vec::new();
    if let Some(address) = &cfg.stats {
        stats.push(StatsServer::bind(
            address,
            stats::Format::Json { http: cfg.stats_http, minified: cfg.stats_minified },
        )?);
    }
    if let Some(address) = &cfg.metrics {
        stats.push(StatsServer::bind(address, stats::Format::Prometheus)?);
    }
    let fifo = match &cfg.master_fifo {
        Some(path) => Some(MasterFifo::open(path)?),
        None => None,
    };
    if cfg.daemonize2.is_none() {
        write_pidfiles(cfg.pidfile.as_ref())?;
    }
    crate::spooler::configure(&cfg.spooler, &start_cwd)?;
    let board = Scoreboard::new().context("cannot map the scoreboard")?;
    board.board().started.store(now_micros(), Relaxed);
    // The `uwsgi` module and its signal framework exist before any app code runs.
    let uwsgi_signals = signals::SignalRouter::new(&cfg)?;
    wsgi::install_uwsgi_module(&cfg, board, reloaded)?;
    let background = background::BackgroundProcs::new(&cfg, board)?;
    // As in uWSGI, Python is set up before `uid` switches user and the app loads after.
    wsgi::prepare_interpreter(&cfg)?;
    // As uWSGI: the as-root and as-user phases run only when started as root.
    let root = nix::unistd::getuid().is_root();
    if root {
        run_phase(&cfg.hooks, HookPhase::AsRoot).inspect_err(|_| cleanup_files(&cfg, &listeners))?;
    }
    drop_privileges(&cfg)?;
    if root {
        run_phase(&cfg.hooks, HookPhase::AsUser).inspect_err(|_| cleanup_files(&cfg, &listeners))?;
    }
    if cfg.daemonize2.is_none() {
        write_pidfiles(cfg.pidfile2.as_ref())?;
    }
    let app = if cfg.lazy_apps {
        None
    } else {
        run_phase(&cfg.hooks, HookPhase::PreApp).inspect_err(|_| cleanup_files(&cfg, &listeners))?;
        match App::load(&cfg, cfg.processes, cfg.threads) {
            Ok(app) => {
                run_phase(&cfg.hooks, HookPhase::PostApp).inspect_err(|_| cleanup_files(&cfg, &listeners))?;
                Some(app)
            }
            Err(e) => {
                tracing::error!("--- no python application found, check your startup logs for errors ---");
                cleanup_files(&cfg, &listeners);
                return Err(anyhow::anyhow!(NoApp(e.0)));
            }
        }
    };
    let threads = wsgi::extra_threads();
    if !threads.is_empty() && !cfg.lazy_apps {
        tracing::warn!(
            "the app started threads while loading in the master ({}); they won't exist in the workers: start them lazily or use lazy-apps",
            threads.join(", ")
        );
    }
    if let Some(path) = &cfg.daemonize2 {
        if !reloaded {
            daemonize(path)?;
        }
        write_pidfiles(cfg.pidfile.as_ref())?;
        write_pidfiles(cfg.pidfile2.as_ref())?;
    }
    if let (Some(path), false) = (&cfg.logto2, reloaded) {
        logfile::redirect(path)?;
    }
    if let Some(dir) = &cfg.chdir2 {
        std::env::set_current_dir(dir).with_context(|| format!("chdir2 = {}", dir.display()))?;
    }
    // `hook-master-start = unix_signal:N function`: the master reads N from its signalfd too.
    let signal_actions: Vec<(Signal, MasterAction)> = cfg
        .hooks
        .iter()
        .filter_map(|h| match h.action {
            HookAction::UnixSignal(n, action) => Some((Signal::try_from(n).ok()?, action)),
            _ => None,
        })
        .collect();
    let mut handled = handled_signals();
    for (sig, _) in &signal_actions {
        handled.add(*sig);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), None)?;
    let signals = SignalFd::with_flags(&handled, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    // As in uWSGI, `processes = 0` is the "no-workers" mode: the master runs only its mules,
    // spoolers, daemons and crons.
    let processes = cfg.processes as usize;
    if processes == 0 {
        tracing::info!("*** Operational MODE: no-workers ***");
    }
    tracing::info!("spawned uWSGI master process (pid: {})", std::process::id());
    // As uWSGI: without `reload-mercy`, a daemon gets 3 s between its stop signal and SIGKILL.
    let daemon_grace = Duration::from_secs(cfg.reload_mercy.unwrap_or(3));
    let daemons = Daemons::new(&cfg.attach_daemon, daemon_grace, Instant::now());
    let mut master = Master {
        workers: (0..processes).map(|_| WorkerProc::default()).collect(),
        touch_reload: cfg.touch_reload.iter().map(Touched::new).collect(),
        touch_chain: cfg.touch_chain_reload.iter().map(Touched::new).collect(),
        touch_workers: cfg.touch_workers_reload.iter().map(Touched::new).collect(),
        crons: Crons::new(&cfg.crons, cfg.cron_harakiri),
        cheaper: cheaper::Cheaper::new(cfg.cheaper, processes),
        signal_actions,
        drain: drain::Drain::new(cfg.drain_delay),
        notify,
        cfg,
        listeners,
        app,
        board,
        signals,
        phase: Phase::Running,
        exit_code: 0,
        start_cwd,
        chain: None,
        stats,
        fifo,
        log_file,
        daemons,
        log_pipes,
        background,
        uwsgi_signals,
    };
    for id in master.initial_workers() {
        master.spawn(id)?;
    }
    master.supervise_background();
    if let Err(e) = run_phase(&master.cfg.hooks, HookPhase::MasterStart) {
        tracing::error!("ruwsgi: {e:#}");
        master.exit_code = 1;
        master.shutdown(false, "a master-start hook failed");
        return Ok(master);
    }
    master.daemons.supervise(Instant::now());
    Ok(master)
}

/// The app failed to load: exit with uWSGI's `need-app` status.
#[derive(Debug)]
struct NoApp(String);

impl std::fmt::Display for NoApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot load the app: {}", self.0)
    }
}

impl std::error::Error for NoApp {}

/// Detaches from the terminal (`daemonize = LOGFILE`): fork, the parent exits, the child
/// starts a new session and sends its output to the log file.
/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as nginx's `worker_rlimit_nofile`
/// does: the common default soft limit of 1024 is far below what an event loop holding
/// idle keep-alive connections needs, and the workers inherit it. `max-fd` above the hard
/// limit raises that too (uWSGI sets both to `max-fd`), which needs root.
/// Differs from uWSGI: uWSGI leaves the limit alone without `max-fd`, and its `max-fd` can
/// also lower it; ruwsgi never lowers it (`max-fd` also caps a worker's connections).
/// uWSGI's first banner lines after `*** Starting`: where it runs, on what and with which
/// limits (the Python version follows from `wsgi::prepare_interpreter`).
fn log_host_facts(cwd: &Path) {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    tracing::info!("detected number of CPU cores: {cores}");
    tracing::info!("current working directory: {}", cwd.display());
    // Differs from uWSGI: ruwsgi runs inside the Python interpreter of its virtualenv, so the
    // binary is that interpreter (the `ruwsgi` command is its entry-point script).
    if let Ok(exe) = std::env::current_exe() {
        tracing::info!("detected binary path: {}", exe.display());
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NPROC) {
        if soft == RLIM_INFINITY {
            tracing::info!("your processes number limit is unlimited");
        } else {
            tracing::info!("your processes number limit is {soft}");
        }
    }
}

fn raise_fd_limit(max_fd: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    // An unlimited hard limit still stops at the kernel's per-process maximum.
    let ceiling = if hard == RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20)
    } else {
        hard
    };
    if max_fd > ceiling {
        match setrlimit(Resource::RLIMIT_NOFILE, max_fd, max_fd) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!("max-fd = {max_fd}: cannot raise the open files limit above {ceiling}: {e}");
                let _ = setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard);
            }
        }
    } else if soft < ceiling {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard) {
            tracing::warn!("cannot raise the open files limit from {soft} to {ceiling}: {e}");
        }
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        tracing::info!("detected max file descriptor number: {soft}");
    }
}

fn daemonize(log: &Path) -> Result<()> {
    let file = logfile::open(log)?;
    let child = wsgi::fork()?;
    if child != 0 {
        notify::main_pid(child);
        std::process::exit(0);
    }
    nix::unistd::setsid()?;
    let devnull = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(devnull.as_fd())?;
    nix::unistd::dup2_stdout(file.as_fd())?;
    nix::unistd::dup2_stderr(file.as_fd())?;
    Ok(())
}

/// Signals the master reads from its signalfd (so they are blocked while it runs; a worker
/// unblocks them after the fork).
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGCHLD] {
        set.add(s);
    }
    set
}

fn write_pidfiles(path: Option<&PathBuf>) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .with_context(|| format!("pidfile = {}", path.display()))?;
    }
    Ok(())
}

/// `uid`/`gid`: switch user after binding (names or numbers), before the app loads.
/// Running as root without `uid` only warns, as uWSGI does (`strict` too: in uWSGI it is only
/// about option names).
fn drop_privileges(cfg: &Config) -> Result<()> {
    use nix::unistd::{Gid, Group, Uid, User};
    if let Some(g) = &cfg.gid {
        let gid = match g.parse::<u32>() {
            Ok(n) => Gid::from_raw(n),
            Err(_) => Group::from_name(g)?.with_context(|| format!("gid = {g}: no such group"))?.gid,
        };
        nix::unistd::setgroups(&[gid]).ok();
        nix::unistd::setgid(gid).with_context(|| format!("setgid({gid})"))?;
        tracing::info!("setgid() to {gid}");
    }
    if let Some(u) = &cfg.uid {
        let user = if let Ok(n) = u.parse::<u32>() {
            User::from_uid(Uid::from_raw(n))?.map_or((Uid::from_raw(n), None), |user| (user.uid, Some(user)))
        } else {
            let user = User::from_name(u)?.with_context(|| format!("uid = {u}: no such user"))?;
            (user.uid, Some(user))
        };
        if cfg.gid.is_none() {
            if let Some(user) = &user.1 {
                nix::unistd::setgroups(&[user.gid]).ok();
                nix::unistd::setgid(user.gid).with_context(|| format!("setgid({})", user.gid))?;
            }
        }
        nix::unistd::setuid(user.0).with_context(|| format!("setuid({})", user.0))?;
        tracing::info!("setuid() to {}", user.0);
    } else if nix::unistd::geteuid().is_root() {
        tracing::warn!("*** WARNING: you are running ruwsgi as root !!! (use the --uid flag) ***");
    }
    Ok(())
}

fn cleanup_files(cfg: &Config, listeners: &[Listener]) {
    if cfg.vacuum {
        listener::vacuum(listeners);
        for path in [&cfg.pidfile, &cfg.pidfile2].into_iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Master {
    /// Forks worker `id`.
    fn spawn(&mut self, id: usize) -> Result<()> {
        let slot = self.board.worker(id);
        let master = nix::unistd::getpid();
        let pid = wsgi::fork()?;
        if pid == 0 {
            // As uWSGI's `no-orphans`, always: a worker dies with a killed master instead of
            // serving on, unsupervised, on sockets a restarted instance needs to bind.
            if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() || nix::unistd::getppid() != master {
                std::process::exit(1);
            }
            // The master's private fds are no business of the worker.
            let _ = nix::unistd::close(self.signals.as_raw_fd());
            for stats in &self.stats {
                let _ = nix::unistd::close(stats.fd().as_raw_fd());
            }
            if let Some(fifo) = &self.fifo {
                fifo.close_in_child();
            }
            if let Some(pipes) = &self.log_pipes {
                for fd in std::iter::once(&pipes.server).chain(pipes.request.as_ref()) {
                    let _ = nix::unistd::close(fd.as_raw_fd());
                }
            }
            crate::log::enter_worker();
            slot.reset(std::process::id() as i32);
            let first = self.workers[id - 1].spawns == 0;
            worker::run(id, &self.cfg, &self.listeners, self.app.as_ref(), self.board, first);
        }
        let w = &mut self.workers[id - 1];
        w.spawns += 1;
        w.pid = Some(Pid::from_raw(pid));
        w.spawned = Some(Instant::now());
        w.respawn_at = None;
        w.harakiri = Harakiri::None;
        w.evil_killed = false;
        tracing::info!("spawned uWSGI worker {id} (pid: {pid}, cores: {})", self.cfg.threads);
        Ok(())
    }

    fn supervise(&mut self) -> i32 {
        loop {
            let timeout = self.poll_timeout();
            let mut fds = vec![PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let stats_at = fds.len();
            fds.extend(self.stats.iter().map(|s| PollFd::new(s.fd(), PollFlags::POLLIN)));
            let fifo_at = self.fifo.as_ref().map(|f| {
                fds.push(PollFd::new(f.fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let cheap_at = fds.len();
            fds.extend(self.cheap_wait_fds().into_iter().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
            let log_at = fds.len();
            if let Some(pipes) = &self.log_pipes {
                fds.extend(
                    std::iter::once(&pipes.server)
                        .chain(pipes.request.as_ref())
                        .map(|fd| PollFd::new(fd.as_fd(), PollFlags::POLLIN)),
                );
            }
            fds.extend(self.uwsgi_signals.fds().map(|fd| PollFd::new(fd, PollFlags::POLLIN)));
            let _ = poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX));
            let ready = |at: Option<usize>| at.and_then(|i| fds[i].revents()).is_some_and(|r| !r.is_empty());
            let stats_ready: Vec<usize> = (0..self.stats.len()).filter(|i| ready(Some(stats_at + i))).collect();
            let fifo_ready = ready(fifo_at);
            let log_ready = (log_at..fds.len()).any(|i| ready(Some(i)));
            let connection_waits = (cheap_at..log_at).any(|i| ready(Some(i)));
            drop(fds);
            if log_ready {
                if let Some(pipes) = &self.log_pipes {
                    crate::log::drain(pipes);
                }
            }
            crate::log::maintain();
            while let Ok(Some(sig)) = self.signals.read_signal() {
                let sig = Signal::try_from(sig.ssi_signo as i32);
                if let Some((_, action)) = self.signal_actions.iter().find(|(s, _)| Ok(*s) == sig) {
                    let why = format!("{} received", sig.map_or("signal", Signal::as_str));
                    match action {
                        MasterAction::GracefulShutdown => self.shutdown(true, &why),
                        MasterAction::Shutdown => self.shutdown(false, &why),
                        MasterAction::GracefulReload => self.reload(&why),
                    }
                    continue;
                }
                match sig {
                    Ok(Signal::SIGTERM) => self.shutdown(true, "SIGTERM received"),
                    Ok(Signal::SIGINT | Signal::SIGQUIT) => self.shutdown(false, "SIGINT/SIGQUIT received"),
                    Ok(Signal::SIGHUP) => self.reload("SIGHUP received"),
                    Ok(Signal::SIGUSR1) => stats::log_summary(&self.stats_document()),
                    Ok(Signal::SIGCHLD) | Err(_) => {}
                    Ok(other) => tracing::info!("ignoring {other}"),
                }
            }
            for i in stats_ready {
                self.stats[i].serve_pending(|| self.stats_document());
            }
            if fifo_ready {
                let commands = self.fifo.as_mut().map(MasterFifo::read_commands).unwrap_or_default();
                for c in commands {
                    self.fifo_command(c);
                }
            }
            self.reap();
            let pids: Vec<Option<Pid>> = self.workers.iter().map(|w| w.pid).collect();
            self.uwsgi_signals.service(&pids, self.phase == Phase::Running);
            self.check_harakiri();
            self.notify_tick();
            match self.phase {
                Phase::Running => {
                    if self.drain.due(Instant::now()) {
                        self.shutdown(true, "drain-delay over");
                        continue;
                    }
                    if connection_waits {
                        self.wake_from_cheap();
                    }
                    self.check_cheaper();
                    self.respawn_due();
                    self.supervise_background();
                    self.daemons.supervise(Instant::now());
                    self.crons.tick();
                    self.check_evil_rss();
                    self.check_touched();
                    self.advance_chain();
                    self.rotate_log();
                }
                Phase::Reloading { since, deadline } => {
                    let daemons_stopped = self.daemons.stopped(Instant::now()) & self.background_gone();
                    if daemons_stopped && self.workers.iter().all(|w| w.pid.is_none()) {
                        self.drain_log();
                        if self.cfg.exit_on_reload {
                            tracing::info!("uWSGI: GAME OVER (insert coin)");
                            return self.finish();
                        }
                        self.exec_reload(since);
                    } else if Instant::now() >= deadline {
                        tracing::warn!("workers still running after worker-reload-mercy: killing them");
                        self.signal_all(Signal::SIGKILL);
                    }
                }
                Phase::ShuttingDown { deadline } => {
                    let daemons_stopped = self.daemons.stopped(Instant::now()) & self.background_gone();
                    if daemons_stopped && self.workers.iter().all(|w| w.pid.is_none()) {
                        return self.finish();
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!("workers still running after the mercy period: killing them");
                        self.signal_all(Signal::SIGKILL);
                    }
                }
            }
        }
    }

    /// Everything is stopped: run the atexit hooks, remove the files, say goodbye.
    fn finish(&mut self) -> i32 {
        // Not fatal: failures are only logged.
        let _ = run_phase(&self.cfg.hooks, HookPhase::AsUserAtexit);
        wsgi::run_atexit();
        cleanup_files(&self.cfg, &self.listeners);
        if self.cfg.vacuum {
            self.stats.iter().for_each(stats::vacuum);
            if let Some(f) = &self.fifo {
                f.vacuum();
            }
        }
        self.drain_log();
        tracing::info!("goodbye to uWSGI.");
        self.exit_code
    }

    /// How long the next poll may wait: the tick, or less when a harakiri kill is due.
    fn poll_timeout(&self) -> Duration {
        let now = Instant::now();
        self.workers
            .iter()
            .filter_map(|w| match w.harakiri {
                Harakiri::KillAt(t, _) => Some(t.saturating_duration_since(now)),
                _ => None,
            })
            .chain(self.workers.iter().filter_map(|w| w.respawn_at.map(|t| t.saturating_duration_since(now))))
            .chain(self.daemons.next_due().map(|t| t.saturating_duration_since(now)))
            .chain(self.drain.next_due().map(|t| t.saturating_duration_since(now)))
            .chain(self.notify.as_ref().and_then(notify::Notifier::next_due).map(|t| t.saturating_duration_since(now)))
            .chain(self.background_due().map(|t| t.saturating_duration_since(now)))
            .chain(self.uwsgi_signals.next_due().map(|t| t.saturating_duration_since(now)))
            .fold(TICK, Duration::min)
    }

    /// SIGTERM: workers finish their requests; SIGINT/SIGQUIT: they stop now.
    /// Stops everything: `graceful` lets requests finish; `why` starts the log line.
    fn shutdown(&mut self, graceful: bool, why: &str) {
        if let Some(n) = &mut self.notify {
            n.stopping(why);
        }
        if graceful && self.phase == Phase::Running && self.drain.defer(self.board, why) {
            return;
        }
        self.chain = None;
        if graceful && !matches!(self.phase, Phase::ShuttingDown { .. }) {
            drain::close_to_newcomers(self.board, &self.listeners, self.cfg.vacuum);
        }
        if !matches!(self.phase, Phase::ShuttingDown { .. }) {
            // The workers close theirs as they get the signal: once all are closed, new
            // clients are refused at once rather than queued and reset at exit.
            for l in &self.listeners {
                l.close_here();
            }
        }
        if graceful {
            if matches!(self.phase, Phase::ShuttingDown { .. }) {
                return;
            }
            tracing::info!("{why}: gracefully killing workers...");
            self.signal_all(Signal::SIGTERM);
            self.stop_background(true);
            self.daemons.stop(false, Instant::now());
            let mercy = Duration::from_secs(self.cfg.reload_mercy.unwrap_or(0).max(self.cfg.worker_reload_mercy));
            self.phase = Phase::ShuttingDown { deadline: Instant::now() + mercy };
        } else {
            tracing::info!("{why}: killing workers...");
            self.signal_all(Signal::SIGINT);
            self.stop_background(false);
            self.daemons.stop(false, Instant::now());
            self.phase = Phase::ShuttingDown { deadline: Instant::now() + Duration::from_secs(3) };
        }
    }

    /// Graceful reload: workers stop accepting and finish their requests; the listening
    /// sockets stay open, so new connections queue in the kernel until the new image's
    /// workers accept them.
    fn reload(&mut self, why: &str) {
        if self.drain.running() {
            tracing::info!("{why}: ignored, draining before a stop");
            return;
        }
        if self.phase != Phase::Running {
            tracing::info!(
                "{why}: ignored, already {}",
                if matches!(self.phase, Phase::Reloading { .. }) { "reloading" } else { "shutting down" }
            );
            return;
        }
        if self.cfg.lazy {
            // uWSGI's `lazy`: every graceful reload (SIGHUP, touch-reload, FIFO `r`) replaces
            // the workers only; the master neither re-executes nor re-reads the config.
            tracing::info!("{why}: lazy mode, gracefully reloading the workers only");
            self.signal_all(Signal::SIGHUP);
            return;
        }
        self.chain = None;
        if let Some(n) = &mut self.notify {
            n.reloading();
        }
        tracing::info!("{why}: ...gracefully killing workers...");
        for (index, w) in self.workers.iter().enumerate() {
            if let Some(pid) = w.pid {
                tracing::info!("Gracefully killing worker {} (pid: {pid})...", index + 1);
                let _ = kill(pid, Signal::SIGHUP);
            }
        }
        let now = Instant::now();
        self.stop_background(true);
        self.daemons.stop(true, now);
        self.phase = Phase::Reloading { since: now, deadline: now + Duration::from_secs(self.cfg.worker_reload_mercy) };
    }

    /// All workers are gone: re-execute. On failure, carry on with the old image.
    fn exec_reload(&mut self, since: Instant) {
        tracing::info!("workers buried after {} seconds", since.elapsed().as_secs());
        // Not fatal: failures are only logged.
        let _ = run_phase(&self.cfg.hooks, HookPhase::AsUserAtexit);
        let err = reload::exec_self(&self.listeners, &self.start_cwd);
        tracing::error!("reload failed: {err:#}; carrying on with the current code");
        self.phase = Phase::Running;
        let now = Instant::now();
        for w in &mut self.workers {
            w.respawn_at = Some(now);
        }
        self.resume_background();
        self.daemons.resume(now);
    }

    /// Workers-only graceful reload (`touch-workers-reload`, master-fifo `w`): each worker
    /// finishes its requests and exits; the master respawns it (re-loading the app only
    /// with `lazy-apps`).
    fn reload_workers(&self) {
        self.signal_all(Signal::SIGHUP);
    }

    fn signal_all(&self, sig: Signal) {
        for pid in self.workers.iter().filter_map(|w| w.pid) {
            let _ = kill(pid, sig);
        }
    }

    /// Collects exited workers and logs how they ended.
    fn reap(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let (pid, how) = match status {
                WaitStatus::Exited(pid, code) => (pid, Exit::Code(code)),
                WaitStatus::Signaled(pid, sig, _) => (pid, Exit::Signal(sig)),
                _ => continue,
            };
            let running = self.phase == Phase::Running;
            if self.crons.reaped(pid) || self.reaped_background(pid, &how, running) {
                continue;
            }
            let Some(index) = self.workers.iter().position(|w| w.pid == Some(pid)) else {
                if self.daemons.reaped(pid, &how, running) == Reaped::ControlDied {
                    self.shutdown(true, "a control daemon died");
                }
                continue;
            };
            let id = index + 1;
            let w = &mut self.workers[index];
            w.pid = None;
            // Its threads take no connections any more (they may have died mid-`epoll_wait`).
            for core in &self.board.worker(id).cores {
                core.connections.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
            }
            if running && self.cheaper_reaped(index, pid) {
                continue;
            }
            let w = &mut self.workers[index];
            let lived = w.spawned.map_or(Duration::ZERO, |t| t.elapsed());
            match how {
                Exit::Code(0) => tracing::info!("worker {id} (pid: {pid}) exited"),
                Exit::Code(EXIT_NO_APP) if running => {
                    tracing::error!("worker {id} (pid: {pid}) could not load the app: shutting down");
                    self.exit_code = EXIT_NO_APP;
                    self.shutdown(true, "no app");
                    continue;
                }
                // Differs from uWSGI: a fatal hook failure in a worker stops the whole
                // instance here, where uWSGI's worker SIGINTs the master (or, for a lazy
                // worker's `exec-*`, exits and is respawned in a loop).
                Exit::Code(EXIT_HOOK_FAILED) if running => {
                    tracing::error!("worker {id} (pid: {pid}): a hook failed: shutting down");
                    self.exit_code = 1;
                    self.shutdown(false, "FATAL hook failed, destroying instance");
                    continue;
                }
                // uWSGI's words; "trying respawn" only when a respawn follows.
                Exit::Code(code) if running => {
                    tracing::error!("DAMN ! worker {id} (pid: {pid}) died with exit code {code} :( trying respawn ...");
                }
                Exit::Signal(sig) if running => {
                    tracing::error!(
                        "DAMN ! worker {id} (pid: {pid}) died, killed by signal {} :( trying respawn ...",
                        sig as i32
                    );
                }
                Exit::Code(code) => tracing::warn!("worker {id} (pid: {pid}) died with exit code {code}"),
                Exit::Signal(sig) => tracing::warn!("worker {id} (pid: {pid}) killed by signal {}", sig as i32),
            }
            if running {
                let w = &mut self.workers[index];
                self.board.worker(id).respawn_count.fetch_add(1, Relaxed);
                w.respawn_at = Some(if lived < Duration::from_secs(1) {
                    tracing::warn!("worker respawning too fast !!! i have to sleep a bit (1 second)...");
                    Instant::now() + Duration::from_secs(1)
                } else {
                    Instant::now()
                });
            }
        }
    }

    fn respawn_due(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let w = &self.workers[index];
            if w.pid.is_none() && w.respawn_at.is_some_and(|t| t <= now) {
                let id = index + 1;
                match self.spawn(id) {
                    Ok(()) => {
                        let pid = self.workers[index].pid.map_or(0, Pid::as_raw);
                        tracing::info!("Respawned uWSGI worker {id} (new pid: {pid})");
                    }
                    Err(e) => tracing::error!("cannot respawn worker {id}: {e:#}"),
                }
            }
        }
    }

    /// `harakiri`: a core whose request started more than `harakiri` seconds ago gets its
    /// worker killed (after its Python stacks are dumped, and after SIGTERM +
    /// `harakiri-graceful-timeout` when set). The master respawns it.
    fn check_harakiri(&mut self) {
        let now = Instant::now();
        for index in 0..self.workers.len() {
            let w = &mut self.workers[index];
            let Some(pid) = w.pid else { continue };
            if let Harakiri::KillAt(t, graceful) = w.harakiri {
                if now >= t {
                    if graceful {
                        tracing::error!("*** HARAKIRI ON WORKER {} (pid: {pid}, try: 2, graceful: no) ***", index + 1);
                    }
                    let _ = kill(pid, Signal::SIGKILL);
                    w.harakiri = Harakiri::Killed;
                }
                continue;
            }
            if self.cfg.harakiri == 0 || w.harakiri != Harakiri::None {
                continue;
            }
            let id = index + 1;
            let slot = self.board.worker(id);
            let limit = self.cfg.harakiri * 1_000_000;
            let now_us = now_micros();
            let stuck: Vec<(usize, u64)> = slot
                .cores
                .iter()
                .take(self.cfg.threads.max(1) as usize)
                .enumerate()
                .filter_map(|(core, c)| {
                    let start = c.request_start.load(Relaxed);
                    (start != 0 && now_us.saturating_sub(start) > limit).then_some((core, start))
                })
                .collect();
            if stuck.is_empty() {
                continue;
            }
            let graceful = self.cfg.harakiri_graceful_timeout > 0;
            tracing::error!(
                "*** HARAKIRI ON WORKER {id} (pid: {pid}, try: 1, graceful: {}) ***",
                if graceful { "yes" } else { "no" }
            );
            tracing::error!("HARAKIRI !!! worker {id} status !!!");
            for (core, start) in &stuck {
                tracing::error!(
                    "HARAKIRI [core {core}] {} since {} ({} seconds)",
                    slot.cores[*core].request(),
                    start / 1_000_000,
                    now_us.saturating_sub(*start) / 1_000_000
                );
            }
            tracing::error!("HARAKIRI !!! end of worker {id} status !!!");
            slot.harakiri_count.fetch_add(1, Relaxed);
            if self.cfg.harakiri_verbose {
                // As uWSGI's harakiri-verbose: where the process sits in the kernel.
                for (what, file) in [("syscall", "syscall"), ("wchan", "wchan")] {
                    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) {
                        tracing::error!("HARAKIRI: -- {what}> {}", text.trim_end());
                    }
                }
            }
            // Differs from uWSGI: the stuck worker's Python stacks are always logged (its
            // faulthandler dumps them on SIGUSR2); uWSGI needs a py-tracebacker socket.
            tracing::error!("HARAKIRI: Python stacks of worker {id} (pid: {pid}) follow");
            let _ = kill(pid, Signal::SIGUSR2);
            let mut wait = TRACEBACK_GRACE;
            if graceful {
                let sig = self.cfg.harakiri_graceful_signal;
                tracing::error!(
                    "HARAKIRI: graceful termination attempt on worker {id} with signal {sig}. Next harakiri: {}",
                    now_us / 1_000_000 + self.cfg.harakiri_graceful_timeout
                );
                let _ = Signal::try_from(sig).map(|s| kill(pid, s));
                wait = wait.max(Duration::from_secs(self.cfg.harakiri_graceful_timeout));
            }
            w.harakiri = Harakiri::KillAt(now + wait, graceful);
        }
    }

    /// `evil-reload-on-rss`: the master SIGKILLs a worker whose RSS passed the limit (for
    /// workers too stuck to recycle themselves).
    fn check_evil_rss(&mut self) {
        let limit = self.cfg.evil_reload_on_rss << 20;
        if limit == 0 {
            return;
        }
        for (index, w) in self.workers.iter_mut().enumerate() {
            let Some(pid) = w.pid else { continue };
            if w.evil_killed {
                continue;
            }
            let (rss, _) = stats::memory(pid.as_raw());
            if rss > limit {
                tracing::warn!(
                    "*** EVIL RELOAD ON WORKER {} ADDRESS SPACE: rss {} MiB > {} MiB (pid: {pid}) ***",
                    index + 1,
                    rss >> 20,
                    self.cfg.evil_reload_on_rss
                );
                let _ = kill(pid, Signal::SIGKILL);
                w.evil_killed = true;
            }
        }
    }

    /// `touch-reload` / `touch-chain-reload`.
    fn check_touched(&mut self) {
        if let Some(t) = self.touch_reload.iter_mut().find_map(|t| t.changed().then(|| t.path.clone())) {
            self.reload(&format!("*** {} has been touched... grace them all !!! ***", t.display()));
            return;
        }
        if let Some(t) = self.touch_workers.iter_mut().find_map(|t| t.changed().then(|| t.path.clone())) {
            tracing::info!("*** {} has been touched... workers reload !!! ***", t.display());
            self.reload_workers();
            return;
        }
        if let Some(t) = self.touch_chain.iter_mut().find_map(|t| t.changed().then(|| t.path.clone())) {
            tracing::info!("*** {} has been touched... chain reload !!! ***", t.display());
            self.start_chain();
        }
    }

    /// Chain reload: replace the workers one at a time, each after the previous one's
    /// replacement accepts requests. Only `lazy-apps` workers load new code this way.
    fn start_chain(&mut self) {
        if !self.cfg.lazy_apps {
            tracing::warn!("chain reload without lazy-apps: workers are replaced but keep the code the master loaded");
        }
        if self.chain.is_none() {
            self.chain = Some(Chain { next: 0, current: None });
        }
    }

    fn advance_chain(&mut self) {
        let Some(mut chain) = self.chain else { return };
        if let Some((index, old)) = chain.current {
            let w = &self.workers[index];
            let replaced = w.pid.is_some_and(|p| p != old) && self.board.worker(index + 1).accepting.load(Relaxed) == 1;
            if !replaced {
                return;
            }
            chain.current = None;
        }
        // Skip empty slots (their next spawn loads the new code anyway).
        while chain.next < self.workers.len() && self.workers[chain.next].pid.is_none() {
            chain.next += 1;
        }
        if chain.next >= self.workers.len() {
            tracing::info!("chain reloading complete");
            self.chain = None;
            return;
        }
        let index = chain.next;
        let pid = self.workers[index].pid.expect("checked above");
        tracing::info!("chain next victim is worker {} (pid: {pid})", index + 1);
        let _ = kill(pid, Signal::SIGHUP);
        chain.current = Some((index, pid));
        chain.next += 1;
        self.chain = Some(chain);
    }

    /// `log-master`: what the workers wrote before they exited.
    fn drain_log(&self) {
        if let Some(pipes) = &self.log_pipes {
            crate::log::drain(pipes);
        }
    }

    /// `log-maxsize`.
    fn rotate_log(&self) {
        if let Some(path) = &self.log_file {
            if let Some(to) = logfile::rotate_if_big(path, self.cfg.log_maxsize, self.cfg.log_backupname.as_deref()) {
                tracing::info!("logfile rotated: previous lines are in {}", to.display());
            }
        }
    }

    fn fifo_command(&mut self, command: FifoCommand) {
        match command {
            FifoCommand::Reload => self.reload("master-fifo r"),
            FifoCommand::BrutalReload => {
                if self.phase == Phase::Running {
                    tracing::info!("master-fifo R: brutally reloading");
                    self.signal_all(Signal::SIGINT);
                    self.stop_background(false);
                    let now = Instant::now();
                    self.daemons.stop(true, now);
                    self.phase = Phase::Reloading { since: now, deadline: now + Duration::from_secs(3) };
                }
            }
            FifoCommand::ReloadWorkers => {
                tracing::info!("master-fifo w: gracefully reloading workers");
                self.reload_workers();
            }
            FifoCommand::ChainReload => {
                tracing::info!("master-fifo c: chain reload");
                self.start_chain();
            }
            FifoCommand::Shutdown => self.shutdown(true, "master-fifo q"),
            FifoCommand::ShutdownNow => self.shutdown(false, "master-fifo Q"),
            FifoCommand::Stats => stats::log_summary(&self.stats_document()),
            FifoCommand::AddWorker => self.cheaper_fifo(1),
            FifoCommand::RemoveWorker => self.cheaper_fifo(-1),
            FifoCommand::GoCheap => self.go_cheap(),
            FifoCommand::ReopenLog => {
                if let Some(path) = &self.log_file {
                    if let Err(e) = logfile::redirect(path) {
                        tracing::error!("cannot reopen the log: {e:#}");
                    }
                }
                crate::log::reopen();
            }
        }
    }

    fn stats_document(&self) -> serde_json::Value {
        let views: Vec<stats::WorkerView> = self
            .workers
            .iter()
            .enumerate()
            .map(|(i, w)| stats::WorkerView { id: i + 1, pid: w.pid.map(Pid::as_raw) })
            .collect();
        let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
        let mut doc = stats::render(&self.cfg, &self.listeners, self.board, &views, &cwd);
        if !self.daemons.is_empty() {
            doc["daemons"] = self.daemons.stats();
        }
        for (key, value) in self.cheaper_stats() {
            doc[key] = value;
        }
        if let Some(spoolers) = self.background.spoolers.stats() {
            doc["spoolers"] = spoolers;
        }
        doc
    }
}

/// How a child (worker or daemon) ended.
enum Exit {
    Code(i32),
    Signal(Signal),
}
