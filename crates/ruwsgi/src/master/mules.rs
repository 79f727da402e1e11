//! The master's side of mules (`mule`, `mules`, `farm`): forks them after the workers,
//! respawns one that dies (uWSGI's "OOOPS mule N (pid: P) crippled...trying respawn..."),
//! kills one whose message handler passes `mule-harakiri`, and on reload or shutdown sends
//! them SIGHUP (SIGKILL after `mule-reload-mercy`). `touch-mules-reload` restarts them.
//!
//! `Background` here is the bookkeeping of one such process, shared with the spoolers
//! (`spooler.rs`). What runs inside a mule is `crate::mule`.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ruwsgi_config::background::MuleConfig;

use super::{Exit, Touched};
use crate::scoreboard::{BackgroundSlot, Scoreboard};
use crate::wsgi;

/// A process dying sooner than this after its spawn is respawned only after this long.
const RESPAWN_THROTTLE: Duration = Duration::from_secs(1);

/// One spooler or mule process as the master sees it.
#[derive(Debug, Default)]
pub(super) struct Background {
    /// Running process, if any.
    pub pid: Option<Pid>,
    /// When it was spawned.
    spawned: Option<Instant>,
    /// Spawn (again) at this instant; `None` while it runs or must stay down.
    pub respawn_at: Option<Instant>,
    /// Told to stop: SIGKILL at this instant if still alive.
    kill_at: Option<Instant>,
    /// Times it was respawned (stats `respawns`).
    pub respawns: u64,
    /// Stopped on purpose: its exit is expected (no "OOOPS" line).
    cursed: bool,
}

impl Background {
    /// Not started yet; its first spawn is due at `now`.
    pub fn new(now: Instant) -> Self {
        Self { respawn_at: Some(now), ..Self::default() }
    }

    /// Due for a spawn at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.pid.is_none() && self.respawn_at.is_some_and(|t| t <= now)
    }

    /// Records a spawn.
    pub fn spawned(&mut self, pid: Pid, now: Instant) {
        self.pid = Some(pid);
        self.spawned = Some(now);
        self.respawn_at = None;
        self.kill_at = None;
        self.cursed = false;
    }

    /// Records its exit. `respawn`: bring it back (throttled when it lived under a second).
    /// Returns whether the exit was expected.
    pub fn exited(&mut self, respawn: bool, now: Instant) -> bool {
        self.pid = None;
        self.kill_at = None;
        let expected = std::mem::take(&mut self.cursed);
        if respawn {
            self.respawns += 1;
            let quick = self.spawned.is_some_and(|t| now.duration_since(t) < RESPAWN_THROTTLE);
            self.respawn_at = Some(if quick { now + RESPAWN_THROTTLE } else { now });
        } else {
            self.respawn_at = None;
        }
        expected
    }

    /// Sends `sig` and gives it `mercy` before SIGKILL. `respawn`: start it again once it is
    /// gone (a `touch-*-reload`); else it stays down.
    pub fn curse(&mut self, sig: Signal, mercy: Duration, respawn: bool, now: Instant) {
        if let Some(pid) = self.pid {
            let _ = kill(pid, sig);
            self.kill_at = Some(now + mercy);
            self.cursed = true;
        }
        self.respawn_at = if respawn { Some(now) } else { None };
    }

    /// SIGKILLs it if it outlived its mercy; returns true when it did.
    pub fn kill_if_overdue(&mut self, now: Instant) -> bool {
        match (self.pid, self.kill_at) {
            (Some(pid), Some(t)) if now >= t => {
                let _ = kill(pid, Signal::SIGKILL);
                self.kill_at = None;
                true
            }
            _ => false,
        }
    }

    /// The next instant something is due for it.
    pub fn next_due(&self) -> Option<Instant> {
        match self.pid {
            Some(_) => self.kill_at,
            None => self.respawn_at,
        }
    }

    /// `spooler-harakiri`/`mule-harakiri`: SIGKILLs the process when its slot's deadline
    /// passed; returns its pid when it did.
    pub fn check_harakiri(&mut self, slot: &BackgroundSlot) -> Option<Pid> {
        let pid = self.pid?;
        let at = slot.harakiri_at.load(Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if at == 0 || now <= at {
            return None;
        }
        slot.harakiri_at.store(0, Relaxed);
        let _ = kill(pid, Signal::SIGKILL);
        Some(pid)
    }
}

