//! The connection loop one worker thread runs: accept, read, parse with proto, hand
//! complete requests to the app, keep-alive and pipelining. Each thread has its own epoll,
//! so idle and slow connections cost a few hundred bytes (and a partial request what has
//! arrived of it), never a thread; a thread runs the app only once a request's head (and a
//! small body) has fully arrived. When the worker stops, the loop winds down: nothing more
//! is accepted, every request received is answered, and keep-alive connections are closed
//! only between requests (`wind_down`, `begin_close`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags, EpollTimeout};
use ruwsgi_config::SocketProtocol;
use ruwsgi_proto::{
    parse_proxy_header, parse_request_head, parse_uwsgi_packet, BodyFraming, ChunkedDecoder, Limits, ProxyStart,
    RequestHead, UwsgiPacket, MAX_CONTENT_LENGTH,
};
use slab::Slab;

use super::body::BodyReader;
use super::health;
use super::http2::{self, Handed, Http2};
use super::listener::{ListenGate, Listener};
use super::read_buf::ReadBuf;
use super::socket_io;
use super::stream_pipe::PipeEnd;
use super::transport::Io;
use crate::interface::{
    Application, BodyRest, Client, Doorbell, Origin, Parked, Request, Resumed, Served, Started, Waker, Want,
};
use crate::log::{format_memory_report, format_request_line, LineFacts, RequestRecord, RequestVars};
use crate::routing::{HttpVars, Outcome, RouteState, Router, UwsgiVars};
use crate::scoreboard::now_micros;
use crate::static_files::{Progress, Reply, StaticFiles, StaticRequest, Transfer};
use crate::worker::WorkerInfo;

/// Most body bytes an HTTP request's app may leave unread that are still drained before
/// the connection is closed or reused; past it the connection is simply closed.
const UNREAD_BODY_DRAIN: u64 = 4 << 20;
/// Token of the stop pipe in every thread's epoll.
const STOP_TOKEN: u64 = u64::MAX;
/// Token of the HTTP/2 streams' eventfd (`http2::StreamQueue`) in every thread's epoll.
const HTTP2_TOKEN: u64 = u64::MAX - 1;
/// HTTP/2 streams a thread takes from the queue one after another before it looks at its
/// other connections (`run`).
const STREAMS_IN_A_ROW: usize = 8;
/// Token of the thread's doorbell (`interface::Doorbell`) in its epoll set: its parked
/// requests ring it with their connection's token.
const DOORBELL_TOKEN: u64 = u64::MAX - 2;

/// Connections accepted per wake-up of one listener, so one thread doesn't take them all.
const ACCEPT_BATCH: usize = 8;
/// Longest wait for events: the timeout sweep runs at least this often, so a connection is
/// closed at most this long after its `http-timeout`/`socket-timeout` ran out.
const TICK: Duration = Duration::from_millis(250);
/// How long a thread leaves a new connection to a thread holding fewer, at most (`step_aside`).
const ASIDE: Duration = Duration::from_millis(10);
/// A thread running a request for longer is busy: no connection is left to it. Longer
/// than `ASIDE`: on a loaded machine a thread can wait that long for a CPU mid-request.
const LONG_REQUEST: Duration = Duration::from_millis(100);
/// How often a thread aside looks whether the balance still calls for it.
const ASIDE_CHECK: Duration = Duration::from_millis(1);
/// The loop's tick while the worker stops, so the grace and linger below end on time.
const STOP_TICK: Duration = Duration::from_millis(20);
/// A stopping worker keeps an idle keep-alive connection open this long for the next
/// request, which it answers with `Connection: close`: a client sending in a loop (its
/// next request a few microseconds or milliseconds away) then never sees its request
/// dropped. Past it the connection is closed between requests (`begin_close`).
const STOP_IDLE_GRACE: Duration = Duration::from_millis(100);
/// After a stopping worker's FIN, how long it still reads (and drops) what the client
/// sends, so a request that crossed the FIN doesn't turn the close into a reset.
const LINGER: Duration = Duration::from_millis(250);
/// A thread out of file descriptors retries `accept()` at least this often even when none
/// of its own connections closed (another thread's may have).
const FD_SHORTAGE_RETRY: Duration = Duration::from_secs(1);

thread_local! {
    /// This loop thread's doorbell, made when its loop starts (`run`). A thread-local, so
    /// parking a request (`rearm`) needs no new parameter through the loop's functions.
    static DOORBELL: std::cell::OnceCell<Arc<Doorbell>> = const { std::cell::OnceCell::new() };
    /// HTTP/2 connections this thread accepted and handed to the worker's HTTP/2 thread,
    /// still open: they count as this thread's in the balance over threads and workers.
    static HANDED: Arc<AtomicUsize> = Arc::new(AtomicUsize::new(0));
}

/// Connections this thread holds, for the balance: its own and the HTTP/2 ones it handed on.
fn held(conns: &Slab<Conn>) -> usize {
    conns.len() + HANDED.with(|h| h.load(Ordering::Relaxed))
}

/// Per-loop settings from the config.
#[derive(Debug, Clone)]
#[allow(clippy::struct_excessive_bools)] // one bool per uWSGI boolean option
pub struct LoopSettings {
    /// Parser limits (`buffer-size`).
    pub limits: Limits,
    /// `http-timeout`: idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// `socket-timeout`: a started request must arrive whole within this.
    pub request_timeout: Duration,
    /// Bodies up to this size are read before the app is called (`post-buffering`, at least 64 KiB).
    pub prebuffer: usize,
    /// `limit-post`: larger declared bodies get 413; 0 = no limit.
    pub limit_post: u64,
    /// `max-fd` split over the threads: most open connections per thread; 0 = no limit.
    /// A full thread stops accepting; further clients wait in the listen backlog.
    pub max_conns: usize,
    /// `http-keepalive` split over the threads: once a thread holds more connections than
    /// this, a finished keep-alive response closes its connection instead; 0 = no limit.
    pub max_keepalive: usize,
    /// Worker processes and threads per worker of the instance (the scoreboard slots that
    /// take part in balancing accepts).
    pub processes: usize,
    /// Threads per worker.
    pub threads: usize,
    /// `so-keepalive`.
    pub so_keepalive: bool,
    /// `log-x-forwarded-for`.
    pub log_forwarded_for: bool,
    /// `enable-proxy-protocol`: HTTP connections may open with a PROXY header.
    pub proxy_protocol: bool,
    /// `health-path`: answered by `health.rs`, before routing and the app.
    pub health_path: Option<String>,
}

/// What a loop thread shares with its siblings.
pub struct LoopContext<'a> {
    /// Listening sockets.
    pub listeners: &'a [Listener],
    /// What answers requests (WSGI or ASGI).
    pub app: &'a dyn Application,
    /// Settings.
    pub settings: &'a LoopSettings,
    /// Set when the worker should stop accepting and finish.
    pub stopping: &'a Arc<AtomicBool>,
    /// Set as soon as the worker is told to stop, gracefully or not: possibly before
    /// `stopping`, while it still serves the listen backlog of an instance that stops.
    /// Handed to each request, so a response whose head goes out after it was set says
    /// `Connection: close` (the client takes its next request elsewhere).
    pub winding_down: &'a Arc<AtomicBool>,
    /// This thread's epoll set; the worker registered the listeners (tokens `0..`) and
    /// its main thread takes them out when the worker stops.
    pub epoll: &'a Epoll,
    /// Orders this thread's (re)registrations of the listeners with their closing.
    pub gate: &'a ListenGate,
    /// Becomes readable (and stays so) when `stopping` is set.
    pub stop_fd: BorrowedFd<'a>,
    /// Index of this thread in the worker ("core").
    pub core: usize,
    /// The worker this loop belongs to.
    pub worker: &'a WorkerInfo,
    /// `static-map`/`check-static`, when configured.
    pub statics: Option<&'a StaticFiles>,
    /// `route*` rules, when configured.
    pub router: Option<&'a Router>,
    /// The worker's HTTP/2 thread, when a socket may speak HTTP/2.
    pub http2: Option<&'a Http2>,
}

/// Where a connection came from.
#[derive(Debug)]
struct Peer {
    /// `REMOTE_ADDR`.
    addr: String,
    /// `REMOTE_PORT`.
    port: String,
    /// `enable-proxy-protocol` on an HTTP socket, and the first bytes weren't looked at
    /// yet: they may be a PROXY header naming the real client.
    awaiting_proxy: bool,
}

/// One client connection.
struct Conn {
    /// The socket, non-blocking; `None` for an HTTP/2 stream (epoll watches its pipe's
    /// eventfd, `io.fd()`, made only if it has to wait).
    fd: Option<OwnedFd>,
    /// The stream over it: the socket itself, or TLS on an `https` listener.
    io: Io,
    /// Index into `listeners`.
    listener: usize,
    /// What it speaks: its listener's protocol (uwsgi for an HTTP/2 stream, `http2.rs`).
    protocol: SocketProtocol,
    /// Peer address for the environ and the log.
    peer: Peer,
    /// Input not yet consumed.
    buf: ReadBuf,
    /// When the connection last became idle or started a request.
    since: Instant,
    /// A `100 Continue` was sent for the request being buffered.
    continue_sent: bool,
    /// Chunked body being pre-buffered: the framing is checked as it arrives, so a bad one
    /// gets a 400 before the app runs.
    chunk_scan: Option<ChunkScan>,
    /// No request was served on it yet. A stopping worker still serves the first request
    /// of a connection it accepted (as uWSGI does) but closes idle keep-alive ones.
    fresh: bool,
    /// A static-file response (or the rest of an app's body) still going out; while set,
    /// the connection waits for EPOLLOUT instead of input, so a slow download never
    /// blocks the thread.
    sending: Option<Box<Sending>>,
    /// What the epoll set watches this connection for.
    interest: Interest,
    /// A request the app goes on with without holding this thread (ASGI): the loop resumes
    /// it when it rings the thread's doorbell or the socket is ready.
    parked: Option<Box<ParkedRequest>>,
    /// The worker is stopping and sent its FIN (`shutdown(SHUT_WR)`) at this instant; what
    /// still arrives is read and dropped until the client closes or `LINGER` passes.
    closing: Option<Instant>,
    /// An HTTP/2 stream's in-memory pipe (`io` reads and writes it): the response ends
    /// when the connection goes.
    stream: Option<PipeEnd>,
    /// An HTTP/2 stream's uwsgi packet, handed over with it: its first read takes this
    /// instead of reading the pipe (which carries only the body).
    handed: Option<Vec<u8>>,
}

