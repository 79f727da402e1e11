//! uWSGI's signal framework and user locks, the part every process shares (`core/signal.c`,
//! `core/lock.c`): numbered signals 0-255 registered to a target, the requests a process
//! sends the master (raise a signal, add a timer, a cron or a file monitor), and the
//! channels that carry them. The master (`master::signals`) routes and raises; a worker
//! runs the Python handler (`wsgi::uwsgi_module`). No Python here.
//!
//! Everything is made by the master before the app loads (so a module-level
//! `@timer`/`register_signal` works at import time) and inherited by every fork:
//! - one shared memory area: the signal table (target and registering worker of each
//!   signal), the user locks (`locks`), per-worker delivered-signal counts;
//! - `to_master`: a datagram socket pair; any process (the master itself too) writes one
//!   request per datagram to `sender`, the master reads `master_end` in its poll loop;
//! - `any_worker`: the master writes a signal byte, whichever worker reads it first runs it
//!   (target `worker`, uWSGI's "first available worker");
//! - one pair per worker slot for `workers`, `workerN` and `active-workers`.
//!
//! Datagrams keep each request whole however many processes write at once.

use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU16, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::scoreboard::MAX_WORKERS;

/// Signal numbers are one byte, as in uWSGI.
pub const SIGNALS: usize = 256;
/// User locks: lock 0 plus at most `ruwsgi_config::MAX_LOCKS` more.
pub const LOCKS: usize = 65;

/// Where a registered signal is delivered (uWSGI's `receiver` strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `""`, `worker`, `worker0`: the first worker free to read it.
    AnyWorker,
    /// `workers`: every worker slot.
    Workers,
    /// `active-workers`: every running worker.
    ActiveWorkers,
    /// `workerN` (N ≥ 1).
    Worker(u16),
    /// `spooler`.
    Spooler,
    /// `mules`: every mule.
    Mules,
    /// `muleN`; `mule0`/`mule`: the first mule free to read it.
    Mule(u16),
}

impl Target {
    /// Parses uWSGI's receiver text. `None`: not a target ruwsgi delivers to (farms,
    /// `subscribed`, typos).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "worker" | "worker0" => Self::AnyWorker,
            "workers" => Self::Workers,
            "active-workers" => Self::ActiveWorkers,
            "spooler" => Self::Spooler,
            "mules" => Self::Mules,
            "mule" => Self::Mule(0),
            _ => {
                if let Some(n) = text.strip_prefix("worker") {
                    Self::Worker(n.parse().ok().filter(|&n| n > 0)?)
                } else {
                    Self::Mule(text.strip_prefix("mule")?.parse().ok()?)
                }
            }
        })
    }

    fn encode(self) -> (u8, u16) {
        match self {
            Self::AnyWorker => (1, 0),
            Self::Workers => (2, 0),
            Self::ActiveWorkers => (3, 0),
            Self::Worker(n) => (4, n),
            Self::Spooler => (5, 0),
            Self::Mules => (6, 0),
            Self::Mule(n) => (7, n),
        }
    }

    fn decode(kind: u8, n: u16) -> Option<Self> {
        Some(match kind {
            1 => Self::AnyWorker,
            2 => Self::Workers,
            3 => Self::ActiveWorkers,
            4 => Self::Worker(n),
            5 => Self::Spooler,
            6 => Self::Mules,
            7 => Self::Mule(n),
            _ => return None,
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AnyWorker => f.write_str("default, any worker"),
            Self::Workers => f.write_str("workers"),
            Self::ActiveWorkers => f.write_str("active-workers"),
            Self::Worker(n) => write!(f, "worker{n}"),
            Self::Spooler => f.write_str("spooler"),
            Self::Mules => f.write_str("mules"),
            Self::Mule(n) => write!(f, "mule{n}"),
        }
    }
}

/// What a process asks of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `uwsgi.signal(N)`: route signal N to its target.
    Raise(u8),
    /// `add_timer(N, secs)`: raise N every `secs` seconds.
    Timer { signal: u8, secs: u64 },
    /// `add_rb_timer(N, secs, iterations)`: the same, `iterations` times (0 = forever).
    RbTimer { signal: u8, secs: u64, iterations: u64 },
    /// `add_cron(N, minute, hour, day, month, weekday)`: raise N on that schedule.
    Cron { signal: u8, fields: [i32; 5] },
    /// `add_file_monitor(N, path)`: raise N when the file or directory changes.
    FileMonitor { signal: u8, path: String },
}

