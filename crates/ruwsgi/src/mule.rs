//! Mules: processes the master forks next to the workers for background work
//! (`master::mules` supervises them). A mule runs its `mule = file.py` or
//! `mule = module:function` code, or, without code, waits for messages and hands each to
//! `uwsgi.mule_msg_hook` (which `uwsgidecorators` sets for `@mulefunc`).
//!
//! Messages travel as uWSGI's do: datagrams on `AF_UNIX` sequenced-packet socket pairs the
//! master creates before any fork, so every process holds both ends. One queue is shared by
//! all mules (`uwsgi.mule_msg(msg)`), one belongs to each mule (`mule_msg(msg, 2)`) and one
//! to each farm (`mule_msg(msg, "name")`); a datagram goes to whichever mule reads it first.
//! Writes don't block: a full queue refuses the message. Messages queued while a mule is
//! down wait for its replacement.
//!
//! Signals: SIGHUP, SIGTERM, SIGINT and SIGQUIT end a mule at once (uWSGI's `end_me`); the
//! master sends SIGHUP on reload and graceful shutdown. No Python here.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use ruwsgi_config::background::{MuleCode, MuleConfig};

use crate::scoreboard::{Scoreboard, MAX_MULES};
use crate::wsgi;

/// uWSGI's receive buffer for one message (64 KiB); `mule_get_msg(buffer_size=)` changes it.
pub const MSG_BUFFER: usize = 65536;

/// One message queue: a socket pair, written at `send`, read at `recv`. Also carries uWSGI
/// signals (one byte each) to mules and spoolers.
pub(crate) struct Queue {
    send: OwnedFd,
    recv: OwnedFd,
}

impl Queue {
    pub(crate) fn new(size: usize) -> anyhow::Result<Self> {
        let (send, recv) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        )
        .context("cannot create a mule message queue")?;
        if size > 0 {
            for fd in [&send, &recv] {
                let _ = socket::setsockopt(fd, socket::sockopt::SndBuf, &size);
                let _ = socket::setsockopt(fd, socket::sockopt::RcvBuf, &size);
            }
        }
        Ok(Self { send, recv })
    }

    /// Queues a signal byte (the master routes signals so).
    pub(crate) fn send_signal(&self, signal: u8) -> nix::Result<()> {
        socket::send(std::os::fd::AsRawFd::as_raw_fd(&self.send), &[signal], MsgFlags::MSG_DONTWAIT).map(drop)
    }

    /// The next signal byte, if one is waiting.
    pub(crate) fn take_signal(&self) -> Option<u8> {
        let mut byte = [0u8; 1];
        match socket::recv(std::os::fd::AsRawFd::as_raw_fd(&self.recv), &mut byte, MsgFlags::MSG_DONTWAIT) {
            Ok(1) => Some(byte[0]),
            _ => None,
        }
    }

    /// The end a receiver polls.
    pub(crate) fn recv_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.recv.as_fd()
    }
}

/// A farm: a name, its mules and their queue.
struct Farm {
    name: String,
    mules: Vec<usize>,
    queue: Queue,
}

/// What every process knows about the mules: set by the master before the first fork.
struct Mules {
    /// What each mule runs (mule id N at index N-1).
    code: Vec<MuleCode>,
    /// The queue all mules read.
    shared: Queue,
    /// Each mule's own queue (mule id N at index N-1).
    own: Vec<Queue>,
    /// The farms.
    farms: Vec<Farm>,
    /// Signals for whichever mule reads first (target `mule`, `mule0`).
    signal_any: Queue,
    /// Signals for each mule (targets `muleN` and `mules`).
    signal_own: Vec<Queue>,
    /// `mule-harakiri`.
    harakiri: u64,
    /// The shared slots (harakiri deadlines).
    board: Scoreboard,
}

static MULES: OnceLock<Mules> = OnceLock::new();

/// This process's mule id (unset outside mules).
static MULE_ID: OnceLock<usize> = OnceLock::new();