impl Conn {
    /// A connection just accepted (or an HTTP/2 stream just adopted), before its first byte.
    fn new(fd: Option<OwnedFd>, io: Io, listener: usize, protocol: SocketProtocol, peer: Peer) -> Self {
        Conn {
            fd,
            io,
            listener,
            protocol,
            peer,
            buf: ReadBuf::default(),
            since: Instant::now(),
            continue_sent: false,
            chunk_scan: None,
            fresh: true,
            sending: None,
            interest: Interest::Unregistered,
            parked: None,
            closing: None,
            stream: None,
            handed: None,
        }
    }
}

/// A response (a static file, or the rest of an app's body: a `wsgi.file_wrapper` file or
/// its last bytes) parked until the socket is writable.
struct Sending {
    /// What is left to send.
    reply: Reply,
    /// Request start (µs), for the log line written when it completes.
    started: u64,
    /// Request facts for that log line.
    log: LogFacts,
    /// Served by `static-map`/`check-static` (counted as a static request).
    static_file: bool,
}

/// A request parked in the loop (`Application::start` gave `Started::Parked`).
struct ParkedRequest {
    task: Box<dyn Parked>,
    /// Request start (µs), for harakiri, the stats and the log line.
    started: u64,
    /// Request facts for the log line written when it completes.
    log: LogFacts,
    /// The client allows keep-alive (HTTP); false for uwsgi.
    client_keep_alive: bool,
    /// What the task last asked to be woken for on the socket.
    want: Want,
    /// The task has this thread's `Waker`.
    waker_set: bool,
    /// The socket reported an event since the last `rearm`.
    socket_woke: bool,
}

/// Owned copy of the request facts the log line needs (the head's buffer is gone by then).
struct LogFacts {
    addr: String,
    method: String,
    uri: String,
    protocol: String,
    packet_bytes: usize,
    vars: usize,
    /// The app that served it; a static file is logged under the default app, as in uWSGI.
    app: Option<usize>,
    /// The request variables `log-format` reads (empty without one).
    captured: Vec<(String, Vec<u8>)>,
    /// uwsgi packet modifiers (0 for HTTP).
    modifiers: (u8, u8),
    /// A `donotlog` routing rule fired.
    donotlog: bool,
    /// Logvars routing rules set.
    logvars: Vec<(String, String)>,
    /// Response headers `collect-header` kept.
    collected: Vec<(String, Vec<u8>)>,
}

impl LogFacts {
    /// The request part of its log line.
    fn logged(&self) -> Logged<'_> {
        Logged {
            addr: &self.addr,
            method: &self.method,
            uri: &self.uri,
            protocol: &self.protocol,
            packet_bytes: self.packet_bytes,
            request: RequestVars::Captured(&self.captured),
            modifiers: self.modifiers,
        }
    }
}

/// How far the framing of a pre-buffered chunked body has been checked.
#[derive(Default)]
struct ChunkScan {
    decoder: ChunkedDecoder,
    /// Raw body bytes (after the head) already fed to `decoder`.
    scanned: usize,
    /// Decoded body bytes so far (for `limit-post`).
    decoded: u64,
}

/// What to do with a connection after processing its input.
enum Next {
    /// Wait for more bytes.
    Wait,
    /// Close it.
    Close,
    /// It speaks HTTP/2: hand it to the worker's HTTP/2 thread.
    Http2,
}

/// A thread's view of an fd shortage (`accept()` failing with EMFILE/ENFILE/ENOBUFS/ENOMEM).
struct FdShortage {
    /// Connections this thread held when it began: one fewer means an fd was freed.
    held: usize,
    /// Retry `accept()` then even if none of this thread's connections closed.
    retry_at: Instant,
}

/// Per-thread loop state besides the connections.
struct LoopState {
    /// The listeners are in this thread's epoll set.
    polled: bool,
    /// Out of file descriptors: the listeners are out of the epoll set until an fd frees.
    shortage: Option<FdShortage>,
    /// When this thread saw the worker stop.
    stop_began: Option<Instant>,
    /// The thread's spare read buffer, lent to a connection while it has input (`ReadBuf`).
    spare: ReadBuf,
    /// A connection of this thread's was kept alive after its first request since the
    /// last look at the balance (`step_back`).
    kept: bool,
    /// Where this thread stands in the balance of keep-alive connections.
    balance: Balance,
}

/// A thread's part in balancing keep-alive connections (`step_back`, `step_aside`).
#[derive(Default)]
struct Balance {
    /// Since when the HTTP listeners are out of this thread's epoll set (`step_aside`).
    aside: Option<Instant>,
    /// The last step aside ran out with a connection still queued: take the next one.
    take_next: bool,
    /// The last kept connection left this thread holding more than another (`step_back`):
    /// only then may it step aside, so one-request connections never make it.
    leaving: bool,
}

/// Runs until `stopping` is set and every connection has finished.
pub fn run(ctx: &LoopContext<'_>) -> std::io::Result<()> {
    let epoll = ctx.epoll;
    epoll.add(ctx.stop_fd, EpollEvent::new(EpollFlags::EPOLLIN, STOP_TOKEN))?;
    if let Some(h2) = ctx.http2 {
        // Exclusive: one idle thread wakes per queued stream, not all of them.
        epoll.add(h2.streams().fd(), EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, HTTP2_TOKEN))?;
    }
    let bell = DOORBELL.with(|d| match d.get() {
        Some(bell) => Ok(Arc::clone(bell)),
        None => Doorbell::new().map(|bell| Arc::clone(d.get_or_init(|| Arc::new(bell)))),
    })?;
    epoll.add(bell.fd(), EpollEvent::new(EpollFlags::EPOLLIN, DOORBELL_TOKEN))?;
    let first_conn = ctx.listeners.len() as u64;
    let mut conns: Slab<Conn> = Slab::new();
    let mut events = vec![EpollEvent::empty(); 256];
    let mut st = LoopState {
        polled: true,
        shortage: None,
        stop_began: None,
        spare: ReadBuf::default(),
        kept: false,
        balance: Balance::default(),
    };
    let mut last_sweep = Instant::now();
    loop {
        let me = &ctx.worker.slot().cores[ctx.core];
        let open = if st.polled { held(&conns) as u64 } else { u64::MAX };
        me.connections.store(open, Ordering::Relaxed);
        let tick = if st.stop_began.is_some() {
            STOP_TICK
        } else if st.balance.aside.is_some() {
            ASIDE_CHECK
        } else {
            TICK
        };
        // HTTP/2 streams queued while this thread was busy are served before it waits (a
        // few, then the other connections get their turn): no wake-up for them.
        let mut asleep = None;
        if let Some(h2) = ctx.http2 {
            for _ in 0..STREAMS_IN_A_ROW {
                let Some(stream) = h2.streams().sleep() else {
                    asleep = Some(h2.streams());
                    break;
                };
                adopt_stream(ctx, &mut conns, &mut st, first_conn, stream);
            }
        }
        // Still awake (more streams wait): only a look at the other connections.
        let tick = if asleep.is_some() || ctx.http2.is_none() { tick } else { Duration::ZERO };
        let waited = epoll.wait(&mut events, EpollTimeout::from(tick.as_millis() as u16));
        if let Some(queue) = asleep {
            queue.woke();
        }
        let n = match waited {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        for ev in &events[..n] {
            let token = ev.data();
            if token == STOP_TOKEN {
                continue;
            }
            if token == HTTP2_TOKEN {
                if let Some(stream) = ctx.http2.and_then(|h2| h2.streams().pop()) {
                    adopt_stream(ctx, &mut conns, &mut st, first_conn, stream);
                }
                continue;
            }
            if token == DOORBELL_TOKEN {
                for token in bell.take() {
                    let key = token.wrapping_sub(first_conn) as usize;
                    if conns.get(key).is_some_and(|c| c.parked.is_some()) {
                        serve_event(ctx, &mut conns, &mut st.spare, key, token, false);
                    }
                }
                continue;
            }
            if token < first_conn {
                // A stopping worker accepts nothing more, even from a batch of events
                // gathered before the stop (its listeners may already be closed).
                if !ctx.stopping.load(Ordering::Relaxed) && st.shortage.is_none() {
                    if ctx.listeners[token as usize].protocol == SocketProtocol::Http
                        && st.balance.leaving
                        && !std::mem::take(&mut st.balance.take_next)
                        && leave_to_another(ctx, held(&conns), true)
                    {
                        step_aside(ctx, &mut st);
                        continue;
                    }
                    accept_some(ctx, &mut conns, &mut st, token as usize, first_conn);
                }
                continue;
            }
            let key = (token - first_conn) as usize;
            let failed = ev.events().intersects(EpollFlags::EPOLLERR);
            if let Some(p) = conns.get_mut(key).and_then(|c| c.parked.as_mut()) {
                p.socket_woke = true;
                if ev.events().intersects(EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
                    p.task.hang_up();
                }
            }
            st.kept |= serve_event(ctx, &mut conns, &mut st.spare, key, token, failed);
        }
        if n > 0 && ctx.http2.is_none() {
            // A round of work done: the CPU goes to a task waiting for it (another worker,
            // a sibling thread), if any, before this thread looks for more. `SCHED_BATCH`
            // workers never preempt on wake-up, so without this a worker kept busy by its
            // connections holds its CPU for a whole scheduler tick (4 ms at HZ=250) while
            // the other's connections wait, and a thread of several can keep the GIL from
            // its siblings as long. Costs one system call per round, which returns at once
            // when nothing else is runnable. Not in a worker that serves HTTP/2 (`https`,
            // `http2-cleartext`), whose streams go back and forth between this thread and
            // its HTTP/2 thread: there it cost a fifth of the requests per second. Hello
            // world, 2 workers on 2 CPUs beside wrk: p99 ~5 → ~3 ms; with 4 threads,
            // ~45 → ~3.5 ms (docs/benchmarks.md, "Taking turns after each round").
            let _ = nix::sched::sched_yield();
        }
        if ctx.stopping.load(Ordering::Relaxed) {
            // The worker's main thread has taken the listeners out of this epoll set and
            // closed them (`ListenGate::close`).
            st.polled = false;
            if st.stop_began.is_none() {
                // The stop pipe stays readable: out of the set, or every wait returns at once.
                let _ = epoll.delete(ctx.stop_fd);
            }
            let began = *st.stop_began.get_or_insert_with(Instant::now);
            wind_down(ctx, &mut conns, &mut st.spare, began, first_conn);
            if conns.is_empty() {
                ctx.worker.slot().cores[ctx.core].connections.store(u64::MAX, Ordering::Relaxed);
                return Ok(());
            }
        }
        if last_sweep.elapsed() >= TICK || st.stop_began.is_some() {
            // Parked requests' timers (pings, timeouts) and the worker's stop.
            tick_parked(ctx, &mut conns, &mut st.spare, first_conn);
        }
        if last_sweep.elapsed() >= TICK {
            last_sweep = Instant::now();
            sweep(ctx, &mut conns);
            // Only the busiest threads: re-registering puts a thread last in the kernel's
            // wake-up order, where a less busy one must not go (`step_back`).
            if st.polled && st.stop_began.is_none() && !holds_fewer_than_another(ctx, held(&conns)) {
                let aside = st.balance.aside.is_some();
                ctx.gate.repoll(ctx.epoll, ctx.listeners, |l| !aside || l.protocol != SocketProtocol::Http);
            }
            if conns.is_empty() && conns.capacity() > 1024 {
                // A burst of connections is over: give the slab's memory back.
                conns = Slab::new();
            }
        }
        if st.stop_began.is_none() {
            poll_listeners(ctx, &conns, &mut st);
        }
    }
}

