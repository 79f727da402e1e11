//! The master's side of uWSGI's signal framework (`core/signal.c`, `core/master_utils.c`,
//! `core/cron.c`): it reads the requests every process sends (`uwsgi.signal`, `add_timer`,
//! `add_rb_timer`, `add_cron`, `add_file_monitor`), runs the timers, signal crons and file
//! monitors, and routes each raised signal to the target its registration names by
//! writing the signal byte to that worker's socket (`crate::signals`). The handlers run in
//! the workers, never here: as uWSGI, the master only raises and routes.
//!
//! Everything is driven from the master's poll loop: the request socket and the inotify fd
//! are in its poll set, the next timer bounds its timeout. No thread, no Python.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use nix::unistd::Pid;
use ruwsgi_config::cron::{Cron, CronHarakiri};
use ruwsgi_config::Config;

use crate::signals::{parse_request, Hub, Request, Target};

/// A timer (`add_timer`, `add_rb_timer`).
struct Timer {
    signal: u8,
    every: Duration,
    /// When it fires next.
    next: Instant,
    /// Firings left (`add_rb_timer` with iterations); `None` = forever.
    left: Option<u64>,
}

/// A signal cron (`add_cron`).
struct SignalCron {
    signal: u8,
    /// The schedule (its command is unused).
    spec: Cron,
    /// Epoch second of its last firing (0 = never).
    last: i64,
}

/// The master's signal state.
pub struct SignalRouter {
    hub: &'static Hub,
    timers: Vec<Timer>,
    crons: Vec<SignalCron>,
    /// Made at the first `add_file_monitor`.
    inotify: Option<Inotify>,
    /// Watched paths and their signals.
    monitors: Vec<(WatchDescriptor, u8)>,
    /// Every timer, cron and monitor request taken so far.
    registered: Vec<Request>,
    /// `touch-signal` files and their signals.
    touched: Vec<(super::Touched, u8)>,
}

impl SignalRouter {
    /// Sets up the shared table, the locks and the channels (before the app loads).
    pub fn new(cfg: &Config) -> Result<Self> {
        let hub = crate::signals::init(cfg.processes.max(1) as usize, cfg.locks)
            .context("cannot set up the uwsgi signal framework")?;
        let mut router = Self {
            hub,
            timers: Vec::new(),
            crons: Vec::new(),
            inotify: None,
            monitors: Vec::new(),
            registered: Vec::new(),
            touched: cfg.touch_signal.iter().map(|(path, signal)| (super::Touched::new(path), *signal)).collect(),
        };
        // The options that set up signals (`signal-timer`, `signal-rbtimer`, `fs-signal`).
        for &(signal, secs) in &cfg.signal_timer {
            router.add(Request::Timer { signal, secs });
        }
        for &(signal, secs) in &cfg.signal_rbtimer {
            router.add(Request::RbTimer { signal, secs, iterations: 0 });
        }
        for (path, signal) in &cfg.fs_signal {
            router.add(Request::FileMonitor { signal: *signal, path: path.display().to_string() });
        }
        Ok(router)
    }

