//! The application interface: the one boundary between the connection loop (`net/`), which
//! parses requests and moves bytes, and what answers them in Python (`wsgi/` for WSGI
//! callables, `wsgi/asgi` for ASGI apps). The loop hands an `Application` a parsed
//! `Request` (with its `Client` connection and `BodyReader`) and gets back what was `Served`,
//! for the log and the scoreboard. `net/` never imports `wsgi::`, and the app side never
//! holds a raw socket fd: it writes and waits through `Client`.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use nix::sys::eventfd::{EfdFlags, EventFd};

use ruwsgi_proto::{RequestHead, UwsgiPacket};

pub use crate::net::body::{BodyReader, Progress as BodyProgress};
pub use crate::net::client::{Client, Wait};

/// What answers requests in a worker: the WSGI callables or an ASGI app.
pub trait Application: Sync {
    /// Answers one request on the calling thread (`req.client` is the connection, `body`
    /// its request body). Returns what was sent and the body reader, so the connection can
    /// recover bytes of a pipelined next request.
    fn handle(&self, req: &Request<'_>, body: BodyReader) -> (Served, BodyReader);

    /// Starts one request. An app that goes on without holding the thread while it awaits
    /// (ASGI) returns it `Parked`; the connection loop then resumes it when it is ready.
    /// By default the request is answered here (`handle`).
    fn start(&self, req: &Request<'_>, body: BodyReader) -> Started {
        let (served, body) = self.handle(req, body);
        Started::Done(served, body)
    }
}

/// What `Application::start` did with a request.
#[allow(clippy::large_enum_variant, reason = "moved once per request; a box would cost an allocation")]
pub enum Started {
    /// Answered: what was sent, and the body reader.
    Done(Served, BodyReader),
    /// Goes on in the connection's loop (see `Parked`).
    Parked(Box<dyn Parked>),
}

/// A request (or WebSocket session) that goes on without a thread of its own: the
/// connection loop gives it a `Waker` (the app side rings it when it has news), watches
/// the socket as `Want` says, and calls `resume` when either is ready (and at least every
/// loop tick, for the request's timers), until it is `Done`. `resume` never blocks.
pub trait Parked {
    /// How the app side wakes this request from now on (rung at once if it has news).
    fn set_waker(&mut self, waker: Waker);
    /// Does what can be done now.
    fn resume(&mut self) -> Resumed;
    /// A long-lived session (an accepted WebSocket): harakiri doesn't count it.
    fn is_session(&self) -> bool;
    /// A timer of its may have run out: the loop's tick resumes it. (An idle WebSocket
    /// says no until its ping is due, so a tick costs it nothing.)
    fn due(&self) -> bool {
        true
    }
    /// The socket failed or the client hung up (`EPOLLERR`/`EPOLLHUP`): the next `resume`
    /// ends the request.
    fn hang_up(&mut self);
}

/// Where a parked request is after `resume`.
#[allow(clippy::large_enum_variant, reason = "returned by value once per wake-up; boxing would allocate")]
pub enum Resumed {
    /// Still running; wake it for this on the socket (besides its `wake_fd`).
    Wait(Want),
    /// Over: what was sent, and the body reader (as `Application::handle` returns).
    Done(Served, BodyReader),
}

/// A connection thread's doorbell for its parked requests: an app side rings it with the
/// request's token; the thread (which has the eventfd in its epoll set) takes the tokens
/// rung since it last looked. One eventfd per thread, written only when the first token
/// of a batch arrives, so many requests waking at once cost one wake-up.
#[derive(Debug)]
pub struct Doorbell {
    fd: EventFd,
    rung: Mutex<Vec<u64>>,
}

impl Doorbell {
    /// A doorbell with its eventfd.
    pub fn new() -> std::io::Result<Self> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Self { fd, rung: Mutex::new(Vec::new()) })
    }

    /// Readable while tokens wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn ring(&self, token: u64) {
        let mut rung = self.rung.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rung.push(token);
        let first = rung.len() == 1;
        // Unlocked before the write: the thread it wakes goes straight for this lock.
        drop(rung);
        if first {
            let _ = self.fd.write(1);
        }
    }

    /// Rings several tokens with at most one write.
    fn ring_all(&self, tokens: impl IntoIterator<Item = u64>) {
        let mut rung = self.rung.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let first = rung.is_empty();
        rung.extend(tokens);
        drop(rung);
        if first {
            let _ = self.fd.write(1);
        }
    }

    /// The tokens rung since the last call (in the order rung; a token may repeat).
    pub fn take(&self) -> Vec<u64> {
        let _ = self.fd.read();
        std::mem::take(&mut *self.rung.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// Rings one parked request's doorbell.
#[derive(Debug, Clone)]
pub struct Waker {
    bell: Arc<Doorbell>,
    token: u64,
}

impl Waker {
    /// Rings `bell` with `token`.
    pub fn new(bell: Arc<Doorbell>, token: u64) -> Self {
        Self { bell, token }
    }

    /// The request has news.
    pub fn wake(&self) {
        self.bell.ring(self.token);
    }

    /// Wakes each of `wakers`, writing each doorbell's eventfd at most once.
    pub fn wake_all(wakers: &[Waker]) {
        for (i, waker) in wakers.iter().enumerate() {
            if wakers[..i].iter().any(|w| Arc::ptr_eq(&w.bell, &waker.bell)) {
                continue;
            }
            waker.bell.ring_all(wakers[i..].iter().filter(|w| Arc::ptr_eq(&w.bell, &waker.bell)).map(|w| w.token));
        }
    }
}

/// What a parked request waits for on its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Input (the request body, WebSocket frames).
    Input,
    /// Room to write (a response or frames the client hasn't taken yet).
    Output,
    /// Only the client going away (`EPOLLRDHUP`): bytes it sends meanwhile don't wake.
    Hangup,
    /// Nothing: only the app side.
    Nothing,
}

/// Where a request came from, borrowed from the connection's buffer.
pub enum Origin<'a> {
    /// Parsed HTTP/1.x head.
    Http {
        /// The head.
        head: &'a RequestHead<'a>,
        /// `SERVER_NAME`.
        server_name: &'a str,
        /// `SERVER_PORT`.
        server_port: &'a str,
        /// `REMOTE_ADDR`.
        remote_addr: &'a str,
        /// `REMOTE_PORT`.
        remote_port: &'a str,
    },
    /// A uwsgi packet (nginx `uwsgi_pass`): the environ is given.
    Uwsgi {
        /// The packet.
        packet: &'a UwsgiPacket<'a>,
    },
}

