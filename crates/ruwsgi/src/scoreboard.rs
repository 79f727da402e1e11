//! Worker bookkeeping shared between the master and its workers: one anonymous shared
//! mapping made by the master before the first fork. Workers write their own slot with
//! relaxed atomics; the master reads all slots for harakiri, recycling and stats.

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// Most worker processes one instance can run.
pub const MAX_WORKERS: usize = 256;
/// Most threads one worker can run.
pub const MAX_CORES: usize = 64;
/// Bytes of `METHOD URI` kept per core for the harakiri log and stats (longer is cut).
pub const REQUEST_INFO_LEN: usize = 120;

/// One worker thread ("core" in uWSGI's stats).
#[repr(C)]
#[derive(Debug)]
pub struct CoreSlot {
    /// Requests served by this thread.
    pub requests: AtomicU64,
    /// Of those, static files answered without the app (`static-map`, `check-static`).
    pub static_requests: AtomicU64,
    /// Start of the request in progress, µs since the epoch; 0 when idle.
    pub request_start: AtomicU64,
    /// Open connections of this thread, for balancing accepts across threads and workers;
    /// `u64::MAX` while it takes no new ones (not started, stopping, at `max-fd`, gone).
    pub connections: AtomicU64,
    /// Length of the text in `request_info`.
    pub request_len: AtomicU8,
    /// `METHOD URI` of the request in progress (or the last one), cut to fit. Written by
    /// the core's thread only; a reader racing a write may see a mix of two requests,
    /// which is fine for a log line.
    pub request_info: [AtomicU8; REQUEST_INFO_LEN],
}

impl CoreSlot {
    /// Records `METHOD URI` of the request this core starts.
    pub fn set_request(&self, method: &str, uri: &str) {
        let parts = [method.as_bytes(), b" ", uri.as_bytes()];
        let mut n = 0;
        for byte in parts.iter().flat_map(|p| p.iter()).take(REQUEST_INFO_LEN) {
            self.request_info[n].store(*byte, Relaxed);
            n += 1;
        }
        self.request_len.store(n as u8, Relaxed);
    }

