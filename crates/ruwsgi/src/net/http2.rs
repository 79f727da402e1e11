//! HTTP/2 (RFC 9113): on `https` sockets when the client picks `h2` by ALPN, and on
//! `http-socket`s with `http2-cleartext` when a connection opens with the HTTP/2 preface.
//!
//! The epoll loops (`connection.rs`) accept and do the TLS handshake as for HTTP/1.1, then
//! hand such a connection to this worker's HTTP/2 thread: one thread running a
//! current-thread tokio runtime (started after the fork; the master stays single-threaded)
//! that drives hyper's `h2` crate for every HTTP/2 connection of the worker.
//!
//! Each stream becomes one request for the worker's loop threads, as uWSGI's HTTP router
//! turned each SPDY stream into a uwsgi request: the HTTP/2 thread makes the request's uwsgi
//! packet (`SERVER_PROTOCOL=HTTP/2`, `HTTPS=on`, the client's address) and queues it with
//! the stream's in-memory pipe (`stream_pipe.rs`) in the `StreamQueue`; a loop thread picks
//! it up as a uwsgi connection that has sent its packet and serves it through the same
//! `Application`, routing, static files, request log, scoreboard and harakiri as any
//! request. The pipe is the
//! stream's bounded channel both ways: the request body goes in as the app reads it (the
//! stream's flow-control credit is released only once the bytes are in the pipe, so a slow
//! app slows the client), and the response is taken out only as the stream has send
//! capacity (a slow client fills the pipe and holds the app's writes, as a full socket
//! does on HTTP/1.1). A stream the client resets (`RST_STREAM`) ends the HTTP/2 side of
//! the pipe: the app's next write fails as it does for a client that disconnected.
//!
//! Differs from uWSGI: uWSGI 2.0 has no HTTP/2 (its HTTP router spoke SPDY/3); ruwsgi
//! serves HTTP/2 on `https` sockets and, with its own `http2-cleartext`, on `http-socket`s.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use nix::sys::eventfd::{EfdFlags, EventFd};
use ruwsgi_proto::{
    encode_chunk, frame_type, parse_response_head, percent_decode, Flood, FrameBudget, FrameLimits, FrameScanner,
    UwsgiPacketWriter, CHUNK_END, H2_PREFACE, LAST_CHUNK,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

use super::stream_pipe::{Bell, Response, StreamPipe};
use super::transport::Io;

/// `SETTINGS_MAX_CONCURRENT_STREAMS`: the value RFC 9113 (6.5.2) recommends as the least,
/// as nginx (128) and most servers give. A client that opens more than the worker has
/// threads is not refused: its streams wait their turn (`streams_in_flight`).
const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Initial flow-control window of each stream: the most request body one stream can have
/// in flight before the app reads.
const STREAM_WINDOW: u32 = 64 * 1024;
/// Initial flow-control window of the connection (all its streams together).
const CONNECTION_WINDOW: u32 = 1 << 20;
/// Response bytes one stream may have queued in `h2` beyond what the client accepts.
const SEND_BUFFER: usize = 64 * 1024;
/// Streams the client reset before the server accepted them, at most (CVE-2023-44487).
const PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server reset because the client erred (oversized or bad headers), at most
/// per connection; then GOAWAY `ENHANCE_YOUR_CALM`.
const LOCAL_ERROR_RESETS: usize = 32;
/// How long a connection told to go away (a flood, a stopping worker) may take to flush.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// How often each connection looks at the worker's stop flag and its idle time.
const TICK: Duration = Duration::from_millis(250);

/// A connection handed over by an epoll loop.
pub struct Incoming {
    /// The socket.
    pub fd: OwnedFd,
    /// The stream over it (TLS session or plain).
    pub io: Io,
    /// Plaintext the loop had read already (the start of the connection preface).
    pub buffered: Vec<u8>,
    /// Index of the listener it came from.
    pub listener: usize,
    /// `REMOTE_ADDR`.
    pub addr: String,
    /// `REMOTE_PORT`.
    pub port: String,
    /// The count of the loop thread that handed it on, less one when it closes.
    pub held_by: Arc<AtomicUsize>,
}

/// A stream ready to be served by a loop thread: a uwsgi connection over a `StreamPipe`.
pub struct Handed {
    /// The request's uwsgi packet, handed over as it is: the loop thread takes it as the
    /// connection's first input (it never goes through the pipe).
    pub head: Vec<u8>,
    /// The stream's request body and response buffers.
    pub pipe: Arc<StreamPipe>,
    /// The listener the HTTP/2 connection came in on.
    pub listener: usize,
    /// `REMOTE_ADDR`, for the loop's own log lines.
    pub addr: String,
    /// `REMOTE_PORT`.
    pub port: String,
}

/// The streams waiting for a loop thread. A loop thread looks at the queue before it waits
/// in epoll (`sleep`), so a stream queued while every loop thread is busy costs no eventfd
/// write and no wake-up: the first thread to finish takes it. Loop threads that wait are
/// woken through `fd` (a semaphore eventfd every loop polls; each count it reads lets it
/// take one stream), one count per stream up to one per waiting thread (each woken thread
/// takes the rest before it waits again), written once per round of the HTTP/2 thread's
/// work (`wake_sleepers`): a woken thread that preempts the HTTP/2 thread then finds every
/// stream of the round, not one. A count may outlive its stream (taken before the woken
/// thread looked); that thread then finds the queue empty and waits again.
pub struct StreamQueue {
    queue: Mutex<VecDeque<Handed>>,
    event: EventFd,
    /// Loop threads in (or about to enter) their epoll wait.
    sleepers: AtomicUsize,
    /// Counts written to `event` and not read yet: a sleeper woken and not yet back needs
    /// no second one.
    signalled: AtomicUsize,
    /// Streams were queued since `wake_sleepers` last looked.
    pushed: tokio::sync::Notify,
}

impl StreamQueue {
    fn new() -> io::Result<Self> {
        let flags = EfdFlags::EFD_SEMAPHORE | EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        Ok(Self {
            queue: Mutex::new(VecDeque::new()),
            event: EventFd::from_value_and_flags(0, flags)?,
            sleepers: AtomicUsize::new(0),
            signalled: AtomicUsize::new(0),
            pushed: tokio::sync::Notify::new(),
        })
    }

    /// Queues a stream (on the HTTP/2 thread); `wake_sleepers` wakes a loop thread for it.
    fn push(&self, handed: Handed) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push_back(handed);
        self.pushed.notify_one();
    }

    /// Runs on the HTTP/2 thread for the worker's life: after the tasks that were ready when
    /// a stream was queued have run (they may queue more), wakes the loop threads waiting
    /// in epoll, one per stream waiting. A thread counted asleep (`sleep`) before a stream
    /// was queued either took it or is still counted here (it looks again after any wake).
    pub async fn wake_sleepers(&self) {
        loop {
            self.pushed.notified().await;
            let waiting = self.queue.lock().unwrap_or_else(PoisonError::into_inner).len();
            let wanted = waiting.min(self.sleepers.load(Ordering::SeqCst));
            let wake = wanted.saturating_sub(self.signalled.load(Ordering::SeqCst));
            if wake > 0 {
                // Counted before the write, so a read never finds the count short.
                self.signalled.fetch_add(wake, Ordering::SeqCst);
                let _ = self.event.write(wake as u64);
            }
        }
    }

    /// Takes one stream after `fd` was readable, if one is waiting (another loop thread
    /// may have been quicker).
    pub fn pop(&self) -> Option<Handed> {
        self.event.read().ok()?;
        self.signalled.fetch_sub(1, Ordering::SeqCst);
        self.take()
    }

    fn take(&self) -> Option<Handed> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).pop_front()
    }

    /// A loop thread is about to wait in epoll: a waiting stream, if any (the thread stays
    /// awake to serve it); otherwise the thread counts as asleep until `woke`.
    pub fn sleep(&self) -> Option<Handed> {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let stream = self.take();
        if stream.is_some() {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
        stream
    }

    /// The thread `sleep` counted is back from its wait.
    pub fn woke(&self) {
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Readable while streams wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }
}