/// One request ready for the app.
pub struct Request<'a> {
    /// What arrived.
    pub origin: Origin<'a>,
    /// The connection, for the response.
    pub client: Client,
    /// What `route*` rules left for the app: environ variables, headers to add or drop.
    pub route: Option<&'a crate::routing::RouteState>,
    /// The worker's stop flag, when no other request is buffered behind this one: if it is
    /// set by the time the response head is written, the head says `Connection: close`.
    pub closing: Option<&'a Arc<AtomicBool>>,
    /// When (µs) this request started, as harakiri and the stats see it; 0 = not busy. A
    /// request that turns into a long-lived session (a WebSocket) sets it to 0.
    pub harakiri_clock: &'a AtomicU64,
}

/// What happened, for the request log and the scoreboard.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // facts about one response, each a yes/no
pub struct Served {
    /// Status code sent (or 500 when the app failed before sending one).
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Header lines sent.
    pub header_count: usize,
    /// Bytes of the response head.
    pub header_bytes: usize,
    /// Number of environ entries.
    pub vars: usize,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// The app raised.
    pub app_error: bool,
    /// The body went out with sendfile.
    pub sendfile: bool,
    /// The app that served it (uWSGI's `app: N`); `None` when no app matched (`app: -1`).
    pub app: Option<usize>,
    /// `vhost`: the request's host, which uWSGI puts in front of its request-log line.
    pub vhost: Option<String>,
    /// A `donotlog` routing rule fired: no request-log line.
    pub donotlog: bool,
    /// Logvars routing rules set (`logvar:NAME=VALUE`), for `%(NAME)` in a `log-format`.
    pub logvars: Vec<(String, String)>,
    /// Response headers kept by `collect-header`/`pull-header`: (variable, value), for
    /// `%(var.NAME)` in a `log-format`.
    pub collected: Vec<(String, Vec<u8>)>,
    /// The rest of a body the client didn't take at once (a `wsgi.file_wrapper` file, or
    /// the last bytes the app returned): the connection's event loop sends it, so a slow
    /// client doesn't hold the app's thread.
    pub rest: Option<BodyRest>,
}

/// The unsent end of a response body, handed from the app's thread to the connection loop.
#[derive(Debug)]
pub enum BodyRest {
    /// From a file (`wsgi.file_wrapper`).
    File(FileRest),
    /// From memory the app side owns (the app's last `bytes` object).
    Memory(MemoryRest),
}

/// The unsent end of a body in memory. Nothing follows it in the response (its framing,
/// a Content-Length, is complete once it is sent).
pub struct MemoryRest {
    /// The bytes, kept alive by the app side's handle (dropped on whatever thread ends
    /// the send: the app side must allow that).
    pub bytes: Box<dyn AsRef<[u8]> + Send>,
    /// Bytes of it already sent.
    pub offset: usize,
}

impl std::fmt::Debug for MemoryRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRest").field("len", &(*self.bytes).as_ref().len()).field("offset", &self.offset).finish()
    }
}

/// The unsent part of a file body, on a file descriptor of its own.
#[derive(Debug)]
pub struct FileRest {
    /// A duplicate of the app's file (the app's object is closed when the request ends).
    pub file: std::fs::File,
    /// Next byte to send.
    pub offset: u64,
    /// Bytes left.
    pub remaining: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_all_rings_every_token_with_one_write_per_doorbell() {
        let a = Arc::new(Doorbell::new().unwrap());
        let b = Arc::new(Doorbell::new().unwrap());
        let wakers: Vec<Waker> =
            [(&a, 1), (&b, 7), (&a, 2), (&a, 3)].iter().map(|(bell, t)| Waker::new(Arc::clone(bell), *t)).collect();
        Waker::wake_all(&wakers);
        // An eventfd's read returns the sum of the writes since the last read.
        assert_eq!(a.fd.read().unwrap(), 1);
        assert_eq!(b.fd.read().unwrap(), 1);
        assert_eq!(a.take(), vec![1, 2, 3]);
        assert_eq!(b.take(), vec![7]);
    }

    #[test]
    fn wake_all_adds_to_tokens_not_yet_taken_without_another_write() {
        let a = Arc::new(Doorbell::new().unwrap());
        Waker::new(Arc::clone(&a), 5).wake();
        Waker::wake_all(&[Waker::new(Arc::clone(&a), 6)]);
        assert_eq!(a.fd.read().unwrap(), 1);
        assert_eq!(a.take(), vec![5, 6]);
    }
}