/// Takes the listeners out of this thread's epoll set (they are level-triggered and would
/// wake it in a loop) while it can't accept: at `max-fd`, or out of file descriptors until
/// one of its connections closes or `FD_SHORTAGE_RETRY` passes; puts them back after.
fn poll_listeners(ctx: &LoopContext<'_>, conns: &Slab<Conn>, st: &mut LoopState) {
    if st.shortage.as_ref().is_some_and(|s| conns.len() < s.held || Instant::now() >= s.retry_at) {
        st.shortage = None;
    }
    let full = ctx.settings.max_conns > 0 && conns.len() >= ctx.settings.max_conns;
    let want = !full && st.shortage.is_none();
    if want != st.polled && ctx.gate.set_polled(ctx.epoll, ctx.listeners, want) {
        st.polled = want;
        end_aside(st);
    }
    if let Some(since) = st.balance.aside {
        let over = since.elapsed() >= ASIDE;
        if (over || !leave_to_another(ctx, held(conns), true))
            && ctx.gate.set_polled_where(ctx.epoll, ctx.listeners, true, |l| l.protocol == SocketProtocol::Http)
        {
            st.balance.take_next = over && http_backlog(ctx.listeners);
        }
        if over || !leave_to_another(ctx, held(conns), true) {
            end_aside(st);
        }
    }
    if std::mem::take(&mut st.kept) && st.polled && st.balance.aside.is_none() {
        st.balance.leaving = leave_to_another(ctx, held(conns), false);
        if st.balance.leaving {
            step_back(ctx);
        }
    }
}

/// The HTTP listeners are back in this thread's epoll set (or all are out): no longer aside.
fn end_aside(st: &mut LoopState) {
    st.balance.aside = None;
}

/// True when a connection waits in the accept queue of an HTTP listener (one `poll`).
fn http_backlog(listeners: &[Listener]) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds: Vec<PollFd<'_>> = listeners
        .iter()
        .filter(|l| l.protocol == SocketProtocol::Http)
        .map(|l| PollFd::new(l.fd(), PollFlags::POLLIN))
        .collect();
    poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// Woken for a new HTTP connection while another thread, free to take it, holds at least
/// two connections fewer (`leave_to_another`): the kernel skipped that thread because it
/// was not asleep in `epoll_wait` at that instant (a short task, or waiting for a CPU on a
/// loaded machine). This thread takes its HTTP listeners out of its epoll set for `ASIDE`
/// and leaves the connection queued: the other thread has the listener ready when it next
/// waits. The listeners come back once the other thread has caught up (looked at every
/// `ASIDE_CHECK`) or after `ASIDE`, when a connection still queued is taken (`take_next`):
/// a new connection waits at most `ASIDE` for the other thread.
fn step_aside(ctx: &LoopContext<'_>, st: &mut LoopState) {
    if ctx.gate.set_polled_where(ctx.epoll, ctx.listeners, false, |l| l.protocol == SocketProtocol::Http) {
        st.balance.aside = Some(Instant::now());
    }
}

/// Balances keep-alive HTTP connections over the threads of all workers. A listener wakes
/// one waiting thread per connection (EPOLLEXCLUSIVE): the first in the kernel's queue of
/// waiters, so on its own the same thread would take every keep-alive connection of a
/// quiet server. A thread that has just kept a new connection open after its first request
/// and now holds at least two connections more than another thread polling the listeners
/// (`leave_to_another`) re-registers its HTTP listeners, which moves it to the back of that
/// queue: the next connections wake the others first (one busy at that moment is skipped by
/// the kernel, so stepping back never leaves a connection waiting). Connections closed after
/// one request (`Connection: close`, uwsgi from nginx) don't make a thread step back: they
/// don't stay. Three things keep the order: the other thread need not be asleep in
/// `epoll_wait` at that instant (it was required once, and a thread busy for a few
/// milliseconds during a burst then let one thread keep its place and take every
/// connection); a batch of accepts stops at a kept connection that calls for a step back
/// (a fast client's next connections were otherwise taken from the queue without a
/// wake-up); and the timeout sweep's re-registration is left to the busiest threads (an
/// idle thread's put it behind the busy one). The order alone can't keep the balance: the
/// kernel skips a thread not asleep in `epoll_wait` at that instant, and on a loaded
/// machine the other thread can be off the CPU for a whole burst (1 run in 10 of
/// `accept_wakeups.rs` gave one worker all 40 connections); `step_aside` covers that.
// Differs from uWSGI: its workers all wake for each connection (or take turns with
// `thunder-lock`), and none looks at how many connections another holds.
fn step_back(ctx: &LoopContext<'_>) {
    ctx.gate.repoll(ctx.epoll, ctx.listeners, |l| l.protocol == SocketProtocol::Http);
}

/// One pass of a stopping thread over its connections. A request that has begun to arrive,
/// or a reply still going out, is finished (the sweep's `socket-timeout` still applies),
/// and so is the first request of a connection accepted before the stop. A connection
/// between requests gets `STOP_IDLE_GRACE` for its next request, then `begin_close`.
fn wind_down(ctx: &LoopContext<'_>, conns: &mut Slab<Conn>, spare: &mut ReadBuf, began: Instant, first_conn: u64) {
    let grace_over = began.elapsed() >= STOP_IDLE_GRACE;
    let keys: Vec<usize> = conns.iter().map(|(key, _)| key).collect();
    for key in keys {
        let Some(conn) = conns.get_mut(key) else { continue };
        if let Some(at) = conn.closing {
            if at.elapsed() >= LINGER {
                conns.remove(key);
            }
            continue;
        }
        let between_requests = conn.buf.len() == 0 && conn.sending.is_none() && conn.parked.is_none();
        let awaited_first = conn.fresh && conn.since.elapsed() < ctx.settings.request_timeout;
        if !between_requests || awaited_first || !grace_over {
            continue;
        }
        // What arrived since the last epoll_wait is read first: a request there is
        // answered (with `Connection: close`) instead of being cut off.
        serve_event(ctx, conns, spare, key, first_conn + key as u64, false);
        if let Some(conn) = conns.get_mut(key) {
            if conn.buf.len() == 0 && conn.sending.is_none() && conn.closing.is_none() {
                begin_close(conn);
            }
        }
    }
}

/// Closes a connection of a stopping worker between requests: FIN first (the client's
/// next read sees a clean end of stream, what HTTP clients take as "server closed an idle
/// connection; retry"), then the connection stays in the epoll set so that anything the
/// client sent meanwhile is read and dropped rather than answered with a reset; it goes
/// when the client closes too or after `LINGER`.
fn begin_close(conn: &mut Conn) {
    conn.io.close_notify();
    if let Some(fd) = &conn.fd {
        let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
    }
    conn.closing = Some(Instant::now());
}

/// Input on a connection in `closing`: dropped; the connection goes at end of stream.
fn drain_closing(conn: &mut Conn) -> Next {
    let mut scratch = [0u8; 4096];
    loop {
        match conn.io.try_read(&mut scratch) {
            Ok(0) => return Next::Close,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Next::Wait,
            Err(_) => return Next::Close,
        }
    }
}

/// Serves connection `key` (registered as `token`) after a readiness event, then closes it
/// or re-arms its epoll interest. True when it was the connection's first request and the
/// connection stays open for more.
fn serve_event(
    ctx: &LoopContext<'_>,
    conns: &mut Slab<Conn>,
    spare: &mut ReadBuf,
    key: usize,
    token: u64,
    failed: bool,
) -> bool {
    let held = conns.len();
    let Some(conn) = conns.get_mut(key) else { return false };
    let fresh = conn.fresh;
    if conn.interest != Interest::Unregistered {
        if let Some(pipe) = conn.io.pipe() {
            // Its eventfd is level-triggered: emptied before the pipe is looked at.
            pipe.clear_signal();
        }
    }
    let mut next = serve_guarded(ctx, conn, spare);
    // Input a TLS session already decrypted makes no epoll event: serve it now. (A bound,
    // though each round consumes input or ends the connection.)
    for _ in 0..64 {
        if !matches!(next, Next::Wait)
            || conn.closing.is_some()
            || conn.sending.is_some()
            || conn.parked.as_ref().is_some_and(|p| p.want != Want::Input)
            || !conn.io.has_plaintext()
        {
            break;
        }
        next = serve_guarded(ctx, conn, spare);
    }
    // `http-keepalive`: past the cap, a connection that just finished its requests goes.
    let over_keepalive = ctx.settings.max_keepalive > 0
        && held > ctx.settings.max_keepalive
        && !conn.fresh
        && conn.buf.len() == 0
        && conn.sending.is_none()
        && conn.parked.is_none();
    if matches!(next, Next::Http2) && !failed {
        if let Some(h2) = ctx.http2 {
            let conn = conns.remove(key);
            hand_over(ctx, h2, conn);
            // It stays open on the HTTP/2 thread, as a kept-alive connection of this one's.
            return fresh;
        }
    }
    let close = failed || matches!(next, Next::Close | Next::Http2) || over_keepalive;
    // An HTTP/2 stream has no FIN to send: its response ends when the connection goes.
    if close
        && !failed
        && conn.closing.is_none()
        && conn.sending.is_none()
        && conn.stream.is_none()
        && ctx.winding_down.load(Ordering::Relaxed)
    {
        // A stopping worker's last response (`Connection: close`) is followed by a FIN and
        // a short linger, so a request the client sent meanwhile can't reset it away.
        begin_close(conn);
        if rearm(ctx.epoll, conn, token) {
            return false;
        }
    } else if !close && rearm(ctx.epoll, conn, token) {
        return fresh && !conn.fresh;
    }
    let mut conn = conns.remove(key);
    if let Some(sending) = conn.sending.take() {
        finish_sending(ctx, &sending, false);
    }
    // A parked request still running goes with its connection (its drop tells the app).
    drop(conn.parked.take());
    if !failed {
        conn.io.close_notify();
    }
    // Dropping `conn` closes its fd, which also takes it out of the epoll set.
    false
}