/// In the master, before any fork: creates the message queues.
pub fn configure(cfg: &MuleConfig, board: Scoreboard) -> anyhow::Result<()> {
    if cfg.mules.is_empty() {
        if let Some(farm) = cfg.farms.first() {
            anyhow::bail!("farm = {}: no mule configured (set mule or mules)", farm.name);
        }
        return Ok(());
    }
    if cfg.mules.len() > MAX_MULES {
        anyhow::bail!("mules: {} configured; at most {MAX_MULES}", cfg.mules.len());
    }
    if let Some((farm, id)) = cfg.unknown_farm_mule() {
        anyhow::bail!("farm = {farm}: invalid mule id: {id} ({} mules configured)", cfg.mules.len());
    }
    let own = cfg.mules.iter().map(|_| Queue::new(cfg.msg_size)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut farms = Vec::new();
    for (i, f) in cfg.farms.iter().enumerate() {
        farms.push(Farm { name: f.name.clone(), mules: f.mules.clone(), queue: Queue::new(cfg.msg_size)? });
        let list: Vec<String> = f.mules.iter().map(ToString::to_string).collect();
        tracing::info!("created farm {} name: {} mules:{}", i + 1, f.name, list.join(","));
    }
    let shared = Queue::new(cfg.msg_size)?;
    let signal_any = Queue::new(0)?;
    let signal_own = cfg.mules.iter().map(|_| Queue::new(0)).collect::<anyhow::Result<Vec<_>>>()?;
    let _ = MULES.set(Mules {
        code: cfg.mules.clone(),
        shared,
        own,
        farms,
        signal_any,
        signal_own,
        harakiri: cfg.harakiri,
        board,
    });
    Ok(())
}

/// How many mules are configured.
pub fn count() -> usize {
    MULES.get().map_or(0, |m| m.code.len())
}

/// This process's mule id, 0 outside mules (`uwsgi.mule_id()`).
pub fn id() -> usize {
    MULE_ID.get().copied().unwrap_or(0)
}

/// Where `uwsgi.mule_msg` sends.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The queue all mules read (also mule 0).
    Any,
    /// One mule's own queue.
    Mule(usize),
    /// A farm's queue.
    Farm(&'a str),
}

/// Why a message could not be addressed (the text is uWSGI's `ValueError` message).
#[derive(Debug)]
pub struct BadTarget(pub &'static str);

/// `uwsgi.mule_msg()`: queues `msg`. `Ok(false)`: the queue is full (logged, as uWSGI).
pub fn send(target: Target<'_>, msg: &[u8]) -> Result<bool, BadTarget> {
    let m = MULES.get().ok_or(BadTarget("no mule configured"))?;
    let queue = match target {
        Target::Any | Target::Mule(0) => &m.shared,
        Target::Mule(id) => m.own.get(id - 1).ok_or(BadTarget("invalid mule number"))?,
        Target::Farm(name) => &m.farms.iter().find(|f| f.name == name).ok_or(BadTarget("unknown farm"))?.queue,
    };
    match socket::send(std::os::fd::AsRawFd::as_raw_fd(&queue.send), msg, MsgFlags::MSG_DONTWAIT) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN) => {
            let size = socket::getsockopt(&queue.send, socket::sockopt::SndBuf).unwrap_or(0);
            tracing::error!(
                "*** MULE MSG QUEUE IS FULL: buffer size {size} bytes (you can tune it with --mule-msg-size) ***"
            );
            Ok(false)
        }
        Err(e) => {
            tracing::error!("mule_send_msg(): {e}");
            Ok(false)
        }
    }
}

