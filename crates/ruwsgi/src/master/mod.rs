//! The master process: binds the sockets, loads the app (unless `lazy-apps`), forks the
//! workers and supervises them. It stays single-threaded for its whole life (it forks on
//! every respawn), so its loop is a `poll()` over a signalfd with a one-second tick.

use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use ruwsgi_config::{Config, SocketProtocol};

use crate::net::listener::{self, Listener};
use crate::scoreboard::Scoreboard;
use crate::worker::{self, EXIT_NO_APP};
use crate::wsgi::{self, App};

/// One worker slot as the master sees it.
#[derive(Debug, Default)]
struct WorkerProc {
    /// Running process, if any.
    pid: Option<Pid>,
    /// When it was spawned.
    spawned: Option<Instant>,
    /// Respawn not before this (a worker that dies right after spawning is throttled).
    respawn_at: Option<Instant>,
}

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving; dead workers are respawned.
    Running,
    /// Workers were told to finish; exit when they're gone (or SIGKILL them at the deadline).
    ShuttingDown { deadline: Instant },
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
}

/// Runs the whole server; returns the process exit code.
pub fn run(cfg: Config) -> i32 {
    match start(cfg) {
        Ok(mut master) => master.supervise(),
        Err(e) => {
            tracing::error!("ruwsgi: {e:#}");
            1
        }
    }
}