/// One request as a datagram: space-separated words, the path last (it may hold spaces).
pub fn encode_request(req: &Request) -> Vec<u8> {
    match req {
        Request::Raise(n) => format!("signal {n}"),
        Request::Timer { signal, secs } => format!("timer {signal} {secs}"),
        Request::RbTimer { signal, secs, iterations } => format!("rbtimer {signal} {secs} {iterations}"),
        Request::Cron { signal, fields } => {
            format!("cron {signal} {}", fields.map(|f| f.to_string()).join(" "))
        }
        Request::FileMonitor { signal, path } => format!("filemon {signal} {path}"),
    }
    .into_bytes()
}

/// The inverse of [`encode_request`]; `None` for anything else.
pub fn parse_request(bytes: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (verb, rest) = text.split_once(' ')?;
    if verb == "filemon" {
        let (signal, path) = rest.split_once(' ')?;
        return Some(Request::FileMonitor { signal: signal.parse().ok()?, path: path.to_owned() });
    }
    let words: Vec<&str> = rest.split(' ').collect();
    let signal: u8 = words.first()?.parse().ok()?;
    let num = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
    Some(match (verb, words.len()) {
        ("signal", 1) => Request::Raise(signal),
        ("timer", 2) => Request::Timer { signal, secs: num(1)? },
        ("rbtimer", 3) => Request::RbTimer { signal, secs: num(1)?, iterations: num(2)? },
        ("cron", 6) => {
            let mut fields = [0i32; 5];
            for (i, f) in fields.iter_mut().enumerate() {
                *f = words[i + 1].parse().ok()?;
            }
            Request::Cron { signal, fields }
        }
        _ => return None,
    })
}

/// One signal's registration.
#[repr(C)]
#[derive(Debug)]
struct SignalSlot {
    /// `Target::encode` kind; 0 = not registered.
    kind: AtomicU8,
    /// Its number (`workerN`, `muleN`).
    n: AtomicU16,
    /// Worker id of the process that registered it (0 = the master, before the fork).
    wid: AtomicI32,
}

/// The shared memory area.
#[repr(C)]
#[derive(Debug)]
struct Shared {
    signals: [SignalSlot; SIGNALS],
    /// Pid holding each user lock, 0 when free.
    locks: [AtomicI32; LOCKS],
    /// Signals each worker ran (index = worker id), for `uwsgi.workers()` and stats.
    delivered: [AtomicU64; MAX_WORKERS + 1],
}

/// Both ends of one socket pair: the master's and the other side's.
#[derive(Debug)]
pub struct Pair {
    /// The master's end.
    pub master: OwnedFd,
    /// The end of the worker(s) (or, for `to_master`, of every sender).
    pub peer: OwnedFd,
}

impl Pair {
    fn new() -> std::io::Result<Self> {
        let (master, peer) = socketpair(
            AddressFamily::Unix,
            SockType::Datagram,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )?;
        Ok(Self { master, peer })
    }
}

/// The whole framework's shared state of this server image.
#[derive(Debug)]
pub struct Hub {
    shared: NonNull<Shared>,
    /// Requests to the master.
    pub to_master: Pair,
    /// Target `worker`: the first worker to read.
    pub any_worker: Pair,
    /// One per worker slot (index = id - 1).
    pub workers: Vec<Pair>,
    /// `locks`: the highest valid lock number.
    pub locks: usize,
}

// SAFETY: the mapping lives for the whole process (never unmapped) and is only accessed
// through atomics; the fds are plain numbers.
#[allow(unsafe_code)]
unsafe impl Send for Hub {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Hub {}

static HUB: OnceLock<Hub> = OnceLock::new();

/// Makes the shared area and the channels (the master, once, before the app loads).
pub fn init(processes: usize, locks: u32) -> std::io::Result<&'static Hub> {
    use nix::sys::mman::{mmap_anonymous, MapFlags, ProtFlags};
    let len = NonZeroUsize::new(std::mem::size_of::<Shared>()).expect("the area is not empty");
    // SAFETY: a fresh anonymous mapping aliases nothing; zeroed memory is a valid `Shared`
    // (all-zero atomics). It is never unmapped, so the pointer stays valid.
    #[allow(unsafe_code)]
    let ptr = unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_SHARED) }?;
    let hub = Hub {
        shared: ptr.cast(),
        to_master: Pair::new()?,
        any_worker: Pair::new()?,
        workers: (0..processes).map(|_| Pair::new()).collect::<std::io::Result<_>>()?,
        locks: (locks as usize).min(LOCKS - 1),
    };
    Ok(HUB.get_or_init(|| hub))
}

/// The framework, once `init` ran in this image.
pub fn hub() -> Option<&'static Hub> {
    HUB.get()
}

