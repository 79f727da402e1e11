//! ASGI 3.0 apps (`asgi = pkg.mod:app`): the `http` and `lifespan` scopes.
//!
//! Each worker runs one asyncio event loop (uvloop's when installed) on a thread of its own
//! (`asgi_loop.py`). A connection thread that has parsed a request builds its scope and
//! submits it to the loop, then parks the request in its connection loop (`HttpTask`, an
//! `interface::Parked`) and goes on with other clients. The app's `receive()`/`send()`
//! calls reach the request through an `Exchange` queue whose eventfd is in that loop's
//! epoll set: when woken, the request reads the body only as far as the app asked (back
//! pressure towards the client), writes each response message as it comes (what the
//! socket doesn't take waits in an `Outbox` until `EPOLLOUT`; a body message past
//! `HIGH_WATER` unwritten bytes makes the app's `send()` wait until written), and answers
//! `receive()` with `http.disconnect` once the response is complete or the client is gone.
//! A parked request counts as running until it completes (harakiri, `max-requests`, the
//! stats, a stopping worker's wait), but holds no thread: one thread serves any number.
//! Socket I/O stays on the Rust side (through `interface::Client`); the loop thread never
//! touches a socket.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io::{ErrorKind, IoSlice};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use ruwsgi_config::Config;
use ruwsgi_proto::{
    encode_chunk, encode_response_head, percent_decode, validate_response_header, ResponseFraming, LAST_CHUNK,
};

use super::{format_exception, LoadError};
use crate::interface::{
    BodyProgress, BodyReader, Client, Doorbell, Origin, Parked, Request, Resumed, Served, Started, Waker, Want,
};

/// Body bytes queued by the app and not yet written past which its `send()` waits for
/// the write (back pressure towards the app).
const HIGH_WATER: usize = 64 * 1024;
/// Largest body chunk handed to one `receive()`.
const RECEIVE_CHUNK: usize = 64 * 1024;
/// How long lifespan startup and shutdown may take.
const LIFESPAN_TIMEOUT: f64 = 60.0;
/// Longest sleep of a thread running a request to its end (`AsgiApp::handle`) between
/// steps, for the request's timers (WebSocket pings, timeouts).
const WAIT_TICK: Duration = Duration::from_millis(250);
/// Wake-ups the loop's thread holds back at most before it writes the doorbells
/// (`Feed::defer`): bounds how long a reply waits behind other requests' Python.
const DEFER_MAX: usize = 8;

/// The loaded ASGI app and, in a worker, its event loop.
pub struct AsgiApp {
    /// The `Runner` (`asgi_loop.py`) around the app.
    pub(super) runner: Py<PyAny>,
    /// `add-header`: appended to every response's headers.
    pub(super) extra_headers: Arc<[(String, String)]>,
    /// WebSocket settings.
    pub(super) websockets: super::asgi_websocket::Settings,
    /// The queue to the event loop's thread, made in each worker by `start`.
    feed: OnceLock<Arc<Feed>>,
}

/// ruwsgi's log, for the loop thread's messages (lifespan, blocked loop).
#[pyfunction]
fn asgi_log(level: &str, message: &str) {
    match level {
        "error" => tracing::error!("{message}"),
        "warn" => tracing::warn!("{message}"),
        _ => tracing::info!("{message}"),
    }
}

impl AsgiApp {
    /// Imports the app (`pkg.mod:app`, or `pkg.mod` with `callable`) and wraps it.
    pub fn load(cfg: &Config, spec: &str) -> Result<AsgiApp, LoadError> {
        if cfg.module.is_some() || cfg.wsgi_file.is_some() || !cfg.mount.is_empty() {
            return Err(LoadError(
                "asgi can't be combined with module, wsgi-file or mount: one worker serves one kind of app".to_owned(),
            ));
        }
        Python::attach(|py| {
            super::import_all(py, "import", &cfg.import);
            let load = || -> PyResult<(Bound<'_, PyAny>, String)> {
                let app = super::load_module(py, spec, &cfg.callable)?;
                let glue = PyModule::from_code(
                    py,
                    &CString::new(include_str!("asgi_loop.py")).unwrap_or_default(),
                    c"ruwsgi_asgi_loop.py",
                    c"_ruwsgi_asgi",
                )?;
                let log = wrap_pyfunction!(asgi_log, py)?;
                let runner = glue.getattr("Runner")?.call1((app, log))?;
                let loop_name: String = glue.getattr("loop_name")?.call0()?.extract()?;
                Ok((runner, loop_name))
            };
            match load() {
                Ok((runner, loop_name)) => {
                    let label = super::module_label(spec, &cfg.callable);
                    tracing::info!("ASGI app 0 (mountpoint='') ready: {label} (event loop: {loop_name})");
                    Ok(AsgiApp {
                        runner: runner.unbind(),
                        extra_headers: cfg.add_header.clone().into(),
                        websockets: super::asgi_websocket::Settings::new(cfg),
                        feed: OnceLock::new(),
                    })
                }
                Err(e) => {
                    tracing::error!("failed to load asgi {spec}:\n{}", format_exception(py, &e));
                    Err(LoadError(format!("asgi {spec}: {e}")))
                }
            }
        })
    }

    /// In a worker: starts the event loop thread and runs lifespan startup.
    pub fn start(&self) -> Result<(), String> {
        let feed = match Feed::new() {
            Ok(feed) => Arc::clone(self.feed.get_or_init(|| Arc::new(feed))),
            Err(e) => return Err(format!("cannot make the ASGI event loop's eventfd: {e}")),
        };
        Python::attach(|py| {
            let done = self.runner.bind(py).call_method1(intern!(py, "start"), (LIFESPAN_TIMEOUT, PyFeed(feed)));
            match done {
                Ok(err) if err.is_none() => Ok(()),
                Ok(err) => Err(err.str().map(|s| s.to_string()).unwrap_or_default()),
                Err(e) => Err(format!("lifespan startup raised:\n{}", format_exception(py, &e))),
            }
        })
    }

