//! The master's side of the spoolers (`spooler`, `spooler-processes`): forks one process
//! per directory and `spooler-processes`, respawns one that dies (uWSGI's "OOOPS the
//! spooler is no more...trying respawn..."), kills one whose task passes `spooler-harakiri`,
//! and restarts them on `touch-spoolers-reload`. On reload and graceful shutdown a spooler
//! gets SIGTERM and finishes its task (SIGKILL after `worker-reload-mercy`).
//! Differs from uWSGI: uWSGI SIGKILLs its spoolers on reload and shutdown, so the task in
//! progress runs again later.
//!
//! What runs inside a spooler is `crate::spooler`; the stats' `spoolers` list is built here.

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use ruwsgi_config::background::SpoolerConfig;
use serde_json::{json, Value};

use super::mules::{fork_background, Group};
use super::{Exit, Touched};
use crate::scoreboard::Scoreboard;

/// All spooler processes.
pub(super) struct Spoolers {
    /// The directory of each process (slot order).
    dirs: Vec<PathBuf>,
    /// Slot N at index N.
    pub procs: Group,
    /// Time a stopping spooler gets to finish its task.
    mercy: Duration,
    /// `touch-spoolers-reload`.
    touch: Vec<Touched>,
    board: Scoreboard,
}

impl Spoolers {
    /// The spoolers `crate::spooler::configure` set up, due for their first spawn at `now`.
    pub fn new(cfg: &SpoolerConfig, mercy: Duration, board: Scoreboard, now: Instant) -> Self {
        let dirs = crate::spooler::slots();
        let procs = Group::new(dirs.len(), now);
        Self { dirs, procs, mercy, touch: cfg.touch_reload.iter().map(Touched::new).collect(), board }
    }

    /// While serving: spawns what is due, enforces `spooler-harakiri`, follows
    /// `touch-spoolers-reload`, SIGKILLs spoolers past their mercy.
    pub fn supervise(&mut self, private: &[RawFd], now: Instant) {
        if let Some(t) = self.touch.iter_mut().find_map(|t| t.changed().then(|| t.path.clone())) {
            tracing::info!("*** {} has been touched... spoolers reload !!! ***", t.display());
            self.procs.curse_all(Signal::SIGTERM, self.mercy, true, now);
        }
        for (index, p) in self.procs.iter_mut().enumerate() {
            let slot = &self.board.board().spoolers[index];
            if let Some(pid) = p.check_harakiri(slot) {
                tracing::error!("*** HARAKIRI ON THE SPOOLER (pid: {pid}) ***");
            }
            if p.kill_if_overdue(now) {
                tracing::warn!(
                    "spooler {} (pid: {}) is taking too much time to die...NO MERCY !!!",
                    index + 1,
                    p.pid.map_or(0, Pid::as_raw)
                );
            }
            if p.due(now) {
                match fork_background(private, || crate::spooler::run(index)) {
                    Ok(pid) => {
                        slot.pid.store(pid.as_raw(), Relaxed);
                        p.spawned(pid, now);
                        tracing::info!(
                            "spawned the uWSGI spooler on dir {} with pid {pid}",
                            self.dirs[index].display()
                        );
                    }
                    Err(e) => {
                        tracing::error!("cannot spawn the spooler on dir {}: {e:#}", self.dirs[index].display());
                        p.respawn_at = Some(now + Duration::from_secs(1));
                    }
                }
            }
        }
    }

    /// A child exited: true when it was a spooler (logged; respawned when `running`).
    pub fn reaped(&mut self, pid: Pid, how: &Exit, running: bool, now: Instant) -> bool {
        let Some(index) = self.procs.index_of(pid) else { return false };
        let slot = &self.board.board().spoolers[index];
        slot.pid.store(0, Relaxed);
        slot.running.store(0, Relaxed);
        // A deadline left by a spooler killed in a task must not kill its successor.
        slot.harakiri_at.store(0, Relaxed);
        let expected = self.procs[index].exited(running, now);
        match how {
            // `spooler-max-tasks` recycling, or a `touch-spoolers-reload` restart.
            Exit::Code(0) if running => {}
            _ if running && !expected => tracing::error!("OOOPS the spooler is no more...trying respawn..."),
            _ if !running => tracing::info!("spooler (pid: {pid}) annihilated"),
            _ => {}
        }
        true
    }

    /// Reload or shutdown: SIGTERM (finish the task) or SIGINT (now) to every spooler,
    /// SIGKILL after the mercy; none is respawned.
    pub fn stop(&mut self, sig: Signal, now: Instant) {
        self.procs.curse_all(sig, self.mercy, false, now);
    }

    /// While stopping: SIGKILLs the spoolers past their mercy.
    pub fn kill_overdue(&mut self, now: Instant) {
        for p in self.procs.iter_mut() {
            if p.kill_if_overdue(now) {
                tracing::warn!("a spooler is taking too much time to die...NO MERCY !!!");
            }
        }
    }

    /// The stats' `spoolers` list, as uWSGI's: `dir`, `pid`, `tasks`, `respawns`, `running`.
    /// `None` without spoolers (uWSGI leaves the key out).
    pub fn stats(&self) -> Option<Value> {
        if self.procs.is_empty() {
            return None;
        }
        let list = self
            .procs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let slot = &self.board.board().spoolers[i];
                json!({
                    "dir": self.dirs[i].display().to_string(),
                    "pid": p.pid.map_or(0, Pid::as_raw),
                    "tasks": slot.tasks.load(Relaxed),
                    "respawns": p.respawns,
                    "running": slot.running.load(Relaxed),
                })
            })
            .collect();
        Some(Value::Array(list))
    }
}