impl Hub {
    fn shared(&self) -> &Shared {
        // SAFETY: see `init`: valid for the life of the process, accessed through atomics only.
        #[allow(unsafe_code)]
        unsafe {
            self.shared.as_ref()
        }
    }

    /// Records that worker `wid` (0 = the master) registered `signal` for `target`.
    pub fn register(&self, signal: u8, target: Target, wid: usize) {
        let slot = &self.shared().signals[usize::from(signal)];
        let (kind, n) = target.encode();
        slot.n.store(n, Relaxed);
        slot.wid.store(wid as i32, Relaxed);
        slot.kind.store(kind, Relaxed);
    }

    /// The target of `signal`, and the worker that registered it; `None` if unregistered.
    pub fn registration(&self, signal: u8) -> Option<(Target, usize)> {
        let slot = &self.shared().signals[usize::from(signal)];
        let target = Target::decode(slot.kind.load(Relaxed), slot.n.load(Relaxed))?;
        Some((target, slot.wid.load(Relaxed) as usize))
    }

    /// Sends `req` to the master. Fails when its queue is full.
    pub fn send(&self, req: &Request) -> std::io::Result<()> {
        nix::unistd::write(&self.to_master.peer, &encode_request(req))?;
        Ok(())
    }

    /// Counts a signal run by worker `wid`.
    pub fn count_delivered(&self, wid: usize) {
        if let Some(c) = self.shared().delivered.get(wid) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Signals worker `wid` ran.
    pub fn delivered(&self, wid: usize) -> u64 {
        self.shared().delivered.get(wid).map_or(0, |c| c.load(Relaxed))
    }

    /// Tries to take user lock `n` for process `pid`. A lock whose holder died is taken
    /// over, as uWSGI's robust mutexes allow.
    pub fn try_lock(&self, n: usize, pid: i32) -> bool {
        let lock = &self.shared().locks[n];
        match lock.compare_exchange(0, pid, Relaxed, Relaxed) {
            Ok(_) => true,
            Err(holder) => {
                let dead =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder), None) == Err(nix::errno::Errno::ESRCH);
                dead && lock.compare_exchange(holder, pid, Relaxed, Relaxed).is_ok()
            }
        }
    }

    /// Releases user lock `n`.
    pub fn unlock(&self, n: usize) {
        self.shared().locks[n].store(0, Relaxed);
    }

    /// The stats server's `locks`: `{"user N": holder pid or 0}` for each user lock.
    pub fn lock_stats(&self) -> Vec<serde_json::Value> {
        (0..=self.locks).map(|n| serde_json::json!({ format!("user {n}"): self.lock_holder(n) })).collect()
    }

    /// Pid holding user lock `n`, 0 when free.
    pub fn lock_holder(&self, n: usize) -> i32 {
        self.shared().locks[n].load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_uwsgi_targets() {
        assert_eq!(Target::parse(""), Some(Target::AnyWorker));
        assert_eq!(Target::parse("worker0"), Some(Target::AnyWorker));
        assert_eq!(Target::parse("worker3"), Some(Target::Worker(3)));
        assert_eq!(Target::parse("workers"), Some(Target::Workers));
        assert_eq!(Target::parse("active-workers"), Some(Target::ActiveWorkers));
        assert_eq!(Target::parse("spooler"), Some(Target::Spooler));
        assert_eq!(Target::parse("mules"), Some(Target::Mules));
        assert_eq!(Target::parse("mule2"), Some(Target::Mule(2)));
        assert_eq!(Target::parse("mule"), Some(Target::Mule(0)));
        for bad in ["farm1", "subscribed", "workerx", "nobody", "worker-1"] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        for t in [Target::AnyWorker, Target::Worker(7), Target::Mule(0), Target::ActiveWorkers] {
            let (kind, n) = t.encode();
            assert_eq!(Target::decode(kind, n), Some(t));
        }
    }

    #[test]
    fn requests_round_trip() {
        let all = [
            Request::Raise(0),
            Request::Raise(255),
            Request::Timer { signal: 3, secs: 60 },
            Request::RbTimer { signal: 4, secs: 1, iterations: 0 },
            Request::Cron { signal: 5, fields: [-1, 3, -1, 12, -5] },
            Request::FileMonitor { signal: 6, path: "/tmp/a dir/x".to_owned() },
        ];
        for req in all {
            assert_eq!(parse_request(&encode_request(&req)), Some(req));
        }
        for bad in [&b"signal 256"[..], b"timer 1", b"cron 1 2 3", b"nope 1", b"", b"signal x"] {
            assert_eq!(parse_request(bad), None);
        }
    }
}