    /// For the master's poll set: the request socket and the file monitors.
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        std::iter::once(self.hub.to_master.master.as_fd()).chain(self.inotify.as_ref().map(AsFd::as_fd))
    }

    /// When the next timer fires.
    pub fn next_due(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.next).min()
    }

    /// One turn of the master's loop: take the requests, read the file monitors, fire what
    /// is due and route it. `pids`: the workers by slot; `running`: not reloading or
    /// stopping (then nothing is raised, but the requests are still read).
    pub fn service(&mut self, pids: &[Option<Pid>], running: bool) {
        let mut raised = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(&self.hub.to_master.master, &mut buf) {
            if n == 0 {
                break;
            }
            match parse_request(&buf[..n]) {
                Some(Request::Raise(signal)) => raised.push(signal),
                Some(req) => self.add(req),
                None => tracing::warn!("[uwsgi-signal] unreadable request ({n} bytes) ignored"),
            }
        }
        if let Some(inotify) = &self.inotify {
            while let Ok(events) = inotify.read_events() {
                if events.is_empty() {
                    break;
                }
                for ev in events {
                    if let Some((_, signal)) = self.monitors.iter().find(|(wd, _)| *wd == ev.wd) {
                        raised.push(*signal);
                    }
                }
            }
        }
        if !running {
            return;
        }
        let now = Instant::now();
        for t in &mut self.timers {
            if now >= t.next {
                raised.push(t.signal);
                // A master busy past a whole period fires once, not once per missed period.
                t.next = (t.next + t.every).max(now);
                t.left = t.left.map(|n| n.saturating_sub(1));
            }
        }
        self.timers.retain(|t| t.left != Some(0));
        for (file, signal) in &mut self.touched {
            if file.changed() {
                tracing::info!("[uwsgi-touch-signal] raising {signal}");
                raised.push(*signal);
            }
        }
        if !self.crons.is_empty() {
            let epoch = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            let time = super::cron::local_time();
            for c in &mut self.crons {
                // As uWSGI's crons: at most once a minute.
                if c.spec.is_due(&time) && epoch - c.last >= 60 {
                    c.last = epoch;
                    tracing::info!("[uwsgi-cron] routing signal {}", c.signal);
                    raised.push(c.signal);
                }
            }
        }
        raised.dedup();
        for signal in raised {
            self.route(signal, pids);
        }
    }

    /// Registers a timer, cron or file monitor.
    // Differs from uWSGI: one identical to a registered one (same signal and schedule or
    // path) is not added again, so `lazy-apps` workers, which register again at every
    // respawn, don't multiply the timers.
    fn add(&mut self, req: Request) {
        if self.registered.contains(&req) {
            return;
        }
        self.registered.push(req.clone());
        match req {
            Request::Raise(_) => {}
            Request::Timer { signal, secs } => {
                tracing::info!("[uwsgi-signal] timer for signal {signal} every {secs} seconds");
                let every = Duration::from_secs(secs);
                self.timers.push(Timer { signal, every, next: Instant::now() + every, left: None });
            }
            Request::RbTimer { signal, secs, iterations } => {
                tracing::info!(
                    "[uwsgi-signal] rb_timer for signal {signal} every {secs} seconds ({iterations} iterations)"
                );
                let every = Duration::from_secs(secs);
                let left = (iterations > 0).then_some(iterations);
                self.timers.push(Timer { signal, every, next: Instant::now() + every, left });
            }
            Request::Cron { signal, fields: [minute, hour, day, month, week] } => {
                tracing::info!(
                    "[uwsgi-cron] signal {signal} registered as cron task ({minute} {hour} {day} {month} {week})"
                );
                let spec = Cron {
                    minute,
                    hour,
                    day,
                    month,
                    week,
                    command: String::new(),
                    unique: false,
                    harakiri: CronHarakiri::Off,
                };
                self.crons.push(SignalCron { signal, spec, last: 0 });
            }
            Request::FileMonitor { signal, path } => self.monitor(signal, &path),
        }
    }

    /// `add_file_monitor`: inotify on the path, with uWSGI's event set.
    fn monitor(&mut self, signal: u8, path: &str) {
        if self.inotify.is_none() {
            match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(i) => self.inotify = Some(i),
                Err(e) => {
                    tracing::error!("[uwsgi-fsmon] cannot start inotify: {e}");
                    return;
                }
            }
        }
        let Some(inotify) = &self.inotify else { return };
        let events = AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO;
        match inotify.add_watch(path, events) {
            Ok(wd) => {
                tracing::info!("[uwsgi-fsmon] registering file monitor for {path} (signal {signal})");
                self.monitors.push((wd, signal));
            }
            Err(e) => tracing::error!("[uwsgi-fsmon] cannot monitor {path} (signal {signal}): {e}"),
        }
    }

    /// Sends `signal` where its registration says.
    fn route(&self, signal: u8, pids: &[Option<Pid>]) {
        // Differs from uWSGI (which hands it to a worker that then fails to run it): a signal
        // nobody registered is dropped here, with one line saying so.
        let Some((target, _)) = self.hub.registration(signal) else {
            tracing::error!("[uwsgi-signal] signal {signal} is not registered: dropped");
            return;
        };
        let send = |fd: BorrowedFd<'_>, to: &str| {
            if let Err(e) = nix::unistd::write(fd, &[signal]) {
                tracing::error!("could not deliver signal {signal} to {to}: {e}");
            }
        };
        match target {
            Target::AnyWorker => send(self.hub.any_worker.master.as_fd(), "workers pool"),
            Target::Workers | Target::ActiveWorkers => {
                for (i, pair) in self.hub.workers.iter().enumerate() {
                    if target == Target::Workers || pids.get(i).is_some_and(Option::is_some) {
                        send(pair.master.as_fd(), &format!("worker {}", i + 1));
                    }
                }
            }
            Target::Worker(n) => {
                if let Some(pair) = self.hub.workers.get(usize::from(n) - 1) {
                    send(pair.master.as_fd(), &format!("worker {n}"));
                } else {
                    tracing::error!("invalid signal target: worker{n}");
                }
            }
            Target::Spooler => {
                if let Err(e) = crate::spooler::deliver_signal(signal) {
                    tracing::error!("could not deliver signal {signal} to the spooler: {e}");
                }
            }
            Target::Mules | Target::Mule(_) => {
                let mule = if let Target::Mule(n) = target { Some(usize::from(n)) } else { None };
                if let Err(e) = crate::mule::deliver_signal(signal, mule) {
                    tracing::error!("could not deliver signal {signal} to {target}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    /// The signal bytes waiting on a worker-side socket.
    fn waiting(fd: &OwnedFd) -> Vec<u8> {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = nix::unistd::read(fd, &mut byte) {
            out.push(byte[0]);
        }
        out
    }

    // One test: the hub is made once per process.
    #[test]
    fn routes_raised_signals_to_their_targets_and_fires_timers() {
        let cfg = Config { processes: 2, ..Config::default() };
        let mut router = SignalRouter::new(&cfg).unwrap();
        let hub = router.hub;
        hub.register(5, Target::Workers, 0);
        hub.register(6, Target::Worker(2), 0);
        hub.register(7, Target::AnyWorker, 0);
        hub.register(8, Target::ActiveWorkers, 0);
        // Worker 2's slot is empty: active-workers skips it.
        let pids = [Some(Pid::from_raw(1)), None];
        for n in [5, 6, 7, 8, 9] {
            hub.send(&Request::Raise(n)).unwrap();
        }
        router.service(&pids, true);
        assert_eq!(waiting(&hub.workers[0].peer), [5, 8]);
        assert_eq!(waiting(&hub.workers[1].peer), [5, 6]);
        // 9 is registered nowhere: dropped.
        assert_eq!(waiting(&hub.any_worker.peer), [7]);

        // While reloading or stopping the requests are read, nothing is raised.
        hub.send(&Request::Raise(5)).unwrap();
        router.service(&pids, false);
        assert!(waiting(&hub.workers[0].peer).is_empty());

        // Timers: an identical one is taken once; an rb-timer fires its iterations only.
        hub.send(&Request::Timer { signal: 5, secs: 60 }).unwrap();
        hub.send(&Request::RbTimer { signal: 6, secs: 60, iterations: 2 }).unwrap();
        hub.send(&Request::Timer { signal: 5, secs: 60 }).unwrap();
        router.service(&pids, true);
        assert_eq!(router.timers.len(), 2);
        assert!(router.next_due().is_some_and(|t| t > Instant::now() + Duration::from_secs(50)));
        assert!(waiting(&hub.workers[1].peer).is_empty(), "not due yet");
        for _ in 0..3 {
            for t in &mut router.timers {
                t.next = Instant::now().checked_sub(Duration::from_secs(1)).unwrap();
            }
            router.service(&pids, true);
        }
        assert_eq!(waiting(&hub.workers[0].peer), [5, 5, 5]);
        assert_eq!(waiting(&hub.workers[1].peer), [5, 6, 5, 6, 5]);
        assert_eq!(router.timers.len(), 1, "the rb-timer is done");

        // A signal cron due every minute fires once within the minute.
        hub.send(&Request::Cron { signal: 7, fields: [-1, -1, -1, -1, -1] }).unwrap();
        router.service(&pids, true);
        router.service(&pids, true);
        assert_eq!(waiting(&hub.any_worker.peer), [7]);
    }
}
