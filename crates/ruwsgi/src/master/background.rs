//! The master's hooks for its background processes, spoolers (`spooler.rs`) and mules
//! (`mules.rs`): what `mod.rs` calls at start-up, on each loop turn, on reap, reload and
//! shutdown. Kept here so the main loop only needs one line per hook.

use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use ruwsgi_config::Config;

use super::mules::Mules;
use super::spooler::Spoolers;
use super::{Exit, Master};
use crate::scoreboard::Scoreboard;

/// The spoolers and mules of the instance.
pub(super) struct BackgroundProcs {
    pub spoolers: Spoolers,
    pub mules: Mules,
}

impl BackgroundProcs {
    /// Sets up the mule queues (before any fork: workers send on them) and the bookkeeping;
    /// nothing is forked yet. `crate::spooler::configure` ran before the app loaded.
    pub fn new(cfg: &Config, board: Scoreboard) -> anyhow::Result<Self> {
        crate::spooler::attach_board(board);
        crate::mule::configure(&cfg.mules, board)?;
        let now = Instant::now();
        Ok(Self {
            spoolers: Spoolers::new(&cfg.spooler, Duration::from_secs(cfg.worker_reload_mercy), board, now),
            mules: Mules::new(&cfg.mules, board, now),
        })
    }
}

impl Master {
    /// The fds a forked child must close: the master's signalfd, stats and FIFO sockets, log
    /// pipes' read ends, and (for spoolers and mules) the listening sockets.
    pub(super) fn private_fds(&self, listeners: bool) -> Vec<RawFd> {
        let mut fds = vec![self.signals.as_raw_fd()];
        fds.extend(self.stats.iter().map(|s| s.fd().as_raw_fd()));
        if let Some(fifo) = &self.fifo {
            fds.push(fifo.fd().as_raw_fd());
        }
        if let Some(pipes) = &self.log_pipes {
            fds.extend(std::iter::once(&pipes.server).chain(pipes.request.as_ref()).map(AsRawFd::as_raw_fd));
        }
        if listeners {
            fds.extend(self.listeners.iter().map(crate::net::listener::Listener::raw_fd));
        }
        fds
    }

    /// While serving: spawns, respawns and watches the spoolers and mules.
    pub(super) fn supervise_background(&mut self) {
        let private = self.private_fds(true);
        let now = Instant::now();
        self.background.spoolers.supervise(&private, now);
        self.background.mules.supervise(&private, now);
    }

    /// A reaped child: true when it was a spooler or a mule.
    pub(super) fn reaped_background(&mut self, pid: Pid, how: &Exit, running: bool) -> bool {
        let now = Instant::now();
        self.background.spoolers.reaped(pid, how, running, now) || self.background.mules.reaped(pid, how, running, now)
    }

    /// Reload or shutdown. `graceful`: spoolers finish their task (SIGTERM), mules get
    /// SIGHUP (uWSGI's graceful signal for them); else both get SIGINT.
    pub(super) fn stop_background(&mut self, graceful: bool) {
        let now = Instant::now();
        let (spooler_sig, mule_sig) =
            if graceful { (Signal::SIGTERM, Signal::SIGHUP) } else { (Signal::SIGINT, Signal::SIGINT) };
        self.background.spoolers.stop(spooler_sig, now);
        self.background.mules.stop(mule_sig, now);
    }

    /// While stopping: true once no spooler or mule runs (SIGKILLs the ones past mercy).
    pub(super) fn background_gone(&mut self) -> bool {
        let now = Instant::now();
        self.background.spoolers.kill_overdue(now);
        self.background.mules.kill_overdue(now);
        self.background.spoolers.procs.gone() && self.background.mules.procs.gone()
    }

    /// A reload failed: start them again.
    pub(super) fn resume_background(&mut self) {
        let now = Instant::now();
        self.background.spoolers.procs.resume(now);
        self.background.mules.procs.resume(now);
    }

    /// The next instant a spooler or mule needs the master.
    pub(super) fn background_due(&self) -> Option<Instant> {
        [self.background.spoolers.procs.next_due(), self.background.mules.procs.next_due()].into_iter().flatten().min()
    }
}
