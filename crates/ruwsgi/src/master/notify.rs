//! `sd_notify(3)` for systemd `Type=notify` units, when `NOTIFY_SOCKET` is set: `READY=1`
//! once every worker accepts, `RELOADING=1` (with `MONOTONIC_USEC`, for `Type=notify-reload`)
//! when a graceful reload begins and `READY=1` again when the new image's workers accept,
//! `STOPPING=1` when a stop begins, `STATUS=` with the workers and the requests served (as
//! it changes, at most once a second), `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `MAINPID=` from the parent when `daemonize` forks. Differs from uWSGI: uWSGI sends
//! `STATUS=` lines and `READY=1` only (`core/notify.c`).
//!
//! The datagrams are written by the `sd-notify` crate (no libsystemd needed). The master
//! sends them from its single thread, never blocking: a full or missing socket costs a
//! warning, not a stall. `NOTIFY_SOCKET` stays in the environment so a reloaded image
//! finds it; with systemd's default `NotifyAccess=main` only the master is listened to.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::{Master, Phase};

/// Shortest gap between two `STATUS=` updates.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// While the workers start, how often the master looks whether all of them accept.
const READY_POLL: Duration = Duration::from_millis(50);

/// The notification state of one master image.
#[derive(Debug)]
pub struct Notifier {
    /// Half of `WATCHDOG_USEC`, when systemd expects keep-alives from this pid.
    watchdog: Option<Duration>,
    /// When the last `WATCHDOG=1` went out.
    last_watchdog: Instant,
    /// `READY=1` was sent (since the last `RELOADING=1`).
    ready: bool,
    /// The last `STATUS=` text, and when it went out.
    status: (String, Instant),
    /// `STOPPING=1` was sent: no `READY=1` may follow.
    stopping: bool,
}

impl Notifier {
    /// `None` unless `NOTIFY_SOCKET` is set. Call before `daemonize` (`WATCHDOG_PID` names
    /// the pid systemd started).
    pub fn from_env() -> Option<Self> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let mut usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec).then(|| Duration::from_micros(usec / 2));
        let now = Instant::now();
        let notifier =
            Self { watchdog, last_watchdog: now, ready: false, status: (String::new(), now), stopping: false };
        send(&[NotifyState::Status("starting")]);
        Some(notifier)
    }

    /// `RELOADING=1`: a graceful reload began; `READY=1` follows from the new image.
    pub fn reloading(&mut self) {
        self.ready = false;
        let mut states = vec![NotifyState::Reloading, NotifyState::Status("reloading")];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        send(&states);
    }

    /// `STOPPING=1`: a stop began (`why`, e.g. `SIGTERM received`).
    pub fn stopping(&mut self, why: &str) {
        self.stopping = true;
        send(&[NotifyState::Stopping, NotifyState::Status(&format!("stopping: {why}"))]);
    }

    /// When the master loop must look at the notifications again.
    pub fn next_due(&self) -> Option<Instant> {
        let watchdog = self.watchdog.map(|every| self.last_watchdog + every);
        let ready = (!self.ready && !self.stopping).then(|| Instant::now() + READY_POLL);
        watchdog.into_iter().chain(ready).min()
    }
}

/// Sends `states` to `NOTIFY_SOCKET` (nothing when unset); a failure is logged only.
fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!("sd_notify to NOTIFY_SOCKET failed: {e}");
    }
}

/// `MAINPID=`: sent by `daemonize`'s parent (the pid systemd started) for its child, right
/// before it exits, so systemd follows the child.
pub fn main_pid(child: i32) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Ok(pid) = u32::try_from(child) {
            send(&[NotifyState::MainPid(pid)]);
        }
    }
}

impl Master {
    /// Called on every turn of the master loop: `READY=1` once every running worker
    /// accepts, `STATUS=` updates, `WATCHDOG=1` when due.
    pub(super) fn notify_tick(&mut self) {
        let Some(notifier) = self.notify.as_mut() else { return };
        let now = Instant::now();
        if notifier.watchdog.is_some_and(|every| now >= notifier.last_watchdog + every) {
            notifier.last_watchdog = now;
            send(&[NotifyState::Watchdog]);
        }
        if self.phase != Phase::Running {
            return;
        }
        let running: Vec<usize> = (1..=self.workers.len()).filter(|&id| self.workers[id - 1].pid.is_some()).collect();
        let accepting = running.iter().filter(|&&id| self.board.worker(id).accepting.load(Relaxed) == 1).count();
        let busy = running
            .iter()
            .filter(|&&id| self.board.worker(id).cores.iter().any(|c| c.request_start.load(Relaxed) != 0))
            .count();
        let requests = self.board.board().total_requests.load(Relaxed);
        let state = if self.drain.running() { "draining" } else { "serving" };
        let status =
            format!("{state}: {accepting} of {} workers accepting, {busy} busy, {requests} requests", running.len());
        let notifier = self.notify.as_mut().expect("checked above");
        if !notifier.ready && !notifier.stopping && !running.is_empty() && accepting == running.len() {
            notifier.ready = true;
            notifier.status = (status.clone(), now);
            tracing::info!("sd_notify: READY=1 ({status})");
            send(&[NotifyState::Ready, NotifyState::Status(&status)]);
        } else if notifier.ready && status != notifier.status.0 && now >= notifier.status.1 + STATUS_EVERY {
            send(&[NotifyState::Status(&status)]);
            notifier.status = (status, now);
        }
    }
}