    /// In a stopping worker (its connection loops have ended, so every request and
    /// WebSocket is over): lifespan shutdown, then the loop ends.
    pub fn stop(&self) {
        Python::attach(|py| match self.runner.bind(py).call_method1(intern!(py, "stop"), (LIFESPAN_TIMEOUT,)) {
            Ok(err) if err.is_none() => {}
            Ok(err) => tracing::error!("{err}"),
            Err(e) => tracing::error!("ASGI shutdown:\n{}", format_exception(py, &e)),
        });
    }

    /// Starts one `http` request (see the module doc), or a `websocket` session for an
    /// HTTP/1.1 `Upgrade: websocket` request: it goes on parked in the connection's loop.
    pub fn begin(&self, req: &Request<'_>, mut body: BodyReader) -> Started {
        if let Origin::Http { head, .. } = &req.origin {
            if super::asgi_websocket::is_upgrade(head) {
                return super::asgi_websocket::start(self, req, head, body);
            }
        }
        let (minor, is_head, keep_alive, uwsgi) = match &req.origin {
            Origin::Http { head, .. } => (head.minor_version, head.method == "HEAD", head.keep_alive, false),
            Origin::Uwsgi { packet } => {
                let minor = u8::from(packet.var(b"SERVER_PROTOCOL") != Some(b"HTTP/1.0"));
                (minor, packet.var(b"REQUEST_METHOD") == Some(b"HEAD"), false, true)
            }
        };
        let out = Response {
            out: Outbox::new(req.client.clone()),
            minor,
            is_head,
            uwsgi,
            keep_alive,
            code: 0,
            status: Vec::new(),
            headers: Vec::new(),
            extra_headers: Arc::clone(&self.extra_headers),
            head_sent: false,
            mode: Mode::None,
            complete: false,
            broken: false,
            body_bytes: 0,
            header_count: 0,
            header_bytes: 0,
        };
        let what = super::response::describe(&req.origin);
        let first_body = body.take_whole();
        let served = Served { app: Some(0), ..Served::default() };
        let ex = self.submit(req, &what, false, first_body);
        Started::Parked(Box::new(HttpTask {
            feed: self.feed(),
            ex,
            what,
            out,
            body,
            served,
            receives: VecDeque::new(),
            parked: Vec::new(),
            waiters: Vec::new(),
            unflushed: 0,
            finished: false,
            gone: false,
            want: Want::Nothing,
        }))
    }

    /// Serves one request on the calling thread (for a caller that can't park it): the
    /// parked request, resumed whenever its exchange or socket is ready.
    pub fn handle(&self, req: &Request<'_>, body: BodyReader) -> (Served, BodyReader) {
        match self.begin(req, body) {
            Started::Done(served, body) => (served, body),
            Started::Parked(task) => block_on(task, req),
        }
    }
}

