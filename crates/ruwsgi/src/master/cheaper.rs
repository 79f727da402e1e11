//! Adaptive process spawning: uWSGI's cheaper subsystem (`core/master_utils.c`
//! `uwsgi_calc_cheaper` and its `spare`/`backlog`/`manual` algorithms, uWSGI 2.1's `spare2`,
//! the `cheaper_busyness` plugin) and its idle mode (`core/master_checks.c`
//! `uwsgi_master_check_idle`, `cheap`). Runs in the master's loop, so it never blocks and
//! starts no thread.
//!
//! A worker slot is "cheaped" when the cheaper stopped its worker (or never started it): the
//! master doesn't respawn it. Once a second (uWSGI's `master-interval`) the algorithm sees
//! which workers are active and busy (a core in a request, from the scoreboard), their
//! request time and the listen queue, and answers how many workers to add (the first
//! cheaped slots) or remove (the oldest idle worker, told to stop gracefully: it finishes
//! what it has accepted). The algorithms are plain state machines over that view; `Master`
//! applies their answers. The same pass keeps the figures the stats and metrics export: the
//! instance's busy time and its share of the full capacity (`busy_ratio`).

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ruwsgi_config::cheaper::{Cheaper as Settings, CheaperAlgo};
use serde_json::{json, Value};

use super::Master;
use crate::scoreboard::now_micros;

/// How often the algorithm runs: uWSGI's default `master-interval`.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The window `busy_ratio` is measured over.
const LOAD_WINDOW: Duration = Duration::from_secs(10);

/// What an algorithm sees of one worker slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Slot {
    /// A worker runs here and the cheaper hasn't stopped it (uWSGI: `!cheaped && pid > 0`).
    active: bool,
    /// Empty and cheaped: the cheaper may start a worker here (`cheaped && pid == 0`).
    free: bool,
    /// One of its cores is in a request (`uwsgi_worker_is_busy`).
    busy: bool,
    /// The running process (0 when none): the busyness figures restart with a new one.
    pid: i32,
    /// Time spent in completed requests by this process, µs (uWSGI's `running_time`).
    running_time: u64,
}

/// One check's input.
#[derive(Debug)]
struct View<'a> {
    slots: &'a [Slot],
    /// The longest listen queue of the TCP sockets (uWSGI's `shared->backlog`).
    backlog: u64,
    /// Now, µs.
    now: u64,
}

impl View<'_> {
    fn active(&self) -> u64 {
        self.slots.iter().filter(|s| s.active).count() as u64
    }

    fn busy(&self) -> u64 {
        self.slots.iter().filter(|s| s.active && s.busy).count() as u64
    }

    /// How many of the first cheaped slots, up to `step`, can take a worker.
    fn spawnable(&self, step: u64) -> i64 {
        self.slots.iter().filter(|s| s.free).count().min(usize::try_from(step).unwrap_or(usize::MAX)) as i64
    }
}

/// An algorithm with its state. `run` answers uWSGI's way: workers to add (> 0) or remove
/// (< 0); with `can_spawn` false it must not answer > 0.
#[derive(Debug)]
enum Algo {
    Spare { overload_count: u64, idle_count: u64 },
    Spare2 { idle_count: u64 },
    Backlog,
    Busyness(Busyness),
    Manual,
}

impl Algo {
    fn new(s: &Settings, processes: usize, now: u64) -> Self {
        match s.algo {
            CheaperAlgo::Spare => Self::Spare { overload_count: 0, idle_count: 0 },
            CheaperAlgo::Spare2 => Self::Spare2 { idle_count: 0 },
            CheaperAlgo::Backlog => Self::Backlog,
            CheaperAlgo::Busyness => Self::Busyness(Busyness::new(s, processes, now)),
            CheaperAlgo::Manual => Self::Manual,
        }
    }

    fn run(&mut self, s: &Settings, v: &View<'_>, can_spawn: bool) -> i64 {
        match self {
            Self::Spare { overload_count, idle_count } => spare(s, v, can_spawn, overload_count, idle_count),
            Self::Spare2 { idle_count } => spare2(s, v, can_spawn, idle_count),
            Self::Backlog => backlog(s, v, can_spawn),
            Self::Busyness(b) => b.run(s, v, can_spawn),
            Self::Manual => 0,
        }
    }
}