/// Gives an HTTP/2 connection, with what was read of it, to the worker's HTTP/2 thread.
fn hand_over(ctx: &LoopContext<'_>, h2: &Http2, conn: Conn) {
    // Only a socket speaks HTTP/2 (a stream never comes back here).
    let Some(fd) = conn.fd else { return };
    if conn.interest != Interest::Unregistered {
        let _ = ctx.epoll.delete(fd.as_fd());
    }
    let buffered = conn.buf.filled().to_vec();
    let held_by = HANDED.with(Arc::clone);
    held_by.fetch_add(1, Ordering::Relaxed);
    h2.hand_over(http2::Incoming {
        held_by,
        fd,
        io: conn.io,
        buffered,
        listener: conn.listener,
        addr: conn.peer.addr,
        port: conn.peer.port,
    });
}

/// Serves an HTTP/2 stream taken from the worker's queue (`http2.rs`) as a uwsgi connection
/// that has sent its packet, as `accept_some` serves a new one.
fn adopt_stream(ctx: &LoopContext<'_>, conns: &mut Slab<Conn>, st: &mut LoopState, first_conn: u64, stream: Handed) {
    if stream.pipe.abandoned() {
        // Reset by the client before any thread took it: nobody waits for the answer.
        return;
    }
    let io = Io::stream(Arc::clone(&stream.pipe));
    let entry = conns.vacant_entry();
    let key = entry.key();
    let token = first_conn + key as u64;
    let peer = Peer { addr: stream.addr, port: stream.port, awaiting_proxy: false };
    let mut conn = Conn::new(None, io, stream.listener, SocketProtocol::Uwsgi, peer);
    conn.stream = Some(PipeEnd(stream.pipe));
    conn.handed = Some(stream.head);
    entry.insert(conn);
    serve_event(ctx, conns, &mut st.spare, key, token, false);
}

/// Handles one readiness event. A panic (a bug in ruwsgi, never the app's exception, which
/// the WSGI layer turns into a 500) is contained here: it is logged with the request and
/// only this connection is closed; the thread keeps serving the others.
fn serve_guarded(ctx: &LoopContext<'_>, conn: &mut Conn, spare: &mut ReadBuf) -> Next {
    match catch_unwind(AssertUnwindSafe(|| {
        if conn.parked.is_some() {
            on_parked(ctx, conn, spare)
        } else if conn.closing.is_some() {
            drain_closing(conn)
        } else if conn.sending.is_none() && !conn.io.flush().unwrap_or(true) {
            // TLS records still wait for room in the socket: EPOLLOUT first.
            Next::Wait
        } else if conn.sending.is_some() {
            on_writable(ctx, conn, spare)
        } else {
            on_readable(ctx, conn, spare)
        }
    })) {
        Ok(next) => next,
        Err(panic) => {
            let first_line = conn.buf.filled().split(|&b| b == b'\n').next().unwrap_or_default();
            let first_line = String::from_utf8_lossy(&first_line[..first_line.len().min(200)]);
            tracing::error!(
                "worker {} core {}: internal error serving {} ({:?}): {}; connection closed",
                ctx.worker.id,
                ctx.core,
                peer_name(&conn.peer),
                first_line.trim_end(),
                crate::log::panic_message(panic.as_ref())
            );
            ctx.worker.slot().cores[ctx.core].request_start.store(0, Ordering::Relaxed);
            reply_error(&conn.io, 500, "Internal Server Error");
            Next::Close
        }
    }
}

/// Closes connections idle past `http-timeout` or with a request (the first one included)
/// slower than `socket-timeout`.
fn sweep(ctx: &LoopContext<'_>, conns: &mut Slab<Conn>) {
    let settings = ctx.settings;
    for site in ctx.listeners.iter().filter_map(|l| l.tls.as_ref()) {
        site.refresh();
    }
    conns.retain(|_, c| {
        if c.parked.is_some() {
            // Its own timeouts apply (`Parked::resume`).
            return true;
        }
        // A TLS handshake must finish within socket-timeout, as a request must arrive, and
        // so must the first bytes of a new connection (as uWSGI waits for the first request:
        // a client that connects and never sends is closed after socket-timeout, without a
        // reply, once TCP_DEFER_ACCEPT handed it over).
        let busy = c.buf.len() > 0 || c.sending.is_some() || c.io.handshaking() || c.fresh;
        let limit = if busy { settings.request_timeout } else { settings.idle_timeout };
        let keep = c.since.elapsed() < limit;
        if !keep {
            if let Some(sending) = c.sending.take() {
                tracing::debug!("closing connection from {}: static file not taken within {:?}", c.peer.addr, limit);
                finish_sending(ctx, &sending, false);
            } else if c.buf.len() > 0 {
                tracing::debug!("closing connection from {}: request not complete after {:?}", c.peer.addr, limit);
                reply_error(&c.io, 408, "Request Timeout");
            }
            c.io.close_notify();
        }
        keep
    });
}

/// True when another thread (of any worker) polling the listeners holds at least two
/// connections fewer than this one, and 1/32 fewer (so that with thousands of connections
/// the threads don't step back after every accept). `free_now`: and that thread is not
/// running a request for longer than `LONG_REQUEST`.
fn leave_to_another(ctx: &LoopContext<'_>, mine: usize, free_now: bool) -> bool {
    let mine = mine as u64;
    let now = if free_now { now_micros() } else { 0 };
    any_other(ctx, |slot| {
        let theirs = slot.connections.load(Ordering::Relaxed);
        let started = slot.request_start.load(Ordering::Relaxed);
        theirs.saturating_add(2 + mine / 32) <= mine
            && (!free_now || started == 0 || now.saturating_sub(started) < LONG_REQUEST.as_micros() as u64)
    })
}

/// True when another thread (of any worker) polling the listeners holds fewer connections.
fn holds_fewer_than_another(ctx: &LoopContext<'_>, mine: usize) -> bool {
    let mine = mine as u64;
    any_other(ctx, |slot| slot.connections.load(Ordering::Relaxed) < mine)
}

/// True when `test` holds for the slot of another thread polling the listeners (one that
/// isn't has `u64::MAX` connections). A thread aside counts: it holds more than another,
/// so its count makes a thread holding more still step aside (the one holding fewest never
/// does), and it is back within `ASIDE_CHECK` when the balance calls for it.
fn any_other(ctx: &LoopContext<'_>, test: impl Fn(&crate::scoreboard::CoreSlot) -> bool) -> bool {
    let board = ctx.worker.board;
    (1..=ctx.settings.processes).any(|id| {
        board.worker(id).cores[..ctx.settings.threads].iter().enumerate().any(|(core, slot)| {
            (id, core) != (ctx.worker.id, ctx.core)
                && slot.connections.load(Ordering::Relaxed) != u64::MAX
                && test(slot)
        })
    })
}

/// Accepts up to `ACCEPT_BATCH` connections from listener `index` and serves what they sent.
fn accept_some(ctx: &LoopContext<'_>, conns: &mut Slab<Conn>, st: &mut LoopState, index: usize, first_conn: u64) {
    let listener = &ctx.listeners[index];
    for _ in 0..ACCEPT_BATCH {
        if ctx.settings.max_conns > 0 && conns.len() >= ctx.settings.max_conns {
            return;
        }
        let (socket, addr) = match listener.socket.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Ok(pair) => pair,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) => {
                fd_shortage_began(ctx, listener, conns.len(), &e);
                st.shortage = Some(FdShortage { held: conns.len(), retry_at: Instant::now() + FD_SHORTAGE_RETRY });
                return;
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
            Err(e) => {
                // The stop may have closed the listener between the event and this call.
                if !ctx.stopping.load(Ordering::Relaxed) {
                    tracing::warn!("accept() on {} failed: {e}", listener.name);
                }
                return;
            }
        };
        fd_shortage_ended(ctx);
        let awaiting_proxy = ctx.settings.proxy_protocol && listener.protocol == SocketProtocol::Http;
        let peer = match addr.as_socket() {
            Some(a) => Peer { addr: a.ip().to_canonical().to_string(), port: a.port().to_string(), awaiting_proxy },
            None => Peer { addr: String::new(), port: String::new(), awaiting_proxy },
        };
        if ctx.settings.so_keepalive {
            let _ = socket.set_keepalive(true);
        }
        let fd: OwnedFd = socket.into();
        let io = match &listener.tls {
            Some(site) => Io::tls(fd.as_raw_fd(), site.session()),
            None => Io::plain(fd.as_raw_fd()),
        };
        let entry = conns.vacant_entry();
        let token = first_conn + entry.key() as u64;
        let key = entry.key();
        entry.insert(Conn::new(Some(fd), io, index, listener.protocol, peer));
        // TCP listeners defer accept() until the first bytes arrive (TCP_DEFER_ACCEPT), and
        // clients mostly send right after connecting: serve now rather than after another
        // trip through epoll_wait. The connection joins the epoll set only if it is still
        // open after that (a one-request uwsgi connection from nginx never does). One
        // still open counts as kept even before its first response (a TLS handshake takes
        // round trips): else a burst of TLS connections all went to the first thread woken,
        // whose batch of accepts found none kept.
        if serve_event(ctx, conns, &mut st.spare, key, token, false) || conns.contains(key) {
            st.kept = true;
            if leave_to_another(ctx, held(conns), false) {
                // The next connection goes by the wake-up order (`step_back`), not to
                // this thread's next accept().
                return;
            }
        }
    }
}

/// The first failed `accept()` of an fd shortage in this worker is logged (one line per
/// episode, however many threads and retries); the listeners stay out of the epoll set
/// until a connection closes, so the thread neither spins nor floods the log.
fn fd_shortage_began(ctx: &LoopContext<'_>, listener: &Listener, held: usize, e: &std::io::Error) {
    let since = &ctx.worker.fd_shortage_since;
    if since.compare_exchange(0, now_micros(), Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        tracing::warn!(
            "accept() on {} failed: {e}; worker {} holds {held} connections on core {}: not accepting until one closes",
            listener.name,
            ctx.worker.id,
            ctx.core
        );
    }
}