/// In the master: routes uWSGI signal `signal` to every mule (`None`, target `mules`),
/// to whichever reads first (`Some(0)`) or to mule N.
pub fn deliver_signal(signal: u8, mule: Option<usize>) -> Result<(), String> {
    let m = MULES.get().ok_or("no mule runs")?;
    let queues: Vec<&Queue> = match mule {
        None => m.signal_own.iter().collect(),
        Some(0) => vec![&m.signal_any],
        Some(n) => vec![m.signal_own.get(n - 1).ok_or_else(|| format!("no mule {n}"))?],
    };
    for q in queues {
        q.send_signal(signal).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The farms mule `id` belongs to.
fn farms_of(m: &Mules, id: usize) -> impl Iterator<Item = &Farm> {
    m.farms.iter().filter(move |f| f.mules.contains(&id))
}

/// `uwsgi.in_farm(name)`: this mule is in that farm (any farm without a name).
pub fn in_farm(name: Option<&str>) -> bool {
    let (Some(m), id) = (MULES.get(), id()) else { return false };
    id > 0 && farms_of(m, id).any(|f| name.is_none_or(|n| f.name == n))
}

/// Why a mule-only call failed.
#[derive(Debug)]
pub struct NotAMule;

/// What a mule's wait brought.
pub enum Received {
    /// A message.
    Message(Vec<u8>),
    /// A uWSGI signal to handle.
    Signal(u8),
    /// The timeout passed.
    Nothing,
}

/// `uwsgi.mule_get_msg()` in a mule: waits for the next message on its own queue, the
/// shared one and (with `farms`) its farms' queues, and (with `signals`) for a signal.
pub fn receive(signals: bool, farms: bool, timeout: Option<Duration>, buffer: usize) -> Result<Received, NotAMule> {
    let (Some(m), id) = (MULES.get(), id()) else { return Err(NotAMule) };
    if id == 0 {
        return Err(NotAMule);
    }
    let mut queues = vec![&m.own[id - 1], &m.shared];
    if farms {
        queues.extend(farms_of(m, id).map(|f| &f.queue));
    }
    let signal_queues = if signals { vec![&m.signal_own[id - 1], &m.signal_any] } else { Vec::new() };
    Ok(wait(&queues, &signal_queues, timeout, buffer))
}

/// `uwsgi.farm_get_msg()` in a mule: waits for a message on one of its farms' queues.
pub fn receive_farm() -> Result<Option<Vec<u8>>, NotAMule> {
    let (Some(m), id) = (MULES.get(), id()) else { return Err(NotAMule) };
    if id == 0 {
        return Err(NotAMule);
    }
    let queues: Vec<&Queue> = farms_of(m, id).map(|f| &f.queue).collect();
    if queues.is_empty() {
        return Ok(None);
    }
    Ok(match wait(&queues, &[], None, MSG_BUFFER) {
        Received::Message(msg) => Some(msg),
        _ => None,
    })
}

/// Waits until one of `queues` has a message or one of `signals` a signal and reads it
/// (another mule may take it first: then wait again).
fn wait(queues: &[&Queue], signals: &[&Queue], timeout: Option<Duration>, buffer: usize) -> Received {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut buf = vec![0u8; buffer.max(1)];
    loop {
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                PollTimeout::try_from(i32::try_from(left.as_millis()).unwrap_or(i32::MAX)).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds: Vec<PollFd<'_>> =
            signals.iter().chain(queues).map(|q| PollFd::new(q.recv.as_fd(), PollFlags::POLLIN)).collect();
        match poll(&mut fds, wait) {
            Ok(0) => return Received::Nothing,
            Err(Errno::EINTR) | Ok(_) => {}
            Err(e) => {
                tracing::error!("mule {}: poll(): {e}", id());
                return Received::Nothing;
            }
        }
        let ready: Vec<usize> =
            (0..fds.len()).filter(|&i| fds[i].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))).collect();
        drop(fds);
        for i in ready {
            if let Some(q) = signals.get(i) {
                if let Some(signal) = q.take_signal() {
                    return Received::Signal(signal);
                }
                continue;
            }
            let fd = std::os::fd::AsRawFd::as_raw_fd(&queues[i - signals.len()].recv);
            if let Ok(n) = socket::recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                buf.truncate(n);
                return Received::Message(buf);
            }
        }
    }
}

/// Runs mule `id` in the freshly forked child. Never returns.
pub fn run(id: usize) -> ! {
    let code = serve(id);
    wsgi::flush_std_streams();
    std::process::exit(code)
}

fn serve(id: usize) -> i32 {
    let Some(m) = MULES.get() else { return 1 };
    let _ = MULE_ID.set(id);
    // As uWSGI: a mule dies with its master.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    // SIGHUP, SIGTERM, SIGINT, SIGQUIT keep their default action (end at once), as uWSGI's
    // mules; SIGUSR1/SIGUSR2 are ignored as there.
    let ignored = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGUSR1, signal_hook::consts::SIGUSR2] {
        let _ = signal_hook::flag::register(sig, Arc::clone(&ignored));
    }
    if let Err(e) = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None) {
        tracing::error!("mule {id}: cannot unblock signals: {e}");
        return 1;
    }
    wsgi::mules::enter_mule();
    match &m.code[id - 1] {
        MuleCode::File(path) => wsgi::mules::run_file(path),
        MuleCode::Function(spec) => wsgi::mules::run_function(spec),
        MuleCode::Loop => wsgi::python_thread(|| message_loop(id)),
    }
    // The code returned: uWSGI's mule then exits and the master starts it again.
    0
}

/// A mule without code: hands each message to `uwsgi.mule_msg_hook` and runs the
/// handler of each signal. Never returns.
fn message_loop(id: usize) {
    loop {
        match receive(true, true, None, MSG_BUFFER) {
            Ok(Received::Message(msg)) => {
                if !with_harakiri(|| wsgi::mules::dispatch(&msg)) {
                    tracing::info!("*** mule {id} received a {} bytes message ***", msg.len());
                }
            }
            Ok(Received::Signal(signal)) => run_signal(signal),
            Ok(Received::Nothing) | Err(NotAMule) => {}
        }
    }
}

/// Runs this mule's handler of `signal` (under `mule-harakiri`).
pub fn run_signal(signal: u8) {
    with_harakiri(|| wsgi::run_background_handler(signal));
}

/// Runs `f` with this mule's `mule-harakiri` deadline set.
fn with_harakiri<T>(f: impl FnOnce() -> T) -> T {
    let (Some(m), id) = (MULES.get(), id()) else { return f() };
    let slot = &m.board.board().mules[id - 1];
    if m.harakiri > 0 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        slot.harakiri_at.store(now + m.harakiri, Relaxed);
    }
    let out = f();
    slot.harakiri_at.store(0, Relaxed);
    out
}