/// What the HTTP/2 thread needs to know about the worker's config.
#[derive(Debug, Clone)]
pub struct Http2Settings {
    /// (`SERVER_NAME`, `SERVER_PORT`, TLS) of each listener, by index.
    pub listeners: Vec<(String, String, bool)>,
    /// Streams handed to the loop threads at once, over all connections (`threads` × 4, at
    /// least 8): each holds a socket pair (two fds); the others wait their turn, first come
    /// first served, holding only their headers.
    pub streams_in_flight: usize,
    /// Largest decoded header list (`buffer-size`): HPACK bombs end there.
    pub max_header_list_size: u32,
    /// `http-timeout`: an HTTP/2 connection without streams this long gets GOAWAY.
    pub idle_timeout: Duration,
    /// `socket-timeout`: the connection preface must arrive within it.
    pub request_timeout: Duration,
    /// `limit-post`: larger request bodies get 413 (or, without `content-length`, are cut
    /// when they pass it); 0 = no limit.
    pub limit_post: u64,
    /// `http2-cleartext`: plain `http-socket` connections may speak HTTP/2.
    pub cleartext: bool,
}

/// The worker's HTTP/2 side, shared by its loop threads.
pub struct Http2 {
    settings: Arc<Http2Settings>,
    conns: mpsc::UnboundedSender<Incoming>,
    streams: Arc<StreamQueue>,
    /// HTTP/2 connections open.
    open: Arc<AtomicUsize>,
    stopping: Arc<AtomicBool>,
}