    /// `METHOD URI` of the current (or last) request.
    pub fn request(&self) -> String {
        let n = usize::from(self.request_len.load(Relaxed)).min(REQUEST_INFO_LEN);
        let bytes: Vec<u8> = self.request_info[..n].iter().map(|b| b.load(Relaxed)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Why a worker asked to be replaced.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Serving (or waiting for) requests.
    Idle = 0,
    /// Finishing its requests before exiting (reload, shutdown, recycle).
    Stopping = 1,
}

/// One worker process.
#[repr(C)]
#[derive(Debug)]
pub struct WorkerSlot {
    /// Current pid, 0 when no process runs in this slot.
    pub pid: AtomicI32,
    /// `Status` as u8.
    pub status: AtomicU8,
    /// 1 once the worker's connection loops run (app loaded), 0 before and while stopping.
    pub accepting: AtomicU8,
    /// Requests served by this worker since it was spawned.
    pub requests: AtomicU64,
    /// Requests whose app raised.
    pub exceptions: AtomicU64,
    /// Response bytes sent.
    pub tx: AtomicU64,
    /// Sum of request durations in µs (for `avg_rt`).
    pub busy_micros: AtomicU64,
    /// Times this slot's worker was respawned.
    pub respawn_count: AtomicU64,
    /// Times this slot's worker was killed by harakiri.
    pub harakiri_count: AtomicU64,
    /// Spawn time, seconds since the epoch.
    pub last_spawn: AtomicU64,
    /// Resident set size in bytes, refreshed by the worker after each request.
    pub rss: AtomicU64,
    /// Per-thread slots.
    pub cores: [CoreSlot; MAX_CORES],
}

/// The whole shared area.
#[repr(C)]
#[derive(Debug)]
pub struct Board {
    /// Requests served by the whole instance.
    pub total_requests: AtomicU64,
    /// When the master image that made this board started, µs since the epoch (the
    /// `py-autoreload` scanner treats files modified after it as changed).
    pub started: AtomicU64,
    /// 1 from the start of a graceful stop (SIGTERM, FIFO `q`): `health-path` answers 503.
    /// Set by the master (`master/drain.rs`).
    pub unhealthy: AtomicU8,
    /// 1 once that stop closes the sockets (after `drain-delay`): a worker told to stop first
    /// serves every connection waiting in the listen backlog. Set by the master before it
    /// signals the workers; never during a reload, whose sockets stay open.
    pub closing: AtomicU8,
    /// Worker slots; worker id N uses index N-1.
    pub workers: [WorkerSlot; MAX_WORKERS],
    /// `uwsgi.set_spooler_frequency()`: seconds between a spooler's scans; 0 = the
    /// `spooler-frequency` option.
    pub spooler_frequency: AtomicU64,
    /// Spooler processes, in `spooler` order (each directory's `spooler-processes` in a row).
    pub spoolers: [BackgroundSlot; MAX_SPOOLERS],
    /// Mules; mule id N uses index N-1.
    pub mules: [BackgroundSlot; MAX_MULES],
}

/// Most spooler processes (all directories together) one instance can run.
pub const MAX_SPOOLERS: usize = 64;
/// Most mules one instance can run.
pub const MAX_MULES: usize = 64;

/// One spooler or mule process: written by the process, read by the master (harakiri,
/// stats) and by workers (`uwsgi.spool()` wakes an idle spooler).
#[repr(C)]
#[derive(Debug)]
pub struct BackgroundSlot {
    /// Current pid, 0 when none runs.
    pub pid: AtomicI32,
    /// 1 while a spooler runs a task (it needs no wake-up then).
    pub running: AtomicU8,
    /// Tasks a spooler ran since it was spawned.
    pub tasks: AtomicU64,
    /// `spooler-harakiri`/`mule-harakiri`: the master kills the process after this epoch
    /// second; 0 while it runs no task or handler.
    pub harakiri_at: AtomicU64,
}

/// Handle to the shared mapping. Copies in forked children point at the same memory.
#[derive(Debug, Clone, Copy)]
pub struct Scoreboard {
    board: NonNull<Board>,
}

// SAFETY: the mapping lives for the whole process (never unmapped) and is only accessed
// through atomics.
#[allow(unsafe_code)]
unsafe impl Send for Scoreboard {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Scoreboard {}

impl Scoreboard {
    /// Maps a zeroed shared area. Called once by the master before any fork.
    pub fn new() -> std::io::Result<Self> {
        use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
        let len = NonZeroUsize::new(std::mem::size_of::<Board>()).expect("board is not empty");
        // SAFETY: a fresh anonymous mapping aliases nothing; zeroed memory is a valid `Board`
        // (all-zero atomics). It is never unmapped, so the pointer stays valid.
        #[allow(unsafe_code)]
        let ptr =
            unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }?;
        Ok(Self { board: ptr.cast() })
    }

    /// The shared area.
    pub fn board(&self) -> &Board {
        // SAFETY: see `new`: valid for the life of the process, accessed through atomics only.
        #[allow(unsafe_code)]
        unsafe {
            self.board.as_ref()
        }
    }

    /// Slot of worker `id` (1-based).
    pub fn worker(&self, id: usize) -> &WorkerSlot {
        &self.board().workers[id - 1]
    }
}

/// Microseconds since the epoch.
pub fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl WorkerSlot {
    /// Resets counters for a freshly spawned process.
    pub fn reset(&self, pid: i32) {
        self.pid.store(pid, Relaxed);
        self.status.store(Status::Idle as u8, Relaxed);
        self.accepting.store(0, Relaxed);
        for c in [&self.requests, &self.exceptions, &self.tx, &self.busy_micros, &self.rss] {
            c.store(0, Relaxed);
        }
        for core in &self.cores {
            core.requests.store(0, Relaxed);
            core.static_requests.store(0, Relaxed);
            core.request_start.store(0, Relaxed);
            core.request_len.store(0, Relaxed);
            core.connections.store(u64::MAX, Relaxed);
        }
        self.last_spawn.store(now_micros() / 1_000_000, Relaxed);
    }
}