/// Forks a spooler or mule: the child closes the master's private fds (`private`), sends
/// its log lines where the workers send theirs, and runs `child`. Returns the child's pid.
pub(super) fn fork_background(private: &[RawFd], child: impl FnOnce()) -> anyhow::Result<Pid> {
    let pid = wsgi::fork()?;
    if pid == 0 {
        for &fd in private {
            let _ = nix::unistd::close(fd);
        }
        crate::log::enter_worker();
        child();
        // `child` runs the process to its end and exits; never here.
        std::process::exit(1);
    }
    Ok(Pid::from_raw(pid))
}

/// All processes of one kind (the spoolers, the mules): what the master does to each alike.
#[derive(Debug, Default)]
pub(super) struct Group(Vec<Background>);

impl Group {
    /// `n` processes, each due for its first spawn at `now`.
    pub fn new(n: usize, now: Instant) -> Self {
        Self((0..n).map(|_| Background::new(now)).collect())
    }

    /// Slot index of the process `pid`.
    pub fn index_of(&self, pid: Pid) -> Option<usize> {
        self.0.iter().position(|p| p.pid == Some(pid))
    }

    /// `Background::curse` on each.
    pub fn curse_all(&mut self, sig: Signal, mercy: Duration, respawn: bool, now: Instant) {
        for p in &mut self.0 {
            p.curse(sig, mercy, respawn, now);
        }
    }

    /// A reload failed: start them again.
    pub fn resume(&mut self, now: Instant) {
        for p in &mut self.0 {
            if p.pid.is_none() {
                p.respawn_at = Some(now);
            }
        }
    }

    /// None runs.
    pub fn gone(&self) -> bool {
        self.0.iter().all(|p| p.pid.is_none())
    }

    /// The next instant something is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.0.iter().filter_map(Background::next_due).min()
    }
}

impl std::ops::Deref for Group {
    type Target = [Background];
    fn deref(&self) -> &[Background] {
        &self.0
    }
}

impl std::ops::DerefMut for Group {
    fn deref_mut(&mut self) -> &mut [Background] {
        &mut self.0
    }
}

/// All mules.
pub(super) struct Mules {
    /// Mule id N at index N-1.
    pub procs: Group,
    /// `mule-reload-mercy`.
    mercy: Duration,
    /// `touch-mules-reload`.
    touch: Vec<Touched>,
    board: Scoreboard,
}

impl Mules {
    /// The configured mules, due for their first spawn at `now`.
    pub fn new(cfg: &MuleConfig, board: Scoreboard, now: Instant) -> Self {
        let procs = Group::new(cfg.mules.len(), now);
        Self {
            procs,
            mercy: Duration::from_secs(cfg.reload_mercy),
            touch: cfg.touch_reload.iter().map(Touched::new).collect(),
            board,
        }
    }