/// `spare`: every active worker busy for more than `cheaper-overload` checks adds
/// `cheaper-step` workers; with no overload left and more than one idle worker, one worker
/// goes every `cheaper-overload` checks, down to `cheaper`.
fn spare(s: &Settings, v: &View<'_>, can_spawn: bool, overload_count: &mut u64, idle_count: &mut u64) -> i64 {
    if v.slots.iter().any(|w| w.active && !w.busy) {
        *overload_count = overload_count.saturating_sub(1);
    } else {
        *overload_count += 1;
        *idle_count = 0;
    }
    if can_spawn && *overload_count > s.overload {
        *overload_count = 0;
        return v.spawnable(s.step);
    }
    if *overload_count == 0 {
        let (active, busy) = (v.active(), v.busy());
        // Stable: exactly one spare worker.
        if active > busy && active - busy == 1 {
            return 0;
        }
        *idle_count += 1;
        if active > s.count && idle_count.is_multiple_of(s.overload) {
            return -1;
        }
    }
    0
}

/// `spare2` (uWSGI 2.1): fewer than `cheaper` idle workers adds up to `cheaper-step`;
/// more than `cheaper` idle ones for `cheaper-idle` checks removes one.
fn spare2(s: &Settings, v: &View<'_>, can_spawn: bool, idle_count: &mut u64) -> i64 {
    let idle = v.active() - v.busy();
    if idle < s.count {
        *idle_count = 0;
        if !can_spawn {
            return 0;
        }
        return v.spawnable(s.step.min(s.count - idle));
    }
    if idle == s.count {
        *idle_count = 0;
        return 0;
    }
    *idle_count += 1;
    if *idle_count < s.cheaper_idle {
        return 0;
    }
    *idle_count = 0;
    -1
}

/// `backlog`: a listen queue longer than `cheaper-overload` adds `cheaper-step` workers, a
/// shorter one removes a worker per check, down to `cheaper`.
fn backlog(s: &Settings, v: &View<'_>, can_spawn: bool) -> i64 {
    if can_spawn && v.backlog > s.overload {
        return v.spawnable(s.step);
    }
    if v.backlog < s.overload && v.active() > s.count {
        return -1;
    }
    0
}

/// What the busyness algorithm did last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastAction {
    None,
    Spawned,
    Cheaped,
}

/// The `cheaper_busyness` plugin's state: every `cheaper-overload` seconds it measures each
/// active worker's busyness (its request time over the window, in %), and compares the
/// average with `cheaper-busyness-min`/`-max`. A worker is removed only after
/// `cheaper-overload` × multiplier seconds of low busyness; the multiplier grows by the
/// penalty when workers come back too soon after one was removed. A long listen queue
/// spawns "emergency" workers between windows.
#[derive(Debug)]
struct Busyness {
    /// Per slot: the process and its `running_time` at the last window's end.
    last_values: Vec<(i32, u64)>,
    /// Per slot: checks in this window that found it busy.
    was_busy: Vec<u64>,
    /// Per slot: busyness (%) of the last window, for the stats.
    current: Vec<u64>,
    /// Average busyness (%) of the last window.
    average: u64,
    /// Start of the current window, µs.
    tcheck: u64,
    /// When a worker was last removed, µs.
    last_cheaped: u64,
    /// No worker is removed before this, µs.
    next_cheap: u64,
    /// The multiplier now, and the configured one it returns to.
    cheap_multi: u64,
    min_multi: u64,
    last_action: LastAction,
    /// Windows in a row between min and max.
    tolerance_counter: u64,
    /// Workers spawned for a long listen queue and not yet removed.
    emergency_workers: u64,
    /// Since when the listen queue has been non-empty, µs.
    backlog_nonzero_since: Option<u64>,
}

impl Busyness {
    fn new(s: &Settings, processes: usize, now: u64) -> Self {
        let b = &s.busyness;
        // uWSGI's start-up lines of the plugin.
        tracing::info!(
            "[busyness] settings: min={}%, max={}%, overload={}, multiplier={}, respawn penalty={}",
            b.min,
            b.max,
            s.overload,
            b.multiplier,
            b.penalty
        );
        tracing::info!("[busyness] backlog alert is set to {} request(s), step is {}", b.backlog_alert, b.backlog_step);
        tracing::info!("[busyness] backlog non-zero alert is set to {} second(s)", b.backlog_nonzero);
        let mut me = Self {
            last_values: vec![(0, 0); processes],
            was_busy: vec![0; processes],
            current: vec![0; processes],
            average: 0,
            tcheck: now,
            last_cheaped: 0,
            next_cheap: 0,
            cheap_multi: b.multiplier,
            min_multi: b.multiplier,
            last_action: LastAction::None,
            tolerance_counter: 0,
            emergency_workers: 0,
            backlog_nonzero_since: None,
        };
        me.set_next_cheap_time(s, now);
        me
    }