/// An `accept()` worked again: ends this worker's fd shortage episode, if any.
fn fd_shortage_ended(ctx: &LoopContext<'_>) {
    let shortage = &ctx.worker.fd_shortage_since;
    // A plain load first: this runs on every accept, and the swap would write a shared line.
    if shortage.load(Ordering::Relaxed) == 0 {
        return;
    }
    let since = shortage.swap(0, Ordering::Relaxed);
    if since != 0 {
        let lasted = now_micros().saturating_sub(since) as f64 / 1e6;
        tracing::info!(
            "worker {}: accepting connections again after {lasted:.1} s without file descriptors",
            ctx.worker.id
        );
    }
}

fn on_readable(ctx: &LoopContext<'_>, conn: &mut Conn, spare: &mut ReadBuf) -> Next {
    let idle = conn.buf.len() == 0;
    conn.buf.borrow_spare(spare);
    let read = match conn.handed.take() {
        Some(head) => Ok(conn.buf.put(&head)),
        None => conn.buf.read_from(&conn.io),
    };
    let next = match read {
        Ok(0) => Next::Close,
        // Bytes on an idle connection start its socket-timeout clock. `drive` reads the
        // clock only when they don't complete a request: answering one restarts the clock
        // anyway, so a request costs one clock read fewer.
        Ok(_) => match conn.peer.awaiting_proxy.then(|| take_proxy_header(conn)).flatten() {
            Some(next) => {
                if idle {
                    conn.since = Instant::now();
                }
                next
            }
            None if ctx.http2.is_some() && conn.fresh && conn.protocol == SocketProtocol::Http => {
                let cleartext = ctx.http2.is_some_and(Http2::cleartext);
                let speaks = http2::speaks_http2(&conn.io, conn.buf.filled(), cleartext);
                if speaks == Some(false) {
                    drive(ctx, conn, idle)
                } else {
                    if idle {
                        conn.since = Instant::now();
                    }
                    if speaks == Some(true) {
                        Next::Http2
                    } else {
                        Next::Wait
                    }
                }
            }
            None => drive(ctx, conn, idle),
        },
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Next::Wait,
        Err(_) => Next::Close,
    };
    conn.buf.settle(spare);
    next
}

/// `enable-proxy-protocol`: consumes the PROXY header that may open the connection and takes
/// the client's address from it. Looked for once, before the first request: a header later
/// on the connection is request data, so a client behind the proxy can't forge one. `Some`:
/// wait for the rest of it, or close after a 400 for a malformed one.
fn take_proxy_header(conn: &mut Conn) -> Option<Next> {
    let (header, used) = match parse_proxy_header(conn.buf.filled()) {
        Ok(None) => return Some(Next::Wait),
        Ok(Some(ProxyStart::Absent)) => (None, 0),
        Ok(Some(ProxyStart::Header { header, used })) => (header.source, used),
        Err(e) => {
            tracing::info!("bad PROXY header from {}: {e} -> {}", peer_name(&conn.peer), e.status());
            reply_error(&conn.io, e.status(), "Bad Request");
            return Some(Next::Close);
        }
    };
    conn.peer.awaiting_proxy = false;
    conn.buf.consume(used);
    if let Some(source) = header {
        conn.peer.addr = source.ip().to_canonical().to_string();
        conn.peer.port = source.port().to_string();
    }
    None
}

/// Serves every complete request in the buffer (pipelining), then waits for more input.
/// `arrived`: the bytes came to an idle connection and `since` is still the idle one; it
/// becomes now when they don't complete a request (an answered one sets it itself).
fn drive(ctx: &LoopContext<'_>, conn: &mut Conn, mut arrived: bool) -> Next {
    loop {
        if conn.buf.len() == 0 {
            if arrived {
                conn.since = Instant::now();
            }
            return Next::Wait;
        }
        let step = match conn.protocol {
            SocketProtocol::Http => serve_http(ctx, conn),
            SocketProtocol::Uwsgi => serve_uwsgi(ctx, conn),
        };
        match step {
            Step::Served { keep_alive: true } => {
                arrived = false;
                conn.fresh = false;
                conn.since = Instant::now();
                conn.continue_sent = false;
                conn.chunk_scan = None;
                // A stopping worker goes on with requests pipelined behind this one; the
                // last buffered one is answered with `Connection: close`.
            }
            Step::Served { keep_alive: false } | Step::Reject => return Next::Close,
            Step::Incomplete => {
                if arrived {
                    conn.since = Instant::now();
                }
                return Next::Wait;
            }
            Step::Sending | Step::Parked => return Next::Wait,
        }
    }
}

enum Step {
    /// A request was answered.
    Served { keep_alive: bool },
    /// More bytes are needed.
    Incomplete,
    /// The input was refused (error already sent).
    Reject,
    /// A static file is still going out (`conn.sending`); resume on EPOLLOUT.
    Sending,
    /// The app goes on with the request in this loop (`conn.parked`).
    Parked,
}