impl Http2 {
    /// Starts the worker's HTTP/2 thread.
    pub fn start(settings: Http2Settings) -> io::Result<Self> {
        keep_freed_memory();
        let settings = Arc::new(settings);
        let streams = Arc::new(StreamQueue::new()?);
        let (conns, mut incoming) = mpsc::unbounded_channel::<Incoming>();
        let open = Arc::new(AtomicUsize::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let shared = Shared {
            settings: Arc::clone(&settings),
            streams: Arc::clone(&streams),
            stopping: Arc::clone(&stopping),
            in_flight: Arc::new(tokio::sync::Semaphore::new(settings.streams_in_flight)),
            bell: Arc::new(Bell::default()),
        };
        let counter = Arc::clone(&open);
        std::thread::Builder::new().name("ruwsgi-http2".into()).spawn(move || {
            runtime.block_on(async move {
                let bell = Arc::clone(&shared.bell);
                tokio::spawn(async move { bell.serve().await });
                let streams = Arc::clone(&shared.streams);
                tokio::spawn(async move { streams.wake_sleepers().await });
                while let Some(conn) = incoming.recv().await {
                    let shared = shared.clone();
                    let counter = Arc::clone(&counter);
                    counter.fetch_add(1, Ordering::Relaxed);
                    let held_by = Arc::clone(&conn.held_by);
                    tokio::spawn(async move {
                        serve_connection(conn, shared).await;
                        held_by.fetch_sub(1, Ordering::Relaxed);
                        counter.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            });
        })?;
        Ok(Self { settings, conns, streams, open, stopping })
    }

    /// The streams for the loop threads.
    pub fn streams(&self) -> &StreamQueue {
        &self.streams
    }

    /// `http2-cleartext` is on.
    pub fn cleartext(&self) -> bool {
        self.settings.cleartext
    }

    /// Takes over a connection that speaks HTTP/2.
    pub fn hand_over(&self, conn: Incoming) {
        // The thread lives as long as the worker: a failed send only means it is exiting.
        let _ = self.conns.send(conn);
    }

    /// The worker stops: each connection gets GOAWAY and ends once its streams are done.
    /// Waits up to `grace` for that.
    pub fn stop(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let began = Instant::now();
        while self.open.load(Ordering::Relaxed) > 0 && began.elapsed() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// glibc gives the free memory at the top of a thread's heap back to the kernel once it
/// passes 128 KiB. HTTP/2 responses cross the stream pipe in buffers of up to a few hundred
/// KiB that a loop thread allocates and the HTTP/2 thread frees, several at a time: with
/// that default the loop thread's heap was trimmed and its pages faulted in again about 13
/// times per 64 KiB response (a third of the worker's CPU). Up to 8 MiB of free memory now
/// stays with each heap, and blocks below 32 MiB (the ceiling of glibc's own moving mmap
/// threshold, which any setting switches off) come from the heaps.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets two allocator parameters (values glibc accepts); it takes
    // the allocator's own lock, so concurrent allocations are unaffected.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
    }
}

/// What each connection task shares.
#[derive(Clone)]
struct Shared {
    settings: Arc<Http2Settings>,
    streams: Arc<StreamQueue>,
    stopping: Arc<AtomicBool>,
    /// One permit per stream handed to the loop threads (`streams_in_flight`).
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Wakes the streams' relay tasks for the loop threads (`stream_pipe::Bell`).
    bell: Arc<Bell>,
}

/// Set by the transport when the client floods frames.
#[derive(Default)]
struct FloodAlarm {
    flood: OnceLock<Flood>,
    notify: tokio::sync::Notify,
    /// `RST_STREAM` and CONTINUATION frames seen, to say which of `h2`'s own limits a
    /// connection it closed ran into.
    resets: AtomicUsize,
    continuations: AtomicUsize,
}

impl FloodAlarm {
    /// Why `h2` sent GOAWAY `ENHANCE_YOUR_CALM` on its own.
    fn library_reason(&self) -> &'static str {
        if self.continuations.load(Ordering::Relaxed) > 0 {
            "CONTINUATION flood"
        } else if self.resets.load(Ordering::Relaxed) > 0 {
            "too many streams reset by the client (rapid reset)"
        } else {
            "too many streams refused for oversized or bad headers (HPACK bomb)"
        }
    }
}

/// An HTTP/2 connection's socket and the stream over it (TLS session or plain), shared by
/// the `Transport` that `h2` reads and writes and the connection task, which sends the TLS
/// records `h2`'s writes queued once `h2` is done for the round (`poll_send`).
struct Wire {
    /// The socket, registered with tokio's reactor. tokio's `TcpStream` serves only as that
    /// registration (readiness and `try_io`): the bytes go through `io`, so a Unix socket
    /// (`https` on a unix path) works the same.
    sock: tokio::net::TcpStream,
    io: Io,
}

impl Wire {
    /// Runs `op` once the socket is writable, again after each `WouldBlock`.
    fn poll_io<T>(&self, cx: &mut Context<'_>, mut op: impl FnMut(&Io) -> io::Result<T>) -> Poll<io::Result<T>> {
        loop {
            ready!(self.sock.poll_write_ready(cx))?;
            let io = &self.io;
            match self.sock.try_io(tokio::io::Interest::WRITABLE, || op(io)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }

    /// Sends the TLS records queued (one `sendmsg` for all of them, as far as the socket takes
    /// them); pending while the socket is full, and the task is woken when it has room.
    fn poll_send(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.io.wants_write() {
            return Poll::Ready(Ok(()));
        }
        self.poll_io(cx, |io| if io.flush()? { Ok(()) } else { Err(io::ErrorKind::WouldBlock.into()) })
    }
}

/// The connection as `h2` reads and writes it; every frame header the client sends is
/// counted on its way in. Over TLS, `h2`'s writes (one per frame) are encrypted into the
/// session's queue and sent together after `h2`'s round (`Wire::poll_send`): a 64 KiB
/// response's frames cost one `sendmsg`, not one each.
struct Transport {
    wire: Arc<Wire>,
    buffered: Vec<u8>,
    pos: usize,
    scanner: FrameScanner,
    budget: FrameBudget,
    born: Instant,
    alarm: Arc<FloodAlarm>,
}

impl Transport {
    /// Counts the frames in `bytes`; raises the alarm on the first one over budget.
    fn scan(&mut self, bytes: &[u8]) {
        let now = self.born.elapsed().as_secs();
        let (budget, alarm) = (&mut self.budget, &self.alarm);
        self.scanner.scan(bytes, |frame| {
            match frame.kind {
                frame_type::RST_STREAM => alarm.resets.fetch_add(1, Ordering::Relaxed),
                frame_type::CONTINUATION => alarm.continuations.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
            if let Some(flood) = budget.count(&frame, now) {
                if alarm.flood.set(flood).is_ok() {
                    alarm.notify.notify_one();
                }
            }
        });
    }
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.alarm.flood.get().is_some() {
            // A flooding client is read no more; its connection is closing.
            return Poll::Pending;
        }
        let n = if this.pos < this.buffered.len() {
            let n = (this.buffered.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.buffered[this.pos..this.pos + n]);
            this.pos += n;
            n
        } else if this.wire.io.has_plaintext() {
            let n = this.wire.io.try_read(buf.initialize_unfilled())?;
            buf.advance(n);
            n
        } else {
            let wire = &this.wire;
            loop {
                ready!(wire.sock.poll_read_ready(cx))?;
                match wire.sock.try_io(tokio::io::Interest::READABLE, || wire.io.try_read(buf.initialize_unfilled())) {
                    Ok(n) => {
                        buf.advance(n);
                        break n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        };
        let filled = buf.filled();
        this.scan(&filled[filled.len() - n..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let wire = &self.get_mut().wire;
        if !wire.io.is_tls() {
            return wire.poll_io(cx, |io| io.try_write(bufs));
        }
        loop {
            let n = wire.io.queue(bufs)?;
            if n > 0 || bufs.iter().all(|b| b.is_empty()) {
                return Poll::Ready(Ok(n));
            }
            // The queue is full: send it now.
            ready!(wire.poll_send(cx))?;
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Ready at once: what the writes queued goes out after `h2`'s round, when the
    /// connection task calls `Wire::poll_send` (a plain socket has nothing queued).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let wire = &self.get_mut().wire;
        ready!(wire.poll_send(cx))?;
        wire.io.close_notify();
        Poll::Ready(Ok(()))
    }
}

/// Polls the connection's `h2` future (`poll`), then sends what that round queued.
fn with_send<T>(
    wire: &Wire,
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<Result<T, io::Error>> {
    let polled = poll(cx);
    match wire.poll_send(cx) {
        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        _ => polled.map(Ok),
    }
}

/// What each stream of a connection needs for its uwsgi packet.
struct ConnFacts {
    listener: usize,
    server_name: String,
    server_port: String,
    tls: bool,
    addr: String,
    port: String,
    /// The client certificate's `HTTPS_DN`, `HTTPS_CLIENT_CERTIFICATE` and `HTTPS_CC`.
    cert_vars: Vec<(&'static str, Vec<u8>)>,
}

async fn serve_connection(conn: Incoming, shared: Shared) {
    let settings = Arc::clone(&shared.settings);
    let (server_name, server_port, tls) = settings.listeners.get(conn.listener).cloned().unwrap_or_default();
    let mut cert_vars = Vec::new();
    if let Some(cert) = conn.io.tls_facts().and_then(|f| f.client) {
        cert_vars.push(("HTTPS_DN", cert.dn.clone().into_bytes()));
        cert_vars.push(("HTTPS_CLIENT_CERTIFICATE", cert.der.clone()));
        if let Some(pem) = &cert.pem {
            cert_vars.push(("HTTPS_CC", pem.clone().into_bytes()));
        }
    }
    let facts = Arc::new(ConnFacts {
        listener: conn.listener,
        server_name,
        server_port,
        tls,
        addr: conn.addr,
        port: conn.port,
        cert_vars,
    });
    let sock = match tokio::net::TcpStream::from_std(std::net::TcpStream::from(conn.fd)) {
        Ok(sock) => sock,
        Err(e) => {
            tracing::warn!("HTTP/2 connection from {}: cannot watch its socket: {e}", facts.addr);
            return;
        }
    };
    let alarm = Arc::new(FloodAlarm::default());
    let wire = Arc::new(Wire { sock, io: conn.io });
    let transport = Transport {
        wire: Arc::clone(&wire),
        buffered: conn.buffered,
        pos: 0,
        scanner: FrameScanner::new(),
        budget: FrameBudget::new(FrameLimits::default()),
        born: Instant::now(),
        alarm: Arc::clone(&alarm),
    };
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_header_list_size(settings.max_header_list_size)
        .max_send_buffer_size(SEND_BUFFER)
        .max_pending_accept_reset_streams(PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(Some(LOCAL_ERROR_RESETS));
    // Every poll of the connection (here and below) sends what it queued (`with_send`).
    let mut handshake = std::pin::pin!(builder.handshake(transport));
    let handshake = poll_fn(|cx| with_send(&wire, cx, |cx| handshake.as_mut().poll(cx)));
    let mut h2conn = match tokio::time::timeout(settings.request_timeout, handshake).await {
        Ok(Ok(Ok(h2conn))) => h2conn,
        Ok(Err(e)) => {
            tracing::debug!("HTTP/2 connection from {}: {e}", facts.addr);
            return;
        }
        Ok(Ok(Err(e))) => {
            tracing::debug!("HTTP/2 connection from {}: {e}", facts.addr);
            return;
        }
        Err(_) => {
            tracing::debug!("HTTP/2 connection from {}: no preface within {:?}", facts.addr, settings.request_timeout);
            return;
        }
    };
    let mut tick = tokio::time::interval(TICK);
    let mut idle_since = Instant::now();
    let mut going_away = false;
    loop {
        tokio::select! {
            accepted = poll_fn(|cx| with_send(&wire, cx, |cx| h2conn.poll_accept(cx))) => match accepted {
                Ok(Some(Ok((request, respond)))) => {
                    let (facts, shared) = (Arc::clone(&facts), shared.clone());
                    tokio::spawn(async move { serve_stream(request, respond, &facts, &shared).await });
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!("HTTP/2 connection from {}: {e}", facts.addr);
                    if e.reason() == Some(Reason::ENHANCE_YOUR_CALM) {
                        let why = alarm.library_reason();
                        tracing::warn!("HTTP/2 connection from {} closed: {why} (GOAWAY ENHANCE_YOUR_CALM)", facts.addr);
                    }
                    return;
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("HTTP/2 connection from {}: {e}", facts.addr);
                    return;
                }
            },
            () = alarm.notify.notified() => {
                let flood = alarm.flood.get().map_or("flood", |f| f.describe());
                tracing::warn!("HTTP/2 connection from {} closed: {flood} (GOAWAY ENHANCE_YOUR_CALM)", facts.addr);
                h2conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                let _ = tokio::time::timeout(CLOSE_GRACE, poll_fn(|cx| with_send(&wire, cx, |cx| h2conn.poll_closed(cx)))).await;
                return;
            }
            _ = tick.tick() => {
                if h2conn.has_streams() {
                    idle_since = Instant::now();
                }
                let idle = idle_since.elapsed() >= settings.idle_timeout;
                if !going_away && (shared.stopping.load(Ordering::Relaxed) || idle) {
                    going_away = true;
                    h2conn.graceful_shutdown();
                }
            }
        }
    }
}

/// Answers one stream: its request goes to a loop thread as a uwsgi request on a socket
/// pair, its response comes back as HTTP/1.1 bytes and goes out as HEADERS and DATA.
async fn serve_stream(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    facts: &ConnFacts,
    shared: &Shared,
) {
    let (parts, mut body) = request.into_parts();
    let is_head = parts.method == http::Method::HEAD;
    // The body's length, from `content-length`; `None`: it goes to the app chunked.
    let length = match parts.headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => {
            let Some(n) = v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) else {
                simple_response(&mut respond, 400);
                return;
            };
            Some(n)
        }
        None if body.is_end_stream() => Some(0),
        None => None,
    };
    let limit_post = shared.settings.limit_post;
    if length.is_some_and(|n| limit_post > 0 && n > limit_post) {
        simple_response(&mut respond, 413);
        return;
    }
    let Some(head) = request_packet(&parts, length, facts) else {
        simple_response(&mut respond, 431);
        return;
    };
    // Held until the stream is answered: the loop threads are taken in turn.
    let Ok(_turn) = shared.in_flight.acquire().await else { return };
    let pipe = Arc::new(StreamPipe::new(Arc::clone(&shared.bell)));
    shared.streams.push(Handed {
        head,
        pipe: Arc::clone(&pipe),
        listener: facts.listener,
        addr: facts.addr.clone(),
        port: facts.port.clone(),
    });
    // When this task ends (answered, or the client reset the stream), the app's next write
    // fails as for a client that went away, and a loop thread yet to take it leaves it.
    let _finish = Finish(Arc::clone(&pipe));
    let timeout = shared.settings.request_timeout;
    if body.is_end_stream() {
        relay_response(&pipe, &mut respond, is_head, &facts.addr, timeout).await;
        return;
    }
    let to_app = Arc::clone(&pipe);
    let pump = tokio::spawn(async move {
        // The body goes to the app as it reads: credit goes back to the client only for
        // what the pipe took.
        let mut total = 0u64;
        let mut framed = Vec::new();
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else {
                to_app.cut_request();
                return;
            };
            total += chunk.len() as u64;
            if length.is_none() && limit_post > 0 && total > limit_post {
                // The app's read ends early, as for a client that went away mid-body.
                tracing::info!("HTTP/2 request body over limit-post ({limit_post}): stream cut");
                to_app.cut_request();
                return;
            }
            if !to_app.request_room().await {
                return;
            }
            if length.is_none() {
                framed.clear();
                encode_chunk(&mut framed, chunk.len());
                framed.extend_from_slice(&chunk);
                framed.extend_from_slice(CHUNK_END);
                to_app.push_request(&framed);
            } else {
                to_app.push_request(&chunk);
            }
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        if length.is_none() && to_app.request_room().await {
            to_app.push_request(LAST_CHUNK);
        }
    });
    relay_response(&pipe, &mut respond, is_head, &facts.addr, timeout).await;
    pump.abort();
}

/// Ends the HTTP/2 side of a stream's pipe when dropped.
struct Finish(Arc<StreamPipe>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// The uwsgi packet of a stream's request, as nginx's `uwsgi_params` would make it, with
/// `SERVER_PROTOCOL=HTTP/2`; `None` when it doesn't fit one packet (64 KiB of vars).
fn request_packet(parts: &http::request::Parts, length: Option<u64>, facts: &ConnFacts) -> Option<Vec<u8>> {
    let target = parts.uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers_size: usize = parts.headers.iter().map(|(k, v)| 9 + k.as_str().len() + v.len()).sum();
    let mut w = UwsgiPacketWriter::new(0, 0, 256 + target.len() * 2 + headers_size);
    w.var(b"REQUEST_METHOD", parts.method.as_str().as_bytes());
    w.var(b"REQUEST_URI", target.as_bytes());
    w.var(b"PATH_INFO", &percent_decode(path.as_bytes()));
    w.var(b"QUERY_STRING", query.as_bytes());
    w.var(b"SERVER_PROTOCOL", b"HTTP/2");
    w.var(b"SCRIPT_NAME", b"");
    w.var(b"SERVER_NAME", facts.server_name.as_bytes());
    w.var(b"SERVER_PORT", facts.server_port.as_bytes());
    w.var(b"REMOTE_ADDR", facts.addr.as_bytes());
    w.var(b"REMOTE_PORT", facts.port.as_bytes());
    match length {
        Some(n) if n != 0 || parts.headers.contains_key(http::header::CONTENT_LENGTH) => {
            w.var(b"CONTENT_LENGTH", n.to_string().as_bytes());
        }
        Some(_) => {}
        // No length: the body follows chunked, as an HTTP/1.1 chunked request's does.
        None => w.var(b"HTTP_TRANSFER_ENCODING", b"chunked"),
    }
    if facts.tls {
        w.var(b"HTTPS", b"on");
    }
    for (name, value) in &facts.cert_vars {
        w.var(name.as_bytes(), value);
    }
    if let Some(authority) = parts.uri.authority() {
        w.var(b"HTTP_HOST", authority.as_str().as_bytes());
    }
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if name == "content-length" || (name == "host" && parts.uri.authority().is_some()) || name.contains('_') {
            // Differs from uWSGI (as the HTTP listener): headers with '_' are dropped.
            continue;
        }
        // Repeated fields (HTTP/2 splits `cookie`) are combined by the environ.
        if name == "content-type" {
            w.var(b"CONTENT_TYPE", value.as_bytes());
        } else {
            let key = |b: u8| if b == b'-' { b'_' } else { b.to_ascii_uppercase() };
            w.var_mapped(b"HTTP_", name.as_bytes(), key, value.as_bytes());
        }
    }
    w.finish().ok()
}

/// A response with no body (the request never reached the app).
fn simple_response(respond: &mut SendResponse<Bytes>, status: u16) {
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let _ = respond.send_response(response, true);
}

/// Hop-by-hop headers HTTP/2 forbids (RFC 9113 §8.2.2).
fn is_connection_specific(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Reads the app's response from the socket pair and sends it on the stream, a piece at a
/// time as the stream has room. Returns when the response has ended, or the client reset
/// the stream (the socket pair then closes: the app sees a disconnect).
async fn relay_response(
    pipe: &StreamPipe,
    respond: &mut SendResponse<Bytes>,
    is_head: bool,
    addr: &str,
    timeout: Duration,
) {
    let mut buf = BytesMut::new();
    let (head, used) = loop {
        match parse_response_head(&buf, 100) {
            Ok(Some((head, used))) => break (head, used),
            Ok(None) if buf.len() < 64 * 1024 => {}
            _ => {
                tracing::warn!("HTTP/2 stream from {addr}: the app's response head could not be read");
                simple_response(respond, 502);
                return;
            }
        }
        tokio::select! {
            taken = pipe.take_response() => match taken {
                Response::Closed => {
                    simple_response(respond, 502);
                    return;
                }
                Response::Data(data) if buf.is_empty() => buf = data,
                Response::Data(data) => buf.extend_from_slice(&data),
            },
            _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
        }
    };
    let mut response = http::Response::new(());
    *response.status_mut() = http::StatusCode::from_u16(head.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    for (name, value) in &head.headers {
        if is_connection_specific(name) {
            continue;
        }
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    let no_body = is_head || matches!(head.status, 204 | 304);
    // With a length, the response ends with its last byte and that piece ends the stream:
    // no wait for the loop thread to close the pair, no empty closing DATA frame.
    let mut left = (!no_body)
        .then(|| head.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("content-length")))
        .flatten()
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.trim().parse::<u64>().ok());
    let no_body = no_body || left == Some(0);
    let Ok(mut stream) = respond.send_response(response, no_body) else { return };
    if no_body {
        return;
    }
    let mut piece = buf.split_off(used).freeze();
    drop(buf);
    // Each piece taken from the pipe is handed to `h2` without a copy.
    loop {
        if !piece.is_empty() {
            let last = left.is_some_and(|n| piece.len() as u64 >= n);
            if let (Some(n), true) = (left, last) {
                // Bytes past the length (an app that wrote more than it announced) go nowhere.
                piece.truncate(usize::try_from(n).unwrap_or(usize::MAX));
            }
            left = left.map(|n| n.saturating_sub(piece.len() as u64));
            match tokio::time::timeout(timeout, send_piece(&mut stream, piece, last)).await {
                Ok(Ok(())) if last => return,
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    // The client gives the stream no window: as a socket that isn't read.
                    tracing::debug!("HTTP/2 stream from {addr}: response not taken within {timeout:?}");
                    stream.send_reset(Reason::CANCEL);
                    return;
                }
            }
        }
        tokio::select! {
            taken = pipe.take_response() => match taken {
                Response::Closed => {
                    let _ = stream.send_data(Bytes::new(), true);
                    return;
                }
                Response::Data(data) => piece = data.freeze(),
            },
            _ = poll_fn(|cx| stream.poll_reset(cx)) => return,
        }
    }
}

/// Sends `data` on the stream as its flow-control window and the connection allow, its
/// last frame ending the stream when `last` (the caller bounds the wait by `socket-timeout`).
async fn send_piece(stream: &mut SendStream<Bytes>, mut data: Bytes, last: bool) -> Result<(), h2::Error> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let room = poll_fn(|cx| {
            if let Poll::Ready(reset) = stream.poll_reset(cx) {
                return Poll::Ready(Err(reset.map_or_else(|e| e, h2::Error::from)));
            }
            stream.poll_capacity(cx).map(|room| room.unwrap_or_else(|| Err(h2::Error::from(Reason::CANCEL))))
        })
        .await?;
        if room == 0 {
            continue;
        }
        let part = data.split_to(room.min(data.len()));
        stream.send_data(part, last && data.is_empty())?;
    }
    Ok(())
}

/// A connection an epoll loop holds should go to the HTTP/2 thread: TLS with `h2` agreed
/// by ALPN, or (`http2-cleartext`) a plain HTTP connection whose first bytes are the HTTP/2
/// preface. `None`: not yet known (fewer bytes than the preface).
pub fn speaks_http2(io: &Io, first_bytes: &[u8], cleartext: bool) -> Option<bool> {
    if io.is_tls() {
        return Some(io.alpn_h2());
    }
    if !cleartext {
        return Some(false);
    }
    let n = first_bytes.len().min(H2_PREFACE.len());
    if first_bytes[..n] != H2_PREFACE[..n] {
        return Some(false);
    }
    (n == H2_PREFACE.len()).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruwsgi_proto::parse_uwsgi_packet;

    fn facts(tls: bool) -> ConnFacts {
        ConnFacts {
            listener: 0,
            server_name: "example.test".into(),
            server_port: "8443".into(),
            tls,
            addr: "10.0.0.7".into(),
            port: "5555".into(),
            cert_vars: vec![("HTTPS_DN", b"/CN=alice".to_vec())],
        }
    }

    fn parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn vars(packet: &[u8]) -> Vec<(String, String)> {
        let (parsed, _) = parse_uwsgi_packet(packet, 1 << 16).unwrap().unwrap();
        parsed
            .vars
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    fn get<'a>(vars: &'a [(String, String)], key: &str) -> Vec<&'a str> {
        vars.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn request_packet_carries_the_environ_of_an_http2_request() {
        let p = parts(
            "https://example.test:8443/a%20b?x=1",
            &[("content-type", "text/plain"), ("cookie", "a=1"), ("cookie", "b=2"), ("x_under", "no"), ("x-dash", "y")],
        );
        let v = vars(&request_packet(&p, Some(3), &facts(true)).unwrap());
        assert_eq!(get(&v, "REQUEST_METHOD"), ["POST"]);
        assert_eq!(get(&v, "REQUEST_URI"), ["/a%20b?x=1"]);
        assert_eq!(get(&v, "PATH_INFO"), ["/a b"]);
        assert_eq!(get(&v, "QUERY_STRING"), ["x=1"]);
        assert_eq!(get(&v, "SERVER_PROTOCOL"), ["HTTP/2"]);
        assert_eq!(get(&v, "HTTP_HOST"), ["example.test:8443"]);
        assert_eq!(get(&v, "CONTENT_LENGTH"), ["3"]);
        assert_eq!(get(&v, "CONTENT_TYPE"), ["text/plain"]);
        assert_eq!(get(&v, "HTTPS"), ["on"]);
        assert_eq!(get(&v, "HTTPS_DN"), ["/CN=alice"]);
        assert_eq!(get(&v, "REMOTE_ADDR"), ["10.0.0.7"]);
        // Cookies stay separate here; the environ joins them with "; ".
        assert_eq!(get(&v, "HTTP_COOKIE"), ["a=1", "b=2"]);
        assert_eq!(get(&v, "HTTP_X_DASH"), ["y"]);
        assert!(get(&v, "HTTP_X_UNDER").is_empty(), "headers with '_' are dropped");
        assert!(get(&v, "HTTP_TRANSFER_ENCODING").is_empty());
    }

    #[test]
    fn a_body_of_unknown_length_is_announced_chunked_and_plain_http_has_no_https() {
        let v = vars(&request_packet(&parts("/up", &[]), None, &facts(false)).unwrap());
        assert_eq!(get(&v, "HTTP_TRANSFER_ENCODING"), ["chunked"]);
        assert!(get(&v, "CONTENT_LENGTH").is_empty());
        assert!(get(&v, "HTTPS").is_empty());
        let v = vars(&request_packet(&parts("/", &[]), Some(0), &facts(false)).unwrap());
        assert!(get(&v, "CONTENT_LENGTH").is_empty() && get(&v, "HTTP_TRANSFER_ENCODING").is_empty());
    }

    #[test]
    fn headers_over_one_packet_are_refused() {
        let big = "x".repeat(40_000);
        let p = parts("/", &[("x-a", &big), ("x-b", &big)]);
        assert!(request_packet(&p, Some(0), &facts(true)).is_none());
    }

    fn handed(tag: &[u8]) -> Handed {
        let pipe = Arc::new(StreamPipe::new(Arc::new(Bell::default())));
        Handed { head: tag.to_vec(), pipe, listener: 0, addr: String::new(), port: String::new() }
    }

    #[test]
    fn a_stream_queued_while_no_loop_thread_sleeps_is_taken_without_an_eventfd_count() {
        let queue = Arc::new(StreamQueue::new().unwrap());
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let waking = tokio::spawn({
                let queue = Arc::clone(&queue);
                async move { queue.wake_sleepers().await }
            });
            // The HTTP/2 thread's round ends: `wake_sleepers` runs.
            let round = || async {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
            };
            queue.push(handed(b"a"));
            round().await;
            assert!(queue.event.read().is_err(), "nobody waits: no count");
            // The next thread to go to sleep takes it instead, and stays awake.
            assert_eq!(queue.sleep().unwrap().head, b"a");
            assert_eq!(queue.sleepers.load(Ordering::SeqCst), 0);
            // A thread asleep is woken once for the streams of a round, and takes the
            // others before it sleeps again.
            assert!(queue.sleep().is_none());
            queue.push(handed(b"b"));
            queue.push(handed(b"c"));
            round().await;
            queue.woke();
            assert_eq!(queue.pop().unwrap().head, b"b");
            assert!(queue.pop().is_none(), "one count for one sleeper");
            assert_eq!(queue.sleep().unwrap().head, b"c");
            // Two threads asleep: two counts.
            assert!(queue.sleep().is_none() && queue.sleep().is_none());
            for tag in [b"e", b"f", b"g"] {
                queue.push(handed(tag));
            }
            round().await;
            queue.woke();
            queue.woke();
            assert_eq!(queue.pop().unwrap().head, b"e");
            assert_eq!(queue.pop().unwrap().head, b"f");
            assert!(queue.pop().is_none());
            assert_eq!(queue.sleep().unwrap().head, b"g");
            // A count whose stream another thread took finds the queue empty.
            assert!(queue.sleep().is_none());
            queue.push(handed(b"d"));
            round().await;
            queue.woke();
            assert_eq!(queue.sleep().unwrap().head, b"d");
            assert!(queue.pop().is_none());
            waking.abort();
        });
    }

    #[test]
    fn cleartext_preface_is_recognised_only_when_enabled() {
        let plain = Io::plain(-1);
        assert_eq!(speaks_http2(&plain, H2_PREFACE, true), Some(true));
        assert_eq!(speaks_http2(&plain, &H2_PREFACE[..10], true), None);
        assert_eq!(speaks_http2(&plain, b"POST / HTTP/1.1\r\n", true), Some(false));
        assert_eq!(speaks_http2(&plain, b"P", true), None);
        assert_eq!(speaks_http2(&plain, H2_PREFACE, false), Some(false));
    }

    #[test]
    fn hop_by_hop_response_headers_are_dropped() {
        assert!(is_connection_specific("Connection"));
        assert!(is_connection_specific("transfer-encoding"));
        assert!(!is_connection_specific("content-length"));
    }
}