    /// No worker is removed for `cheaper-overload` × the multiplier (the backlog one while
    /// emergency workers run, for a quick return after a short spike).
    fn set_next_cheap_time(&mut self, s: &Settings, now: u64) {
        let multi = if self.emergency_workers > 0 {
            if s.busyness.verbose {
                tracing::info!(
                    "[busyness] {} emergency worker(s) running, using {} seconds cheaper timer",
                    self.emergency_workers,
                    s.overload * s.busyness.backlog_multiplier
                );
            }
            s.busyness.backlog_multiplier
        } else {
            self.cheap_multi
        };
        self.next_cheap = now + s.overload * multi * 1_000_000;
    }

    fn decrease_multi(&mut self) {
        if self.cheap_multi > self.min_multi {
            self.cheap_multi -= 1;
            tracing::info!("[busyness] decreasing cheaper multiplier to {}", self.cheap_multi);
        }
    }

    fn spawn_emergency_worker(&mut self, s: &Settings, v: &View<'_>) -> i64 {
        self.cheap_multi = self.min_multi;
        self.last_action = LastAction::Spawned;
        let spawned = v.spawnable(s.busyness.backlog_step);
        self.set_next_cheap_time(s, v.now);
        if spawned > 0 {
            self.emergency_workers += spawned as u64;
            tracing::info!(
                "[busyness] {} requests in listen queue, spawning {spawned} emergency worker(s) ({})!",
                v.backlog,
                self.emergency_workers
            );
        } else {
            tracing::info!(
                "[busyness] {} requests in listen queue but we are already started maximum number of workers ({})",
                v.backlog,
                v.slots.len()
            );
        }
        spawned
    }