fn serve_http(ctx: &LoopContext<'_>, conn: &mut Conn) -> Step {
    let io = conn.io.clone();
    let settings = ctx.settings;
    let (head, used) = match parse_request_head(conn.buf.filled(), &settings.limits) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Step::Incomplete,
        Err(e) => {
            tracing::info!("bad request from {}: {e} -> {}", conn.peer.addr, e.status());
            reply_error(&io, e.status(), e.reason());
            return Step::Reject;
        }
    };
    if let Some(reply) = health_reply(
        ctx,
        head.method.as_bytes(),
        head.target.as_bytes(),
        head.method == "HEAD",
        // A stopping worker closes after its answers, this one too.
        head.keep_alive && head.body == BodyFraming::None && !ctx.stopping.load(Ordering::Relaxed),
    ) {
        let sent = io.write_all(&[&reply], &mut 0, || io.wait(true, settings.request_timeout));
        conn.buf.consume(used);
        return Step::Served { keep_alive: sent.is_ok() && health::keeps_alive(&reply) };
    }
    let listener = &ctx.listeners[conn.listener];
    let route = match ctx.router {
        None => None,
        Some(router) => {
            let vars = HttpVars {
                head: &head,
                server_name: &listener.server_name,
                server_port: &listener.server_port,
                remote_addr: &conn.peer.addr,
                remote_port: &conn.peer.port,
                https: conn.io.is_tls(),
            };
            let reusable = head.keep_alive && head.body == BodyFraming::None;
            let outcome = router.run(&vars, head.minor_version, head.method == "HEAD", !reusable);
            let logged = Logged::http(settings, &head, &conn.peer.addr, used);
            match routed(ctx, &io, outcome, &logged, reusable) {
                Ok(state) => state,
                Err(keep_alive) => {
                    conn.buf.consume(used);
                    return Step::Served { keep_alive };
                }
            }
        }
    };
    if let Some(statics) = ctx.statics {
        let started = now_micros();
        // A stopping worker closes after this reply unless another request is already buffered.
        let closing = ctx.winding_down.load(Ordering::Relaxed) && conn.buf.len() == used;
        let request =
            StaticRequest::from_http(&head).map(|r| StaticRequest { keep_alive: r.keep_alive && !closing, ..r });
        if let Some(reply) = request.and_then(|r| statics.respond(&r, routed_file(route.as_deref()))) {
            let log = LogFacts {
                addr: http_log_addr(settings, &head, &conn.peer.addr).to_owned(),
                method: head.method.to_owned(),
                uri: head.target.to_owned(),
                protocol: if head.minor_version == 0 { "HTTP/1.0" } else { "HTTP/1.1" }.to_owned(),
                packet_bytes: used,
                // The CGI variables an environ would have besides the HTTP_* ones.
                vars: head.headers.len() + 10,
                app: Some(0),
                captured: capture(ctx, &RequestVars::Http(&head)),
                modifiers: (0, 0),
                donotlog: route.as_ref().is_some_and(|r| r.donotlog),
                logvars: route.as_ref().map(|r| r.logvars.clone()).unwrap_or_default(),
                collected: Vec::new(),
            };
            conn.buf.consume(used);
            return start_static(ctx, conn, reply, started, log);
        }
    }
    let available = conn.buf.len() - used;
    // Another request already buffered behind this one (unknown for a chunked body).
    let pipelined = match head.body {
        BodyFraming::None => available > 0,
        BodyFraming::Length(n) => available as u64 > n,
        BodyFraming::Chunked => false,
    };
    let (body, body_taken) = match head.body {
        BodyFraming::None => (BodyReader::empty(), 0),
        BodyFraming::Length(n) => {
            if settings.limit_post > 0 && n > settings.limit_post {
                tracing::info!(
                    "request body of {n} bytes from {} exceeds limit-post ({}) -> 413",
                    conn.peer.addr,
                    settings.limit_post
                );
                reply_error(&io, 413, "Content Too Large");
                return Step::Reject;
            }
            if (available as u64) < n && n <= settings.prebuffer as u64 {
                if head.expect_continue && !conn.continue_sent {
                    conn.continue_sent = true;
                    let _ = io.try_write(&[std::io::IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n")]);
                }
                return Step::Incomplete;
            }
            let take = available.min(n as usize);
            let already = conn.buf.filled()[used..used + take].to_vec();
            let expect = head.expect_continue && !conn.continue_sent;
            (BodyReader::with_length(io.clone(), already, n, expect), take)
        }
        BodyFraming::Chunked => {
            match scan_chunked(&conn.buf.filled()[used..], &mut conn.chunk_scan, settings) {
                Ok(true) => {}
                Ok(false) => {
                    if head.expect_continue && !conn.continue_sent {
                        conn.continue_sent = true;
                        let _ = io.try_write(&[std::io::IoSlice::new(b"HTTP/1.1 100 Continue\r\n\r\n")]);
                    }
                    return Step::Incomplete;
                }
                Err((status, reason, why)) => {
                    tracing::info!("bad request from {}: {why} -> {status}", conn.peer.addr);
                    reply_error(&io, status, reason);
                    return Step::Reject;
                }
            }
            conn.chunk_scan = None;
            let already = conn.buf.filled()[used..].to_vec();
            let expect = head.expect_continue && !conn.continue_sent;
            (BodyReader::chunked(io.clone(), already, expect), available)
        }
    };
    let request = Request {
        origin: Origin::Http {
            head: &head,
            server_name: &listener.server_name,
            server_port: &listener.server_port,
            remote_addr: &conn.peer.addr,
            remote_port: &conn.peer.port,
        },
        client: Client::new(io.clone(), settings.request_timeout),
        route: route.as_deref(),
        // Once the worker stops, the last buffered request's response says `Connection: close`.
        closing: (!pipelined).then_some(ctx.winding_down),
        harakiri_clock: &ctx.worker.slot().cores[ctx.core].request_start,
    };
    let client_keep_alive = head.keep_alive;
    let started = begin_request(ctx);
    ctx.worker.slot().cores[ctx.core].set_request(head.method, head.target);
    let logged = Logged::http(settings, &head, &conn.peer.addr, used);
    let (mut served, mut body) = match ctx.app.start(&request, body) {
        Started::Done(served, body) => (served, body),
        Started::Parked(task) => {
            let log = parked_log(ctx, &logged);
            conn.buf.consume(used + body_taken);
            return park(conn, task, started, log, client_keep_alive);
        }
    };
    let parked = park_file_rest(ctx, started, &mut served, &logged);
    if body.unread_on_socket() {
        // The app answered without reading the whole body (an upload it refused, say): read
        // and drop the rest, so closing or reusing the connection doesn't reset the
        // response the client may still be waiting to read.
        discard_body(&mut body, settings.request_timeout, UNREAD_BODY_DRAIN);
    }
    conn.buf.consume(used + body_taken);
    let (leftover, reusable) = body.finish();
    conn.buf.unread(&leftover);
    let keep_alive = client_keep_alive && served.keep_alive && reusable;
    resume_parked(ctx, conn, parked, keep_alive)
}

/// Ends an app request whose body (a `wsgi.file_wrapper` file, or the app's last bytes)
/// the client didn't take at once: the rest is parked, to go out from this loop and be
/// logged when sent. Any other request is logged now. Returns the parked reply.
fn park_file_rest(
    ctx: &LoopContext<'_>,
    started: u64,
    served: &mut Served,
    logged: &Logged<'_>,
) -> Option<Box<Sending>> {
    let Some(rest) = served.rest.take() else {
        end_request(ctx, started, served, logged);
        return None;
    };
    let transfer = match rest {
        BodyRest::File(rest) => {
            Transfer::file_rest(rest.file, rest.offset, rest.remaining, served.header_bytes, served.body_bytes)
        }
        BodyRest::Memory(rest) => Transfer::memory_rest(rest, served.header_bytes, served.body_bytes),
    };
    Some(Box::new(Sending {
        reply: Reply {
            transfer,
            status: served.status,
            header_count: served.header_count,
            keep_alive: served.keep_alive,
            sendfile: served.sendfile,
        },
        started,
        log: LogFacts {
            addr: logged.addr.to_owned(),
            method: logged.method.to_owned(),
            uri: logged.uri.to_owned(),
            protocol: logged.protocol.to_owned(),
            packet_bytes: logged.packet_bytes,
            vars: served.vars,
            app: served.app,
            captured: capture(ctx, &logged.request),
            modifiers: logged.modifiers,
            donotlog: served.donotlog,
            logvars: served.logvars.clone(),
            collected: served.collected.clone(),
        },
        static_file: false,
    }))
}

/// Puts a parked reply (if any) on the connection; the thread goes on with other clients.
fn resume_parked(ctx: &LoopContext<'_>, conn: &mut Conn, parked: Option<Box<Sending>>, keep_alive: bool) -> Step {
    let Some(mut sending) = parked else { return Step::Served { keep_alive } };
    sending.reply.keep_alive = keep_alive;
    // A slow client's download doesn't count against harakiri.
    ctx.worker.slot().cores[ctx.core].request_start.store(0, Ordering::Relaxed);
    conn.since = Instant::now();
    conn.sending = Some(sending);
    Step::Sending
}

/// Parks a request the app goes on with (`Started::Parked`): the thread serves other
/// connections meanwhile, and `on_parked` resumes it. The request stays counted as
/// running (harakiri, stats) until it completes (`tick_parked`).
fn park(conn: &mut Conn, task: Box<dyn Parked>, started: u64, log: LogFacts, client_keep_alive: bool) -> Step {
    conn.since = Instant::now();
    conn.parked = Some(Box::new(ParkedRequest {
        task,
        started,
        log,
        client_keep_alive,
        want: Want::Nothing,
        waker_set: false,
        socket_woke: false,
    }));
    Step::Parked
}

/// The log facts of a request being parked (its head's buffer is reused meanwhile).
fn parked_log(ctx: &LoopContext<'_>, logged: &Logged<'_>) -> LogFacts {
    LogFacts {
        addr: logged.addr.to_owned(),
        method: logged.method.to_owned(),
        uri: logged.uri.to_owned(),
        protocol: logged.protocol.to_owned(),
        packet_bytes: logged.packet_bytes,
        vars: 0,
        app: Some(0),
        captured: capture(ctx, &logged.request),
        modifiers: logged.modifiers,
        donotlog: false,
        logvars: Vec::new(),
        collected: Vec::new(),
    }
}

/// Resumes the connection's parked request; when it completes, logs it and goes on with
/// the connection (keep-alive, pipelined requests) as `serve_http` does after `handle`.
fn on_parked(ctx: &LoopContext<'_>, conn: &mut Conn, spare: &mut ReadBuf) -> Next {
    let Some(p) = conn.parked.as_mut() else { return Next::Wait };
    let (mut served, mut body) = match p.task.resume() {
        Resumed::Wait(want) => {
            p.want = want;
            return Next::Wait;
        }
        Resumed::Done(served, body) => (served, body),
    };
    let Some(p) = conn.parked.take() else { return Next::Close };
    let logged = p.log.logged();
    served.rest = None;
    end_request(ctx, p.started, &served, &logged);
    let client_keep_alive = p.client_keep_alive;
    if body.unread_on_socket() {
        let limit = if client_keep_alive { UNREAD_BODY_DRAIN } else { u64::MAX };
        discard_body(&mut body, ctx.settings.request_timeout, limit);
    }
    let (leftover, reusable) = body.finish();
    conn.buf.unread(&leftover);
    if !(client_keep_alive && served.keep_alive && reusable) {
        return Next::Close;
    }
    conn.fresh = false;
    conn.since = Instant::now();
    conn.continue_sent = false;
    conn.chunk_scan = None;
    let next = drive(ctx, conn, false);
    conn.buf.settle(spare);
    next
}

/// Every loop tick (and while the worker stops): resumes each parked request whose timer
/// may have run out (`Parked::due`; all of them while the worker stops), and sets this
/// thread's harakiri clock to the oldest of them that isn't a long-lived session.
fn tick_parked(ctx: &LoopContext<'_>, conns: &mut Slab<Conn>, spare: &mut ReadBuf, first_conn: u64) {
    let stopping = ctx.stopping.load(Ordering::Relaxed);
    let due: Vec<usize> = conns
        .iter()
        .filter(|(_, c)| c.parked.as_ref().is_some_and(|p| stopping || p.task.due()))
        .map(|(key, _)| key)
        .collect();
    for key in due {
        serve_event(ctx, conns, spare, key, first_conn + key as u64, false);
    }
    let mut parked = conns.iter().filter_map(|(_, c)| c.parked.as_ref()).peekable();
    if parked.peek().is_none() {
        return;
    }
    let oldest = parked.filter(|p| !p.task.is_session()).map(|p| p.started).min();
    ctx.worker.slot().cores[ctx.core].request_start.store(oldest.unwrap_or(0), Ordering::Relaxed);
}

/// Checks the chunked framing of the body bytes (`raw`, after the head) that arrived since
/// the last call. `Ok(true)`:
/// call the app now (the body is complete, or larger than what is pre-buffered);
/// `Ok(false)`: wait for more; `Err`: the response to send before closing.
fn scan_chunked(
    raw: &[u8],
    scan: &mut Option<ChunkScan>,
    settings: &LoopSettings,
) -> Result<bool, (u16, &'static str, String)> {
    let scan = scan.get_or_insert_with(ChunkScan::default);
    let mut sink = Vec::new();
    let (used, done) = scan
        .decoder
        .decode(&raw[scan.scanned..], &mut sink, usize::MAX)
        .map_err(|e| (e.status(), "Bad Request", format!("chunked body: {e}")))?;
    scan.scanned += used;
    scan.decoded += sink.len() as u64;
    if settings.limit_post > 0 && scan.decoded > settings.limit_post {
        return Err((413, "Content Too Large", format!("chunked body over limit-post ({})", settings.limit_post)));
    }
    Ok(done || raw.len() >= settings.prebuffer)
}

fn serve_uwsgi(ctx: &LoopContext<'_>, conn: &mut Conn) -> Step {
    let io = conn.io.clone();
    let settings = ctx.settings;
    let (packet, used) = match parse_uwsgi_packet(conn.buf.filled(), settings.limits.max_head) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return Step::Incomplete,
        Err(e) => {
            tracing::warn!("uwsgi packet from {}: {e}", peer_name(&conn.peer));
            return Step::Reject;
        }
    };
    let method = packet.var(b"REQUEST_METHOD").unwrap_or_default();
    let path = packet.var(b"PATH_INFO").or_else(|| packet.var(b"REQUEST_URI")).unwrap_or_default();
    if let Some(reply) = health_reply(ctx, method, path, method == b"HEAD", false) {
        let _ = io.write_all(&[&reply], &mut 0, || io.wait(true, settings.request_timeout));
        conn.buf.consume(used);
        return Step::Served { keep_alive: false };
    }
    let route = match ctx.router {
        None => None,
        Some(router) => {
            let vars = UwsgiVars { packet: &packet };
            let var = |k: &[u8]| packet.var(k).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
            let minor = u8::from(packet.var(b"SERVER_PROTOCOL") != Some(b"HTTP/1.0"));
            let outcome = router.run(&vars, minor, var(b"REQUEST_METHOD") == "HEAD", false);
            let logged = Logged::uwsgi(settings, &packet, used);
            let Ok(state) = routed(ctx, &io, outcome, &logged, false) else {
                conn.buf.consume(used);
                // uWSGI answers one request per uwsgi connection.
                return Step::Served { keep_alive: false };
            };
            state
        }
    };
    if let Some(statics) = ctx.statics {
        let started = now_micros();
        if let Some(reply) =
            StaticRequest::from_uwsgi(&packet).and_then(|r| statics.respond(&r, routed_file(route.as_deref())))
        {
            let var = |k: &[u8]| String::from_utf8_lossy(packet.var(k).unwrap_or_default()).into_owned();
            let log = LogFacts {
                addr: var(uwsgi_log_addr(settings, &packet)),
                method: var(b"REQUEST_METHOD"),
                uri: var(b"REQUEST_URI"),
                protocol: var(b"SERVER_PROTOCOL"),
                packet_bytes: used,
                vars: packet.vars.len(),
                app: Some(0),
                captured: capture(ctx, &RequestVars::Uwsgi(&packet)),
                modifiers: (packet.modifier1, packet.modifier2),
                donotlog: route.as_ref().is_some_and(|r| r.donotlog),
                logvars: route.as_ref().map(|r| r.logvars.clone()).unwrap_or_default(),
                collected: Vec::new(),
            };
            conn.buf.consume(used);
            return start_static(ctx, conn, reply, started, log);
        }
    }
    let length: u64 = packet
        .vars
        .iter()
        .find(|(k, _)| *k == b"CONTENT_LENGTH")
        .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .unwrap_or(0);
    // A length past i64::MAX can't be read by any app (413, as for HTTP).
    if (settings.limit_post > 0 && length > settings.limit_post) || length > MAX_CONTENT_LENGTH {
        tracing::info!("request body of {length} bytes exceeds limit-post ({}) -> 413", settings.limit_post);
        reply_error(&io, 413, "Content Too Large");
        return Step::Reject;
    }
    let available = conn.buf.len() - used;
    if (available as u64) < length && length <= settings.prebuffer as u64 {
        return Step::Incomplete;
    }
    let take = available.min(length as usize);
    // An HTTP/2 stream's body of unknown length comes chunked from the HTTP/2 thread.
    let from_http2 = ctx.listeners[conn.listener].protocol == SocketProtocol::Http;
    let body = if from_http2
        && packet.var(b"CONTENT_LENGTH").is_none()
        && packet.var(b"HTTP_TRANSFER_ENCODING") == Some(b"chunked")
    {
        BodyReader::chunked(io.clone(), conn.buf.filled()[used..].to_vec(), false)
    } else {
        BodyReader::with_length(io.clone(), conn.buf.filled()[used..used + take].to_vec(), length, false)
    };
    let request = Request {
        origin: Origin::Uwsgi { packet: &packet },
        client: Client::new(io.clone(), settings.request_timeout),
        route: route.as_deref(),
        closing: None,
        harakiri_clock: &ctx.worker.slot().cores[ctx.core].request_start,
    };
    let started = begin_request(ctx);
    let var = |k: &[u8]| packet.var(k).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
    ctx.worker.slot().cores[ctx.core].set_request(var(b"REQUEST_METHOD"), var(b"REQUEST_URI"));
    let logged = Logged::uwsgi(settings, &packet, used);
    let (mut served, mut body) = match ctx.app.start(&request, body) {
        Started::Done(served, body) => (served, body),
        Started::Parked(task) => {
            let log = parked_log(ctx, &logged);
            conn.buf.consume(used + take);
            return park(conn, task, started, log, false);
        }
    };
    let parked = park_file_rest(ctx, started, &mut served, &logged);
    discard_body(&mut body, settings.request_timeout, u64::MAX);
    // uWSGI answers one request per uwsgi connection; nginx expects the close.
    resume_parked(ctx, conn, parked, false)
}