fn start(cfg: Config) -> Result<Master> {
    if let Some(path) = &cfg.daemonize {
        daemonize(path)?;
    } else if let Some(path) = &cfg.logto {
        redirect_output(path)?;
    }
    tracing::info!("*** Starting ruwsgi {} (uWSGI-compatible) ***", env!("CARGO_PKG_VERSION"));
    if let Some(dir) = &cfg.chdir {
        std::env::set_current_dir(dir).with_context(|| format!("chdir = {}", dir.display()))?;
        tracing::info!("chdir() to {}", dir.display());
    }
    if cfg.sockets.is_empty() {
        anyhow::bail!("no socket configured: set http, http-socket or socket");
    }
    let listeners = listener::bind_all(&cfg)?;
    for (i, l) in listeners.iter().enumerate() {
        let kind = match l.protocol {
            SocketProtocol::Http => "http",
            SocketProtocol::Uwsgi => "uwsgi",
        };
        let family = if l.is_unix() { "UNIX" } else { "TCP" };
        tracing::info!("{kind} socket {i} bound to {family} address {} fd {}", listener::describe(l), l.raw_fd());
    }
    for path in [&cfg.pidfile, &cfg.pidfile2].into_iter().flatten() {
        std::fs::write(path, format!("{}\n", std::process::id())).with_context(|| format!("pidfile = {}", path.display()))?;
    }
    wsgi::prepare_interpreter(&cfg)?;
    let app = if cfg.lazy_apps {
        None
    } else {
        match App::load(&cfg, cfg.processes, cfg.threads) {
            Ok(app) => Some(app),
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
    if let Some(dir) = &cfg.chdir2 {
        std::env::set_current_dir(dir).with_context(|| format!("chdir2 = {}", dir.display()))?;
    }
    let board = Scoreboard::new().context("cannot map the scoreboard")?;
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&worker::handled_signals()), None)?;
    let signals = SignalFd::with_flags(&worker::handled_signals(), SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    let processes = cfg.processes.max(1) as usize;
    tracing::info!("spawned uWSGI master process (pid: {})", std::process::id());
    let mut master = Master {
        workers: (0..processes).map(|_| WorkerProc::default()).collect(),
        cfg,
        listeners,
        app,
        board,
        signals,
        phase: Phase::Running,
        exit_code: 0,
    };
    for id in 1..=processes {
        master.spawn(id)?;
    }
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
fn daemonize(log: &PathBuf) -> Result<()> {
    let file = open_log(log)?;
    if wsgi::fork()? != 0 {
        std::process::exit(0);
    }
    nix::unistd::setsid()?;
    let devnull = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(devnull.as_fd())?;
    nix::unistd::dup2_stdout(file.as_fd())?;
    nix::unistd::dup2_stderr(file.as_fd())?;
    Ok(())
}

fn open_log(path: &PathBuf) -> Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open log file {}", path.display()))
}

/// `logto = FILE`: all output (server and request log) appended to FILE.
fn redirect_output(path: &PathBuf) -> Result<()> {
    let file = open_log(path)?;
    nix::unistd::dup2_stdout(file.as_fd())?;
    nix::unistd::dup2_stderr(file.as_fd())?;
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
        let pid = wsgi::fork()?;
        if pid == 0 {
            let _ = nix::unistd::close(self.signals.as_raw_fd());
            slot.reset(std::process::id() as i32);
            worker::run(id, &self.cfg, &self.listeners, self.app.as_ref(), self.board);
        }
        let w = &mut self.workers[id - 1];
        w.pid = Some(Pid::from_raw(pid));
        w.spawned = Some(Instant::now());
        w.respawn_at = None;
        tracing::info!("spawned uWSGI worker {id} (pid: {pid}, cores: {})", self.cfg.threads);
        Ok(())
    }

    fn supervise(&mut self) -> i32 {
        loop {
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(1000u16));
            while let Ok(Some(sig)) = self.signals.read_signal() {
                match Signal::try_from(sig.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGTERM) => self.shutdown(true),
                    Ok(Signal::SIGINT | Signal::SIGQUIT) => self.shutdown(false),
                    Ok(Signal::SIGHUP) => tracing::warn!("SIGHUP received: graceful reload is not available yet"),
                    Ok(other) => tracing::info!("ignoring {other}"),
                    Err(_) => {}
                }
            }
            self.reap();
            match self.phase {
                Phase::Running => self.respawn_due(),
                Phase::ShuttingDown { deadline } => {
                    if self.workers.iter().all(|w| w.pid.is_none()) {
                        cleanup_files(&self.cfg, &self.listeners);
                        tracing::info!("goodbye to uWSGI.");
                        return self.exit_code;
                    }
                    if Instant::now() >= deadline {
                        tracing::warn!("workers still running after the mercy period: killing them");
                        self.signal_all(Signal::SIGKILL);
                    }
                }
            }
        }
    }

    /// SIGTERM: workers finish their requests; SIGINT/SIGQUIT: they stop now.
    fn shutdown(&mut self, graceful: bool) {
        if graceful {
            tracing::info!("SIGTERM received: gracefully killing workers...");
            self.signal_all(Signal::SIGTERM);
            let mercy = Duration::from_secs(self.cfg.reload_mercy.max(self.cfg.worker_reload_mercy));
            self.phase = Phase::ShuttingDown { deadline: Instant::now() + mercy };
        } else {
            tracing::info!("SIGINT/SIGQUIT received...killing workers...");
            self.signal_all(Signal::SIGINT);
            self.phase = Phase::ShuttingDown { deadline: Instant::now() + Duration::from_secs(3) };
        }
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
            let Some(index) = self.workers.iter().position(|w| w.pid == Some(pid)) else { continue };
            let id = index + 1;
            let running = self.phase == Phase::Running;
            let w = &mut self.workers[index];
            w.pid = None;
            let lived = w.spawned.map_or(Duration::ZERO, |t| t.elapsed());
            match how {
                Exit::Code(0) => tracing::info!("worker {id} (pid: {pid}) exited"),
                Exit::Code(EXIT_NO_APP) if running => {
                    tracing::error!("worker {id} (pid: {pid}) could not load the app: shutting down");
                    self.exit_code = EXIT_NO_APP;
                    self.shutdown(true);
                    continue;
                }
                Exit::Code(code) => tracing::error!("DAMN ! worker {id} (pid: {pid}) died with exit code {code} :( trying respawn ..."),
                Exit::Signal(sig) => {
                    tracing::error!("DAMN ! worker {id} (pid: {pid}) died, killed by signal {} :( trying respawn ...", sig as i32);
                }
            }
            if running {
                let w = &mut self.workers[index];
                self.board.worker(id).respawn_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
}

/// How a worker ended.
enum Exit {
    Code(i32),
    Signal(Signal),
}