    fn run(&mut self, s: &Settings, v: &View<'_>, can_spawn: bool) -> i64 {
        let b = &s.busyness;
        let window = s.overload * 1_000_000;
        let active = v.active();
        for (i, w) in v.slots.iter().enumerate() {
            if w.active {
                self.was_busy[i] += u64::from(w.busy);
            } else {
                self.was_busy[i] = 0;
            }
        }
        let now = v.now;
        if now.saturating_sub(self.tcheck) >= window {
            self.tcheck = now;
            let mut total = 0;
            for (i, w) in v.slots.iter().enumerate() {
                let (last_pid, last) = self.last_values[i];
                // A new process starts its request time from 0.
                let last = if last_pid == w.pid { last } else { 0 };
                if w.active {
                    let delta = w.running_time.saturating_sub(last);
                    let mut percent = (delta * 100 / window).min(100);
                    if delta == 0 && self.was_busy[i] > 0 {
                        // Busy at the checks but no request ended: requests longer than the
                        // window.
                        if b.verbose {
                            tracing::info!("[busyness] worker {} was busy {} time(s) in last cycle but no request was completed during this time, marking as 100% busy", i + 1, self.was_busy[i]);
                        }
                        percent = 100;
                    }
                    self.was_busy[i] = 0;
                    total += percent;
                    self.current[i] = percent;
                    if b.verbose && active > 1 {
                        tracing::info!(
                            "[busyness] worker nr {} {}s average busyness is at {percent}%",
                            i + 1,
                            s.overload
                        );
                    }
                } else {
                    self.current[i] = 0;
                }
                self.last_values[i] = (w.pid, w.running_time);
            }
            let avg = total.checked_div(active).unwrap_or(0);
            self.average = avg;
            if b.verbose {
                tracing::info!("[busyness] {}s average busyness of {active} worker(s) is at {avg}%", s.overload);
            }
            if avg > b.max {
                self.tolerance_counter = 0;
                let spawned = if can_spawn { v.spawnable(s.step) } else { 0 };
                if spawned > 0 {
                    self.last_action = LastAction::Spawned;
                    if now.saturating_sub(self.last_cheaped) / window <= self.cheap_multi {
                        self.cheap_multi += b.penalty;
                        tracing::info!(
                            "[busyness] worker(s) respawned to fast, increasing cheaper multiplier to {} (+{})",
                            self.cheap_multi,
                            b.penalty
                        );
                    } else {
                        self.decrease_multi();
                    }
                    self.set_next_cheap_time(s, now);
                    tracing::info!(
                        "[busyness] {}s average busyness is at {avg}%, will spawn {spawned} new worker(s)",
                        s.overload
                    );
                } else {
                    tracing::info!("[busyness] {}s average busyness is at {avg}% but we already started maximum number of workers available with current limits ({active})", s.overload);
                }
                return spawned;
            } else if can_spawn && v.backlog > b.backlog_alert && (active as usize) < v.slots.len() {
                return self.spawn_emergency_worker(s, v);
            } else if avg < b.min {
                if active == 1 {
                    return 0;
                }
                self.tolerance_counter = 0;
                if active > s.count {
                    if now >= self.next_cheap {
                        if self.last_action == LastAction::Cheaped {
                            self.decrease_multi();
                        }
                        self.set_next_cheap_time(s, now);
                        tracing::info!(
                            "[busyness] {}s average busyness is at {avg}%, cheap one of {active} running workers",
                            s.overload
                        );
                        self.last_cheaped = now;
                        self.last_action = LastAction::Cheaped;
                        self.emergency_workers = self.emergency_workers.saturating_sub(1);
                        return -1;
                    } else if b.verbose {
                        tracing::info!(
                            "[busyness] need to wait {} more second(s) to cheap worker",
                            (self.next_cheap - now) / 1_000_000
                        );
                    }
                }
            } else {
                if active == 1 {
                    return 0;
                }
                self.emergency_workers = self.emergency_workers.saturating_sub(1);
                self.tolerance_counter += 1;
                if self.tolerance_counter >= 3 {
                    // Three windows in a row between min and max: start counting idle time anew.
                    if b.verbose {
                        tracing::info!("[busyness] {}s average busyness is at {avg}%, {} non-idle cycle(s), resetting cheaper timer", s.overload, self.tolerance_counter);
                    }
                    self.set_next_cheap_time(s, now);
                } else {
                    // Maybe a short spike: this window doesn't count as idle.
                    if b.verbose {
                        tracing::info!("[busyness] {}s average busyness is at {avg}%, {} non-idle cycle(s), adjusting cheaper timer", s.overload, self.tolerance_counter);
                    }
                    self.next_cheap += window;
                }
            }
        } else if can_spawn && v.backlog > b.backlog_alert && (active as usize) < v.slots.len() {
            // The queue is checked every second, between windows too.
            return self.spawn_emergency_worker(s, v);
        } else if v.backlog > 0 {
            if let Some(since) = self.backlog_nonzero_since {
                if can_spawn && now.saturating_sub(since) / 1_000_000 >= b.backlog_nonzero {
                    tracing::info!(
                        "[busyness] backlog was non-zero for {} second(s), spawning new worker(s)",
                        now.saturating_sub(since) / 1_000_000
                    );
                    self.backlog_nonzero_since = Some(now);
                    return self.spawn_emergency_worker(s, v);
                }
            } else {
                if b.verbose {
                    tracing::info!("[busyness] backlog is starting to fill ({})", v.backlog);
                }
                self.backlog_nonzero_since = Some(now);
            }
        } else if self.backlog_nonzero_since.take().is_some() && b.verbose {
            tracing::info!("[busyness] backlog is now empty");
        }
        0
    }
}

/// The instance's busy time, for `busy_ratio` and the `busy_seconds` counter: per slot, the
/// request time of its process including the requests in progress, summed over the slots'
/// growth so that it only ever grows (across respawns too).
#[derive(Debug, Default)]
struct Load {
    /// Per slot: the process and its busy time at the last update, µs.
    last: Vec<(i32, u64)>,
    /// Busy core-µs of the instance since start.
    total: u64,
    /// (when, `total`) samples over the last `LOAD_WINDOW`.
    samples: VecDeque<(Instant, u64)>,
    /// Cores now in a request, and workers with at least one.
    busy_cores: u64,
    busy_workers: u64,
}

/// The cheaper's state in the master.
#[derive(Debug)]
pub(super) struct Cheaper {
    settings: Settings,
    algo: Algo,
    /// Per slot: stopped (or never started) by the cheaper, so not respawned.
    cheaped: Vec<bool>,
    last_check: Instant,
    /// Workers to add (> 0) or remove (< 0) at the next check: the master FIFO's `+`/`-`,
    /// and removals no idle worker could take yet.
    fifo_delta: i64,
    /// Cheap mode (`cheap`, `idle`): no worker runs; the master waits for a connection.
    is_cheap: bool,
    /// `idle`: the request count at the last change, and when it changed.
    idle_requests: u64,
    idle_since: Instant,
    load: Load,
}