/// `health-path`: the answer to a health check (`health.rs`), if this request is one.
fn health_reply(
    ctx: &LoopContext<'_>,
    method: &[u8],
    path: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> Option<Vec<u8>> {
    let health_path = ctx.settings.health_path.as_deref()?;
    let healthy = ctx.worker.board.board().unhealthy.load(Ordering::Relaxed) == 0;
    health::reply(health_path, method, path, healthy, head_only, keep_alive)
}

/// Acts on the `route*` rules' verdict: `Ok(state)` goes on to static files and the app;
/// `Err(keep_alive)`: a rule answered (sent and logged here). `reusable`: the client
/// allows another request on the connection and sent no body that is still unread.
fn routed(
    ctx: &LoopContext<'_>,
    io: &Io,
    outcome: Outcome,
    logged: &Logged<'_>,
    reusable: bool,
) -> Result<Option<Box<RouteState>>, bool> {
    let (answer, state) = match outcome {
        Outcome::Pass(state) => {
            if let Some(sent) = state.as_ref().map(|s| &s.sent).filter(|s| !s.is_empty()) {
                // `send:` bytes go out before whatever answers next.
                let timeout = ctx.settings.request_timeout;
                let _ = io.write_all(&[sent], &mut 0, || io.wait(true, timeout));
            }
            return Ok(state);
        }
        Outcome::Answered(answer, state) => (answer, state),
    };
    let started = begin_request(ctx);
    let timeout = ctx.settings.request_timeout;
    let sent = io.write_all(&[&answer.bytes], &mut 0, || io.wait(true, timeout));
    let keep_alive = sent.is_ok() && reusable && answer.reusable;
    let served = Served {
        status: answer.status,
        body_bytes: (answer.bytes.len() - answer.header_bytes) as u64,
        header_count: answer.header_count,
        header_bytes: answer.header_bytes,
        keep_alive,
        donotlog: state.as_ref().is_some_and(|s| s.donotlog),
        logvars: state.map(|s| s.logvars).unwrap_or_default(),
        ..Served::default()
    };
    end_request(ctx, started, &served, logged);
    Err(keep_alive)
}

/// The file a `static:` routing rule picked.
fn routed_file(route: Option<&RouteState>) -> Option<&std::path::Path> {
    route.and_then(|r| r.static_file.as_deref())
}

/// Reads and drops what the app left of a request body, so the close that follows isn't a
/// reset: nginx writes the whole body before it reads the reply, and a reset while it writes
/// turns the reply already sent into a 502 (a browser loses the reply the same way). Gives
/// up after `timeout` of silence or past `max_bytes`.
fn discard_body(body: &mut BodyReader, timeout: Duration, max_bytes: u64) {
    let mut scratch = Vec::new();
    let mut dropped = 0u64;
    loop {
        scratch.clear();
        match body.read_some(&mut scratch, 64 * 1024) {
            Ok(super::body::Progress::Data(n)) => {
                dropped += n as u64;
                if dropped > max_bytes {
                    return;
                }
            }
            Ok(super::body::Progress::WouldBlock) => {
                if body.io().wait(false, timeout).is_err() {
                    return;
                }
            }
            Ok(super::body::Progress::End) | Err(_) => return,
        }
    }
}

/// Sends a static reply: all of it now if the socket takes it, else the rest is parked in
/// `conn.sending` and continues from the epoll loop.
fn start_static(ctx: &LoopContext<'_>, conn: &mut Conn, reply: Reply, started: u64, log: LogFacts) -> Step {
    let mut sending = Box::new(Sending { reply, started, log, static_file: true });
    match sending.reply.transfer.advance(&conn.io) {
        Ok(Progress::Done) => Step::Served { keep_alive: finish_sending(ctx, &sending, true) },
        Ok(Progress::Blocked) => {
            // The thread is free for other connections meanwhile; harakiri must not count
            // a slow client's download against it.
            ctx.worker.slot().cores[ctx.core].request_start.store(0, Ordering::Relaxed);
            conn.since = Instant::now();
            conn.sending = Some(sending);
            Step::Sending
        }
        Err(_) => {
            finish_sending(ctx, &sending, false);
            Step::Served { keep_alive: false }
        }
    }
}

/// EPOLLOUT on a connection with a parked static reply: send more; when done, log it and
/// go back to serving the requests already buffered.
fn on_writable(ctx: &LoopContext<'_>, conn: &mut Conn, spare: &mut ReadBuf) -> Next {
    let Some(sending) = conn.sending.as_mut() else { return Next::Wait };
    let before = sending.reply.transfer.body_bytes();
    let result = sending.reply.transfer.advance(&conn.io);
    if sending.reply.transfer.body_bytes() != before {
        conn.since = Instant::now();
    }
    if matches!(result, Ok(Progress::Blocked)) {
        return Next::Wait;
    }
    let Some(sending) = conn.sending.take() else { return Next::Close };
    let keep_alive = finish_sending(ctx, &sending, result.is_ok());
    if !keep_alive {
        return Next::Close;
    }
    conn.since = Instant::now();
    let next = drive(ctx, conn, false);
    conn.buf.settle(spare);
    next
}

/// What the epoll set watches a connection for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Interest {
    /// Not in the set yet (just accepted and served straight away).
    Unregistered,
    /// Input (the next request, or the client going away).
    Input,
    /// Room to write (`sending`).
    Output,
    /// Only the client going away (a parked request, `Want::Hangup`).
    Hangup,
    /// Nothing but errors (a parked request waiting for its app).
    Silent,
}

/// Registers the connection or switches its epoll interest between input and EPOLLOUT as
/// `conn.sending` requires; false (logged) when epoll refuses, and the connection must go.
fn rearm(epoll: &Epoll, conn: &mut Conn, token: u64) -> bool {
    // TLS records the socket didn't take (a handshake flight, say) wait for room too.
    let want = match conn.parked.as_mut() {
        Some(p) => {
            if !p.waker_set {
                let Some(bell) = DOORBELL.with(|d| d.get().map(Arc::clone)) else { return false };
                p.task.set_waker(Waker::new(bell, token));
                p.waker_set = true;
            }
            let woke = std::mem::take(&mut p.socket_woke);
            match p.want {
                // A quiet socket's EPOLLIN doesn't fire: it stays armed (saving two
                // epoll_ctl calls per request) until input arrives that nobody reads.
                Want::Nothing | Want::Hangup
                    if matches!(conn.interest, Interest::Input | Interest::Unregistered) && !woke =>
                {
                    Interest::Input
                }
                Want::Input => Interest::Input,
                Want::Output => Interest::Output,
                Want::Hangup => Interest::Hangup,
                Want::Nothing => Interest::Silent,
            }
        }
        None if conn.sending.is_some() || conn.io.wants_write() => Interest::Output,
        None => Interest::Input,
    };
    if want == conn.interest {
        return true;
    }
    // No EPOLLRDHUP while sending: a client that half-closed after its request would
    // otherwise wake us in a loop.
    let flags = match want {
        // An HTTP/2 stream's eventfd is always writable: it signals every change as input.
        Interest::Input | Interest::Output | Interest::Hangup if conn.io.pipe().is_some() => EpollFlags::EPOLLIN,
        Interest::Output => EpollFlags::EPOLLOUT,
        Interest::Hangup => EpollFlags::EPOLLRDHUP,
        Interest::Silent => EpollFlags::empty(),
        _ => EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
    };
    let mut event = EpollEvent::new(flags, token);
    let fd = conn.fd.as_ref().map_or_else(|| conn.io.fd(), AsRawFd::as_raw_fd);
    let done = if conn.interest == Interest::Unregistered {
        epoll.add(socket_io::borrow(fd), event)
    } else {
        epoll.modify(socket_io::borrow(fd), &mut event)
    };
    match done {
        Ok(()) => {
            conn.interest = want;
            true
        }
        Err(e) => {
            tracing::warn!("epoll_ctl on a connection from {} failed: {e}; closing it", peer_name(&conn.peer));
            false
        }
    }
}