/// Runs a parked request to its end on this thread, waiting in `poll` between steps.
fn block_on(mut task: Box<dyn Parked>, req: &Request<'_>) -> (Served, BodyReader) {
    let bell = match Doorbell::new() {
        Ok(bell) => Arc::new(bell),
        Err(e) => {
            tracing::error!("cannot make an eventfd for an ASGI request: {e}");
            task.hang_up();
            loop {
                if let Resumed::Done(served, body) = task.resume() {
                    return (served, body);
                }
                std::thread::sleep(WAIT_TICK);
            }
        }
    };
    task.set_waker(Waker::new(Arc::clone(&bell), 0));
    loop {
        let want = match task.resume() {
            Resumed::Done(served, body) => return (served, body),
            Resumed::Wait(want) => want,
        };
        if task.is_session() {
            // An accepted WebSocket lives as long as its client: harakiri stops counting.
            req.harakiri_clock.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        if req.client.wait_with(bell.fd(), want, WAIT_TICK).unwrap_or(true) {
            task.hang_up();
        }
        bell.take();
    }
}

/// The client's connection as a request's responses see it: bytes the socket doesn't take
/// at once wait here (the connection's loop resumes the request on `EPOLLOUT`), so no
/// thread waits for a slow client.
pub(super) struct Outbox {
    client: Client,
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    sent: usize,
    /// Last time bytes moved on the socket (either way), for `socket-timeout`.
    pub(super) progress: Instant,
}

impl Outbox {
    pub(super) fn new(client: Client) -> Self {
        Self { client, buf: Vec::new(), sent: 0, progress: Instant::now() }
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Writes `parts` (what the socket takes now) and keeps the rest; `Err`: the client
    /// is gone.
    pub(super) fn queue(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let mut skip = 0;
        if self.buf.is_empty() {
            // A wait for the client (if any) starts now, not when bytes last moved.
            self.progress = Instant::now();
            let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
            match self.client.io().try_write(&slices) {
                Ok(n) => {
                    skip = n;
                    self.progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            self.buf.extend_from_slice(&part[skip..]);
            skip = 0;
        }
        Ok(())
    }

    /// Writes what waits; `Ok(true)` when all of it is out (TLS records included).
    pub(super) fn flush(&mut self) -> std::io::Result<bool> {
        while self.sent < self.buf.len() {
            match self.client.io().try_write(&[IoSlice::new(&self.buf[self.sent..])]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.sent += n;
                    self.progress = Instant::now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.sent = 0;
        self.client.io().flush()
    }

    /// Nothing waits to be written.
    pub(super) fn is_empty(&self) -> bool {
        self.buf.is_empty() && !self.client.io().wants_write()
    }
}

/// One `http` request parked in its connection's loop (see the module doc).
struct HttpTask {
    /// The way to the loop's thread (`None`: its loop isn't running).
    feed: Option<Arc<Feed>>,
    ex: Arc<Exchange>,
    /// `GET /path`, for the log.
    what: String,
    out: Response,
    body: BodyReader,
    served: Served,
    /// `receive()`s waiting for body bytes from the socket, in order.
    receives: VecDeque<Py<PyAny>>,
    /// `receive()`s waiting for the end of the request (`http.disconnect`).
    parked: Vec<Py<PyAny>>,
    /// `send()`s waiting for their bytes to be written.
    waiters: Vec<Py<PyAny>>,
    /// Body bytes the app sent that aren't written yet (its `queued` count).
    unflushed: usize,
    /// The request is over for the client; the app's later messages are dropped.
    finished: bool,
    /// The socket failed or the client hung up.
    gone: bool,
    /// What the last `resume` waited for.
    want: Want,
}

impl HttpTask {
    /// Once what the app sent is all written, its waiting `send()`s go on.
    fn written(&mut self, replies: &mut Vec<(Py<PyAny>, Reply)>) {
        if self.out.broken || self.out.out.is_empty() {
            if self.unflushed > 0 {
                let mut inbox = self.ex.lock();
                inbox.queued = inbox.queued.saturating_sub(self.unflushed);
                self.unflushed = 0;
            }
            replies.extend(self.waiters.drain(..).map(|fut| (fut, Reply::None)));
        }
    }

    /// The request is over for the client: `receive()` now gets `http.disconnect` and
    /// `send()` is dropped.
    #[allow(clippy::option_option, reason = "the app's end: not yet / returned / raised")]
    fn finish(&mut self, replies: &mut Vec<(Py<PyAny>, Reply)>, app_done: &mut Option<Option<PyErr>>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let mut inbox = self.ex.lock();
        inbox.finished = true;
        for event in inbox.events.drain(..) {
            match event {
                Event::Receive(fut) => self.parked.push(fut),
                Event::Body { waiter: Some(fut), .. } => replies.push((fut, Reply::None)),
                Event::Done(err) => *app_done = Some(err),
                _ => {}
            }
        }
        drop(inbox);
        replies.extend(self.receives.drain(..).chain(self.parked.drain(..)).map(|fut| (fut, Reply::Disconnect)));
        replies.extend(self.waiters.drain(..).map(|fut| (fut, Reply::None)));
    }
}

impl Parked for HttpTask {
    fn set_waker(&mut self, waker: Waker) {
        self.ex.set_waker(waker);
    }

    fn is_session(&self) -> bool {
        false
    }

    fn due(&self) -> bool {
        // `socket-timeout` while it waits for the client; the rest comes through the
        // doorbell or the socket.
        matches!(self.want, Want::Input | Want::Output)
    }

    fn hang_up(&mut self) {
        self.gone = true;
    }

    fn resume(&mut self) -> Resumed {
        let ex = Arc::clone(&self.ex);
        let mut replies: Vec<(Py<PyAny>, Reply)> = Vec::new();
        let mut app_done = None;
        let timeout = self.out.out.client().timeout();
        if self.gone || (matches!(self.want, Want::Input | Want::Output) && self.out.out.progress.elapsed() >= timeout)
        {
            // The client left, or didn't read (send) within socket-timeout.
            self.out.broken = true;
            self.out.keep_alive = false;
        }
        if !self.out.broken && self.out.out.flush().is_err() {
            self.out.broken = true;
            self.out.keep_alive = false;
        }
        for event in ex.take() {
            match event {
                Event::Receive(fut) => {
                    if self.out.broken || self.body.is_ended() {
                        self.parked.push(fut);
                    } else {
                        if self.receives.is_empty() {
                            // A wait for the body (if any) starts now.
                            self.out.out.progress = Instant::now();
                        }
                        self.receives.push_back(fut);
                    }
                }
                Event::Start { code, status, headers } => {
                    self.out.code = code;
                    self.out.status = status;
                    self.out.headers = headers;
                }
                Event::Body { data, more, waiter } => {
                    self.unflushed += data.len();
                    self.out.body(&data, more);
                    if let Some(fut) = waiter {
                        self.waiters.push(fut);
                    }
                }
                Event::Done(err) => app_done = Some(err),
                // `websocket.*` messages are refused for an http scope by `send`.
                Event::Accept { .. } | Event::Frame { .. } | Event::Close { .. } => {}
            }
        }
        // The body, read as the app asks for it (back pressure towards the client).
        while !self.receives.is_empty() && !self.out.broken {
            let mut data = Vec::new();
            let reply = match self.body.read_some(&mut data, RECEIVE_CHUNK) {
                Ok(BodyProgress::Data(_)) => Reply::Body(data, !self.body.is_ended()),
                Ok(BodyProgress::End) => Reply::Body(data, false),
                Ok(BodyProgress::WouldBlock) => break,
                Err(_) => {
                    self.out.broken = true;
                    Reply::Disconnect
                }
            };
            self.out.out.progress = Instant::now();
            if let Some(fut) = self.receives.pop_front() {
                replies.push((fut, reply));
            }
            if self.body.is_ended() {
                self.parked.extend(self.receives.drain(..));
            }
        }
        if !self.parked.is_empty() && !self.out.broken && self.out.out.client().hung_up() {
            // A long poll or a stream learns that its client left.
            self.out.broken = true;
            self.out.keep_alive = false;
        }
        if self.out.complete || self.out.broken || app_done.is_some() {
            self.finish(&mut replies, &mut app_done);
        }
        self.written(&mut replies);
        resolve(self.feed.as_deref(), replies);
        if let Some(err) = app_done {
            if let Some(err) = err {
                self.served.app_error = true;
                let tb = Python::attach(|py| format_exception(py, &err));
                tracing::error!("{}: the ASGI app raised:\n{tb}", self.what);
            } else if !self.out.head_sent && !self.out.broken {
                tracing::error!("{}: the ASGI app returned without starting a response", self.what);
            }
            self.out.fail();
            if !self.out.broken && self.out.out.flush().is_err() {
                self.out.broken = true;
            }
        }
        let drained = self.out.broken || self.out.out.is_empty();
        if self.finished && drained {
            let mut served = std::mem::take(&mut self.served);
            served.vars = self.ex.vars.load(Ordering::Relaxed);
            let body = std::mem::replace(&mut self.body, BodyReader::empty());
            let (served, body) = self.out.served_now(served, body);
            return Resumed::Done(served, body);
        }
        self.want = if !drained {
            Want::Output
        } else if !self.receives.is_empty() {
            Want::Input
        } else if !self.parked.is_empty() {
            Want::Hangup
        } else {
            Want::Nothing
        };
        Resumed::Wait(self.want)
    }
}

impl Drop for HttpTask {
    fn drop(&mut self) {
        // Its connection went without the request ending: the app is told.
        let mut replies = Vec::new();
        let mut app_done = None;
        self.finish(&mut replies, &mut app_done);
        resolve(self.feed.as_deref(), replies);
    }
}

/// Completes the app's futures: they go to the loop thread (`Feed`), which sets them.
pub(super) fn resolve(feed: Option<&Feed>, replies: Vec<(Py<PyAny>, Reply)>) {
    if let (Some(feed), false) = (feed, replies.is_empty()) {
        feed.push(replies.into_iter().map(|(fut, reply)| ToLoop::Resolve(fut, reply)));
    }
}

/// What a connection thread hands the event loop's thread.
pub(super) enum ToLoop {
    /// Start the app's task for a request.
    Start { scope: Box<ScopeSource>, ex: Arc<Exchange>, first: Option<Vec<u8>> },
    /// Complete a future of the app's.
    Resolve(Py<PyAny>, Reply),
}

/// The queue from a worker's connection threads to its event loop's thread. The loop
/// watches the eventfd (`loop.add_reader`) and takes everything queued in one go
/// (`PyFeed::drain`), building the scopes and completing the futures there: all Python
/// work happens on the loop's thread, and the connection threads never wait for the GIL.
pub(super) struct Feed {
    queue: Mutex<Vec<ToLoop>>,
    fd: EventFd,
    /// Connections the loop's thread has news for and hasn't woken yet (see `defer`).
    deferred: Mutex<Deferred>,
    /// Schedules `PyFeed::flush` on the loop (`loop.call_soon`), set by the runner.
    flusher: OnceLock<Py<PyAny>>,
}

/// Wake-ups held back until the loop has run what is ready (`Feed::defer`).
#[derive(Default)]
struct Deferred {
    wakers: Vec<Waker>,
    /// A `flush` is scheduled on the loop.
    scheduled: bool,
}

impl Feed {
    fn new() -> std::io::Result<Self> {
        let fd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Self {
            queue: Mutex::new(Vec::new()),
            fd,
            deferred: Mutex::new(Deferred::default()),
            flusher: OnceLock::new(),
        })
    }

    /// On the loop's thread: wakes `waker`'s connection once the loop has run the
    /// callbacks ready now (a `flush` queued behind them), or at once when
    /// `DEFER_MAX` wake-ups wait. One doorbell write then carries the replies of several
    /// requests, where one write per reply woke the connection thread (which then
    /// preempted the loop's) once or twice per request.
    fn defer(&self, waker: Waker) {
        let Some(flusher) = self.flusher.get() else {
            waker.wake();
            return;
        };
        let mut due = self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        due.wakers.push(waker);
        if due.wakers.len() >= DEFER_MAX {
            let wakers = std::mem::take(&mut due.wakers);
            drop(due);
            Waker::wake_all(&wakers);
            return;
        }
        if std::mem::replace(&mut due.scheduled, true) {
            return;
        }
        drop(due);
        let scheduled = Python::attach(|py| flusher.call0(py).map(drop));
        if let Err(e) = scheduled {
            tracing::error!("ASGI: cannot schedule the loop's replies: {e}");
            self.flush();
        }
    }

    /// Wakes what `defer` held back.
    fn flush(&self) {
        let mut due = self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        due.scheduled = false;
        let wakers = std::mem::take(&mut due.wakers);
        drop(due);
        Waker::wake_all(&wakers);
    }

    /// Queues `items`; wakes the loop when they are the first since it last looked.
    pub(super) fn push(&self, items: impl IntoIterator<Item = ToLoop>) {
        let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let idle = queue.is_empty();
        queue.extend(items);
        drop(queue);
        if idle {
            let _ = self.fd.write(1);
        }
    }
}

/// The feed as the loop's thread sees it.
#[pyclass(frozen, module = "ruwsgi", name = "Feed")]
struct PyFeed(Arc<Feed>);

#[pymethods]
impl PyFeed {
    fn fileno(&self) -> i32 {
        self.0.fd.as_fd().as_raw_fd()
    }

    /// `schedule()` queues `flush` on the loop (called once, by the runner).
    fn set_flusher(&self, schedule: Py<PyAny>) {
        let _ = self.0.flusher.set(schedule);
    }

    /// Wakes the connections the loop's replies wait for (`Feed::defer`).
    fn flush(&self) {
        self.0.flush();
    }

    /// Called on the loop's thread when the eventfd is readable: starts the queued
    /// requests' tasks (`runner.start_task`) and completes the queued futures.
    fn drain(&self, py: Python<'_>, runner: &Bound<'_, PyAny>) {
        let _ = self.0.fd.read();
        let items = std::mem::take(&mut *self.0.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        for item in items {
            match item {
                ToLoop::Start { scope, ex, first } => {
                    let started = scope.to_dict(py).and_then(|d| {
                        ex.vars.store(d.len(), Ordering::Relaxed);
                        let first = first.map(|b| PyBytes::new(py, &b));
                        runner.call_method1(intern!(py, "start_task"), (d, PyExchange(Arc::clone(&ex)), first))
                    });
                    if let Err(e) = started {
                        ex.push(Event::Done(Some(e)));
                    }
                }
                ToLoop::Resolve(fut, reply) => {
                    let fut = fut.bind(py);
                    let set = fut.call_method0(intern!(py, "done")).and_then(|done| {
                        if done.is_truthy()? {
                            return Ok(());
                        }
                        fut.call_method1(intern!(py, "set_result"), (reply.into_py(py),)).map(drop)
                    });
                    if let Err(e) = set {
                        tracing::error!("ASGI: {e}");
                    }
                }
            }
        }
    }
}

impl AsgiApp {
    /// Hands the request to the event loop's thread, which builds its scope and starts
    /// the app's task (`first`: the whole request body, when it is all here); returns the
    /// exchange. Takes no GIL.
    pub(super) fn submit(
        &self,
        req: &Request<'_>,
        what: &str,
        websocket: bool,
        first: Option<Vec<u8>>,
    ) -> Arc<Exchange> {
        let ex = Arc::new(Exchange::new(what.to_owned(), websocket, self.feed()));
        let scope = Box::new(ScopeSource::new(&req.origin, websocket, req.client.io().is_tls()));
        match self.feed.get() {
            Some(feed) => feed.push([ToLoop::Start { scope, ex: Arc::clone(&ex), first }]),
            None => ex.push(Event::Done(Some(PyRuntimeError::new_err("the ASGI event loop is not running")))),
        }
        ex
    }

    /// The feed to the loop's thread (set by `start`).
    pub(super) fn feed(&self) -> Option<Arc<Feed>> {
        self.feed.get().map(Arc::clone)
    }
}

/// What a resolved `receive()` (or a waiting `send()`) gets.
pub(super) enum Reply {
    /// `send()`'s wait is over.
    None,
    /// `http.request` with these bytes; `more`: more of the body follows.
    Body(Vec<u8>, bool),
    /// `http.disconnect`.
    Disconnect,
    /// `websocket.connect`.
    Connect,
    /// `websocket.receive` with `text`.
    Text(String),
    /// `websocket.receive` with `bytes`.
    Bytes(Vec<u8>),
    /// `websocket.disconnect` with this close code.
    Closed(u16),
}

impl Reply {
    fn into_py(self, py: Python<'_>) -> Py<PyAny> {
        let message = |kind: &Bound<'_, PyString>| {
            let d = PyDict::new(py);
            let _ = d.set_item(intern!(py, "type"), kind);
            d
        };
        match self {
            Reply::None => py.None(),
            Reply::Body(data, more) => {
                let d = message(intern!(py, "http.request"));
                let _ = d.set_item(intern!(py, "body"), PyBytes::new(py, &data));
                let _ = d.set_item(intern!(py, "more_body"), more);
                d.into_any().unbind()
            }
            Reply::Disconnect => message(intern!(py, "http.disconnect")).into_any().unbind(),
            Reply::Connect => message(intern!(py, "websocket.connect")).into_any().unbind(),
            Reply::Text(text) => {
                let d = message(intern!(py, "websocket.receive"));
                let _ = d.set_item(intern!(py, "text"), text);
                d.into_any().unbind()
            }
            Reply::Bytes(data) => {
                let d = message(intern!(py, "websocket.receive"));
                let _ = d.set_item(intern!(py, "bytes"), PyBytes::new(py, &data));
                d.into_any().unbind()
            }
            Reply::Closed(code) => {
                let d = message(intern!(py, "websocket.disconnect"));
                let _ = d.set_item(intern!(py, "code"), code);
                d.into_any().unbind()
            }
        }
    }
}

/// One message from the app's task to the connection thread.
pub(super) enum Event {
    /// `receive()`: the future to complete.
    Receive(Py<PyAny>),
    /// `http.response.start`.
    Start { code: u16, status: Vec<u8>, headers: Vec<(Vec<u8>, Vec<u8>)> },
    /// `http.response.body`; `waiter`: the app's `send()` awaits this future (back pressure).
    Body { data: Vec<u8>, more: bool, waiter: Option<Py<PyAny>> },
    /// The app's coroutine ended, with its exception if it raised.
    Done(Option<PyErr>),
    /// `websocket.accept`.
    Accept { subprotocol: Option<String>, headers: Vec<(Vec<u8>, Vec<u8>)> },
    /// `websocket.send`; `waiter` as for `Body`.
    Frame { text: bool, data: Vec<u8>, waiter: Option<Py<PyAny>> },
    /// `websocket.close`.
    Close { code: u16, reason: String },
}

/// The queue between one request's task (on the loop thread) and its connection thread.
#[allow(clippy::struct_excessive_bools, reason = "independent facts about one exchange")]
pub(super) struct Inbox {
    pub(super) events: VecDeque<Event>,
    /// Body bytes queued and not yet written.
    pub(super) queued: usize,
    /// `http.response.start` (or `websocket.accept`) was sent.
    pub(super) started: bool,
    /// The final body message (or `websocket.close`) was sent.
    pub(super) completed: bool,
    /// The connection thread is done with the request: `receive()` now answers
    /// `http.disconnect` at once and `send()` is dropped.
    pub(super) finished: bool,
    /// A `websocket` scope.
    websocket: bool,
    /// The close code a WebSocket `receive()` gets once finished.
    pub(super) close_code: u16,
    /// Wakes the connection (set when the request parks).
    waker: Option<Waker>,
    /// The connection was woken and hasn't taken the events yet.
    signalled: bool,
}

/// The app side of one request: `receive()`/`send()`/the end of the task queue here; the
/// connection thread is woken through the request's `Waker` (once per batch of events).
pub(super) struct Exchange {
    inbox: Mutex<Inbox>,
    /// Entries of the scope (the log's "vars"), set when the loop built it.
    pub(super) vars: AtomicUsize,
    /// `GET /path`, for log messages from the loop thread.
    what: String,
    /// Where the loop's thread defers its wake-ups (`None`: the loop isn't running).
    feed: Option<Arc<Feed>>,
}

impl Exchange {
    pub(super) fn new(what: String, websocket: bool, feed: Option<Arc<Feed>>) -> Self {
        let inbox = Inbox {
            events: VecDeque::new(),
            queued: 0,
            started: false,
            completed: false,
            finished: false,
            websocket,
            close_code: 1006,
            waker: None,
            signalled: false,
        };
        Self { inbox: Mutex::new(inbox), vars: AtomicUsize::new(0), what, feed }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn push(&self, event: Event) {
        let mut inbox = self.lock();
        inbox.events.push_back(event);
        self.ring(inbox);
    }

    /// Unlocks, then wakes the connection (once until it takes the events), through the
    /// feed's deferred wake-ups: every caller is on the loop's thread. The lock is let
    /// go first: the woken thread's first step is `take`, which needs it.
    fn ring(&self, mut inbox: MutexGuard<'_, Inbox>) {
        if inbox.signalled {
            return;
        }
        inbox.signalled = true;
        let waker = inbox.waker.clone();
        drop(inbox);
        match (waker, &self.feed) {
            (Some(waker), Some(feed)) => feed.defer(waker),
            (Some(waker), None) => waker.wake(),
            (None, _) => {}
        }
    }

    /// From now on events ring `waker` (at once if some wait).
    pub(super) fn set_waker(&self, waker: Waker) {
        let mut inbox = self.lock();
        if inbox.signalled {
            waker.wake();
        }
        inbox.waker = Some(waker);
    }

    /// Takes the queued events (the next event rings again).
    pub(super) fn take(&self) -> Vec<Event> {
        let mut inbox = self.lock();
        inbox.signalled = false;
        inbox.events.drain(..).collect()
    }
}

/// The exchange as the app's task on the loop thread holds it.
#[pyclass(frozen, module = "ruwsgi", name = "Exchange")]
pub(super) struct PyExchange(Arc<Exchange>);

impl std::ops::Deref for PyExchange {
    type Target = Exchange;
    fn deref(&self) -> &Exchange {
        &self.0
    }
}

#[pymethods]
impl PyExchange {
    /// The app's `receive()`: `fut` gets the next message.
    fn receive(&self, py: Python<'_>, fut: Bound<'_, PyAny>) -> PyResult<()> {
        let mut inbox = self.lock();
        if inbox.finished {
            let reply = if inbox.websocket { Reply::Closed(inbox.close_code) } else { Reply::Disconnect };
            drop(inbox);
            if !fut.call_method0(intern!(py, "done"))?.is_truthy()? {
                fut.call_method1(intern!(py, "set_result"), (reply.into_py(py),))?;
            }
            return Ok(());
        }
        inbox.events.push_back(Event::Receive(fut.unbind()));
        self.ring(inbox);
        Ok(())
    }

    /// The app's `send()`; true when it must await `fut` (the bytes queued are past
    /// `HIGH_WATER`). Raises for a message out of order or malformed.
    fn send(&self, message: &Bound<'_, PyAny>, fut: Bound<'_, PyAny>) -> PyResult<bool> {
        let py = message.py();
        let message = message.cast::<PyDict>().map_err(|_| PyTypeError::new_err("an ASGI message must be a dict"))?;
        let kind: String = message
            .get_item(intern!(py, "type"))?
            .ok_or_else(|| PyValueError::new_err("ASGI message without a 'type'"))?
            .extract()?;
        let mut inbox = self.lock();
        if inbox.finished {
            // The client is gone or the response is over: dropped, as uvicorn does.
            return Ok(false);
        }
        if inbox.websocket {
            let wait = super::asgi_websocket::queue_message(&mut inbox, &kind, message, fut)?;
            self.ring(inbox);
            return Ok(wait);
        }
        match kind.as_str() {
            "http.response.start" => {
                if inbox.started {
                    return Err(PyRuntimeError::new_err("http.response.start sent twice"));
                }
                let code: u16 = message
                    .get_item(intern!(py, "status"))?
                    .ok_or_else(|| PyValueError::new_err("http.response.start without 'status'"))?
                    .extract()?;
                if !(100..=999).contains(&code) {
                    return Err(PyValueError::new_err(format!("invalid status {code}")));
                }
                let headers = match message.get_item(intern!(py, "headers"))? {
                    Some(h) => response_headers(&h)?,
                    None => Vec::new(),
                };
                let status = format!("{code} {}", crate::routing::reason_phrase(code)).into_bytes();
                inbox.started = true;
                // Written with the first body message: no need to wake the connection yet.
                inbox.events.push_back(Event::Start { code, status, headers });
                Ok(false)
            }
            "http.response.body" => {
                if !inbox.started {
                    return Err(PyRuntimeError::new_err("http.response.body sent before http.response.start"));
                }
                if inbox.completed {
                    return Err(PyRuntimeError::new_err("http.response.body sent after the response completed"));
                }
                let data = match message.get_item(intern!(py, "body"))? {
                    Some(b) => b
                        .cast::<PyBytes>()
                        .map_err(|_| PyTypeError::new_err("http.response.body 'body' must be bytes"))?
                        .as_bytes()
                        .to_vec(),
                    None => Vec::new(),
                };
                let more = match message.get_item(intern!(py, "more_body"))? {
                    Some(m) => m.is_truthy()?,
                    None => false,
                };
                inbox.completed = !more;
                inbox.queued += data.len();
                let wait = inbox.queued > HIGH_WATER;
                inbox.events.push_back(Event::Body { data, more, waiter: wait.then(|| fut.unbind()) });
                self.ring(inbox);
                Ok(wait)
            }
            other => Err(PyValueError::new_err(format!("unexpected ASGI message type {other:?} for an http request"))),
        }
    }

    /// The app's task ended (`exc`: what it raised).
    fn done(&self, py: Python<'_>, exc: Option<Bound<'_, PyAny>>) {
        let err = exc.filter(|e| !e.is_none()).map(PyErr::from_value);
        let finished = self.lock().finished;
        if finished {
            if let Some(err) = err {
                // After the response: nobody else will log it.
                let tb = format_exception(py, &err);
                tracing::error!("{}: the ASGI app raised after its response:\n{tb}", self.what);
            }
            return;
        }
        self.push(Event::Done(err));
    }
}

/// `headers` of `http.response.start`: an iterable of `[name, value]` byte pairs.
pub(super) fn response_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for pair in headers.try_iter()? {
        let pair = pair?;
        let (name, value): (Vec<u8>, Vec<u8>) = {
            let get = |i: usize| -> PyResult<Vec<u8>> {
                let item = pair.get_item(i)?;
                item.cast::<PyBytes>()
                    .map(|b| b.as_bytes().to_vec())
                    .map_err(|_| PyTypeError::new_err("ASGI response header names and values must be bytes"))
            };
            (get(0)?, get(1)?)
        };
        if let Err(e) = validate_response_header(&name, &value) {
            return Err(PyValueError::new_err(format!("invalid header {:?}: {e}", String::from_utf8_lossy(&name))));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// What a request's scope is built from, copied out of the connection's buffer so the
/// loop's thread can build it (`to_dict`) while the connection goes on.
pub(super) struct ScopeSource {
    websocket: bool,
    /// An `https` socket.
    tls: bool,
    origin: OwnedOrigin,
}

enum OwnedOrigin {
    Http {
        minor: u8,
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, Vec<u8>)>,
        server: (String, String),
        client: (String, String),
    },
    Uwsgi {
        vars: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

impl ScopeSource {
    pub(super) fn new(origin: &Origin<'_>, websocket: bool, tls: bool) -> Self {
        let origin = match origin {
            Origin::Http { head, server_name, server_port, remote_addr, remote_port } => OwnedOrigin::Http {
                minor: head.minor_version,
                method: head.method.to_owned(),
                path: head.path().to_owned(),
                query: head.query().to_owned(),
                headers: head.headers.iter().map(|(n, v)| ((*n).to_owned(), v.to_vec())).collect(),
                server: ((*server_name).to_owned(), (*server_port).to_owned()),
                client: ((*remote_addr).to_owned(), (*remote_port).to_owned()),
            },
            Origin::Uwsgi { packet } => {
                OwnedOrigin::Uwsgi { vars: packet.vars.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect() }
            }
        };
        Self { websocket, tls, origin }
    }

    /// The `http` (or `websocket`) scope.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let websocket = self.websocket;
        let d = PyDict::new(py);
        d.set_item(intern!(py, "type"), if websocket { intern!(py, "websocket") } else { intern!(py, "http") })?;
        let asgi = PyDict::new(py);
        asgi.set_item(intern!(py, "version"), intern!(py, "3.0"))?;
        asgi.set_item(intern!(py, "spec_version"), intern!(py, "2.3"))?;
        d.set_item(intern!(py, "asgi"), asgi)?;
        let headers = PyList::empty(py);
        let pair = |name: &[u8], value: &[u8]| -> PyResult<()> {
            headers.append(PyTuple::new(py, [PyBytes::new(py, name), PyBytes::new(py, value)])?)
        };
        match &self.origin {
            OwnedOrigin::Http { minor, method, path, query, headers: head_headers, server, client } => {
                d.set_item(intern!(py, "http_version"), if *minor == 0 { "1.0" } else { "1.1" })?;
                d.set_item(intern!(py, "method"), method)?;
                let scheme = match (websocket, self.tls) {
                    (false, false) => intern!(py, "http"),
                    (false, true) => intern!(py, "https"),
                    (true, false) => intern!(py, "ws"),
                    (true, true) => intern!(py, "wss"),
                };
                d.set_item(intern!(py, "scheme"), scheme)?;
                if websocket {
                    let offered: Vec<String> = head_headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-protocol"))
                        .flat_map(|(_, v)| {
                            String::from_utf8_lossy(v).split(',').map(|p| p.trim().to_owned()).collect::<Vec<_>>()
                        })
                        .filter(|p| !p.is_empty())
                        .collect();
                    d.set_item(intern!(py, "subprotocols"), PyList::new(py, offered)?)?;
                }
                d.set_item(intern!(py, "path"), String::from_utf8_lossy(&percent_decode(path.as_bytes())))?;
                d.set_item(intern!(py, "raw_path"), PyBytes::new(py, path.as_bytes()))?;
                d.set_item(intern!(py, "query_string"), PyBytes::new(py, query.as_bytes()))?;
                d.set_item(intern!(py, "root_path"), intern!(py, ""))?;
                for (name, value) in head_headers {
                    pair(name.to_ascii_lowercase().as_bytes(), value)?;
                }
                d.set_item(intern!(py, "client"), peer(py, &client.0, &client.1)?)?;
                d.set_item(intern!(py, "server"), peer(py, &server.0, &server.1)?)?;
            }
            OwnedOrigin::Uwsgi { vars } => {
                let var = |k: &[u8]| vars.iter().rev().find(|(n, _)| n == k).map_or(&b""[..], |(_, v)| &v[..]);
                let text = |k: &[u8]| String::from_utf8_lossy(var(k)).into_owned();
                let version = text(b"SERVER_PROTOCOL");
                d.set_item(intern!(py, "http_version"), version.strip_prefix("HTTP/").unwrap_or("1.1"))?;
                d.set_item(intern!(py, "method"), text(b"REQUEST_METHOD"))?;
                let https = self.tls || var(b"HTTPS").eq_ignore_ascii_case(b"on") || var(b"UWSGI_SCHEME") == b"https";
                d.set_item(intern!(py, "scheme"), if https { "https" } else { "http" })?;
                // nginx's SCRIPT_NAME is where the app is mounted (`root_path`); ASGI's `path` is
                // the whole path, which nginx's PATH_INFO (`$document_uri`) already is unless
                // something stripped the prefix from it.
                let root = text(b"SCRIPT_NAME");
                let path_info = text(b"PATH_INFO");
                let path = if path_info.starts_with(&root) { path_info } else { format!("{root}{path_info}") };
                d.set_item(intern!(py, "path"), path)?;
                let uri = var(b"REQUEST_URI");
                let raw = uri.split(|&b| b == b'?').next().unwrap_or_default();
                d.set_item(intern!(py, "raw_path"), PyBytes::new(py, raw))?;
                d.set_item(intern!(py, "query_string"), PyBytes::new(py, var(b"QUERY_STRING")))?;
                d.set_item(intern!(py, "root_path"), root)?;
                for (name, value) in vars {
                    let header = match &name[..] {
                        b"CONTENT_TYPE" => b"content-type".to_vec(),
                        b"CONTENT_LENGTH" if !value.is_empty() => b"content-length".to_vec(),
                        n if n.starts_with(b"HTTP_") => {
                            n[5..].iter().map(|&b| if b == b'_' { b'-' } else { b.to_ascii_lowercase() }).collect()
                        }
                        _ => continue,
                    };
                    pair(&header, value)?;
                }
                d.set_item(intern!(py, "client"), peer(py, &text(b"REMOTE_ADDR"), &text(b"REMOTE_PORT"))?)?;
                d.set_item(intern!(py, "server"), peer(py, &text(b"SERVER_NAME"), &text(b"SERVER_PORT"))?)?;
            }
        }
        d.set_item(intern!(py, "headers"), headers)?;
        Ok(d)
    }
}

/// `(host, port)`, or `None` for a unix socket peer.
fn peer<'py>(py: Python<'py>, host: &str, port: &str) -> PyResult<Bound<'py, PyAny>> {
    if host.is_empty() {
        return Ok(py.None().into_bound(py));
    }
    let port: u16 = port.parse().unwrap_or(0);
    Ok(PyTuple::new(py, [host.into_pyobject(py)?.into_any(), port.into_pyobject(py)?.into_any()])?.into_any())
}

/// How the response body is delimited once the head is out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// This many bytes remain (Content-Length).
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the connection closes.
    UntilClose,
    /// No body (HEAD, 204, 304, 1xx).
    None,
}

/// One response as the app's messages build it, written on the connection thread.
#[allow(clippy::struct_excessive_bools, reason = "independent facts about one response")]
struct Response {
    /// The connection, and what it hasn't taken yet.
    out: Outbox,
    /// HTTP minor version of the request.
    minor: u8,
    is_head: bool,
    /// uwsgi protocol: the connection closes after the response, no chunked.
    uwsgi: bool,
    /// The connection may carry another request.
    keep_alive: bool,
    /// From `http.response.start` (0: not sent yet).
    code: u16,
    status: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `add-header`.
    extra_headers: Arc<[(String, String)]>,
    head_sent: bool,
    mode: Mode,
    /// The last body message was written.
    complete: bool,
    /// The client went away or a write failed.
    broken: bool,
    body_bytes: u64,
    header_count: usize,
    header_bytes: usize,
}

impl Response {
    /// Writes one body message (with the head before the first).
    fn body(&mut self, data: &[u8], more: bool) {
        if self.broken || self.complete {
            return;
        }
        let mut head = Vec::new();
        if !self.head_sent {
            let total = (!more).then_some(data.len() as u64);
            self.encode_head(&mut head, total);
        }
        let mut parts: Vec<&[u8]> = vec![&head];
        let mut chunk_line = Vec::new();
        let mut body_len = data.len() as u64;
        match self.mode {
            Mode::None => body_len = 0,
            Mode::Length(left) => {
                let n = (data.len() as u64).min(left);
                parts.push(&data[..n as usize]);
                if (data.len() as u64) > left {
                    tracing::warn!("ASGI app sent more than its Content-Length; truncated");
                    self.keep_alive = false;
                }
                self.mode = Mode::Length(left - n);
                body_len = n;
            }
            Mode::Chunked => {
                if !data.is_empty() {
                    encode_chunk(&mut chunk_line, data.len());
                    parts.extend([&chunk_line[..], data, b"\r\n"]);
                }
                if !more {
                    parts.push(LAST_CHUNK);
                }
            }
            Mode::UntilClose => parts.push(data),
        }
        if self.out.queue(&parts).is_err() {
            self.broken = true;
            self.keep_alive = false;
            return;
        }
        self.body_bytes += body_len;
        if !more {
            self.complete = true;
            if let Mode::Length(left) = self.mode {
                if left > 0 {
                    self.keep_alive = false;
                }
            }
        }
    }

    fn encode_head(&mut self, out: &mut Vec<u8>, total: Option<u64>) {
        let given = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        let no_body = self.is_head || matches!(self.code, 204 | 304 | 100..=199);
        let (framing, mode) = match (given, total) {
            (Some(n), _) => (ResponseFraming::AsGiven, Mode::Length(n)),
            (None, _) if no_body => (ResponseFraming::AsGiven, Mode::None),
            (None, Some(n)) => (ResponseFraming::Length(n), Mode::Length(n)),
            (None, None) if self.minor >= 1 && !self.uwsgi => (ResponseFraming::Chunked, Mode::Chunked),
            (None, None) => {
                self.keep_alive = false;
                (ResponseFraming::Close, Mode::UntilClose)
            }
        };
        self.mode = if no_body { Mode::None } else { mode };
        // The server owns the connection: hop-by-hop headers from the app are dropped.
        let hop = |k: &[u8]| {
            [&b"connection"[..], b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer"]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(k))
        };
        let headers: Vec<(&[u8], &[u8])> = self
            .headers
            .iter()
            .filter(|(k, _)| !hop(k))
            .map(|(k, v)| (&k[..], &v[..]))
            .chain(self.extra_headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
            .collect();
        encode_response_head(out, self.minor, &self.status, &headers, framing, self.keep_alive);
        self.header_bytes = out.len();
        self.header_count = headers.len();
        self.head_sent = true;
    }

    /// The app ended (or couldn't start) without completing its response: a 500 when
    /// nothing was sent yet, else the connection closes (the client sees it cut short).
    fn fail(&mut self) {
        if self.complete || self.broken {
            return;
        }
        if self.head_sent {
            self.keep_alive = false;
            return;
        }
        self.code = 500;
        self.status = b"500 Internal Server Error".to_vec();
        self.headers = vec![(b"content-type".to_vec(), b"text/plain".to_vec())];
        self.body(b"Internal Server Error\n", false);
    }

    fn served_now(&mut self, mut served: Served, mut body: BodyReader) -> (Served, BodyReader) {
        served.status = if self.code == 0 { 500 } else { self.code };
        served.body_bytes = self.body_bytes;
        served.header_count = self.header_count;
        served.header_bytes = self.header_bytes;
        served.keep_alive = self.keep_alive && self.complete && !self.broken && !body.unread_on_socket();
        if body.unread_on_socket() {
            // The connection loop drains (HTTP) or drops what the app didn't read.
            served.keep_alive = false;
        }
        let _ = &mut body;
        (served, body)
    }
}