impl Cheaper {
    pub(super) fn new(settings: Settings, processes: usize) -> Self {
        let now = Instant::now();
        let algo = if settings.enabled() { Algo::new(&settings, processes, now_micros()) } else { Algo::Manual };
        Self {
            settings,
            algo,
            cheaped: vec![false; processes],
            last_check: now,
            fifo_delta: 0,
            is_cheap: false,
            idle_requests: 0,
            idle_since: now,
            load: Load { last: vec![(0, 0); processes], ..Load::default() },
        }
    }
}

impl Master {
    /// The worker ids to spawn at start-up: `cheaper-initial` of them in cheaper mode, none
    /// with `cheap`, else all; the others are cheaped.
    pub(super) fn initial_workers(&mut self) -> Vec<usize> {
        let processes = self.workers.len();
        let c = &mut self.cheaper;
        let start = if c.settings.cheap {
            c.is_cheap = true;
            tracing::info!("cheap mode enabled: waiting for socket connection...");
            0
        } else if c.settings.enabled() {
            usize::try_from(c.settings.initial).unwrap_or(processes).min(processes)
        } else {
            processes
        };
        for (i, cheaped) in c.cheaped.iter_mut().enumerate() {
            *cheaped = i >= start;
        }
        (1..=start).collect()
    }

    /// A worker exited: true (after uWSGI's log lines) when the cheaper stopped it, so the
    /// master must not respawn it.
    pub(super) fn cheaper_reaped(&mut self, index: usize, pid: Pid) -> bool {
        if !self.cheaper.cheaped[index] {
            return false;
        }
        tracing::info!("worker {} killed successfully (pid: {pid})", index + 1);
        tracing::info!("uWSGI worker {} cheaped.", index + 1);
        true
    }