/// Counts and logs a finished (or abandoned) parked reply; true when the connection may
/// carry another request.
fn finish_sending(ctx: &LoopContext<'_>, sending: &Sending, complete: bool) -> bool {
    let reply = &sending.reply;
    let served = Served {
        status: reply.status,
        body_bytes: reply.transfer.body_bytes(),
        header_count: reply.header_count,
        header_bytes: reply.transfer.head_bytes(),
        vars: sending.log.vars,
        keep_alive: reply.keep_alive && complete,
        app_error: false,
        sendfile: reply.sendfile,
        rest: None,
        app: sending.log.app,
        vhost: None,
        donotlog: sending.log.donotlog,
        logvars: sending.log.logvars.clone(),
        collected: sending.log.collected.clone(),
    };
    let logged = sending.log.logged();
    if sending.static_file {
        ctx.worker.slot().cores[ctx.core].static_requests.fetch_add(1, Ordering::Relaxed);
    }
    end_request(ctx, sending.started, &served, &logged);
    served.keep_alive
}

/// The client address the request log shows for an HTTP request: the peer's, or with
/// `log-x-forwarded-for` the whole X-Forwarded-For value when there is one (as uWSGI).
fn http_log_addr<'a>(settings: &LoopSettings, head: &RequestHead<'a>, peer: &'a str) -> &'a str {
    if !settings.log_forwarded_for {
        return peer;
    }
    head.headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
        .filter(|value| !value.is_empty())
        .unwrap_or(peer)
}

/// The uwsgi var whose value the request log shows as the client address.
fn uwsgi_log_addr(settings: &LoopSettings, packet: &UwsgiPacket<'_>) -> &'static [u8] {
    if settings.log_forwarded_for && packet.var(b"HTTP_X_FORWARDED_FOR").is_some_and(|v| !v.is_empty()) {
        b"HTTP_X_FORWARDED_FOR"
    } else {
        b"REMOTE_ADDR"
    }
}

fn peer_name(peer: &Peer) -> &str {
    if peer.addr.is_empty() {
        "unix socket peer"
    } else {
        &peer.addr
    }
}

/// Best-effort error response before closing: the connection is going away anyway.
fn reply_error(io: &Io, status: u16, reason: &str) {
    let body = format!("{status} {reason}\n");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = io.try_write(&[std::io::IoSlice::new(head.as_bytes()), std::io::IoSlice::new(body.as_bytes())]);
}

/// Request facts for the log line that the app's `Served` doesn't carry.
struct Logged<'a> {
    addr: &'a str,
    method: &'a str,
    uri: &'a str,
    protocol: &'a str,
    packet_bytes: usize,
    /// The request's variables (`log-format`'s `%(host)`, `%(var.NAME)`...).
    request: RequestVars<'a>,
    /// uwsgi packet modifiers (0 for HTTP).
    modifiers: (u8, u8),
}

impl<'a> Logged<'a> {
    /// An HTTP request's facts: `used` is the size of its head.
    fn http(settings: &LoopSettings, head: &'a RequestHead<'a>, peer: &'a str, used: usize) -> Self {
        Self {
            addr: http_log_addr(settings, head, peer),
            method: head.method,
            uri: head.target,
            protocol: if head.minor_version == 0 { "HTTP/1.0" } else { "HTTP/1.1" },
            packet_bytes: used,
            request: RequestVars::Http(head),
            modifiers: (0, 0),
        }
    }

    /// A uwsgi request's facts, read from its packet of `used` bytes.
    fn uwsgi(settings: &LoopSettings, packet: &'a UwsgiPacket<'a>, used: usize) -> Self {
        let var = |k: &[u8]| packet.var(k).and_then(|v| std::str::from_utf8(v).ok()).unwrap_or("");
        Self {
            addr: var(uwsgi_log_addr(settings, packet)),
            method: var(b"REQUEST_METHOD"),
            uri: var(b"REQUEST_URI"),
            protocol: var(b"SERVER_PROTOCOL"),
            packet_bytes: used,
            request: RequestVars::Uwsgi(packet),
            modifiers: (packet.modifier1, packet.modifier2),
        }
    }
}

/// The variables `log-format` and `final-route*` rules need from a request whose reply
/// finishes later.
fn capture(ctx: &LoopContext<'_>, request: &RequestVars<'_>) -> Vec<(String, Vec<u8>)> {
    let mut out = crate::log::request_format().map(|f| f.capture(request)).unwrap_or_default();
    if ctx.router.is_some_and(Router::has_final_routes) {
        // The subjects of final rules that `Logged` doesn't carry itself.
        for name in ["PATH_INFO", "QUERY_STRING", "HTTP_HOST"] {
            if let Some(v) = request.get(name).filter(|_| !out.iter().any(|(k, _)| k == name)) {
                out.push((name.to_owned(), v.to_vec()));
            }
        }
    }
    out
}

/// The request as `final-route*` rules see it once the response is sent: its variables,
/// then what the log line knows (`REQUEST_URI`, `REMOTE_ADDR`...), `PATH_INFO` and
/// `QUERY_STRING` from the URI of an HTTP request.
struct FinalVars<'a, 'b>(&'a Logged<'b>);

impl crate::routing::RequestVars for FinalVars<'_, '_> {
    fn var(&self, name: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
        let l = self.0;
        if let Some(v) = l.request.get(name) {
            return Some(v.into());
        }
        let (path, query) = l.uri.split_once('?').unwrap_or((l.uri, ""));
        Some(match name {
            "REQUEST_URI" => l.uri.as_bytes().into(),
            "REQUEST_METHOD" => l.method.as_bytes().into(),
            "REMOTE_ADDR" => l.addr.as_bytes().into(),
            "SERVER_PROTOCOL" => l.protocol.as_bytes().into(),
            "PATH_INFO" => ruwsgi_proto::percent_decode(path.as_bytes()),
            "QUERY_STRING" => query.as_bytes().into(),
            _ => return None,
        })
    }
}

/// Marks this thread busy (for harakiri and stats); returns the start time in µs.
fn begin_request(ctx: &LoopContext<'_>) -> u64 {
    let now = now_micros();
    ctx.worker.slot().cores[ctx.core].request_start.store(now, Ordering::Relaxed);
    now
}

/// Updates the counters and writes the request-log line.
fn end_request(ctx: &LoopContext<'_>, started: u64, served: &Served, logged: &Logged<'_>) {
    let micros = now_micros().saturating_sub(started);
    let slot = ctx.worker.slot();
    let core = &slot.cores[ctx.core];
    core.request_start.store(0, Ordering::Relaxed);
    core.requests.fetch_add(1, Ordering::Relaxed);
    let worker_requests = slot.requests.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.worker.count_request(worker_requests);
    let total_requests = ctx.worker.board.board().total_requests.fetch_add(1, Ordering::Relaxed) + 1;
    slot.tx.fetch_add(served.body_bytes + served.header_bytes as u64, Ordering::Relaxed);
    slot.busy_micros.fetch_add(micros, Ordering::Relaxed);
    if served.app_error {
        slot.exceptions.fetch_add(1, Ordering::Relaxed);
    }
    let mut donotlog = served.donotlog;
    let mut logvars = std::borrow::Cow::Borrowed(&served.logvars);
    if let Some(router) = ctx.router.filter(|r| r.has_final_routes()) {
        router.run_final(&FinalVars(logged), served.status, &mut donotlog, logvars.to_mut());
    }
    if donotlog || !ctx.worker.log.wants(served.status, micros, served.body_bytes, served.sendfile) {
        return;
    }
    if let Some(format) = crate::log::request_format() {
        let facts = LineFacts {
            addr: logged.addr,
            method: logged.method,
            uri: logged.uri,
            proto: logged.protocol,
            status: served.status,
            body_bytes: served.body_bytes,
            header_bytes: served.header_bytes,
            header_count: served.header_count,
            started,
            micros,
            now_secs: (started + micros) / 1_000_000,
            pid: ctx.worker.pid,
            wid: ctx.worker.id,
            core: ctx.core,
            vars: served.vars,
            pktsize: logged.packet_bytes,
            modifier1: logged.modifiers.0,
            modifier2: logged.modifiers.1,
            memory: if format.needs_memory() {
                let (rss, vsz) = crate::master::stats::memory(ctx.worker.pid);
                (vsz, rss)
            } else {
                (0, 0)
            },
            request: logged.request,
            logvars: &logvars,
            collected: &served.collected,
        };
        let mut line = Vec::with_capacity(256);
        format.render(&facts, &mut line);
        crate::log::write_request_line(&line);
        return;
    }
    let ctime = crate::log::ctime(started);
    let record = RequestRecord {
        pid: ctx.worker.pid,
        app: served.app,
        worker_requests,
        total_requests,
        remote_addr: logged.addr,
        vars: served.vars,
        packet_bytes: logged.packet_bytes,
        ctime: &ctime,
        method: logged.method,
        uri: logged.uri,
        body_bytes: served.body_bytes,
        micros,
        log_micros: ctx.worker.log_micros,
        sendfile: served.sendfile,
        protocol: logged.protocol,
        status: served.status,
        header_count: served.header_count,
        header_bytes: served.header_bytes,
        core: ctx.core,
    };
    let mut line = String::with_capacity(256);
    if let Some(host) = &served.vhost {
        // uWSGI's `vhost` mode starts the line with the request's host.
        line.push_str(host);
        line.push(' ');
    }
    if ctx.worker.log.memory {
        let (rss, address_space) = crate::master::stats::memory(ctx.worker.pid);
        format_memory_report(address_space, rss, &mut line);
    }
    format_request_line(&record, &mut line);
    crate::log::write_request_line(line.as_bytes());
}