    /// While serving: spawns what is due, enforces `mule-harakiri`, follows
    /// `touch-mules-reload`, SIGKILLs mules past their mercy.
    pub fn supervise(&mut self, private: &[RawFd], now: Instant) {
        if let Some(t) = self.touch.iter_mut().find_map(|t| t.changed().then(|| t.path.clone())) {
            tracing::info!("*** {} has been touched... mules reload !!! ***", t.display());
            self.procs.curse_all(Signal::SIGHUP, self.mercy, true, now);
        }
        for (index, p) in self.procs.iter_mut().enumerate() {
            let id = index + 1;
            let slot = &self.board.board().mules[index];
            if let Some(pid) = p.check_harakiri(slot) {
                tracing::error!("*** HARAKIRI ON MULE {id} (pid: {pid}) ***");
            }
            if p.kill_if_overdue(now) {
                tracing::warn!(
                    "mule {id} (pid: {}) is taking too much time to die...NO MERCY !!!",
                    p.pid.map_or(0, Pid::as_raw)
                );
            }
            if p.due(now) {
                match fork_background(private, || crate::mule::run(id)) {
                    Ok(pid) => {
                        slot.pid.store(pid.as_raw(), Relaxed);
                        p.spawned(pid, now);
                        tracing::info!("spawned uWSGI mule {id} (pid: {pid})");
                    }
                    Err(e) => {
                        tracing::error!("cannot spawn mule {id}: {e:#}");
                        p.respawn_at = Some(now + RESPAWN_THROTTLE);
                    }
                }
            }
        }
    }

    /// A child exited: true when it was a mule (logged; respawned when `running`).
    pub fn reaped(&mut self, pid: Pid, how: &Exit, running: bool, now: Instant) -> bool {
        let Some(index) = self.procs.index_of(pid) else { return false };
        let id = index + 1;
        let slot = &self.board.board().mules[index];
        slot.pid.store(0, Relaxed);
        // A deadline left by a mule killed in a handler must not kill its successor.
        slot.harakiri_at.store(0, Relaxed);
        let expected = self.procs[index].exited(running, now);
        if running && !expected {
            tracing::error!("OOOPS mule {id} (pid: {pid}) crippled...trying respawn...");
        } else if !running {
            match how {
                Exit::Code(code) => tracing::info!("mule {id} (pid: {pid}) annihilated (exit code {code})"),
                Exit::Signal(sig) => tracing::info!("mule {id} (pid: {pid}) annihilated (signal {})", *sig as i32),
            }
        }
        true
    }

    /// Reload or shutdown: `sig` to every mule (SIGHUP graceful, SIGINT immediate), SIGKILL
    /// after `mule-reload-mercy`; none is respawned.
    pub fn stop(&mut self, sig: Signal, now: Instant) {
        self.procs.curse_all(sig, self.mercy, false, now);
    }

    /// While stopping: SIGKILLs the mules past their mercy.
    pub fn kill_overdue(&mut self, now: Instant) {
        for (index, p) in self.procs.iter_mut().enumerate() {
            if p.kill_if_overdue(now) {
                tracing::warn!("mule {} is taking too much time to die...NO MERCY !!!", index + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_due_once_then_respawned_after_an_unexpected_exit() {
        let t0 = Instant::now();
        let mut p = Background::new(t0);
        assert!(p.due(t0));
        p.spawned(Pid::from_raw(1), t0);
        assert!(!p.due(t0));
        // Died after 5 s while serving: respawned at once, and it was unexpected.
        let t1 = t0 + Duration::from_secs(5);
        assert!(!p.exited(true, t1));
        assert!(p.due(t1));
        assert_eq!(p.respawns, 1);
    }

    #[test]
    fn a_quick_death_is_respawned_a_second_later() {
        let t0 = Instant::now();
        let mut p = Background::new(t0);
        p.spawned(Pid::from_raw(1), t0);
        let t1 = t0 + Duration::from_millis(100);
        p.exited(true, t1);
        assert!(!p.due(t1));
        assert!(p.due(t1 + RESPAWN_THROTTLE));
    }

    #[test]
    fn a_stopped_process_stays_down() {
        let t0 = Instant::now();
        let mut p = Background::new(t0);
        // Not running: cursing it only cancels its spawn.
        p.curse(Signal::SIGTERM, Duration::from_secs(1), false, t0);
        assert!(!p.due(t0));
        assert_eq!(p.next_due(), None);
        // While stopping, a reaped process is not respawned.
        p.spawned(Pid::from_raw(1), t0);
        p.respawn_at = None;
        p.exited(false, t0 + Duration::from_secs(9));
        assert!(!p.due(t0 + Duration::from_secs(10)));
    }
}