    /// In cheap mode, the listening sockets the master polls for the first connection.
    pub(super) fn cheap_wait_fds(&self) -> Vec<BorrowedFd<'_>> {
        if self.cheaper.is_cheap {
            self.listeners.iter().map(crate::net::listener::Listener::fd).collect()
        } else {
            Vec::new()
        }
    }

    /// A connection arrived in cheap mode: start `cheaper` workers (all without cheaper).
    pub(super) fn wake_from_cheap(&mut self) {
        if !self.cheaper.is_cheap {
            return;
        }
        self.cheaper.is_cheap = false;
        self.cheaper.idle_since = Instant::now();
        let needed = if self.cheaper.settings.enabled() {
            usize::try_from(self.cheaper.settings.count).unwrap_or(usize::MAX)
        } else {
            self.workers.len()
        };
        for index in 0..needed.min(self.workers.len()) {
            self.cheaper.cheaped[index] = false;
            // One still finishing is respawned when it exits.
            if self.workers[index].pid.is_none() {
                self.cheaper_spawn(index);
            }
        }
    }

    /// The master FIFO's `+` (1) and `-` (-1).
    pub(super) fn cheaper_fifo(&mut self, delta: i64) {
        self.cheaper.fifo_delta += delta;
    }

    /// The master FIFO's `C`: stop every worker until a connection arrives.
    pub(super) fn go_cheap(&mut self) {
        if self.cheaper.is_cheap {
            return;
        }
        tracing::info!("going cheap...");
        self.enter_cheap_mode();
    }

    // Differs from uWSGI: the workers stop gracefully (SIGTERM: idle keep-alive connections
    // are closed cleanly) where uWSGI sends SIGINT and blocks its master up to 3 s per worker.
    fn enter_cheap_mode(&mut self) {
        self.cheaper.is_cheap = true;
        for index in 0..self.workers.len() {
            self.cheaper.cheaped[index] = true;
            if let Some(pid) = self.workers[index].pid {
                tracing::info!("killing worker {} (pid: {pid})", index + 1);
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
        tracing::info!("cheap mode enabled: waiting for socket connection...");
    }

    /// On every pass of the master's loop while it runs: the busy figures, and once a
    /// second `idle` and the algorithm.
    pub(super) fn check_cheaper(&mut self) {
        self.update_load();
        let now = Instant::now();
        if now.duration_since(self.cheaper.last_check) < CHECK_EVERY {
            return;
        }
        self.cheaper.last_check = now;
        self.check_idle(now);
        if self.cheaper.settings.enabled() && !self.cheaper.is_cheap {
            self.calc_cheaper();
        }
    }

    /// The scoreboard as the algorithms see it.
    fn cheaper_view(&self) -> Vec<Slot> {
        let threads = self.cfg.threads.max(1) as usize;
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let slot = self.board.worker(i + 1);
                let cheaped = self.cheaper.cheaped[i];
                Slot {
                    active: w.pid.is_some() && !cheaped,
                    free: w.pid.is_none() && cheaped,
                    busy: slot.cores.iter().take(threads).any(|c| c.request_start.load(Relaxed) != 0),
                    pid: w.pid.map_or(0, Pid::as_raw),
                    running_time: slot.busy_micros.load(Relaxed),
                }
            })
            .collect()
    }

    /// uWSGI's `uwsgi_calc_cheaper`: the RSS limits, then the FIFO, then the algorithm.
    fn calc_cheaper(&mut self) {
        let slots = self.cheaper_view();
        let s = self.cheaper.settings;
        let mut ignore_algo = false;
        let mut needed: i64 = 0;
        if s.rss_limit_soft > 0 {
            let (mut total_rss, mut active) = (0, 0);
            for (i, w) in self.workers.iter().enumerate() {
                if w.pid.is_some() && !self.cheaper.cheaped[i] {
                    total_rss += self.board.worker(i + 1).rss.load(Relaxed);
                    active += 1;
                }
            }
            if s.rss_limit_hard > 0 && active > 1 && total_rss >= s.rss_limit_hard {
                tracing::info!("cheaper hard rss memory limit exceeded, cheap one of {active} workers");
                needed = -1;
                ignore_algo = true;
            } else if total_rss >= s.rss_limit_soft {
                tracing::debug!("cheaper soft rss memory limit exceeded, can't spawn more workers");
                ignore_algo = true;
            }
        }
        if self.cheaper.fifo_delta != 0 {
            if !ignore_algo {
                needed = self.cheaper.fifo_delta;
            }
            self.cheaper.fifo_delta = 0;
        } else if needed == 0 {
            let backlog = if matches!(s.algo, CheaperAlgo::Backlog | CheaperAlgo::Busyness) {
                super::stats::listen_backlog(&self.listeners)
            } else {
                0
            };
            let view = View { slots: &slots, backlog, now: now_micros() };
            needed = self.cheaper.algo.run(&s, &view, !ignore_algo);
            if ignore_algo && needed > 0 {
                needed = 0;
            }
        }
        if needed > 0 {
            let free: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].free).collect();
            for index in free.into_iter().take(usize::try_from(needed).unwrap_or(0)) {
                self.cheaper_spawn(index);
            }
        }
        while needed < 0 {
            needed += 1;
            // The oldest idle active worker goes.
            let victim = slots
                .iter()
                .enumerate()
                .filter(|(i, w)| w.active && !w.busy && !self.cheaper.cheaped[*i])
                .min_by_key(|(i, _)| self.workers[*i].spawned)
                .map(|(i, _)| i);
            match victim {
                Some(index) => {
                    self.cheaper.cheaped[index] = true;
                    if let Some(pid) = self.workers[index].pid {
                        tracing::debug!("worker {} should die...", index + 1);
                        let _ = kill(pid, Signal::SIGTERM);
                    }
                }
                // None idle now: try again at the next check.
                None => self.cheaper.fifo_delta -= 1,
            }
        }
    }

    /// Starts a worker in cheaped slot `index`.
    fn cheaper_spawn(&mut self, index: usize) {
        self.cheaper.cheaped[index] = false;
        if let Err(e) = self.spawn(index + 1) {
            tracing::error!("cannot spawn worker {}: {e:#}", index + 1);
            self.cheaper.cheaped[index] = true;
        }
    }

    /// `idle`: no request for `idle` seconds (and none in progress) stops every worker until
    /// a connection arrives, or the instance with `die-on-idle`.
    fn check_idle(&mut self, now: Instant) {
        let idle = self.cheaper.settings.idle;
        if idle == 0 || self.cheaper.is_cheap {
            return;
        }
        if self.cheaper_view().iter().any(|w| w.active && w.busy) {
            return;
        }
        let requests = self.board.board().total_requests.load(Relaxed);
        if requests != self.cheaper.idle_requests {
            self.cheaper.idle_requests = requests;
            self.cheaper.idle_since = now;
            return;
        }
        let quiet = now.duration_since(self.cheaper.idle_since).as_secs();
        if quiet <= idle {
            return;
        }
        let now_s = now_micros() / 1_000_000;
        tracing::info!("workers have been inactive for more than {idle} seconds ({now_s}-{})", now_s - quiet);
        if self.cheaper.settings.die_on_idle {
            self.shutdown(true, "die-on-idle");
            return;
        }
        self.enter_cheap_mode();
    }

    /// Refreshes the busy figures from the scoreboard.
    fn update_load(&mut self) {
        let threads = self.cfg.threads.max(1) as usize;
        let now_us = now_micros();
        let load = &mut self.cheaper.load;
        let (mut busy_cores, mut busy_workers) = (0, 0);
        for (i, w) in self.workers.iter().enumerate() {
            let Some(pid) = w.pid.map(Pid::as_raw) else {
                load.last[i] = (0, 0);
                continue;
            };
            let slot = self.board.worker(i + 1);
            let mut busy = slot.busy_micros.load(Relaxed);
            let mut cores = 0;
            for core in slot.cores.iter().take(threads) {
                let start = core.request_start.load(Relaxed);
                if start != 0 {
                    busy += now_us.saturating_sub(start);
                    cores += 1;
                }
            }
            busy_cores += cores;
            busy_workers += u64::from(cores > 0);
            let (last_pid, last) = load.last[i];
            let last = if last_pid == pid { last } else { 0 };
            load.total += busy.saturating_sub(last);
            load.last[i] = (pid, busy.max(last));
        }
        load.busy_cores = busy_cores;
        load.busy_workers = busy_workers;
        let now = Instant::now();
        load.samples.push_back((now, load.total));
        while load.samples.len() > 2 && load.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > LOAD_WINDOW)
        {
            load.samples.pop_front();
        }
    }

    /// The figures the stats document adds at its top level: `busy_ratio` (the share of
    /// `processes` × `threads` spent in requests over the last 10 s), `busy_seconds` (busy
    /// core-seconds since start, a counter), workers active and busy, and the cheaper's
    /// state.
    pub(super) fn cheaper_stats(&self) -> Vec<(&'static str, Value)> {
        let load = &self.cheaper.load;
        let capacity = (self.workers.len() * self.cfg.threads.max(1) as usize) as f64;
        let ratio = match (load.samples.front(), load.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                ((b1 - b0) as f64 / (t1.duration_since(*t0).as_micros() as f64 * capacity)).clamp(0.0, 1.0)
            }
            _ => (load.busy_cores as f64 / capacity).min(1.0),
        };
        let active =
            self.workers.iter().enumerate().filter(|(i, w)| w.pid.is_some() && !self.cheaper.cheaped[*i]).count();
        let s = &self.cheaper.settings;
        let mut cheaper = json!({
            "enabled": s.enabled(),
            "algo": s.algo.name(),
            "min": s.count,
            "max": self.workers.len(),
            "cheap": self.cheaper.is_cheap,
        });
        if let Algo::Busyness(b) = &self.cheaper.algo {
            cheaper["busyness"] = json!(b.average);
            cheaper["workers_busyness"] = json!(b.current);
        }
        vec![
            ("busy_ratio", json!((ratio * 1000.0).round() / 1000.0)),
            ("busy_seconds", json!(load.total as f64 / 1e6)),
            ("capacity", json!(capacity as u64)),
            ("active_workers", json!(active)),
            ("busy_workers", json!(load.busy_workers)),
            ("cheaper", cheaper),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(algo: CheaperAlgo) -> Settings {
        let mut s = Settings { count: 1, algo, overload: 2, ..Settings::default() };
        s.check(4).unwrap();
        s
    }

    fn slots(active_busy: &[(bool, bool)], total: usize) -> Vec<Slot> {
        let mut v: Vec<Slot> = active_busy
            .iter()
            .enumerate()
            .map(|(i, &(active, busy))| Slot { active, busy, pid: i as i32 + 1, ..Slot::default() })
            .collect();
        v.resize(total, Slot { free: true, ..Slot::default() });
        v
    }

    fn check(algo: &mut Algo, s: &Settings, slots: &[Slot], backlog: u64) -> i64 {
        algo.run(s, &View { slots, backlog, now: 0 }, true)
    }

    #[test]
    fn spare_adds_a_worker_after_overload_checks_all_busy() {
        let s = settings(CheaperAlgo::Spare);
        let mut a = Algo::new(&s, 4, 0);
        let busy = slots(&[(true, true)], 4);
        // cheaper-overload = 2: the third check in a row with every worker busy adds one.
        assert_eq!(check(&mut a, &s, &busy, 0), 0);
        assert_eq!(check(&mut a, &s, &busy, 0), 0);
        assert_eq!(check(&mut a, &s, &busy, 0), 1);
        assert_eq!(check(&mut a, &s, &busy, 0), 0, "the overload count starts again");
    }

    #[test]
    fn spare_removes_one_every_overload_checks_down_to_cheaper() {
        let s = settings(CheaperAlgo::Spare);
        let mut a = Algo::new(&s, 4, 0);
        let idle = slots(&[(true, false), (true, false), (true, false)], 4);
        assert_eq!(check(&mut a, &s, &idle, 0), 0);
        assert_eq!(check(&mut a, &s, &idle, 0), -1);
        assert_eq!(check(&mut a, &s, &idle, 0), 0);
        assert_eq!(check(&mut a, &s, &idle, 0), -1);
        // One spare worker beside a busy one is stable.
        let stable = slots(&[(true, true), (true, false)], 4);
        for _ in 0..5 {
            assert_eq!(check(&mut a, &s, &stable, 0), 0);
        }
        // At `cheaper` workers nothing goes.
        let one = slots(&[(true, false)], 4);
        for _ in 0..5 {
            assert_eq!(check(&mut a, &s, &one, 0), 0);
        }
    }

    #[test]
    fn spare2_keeps_cheaper_idle_workers() {
        let s = Settings { count: 2, algo: CheaperAlgo::Spare2, step: 4, cheaper_idle: 2, ..Settings::default() };
        let mut a = Algo::new(&s, 6, 0);
        // One idle worker of two: add one (cheaper - idle), not cheaper-step.
        assert_eq!(check(&mut a, &s, &slots(&[(true, true), (true, false)], 6), 0), 1);
        let idle = slots(&[(true, false), (true, false), (true, false)], 6);
        assert_eq!(check(&mut a, &s, &idle, 0), 0);
        assert_eq!(check(&mut a, &s, &idle, 0), -1);
    }

    #[test]
    fn backlog_follows_the_listen_queue() {
        let s = settings(CheaperAlgo::Backlog);
        let mut a = Algo::new(&s, 4, 0);
        let two = slots(&[(true, true), (true, true)], 4);
        assert_eq!(check(&mut a, &s, &two, 3), 1);
        assert_eq!(check(&mut a, &s, &two, 2), 0);
        assert_eq!(check(&mut a, &s, &two, 0), -1);
        assert_eq!(check(&mut a, &s, &slots(&[(true, false)], 4), 0), 0, "not below cheaper");
    }

    #[test]
    fn busyness_spawns_above_max_and_cheaps_after_the_multiplier() {
        let mut s = settings(CheaperAlgo::Busyness);
        s.busyness.multiplier = 2;
        // Times are µs since the epoch, as `now_micros`.
        let base = 1_700_000_000_000_000;
        let second = 1_000_000;
        let mut a = Busyness::new(&s, 4, base);
        let run = |a: &mut Busyness, running: &[u64], now: u64, backlog: u64| {
            let v: Vec<Slot> = (0..4)
                .map(|i| match running.get(i) {
                    Some(&t) => Slot { active: true, pid: i as i32 + 1, running_time: t, ..Slot::default() },
                    None => Slot { free: true, ..Slot::default() },
                })
                .collect();
            a.run(&s, &View { slots: &v, backlog, now }, true)
        };
        // Window 2 s: 1.8 s of requests = 90 % > 50 %: spawn one.
        assert_eq!(run(&mut a, &[0], base + second, 0), 0, "inside the window");
        assert_eq!(run(&mut a, &[1_800_000], base + 2 * second, 0), 1);
        // Idle windows: below min, but not before overload × multiplier (4 s) since the spawn.
        assert_eq!(run(&mut a, &[1_800_000, 0], base + 4 * second, 0), 0);
        assert_eq!(run(&mut a, &[1_800_000, 0], base + 6 * second, 0), -1);
        // A listen queue above the alert spawns an emergency worker between windows.
        assert_eq!(run(&mut a, &[1_800_000], base + 7 * second, 40), 1);
    }
}
