//! ASGI `websocket` scope: an HTTP/1.1 `Upgrade: websocket` request becomes a WebSocket
//! session (RFC 6455), parked in the connection's loop (`WsTask`) with the app on the
//! worker's event loop as for `http` (see `asgi.rs`). Each time the app's exchange or the
//! socket is ready (and every loop tick, for the timers) the session answers the handshake
//! when the app accepts, reads frames (with proto's codec) while the app has room for them
//! and the client takes ours, answers pings, pings a quiet client every
//! `websockets-ping-freq` seconds and closes one that doesn't answer within
//! `websockets-pong-tolerance`, reassembles fragmented messages up to
//! `websockets-max-size`, compresses with permessage-deflate when the client offers it, and
//! runs the close handshake. Open sessions hold no thread; the worker's stop closes them
//! with 1001, and its loops wait for them to end.
//!
//! Differs from uWSGI: harakiri stops counting once a WebSocket is accepted (a session lives
//! as long as its client); a blocked event loop is still reported by the watchdog.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use ruwsgi_config::Config;
use ruwsgi_proto::{
    encode_close_payload, encode_compressed_frame, encode_frame, negotiate_deflate, parse_close_payload,
    parse_frame_head, unmask, websocket_accept_key, Assembler, Deflate, FrameError, Message, Opcode, RequestHead,
};

use super::asgi::{resolve, AsgiApp, Event, Exchange, Feed, Inbox, Outbox, Reply};
use super::format_exception;
use crate::interface::{BodyReader, Parked, Request, Resumed, Served, Started, Wait, Waker, Want};

/// Complete messages read ahead of the app's `receive()` before reading pauses.
const READ_AHEAD: usize = 16;
/// How long the server waits for the client's close frame after sending its own.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The connection thread's read buffer for its sessions (zeroed once, not per read).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_CHUNK]);
}

/// The WebSocket options.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// `websockets-max-size` in bytes.
    pub(super) max_size: u64,
    /// `websockets-ping-freq`.
    pub(super) ping_freq: Duration,
    /// `websockets-pong-tolerance`.
    pub(super) pong_tolerance: Duration,
}

impl Settings {
    pub fn new(cfg: &Config) -> Self {
        Self {
            max_size: cfg.websockets_max_size.saturating_mul(1024).max(1),
            ping_freq: Duration::from_secs(cfg.websockets_ping_freq.max(1)),
            pong_tolerance: Duration::from_secs(cfg.websockets_pong_tolerance.max(1)),
        }
    }
}

/// An HTTP/1.1 GET asking to switch to WebSocket.
pub fn is_upgrade(head: &RequestHead<'_>) -> bool {
    let has = |name: &str, token: &str| {
        head.headers.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case(name)
                && v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    head.minor_version == 1 && has("upgrade", "websocket") && has("connection", "upgrade")
}

pub(super) fn header<'h>(head: &'h RequestHead<'_>, name: &str) -> Option<&'h [u8]> {
    head.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

/// Called on the loop thread from `Exchange::send` for a `websocket` scope: checks the
/// app's message and queues it; true when the app must await `fut` (back pressure).
pub(super) fn queue_message(
    inbox: &mut Inbox,
    kind: &str,
    message: &Bound<'_, PyDict>,
    fut: Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = message.py();
    match kind {
        "websocket.accept" => {
            if inbox.started || inbox.completed {
                return Err(PyRuntimeError::new_err("websocket.accept sent twice or after websocket.close"));
            }
            let subprotocol = match message.get_item(intern!(py, "subprotocol"))? {
                Some(p) if !p.is_none() => Some(p.extract::<String>()?),
                _ => None,
            };
            let headers = match message.get_item(intern!(py, "headers"))? {
                Some(h) => super::asgi::response_headers(&h)?,
                None => Vec::new(),
            };
            inbox.started = true;
            inbox.events.push_back(Event::Accept { subprotocol, headers });
            Ok(false)
        }
        "websocket.send" => {
            if !inbox.started || inbox.completed {
                return Err(PyRuntimeError::new_err("websocket.send before websocket.accept or after websocket.close"));
            }
            let (text, data) = match (message.get_item(intern!(py, "bytes"))?, message.get_item(intern!(py, "text"))?) {
                (Some(b), _) if !b.is_none() => (
                    false,
                    b.cast::<PyBytes>()
                        .map_err(|_| PyTypeError::new_err("websocket.send 'bytes' must be bytes"))?
                        .as_bytes()
                        .to_vec(),
                ),
                (_, Some(t)) if !t.is_none() => (
                    true,
                    t.cast::<PyString>()
                        .map_err(|_| PyTypeError::new_err("websocket.send 'text' must be str"))?
                        .to_str()?
                        .as_bytes()
                        .to_vec(),
                ),
                _ => return Err(PyValueError::new_err("websocket.send needs 'bytes' or 'text'")),
            };
            inbox.queued += data.len();
            let wait = inbox.queued > 64 * 1024;
            inbox.events.push_back(Event::Frame { text, data, waiter: wait.then(|| fut.unbind()) });
            Ok(wait)
        }
        "websocket.close" => {
            if inbox.completed {
                return Ok(false);
            }
            let code = match message.get_item(intern!(py, "code"))? {
                Some(c) if !c.is_none() => c.extract()?,
                _ => 1000,
            };
            let reason = match message.get_item(intern!(py, "reason"))? {
                Some(r) if !r.is_none() => r.extract()?,
                _ => String::new(),
            };
            inbox.completed = true;
            inbox.events.push_back(Event::Close { code, reason });
            Ok(false)
        }
        other => Err(PyValueError::new_err(format!("unexpected ASGI message type {other:?} for a websocket"))),
    }
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the app to accept (or refuse).
    Handshake,
    /// Messages flow both ways.
    Open,
    /// The server sent its close frame at this instant; waiting for the client's.
    Closing(Instant),
    /// Over: the connection closes.
    Closed,
}

/// One WebSocket session on the connection thread.
struct Session {
    /// The connection, and the frames it hasn't taken yet.
    out: Outbox,
    state: State,
    /// Raw bytes read and not yet parsed into frames.
    buf: Vec<u8>,
    assembler: Assembler,
    /// permessage-deflate, when the client offered it (and the app accepts).
    deflate: Option<Deflate>,
    /// Messages (and the final disconnect) for the app's `receive()`.
    incoming: VecDeque<Reply>,
    /// The app's `receive()`s waiting for a message.
    parked: Vec<Py<PyAny>>,
    /// `websocket.connect` went to the app.
    connect_sent: bool,
    /// When the client last sent anything, and when our unanswered ping went out.
    heard: Instant,
    ping_sent: Option<Instant>,
    /// The close code the app is told.
    close_code: u16,
    /// For the request log.
    status: u16,
    header_bytes: usize,
    header_count: usize,
    /// The app raised.
    app_error: bool,
}

/// Starts a `websocket` scope: a bad handshake is answered here; otherwise the session
/// parks in the connection's loop (`WsTask`) and runs there, handshake included, so open
/// sessions hold no thread. The request log line is written when the session ends.
pub fn start(app: &AsgiApp, req: &Request<'_>, head: &RequestHead<'_>, body: BodyReader) -> Started {
    let what = super::response::describe(&req.origin);
    let mut served = Served { app: Some(0), ..Served::default() };
    let key = header(head, "sec-websocket-key").filter(|k| !k.is_empty());
    if head.method != "GET" || key.is_none() || header(head, "sec-websocket-version") != Some(b"13") {
        tracing::info!("{what}: bad WebSocket handshake -> 400");
        let bad =
            b"HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let _ = req.client.write_all(&[bad], &mut 0, Wait::run);
        served.status = 400;
        return Started::Done(served, body);
    }
    let accept = websocket_accept_key(key.unwrap_or_default());
    let ex = app.submit(req, &what, true, None);
    let session = Session {
        out: Outbox::new(req.client.clone()),
        state: State::Handshake,
        buf: Vec::new(),
        assembler: Assembler::default(),
        deflate: negotiate_deflate(
            head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("sec-websocket-extensions")).map(|(_, v)| *v),
        ),
        incoming: VecDeque::new(),
        parked: Vec::new(),
        connect_sent: false,
        heard: Instant::now(),
        ping_sent: None,
        close_code: 1006,
        status: 0,
        header_bytes: 0,
        header_count: 0,
        app_error: false,
    };
    Started::Parked(Box::new(WsTask {
        feed: app.feed(),
        ex,
        s: session,
        what,
        settings: app.websockets,
        stopping: req.closing.map(Arc::clone),
        accept_key: accept,
        extra_headers: Arc::clone(&app.extra_headers),
        closed_at: None,
        waiters: Vec::new(),
        unflushed: 0,
        gone: false,
        finished: false,
        served,
        body,
    }))
}

/// One WebSocket session parked in its connection's loop.
struct WsTask {
    /// The way to the loop's thread (`None`: its loop isn't running).
    feed: Option<Arc<Feed>>,
    ex: Arc<Exchange>,
    s: Session,
    /// `GET /path`, for the log.
    what: String,
    settings: Settings,
    /// The worker's stop flag: set, the session closes with 1001.
    stopping: Option<Arc<AtomicBool>>,
    /// `Sec-WebSocket-Accept` for the 101.
    accept_key: String,
    /// `add-header`.
    extra_headers: Arc<[(String, String)]>,
    /// When the session was over with messages still undelivered to the app.
    closed_at: Option<Instant>,
    /// `send()`s waiting for their frames to be written.
    waiters: Vec<Py<PyAny>>,
    /// Bytes of messages the app sent that aren't written yet (its `queued` count).
    unflushed: usize,
    /// The socket failed or the client hung up.
    gone: bool,
    /// The app was told the session is over.
    finished: bool,
    served: Served,
    /// The (empty) request body, handed back at the end.
    body: BodyReader,
}

impl Parked for WsTask {
    fn set_waker(&mut self, waker: Waker) {
        self.ex.set_waker(waker);
    }

    fn is_session(&self) -> bool {
        // A session lives as long as its client: harakiri stops counting once accepted.
        self.s.status == 101
    }

    fn hang_up(&mut self) {
        self.gone = true;
    }

    fn due(&self) -> bool {
        // Pings, pong and close waits, a client that doesn't take our frames, the stop.
        let s = &self.s;
        self.finished
            || self.gone
            || s.state != State::Open
            || !s.out.is_empty()
            || s.ping_sent.is_some()
            || s.heard.elapsed() >= self.settings.ping_freq
            || self.stopping.as_deref().is_some_and(|stopping| stopping.load(Ordering::Relaxed))
    }

    fn resume(&mut self) -> Resumed {
        if !self.finished {
            self.step();
        }
        let drained = self.s.out.is_empty() || self.s.out.progress.elapsed() >= CLOSE_WAIT;
        if self.finished && (drained || self.gone) {
            let mut served = std::mem::take(&mut self.served);
            served.vars = self.ex.vars.load(Ordering::Relaxed);
            served.status = if self.s.status == 0 { 500 } else { self.s.status };
            served.header_bytes = self.s.header_bytes;
            served.header_count = self.s.header_count;
            served.app_error = self.s.app_error;
            served.keep_alive = false;
            return Resumed::Done(served, std::mem::replace(&mut self.body, BodyReader::empty()));
        }
        if self.finished {
            let _ = self.s.out.flush();
            return Resumed::Wait(if self.s.out.is_empty() { Want::Nothing } else { Want::Output });
        }
        let reading = matches!(self.s.state, State::Open | State::Closing(_)) && self.s.incoming.len() < READ_AHEAD;
        Resumed::Wait(if !self.s.out.is_empty() {
            Want::Output
        } else if reading {
            Want::Input
        } else {
            Want::Nothing
        })
    }
}

impl Drop for WsTask {
    fn drop(&mut self) {
        if !self.finished {
            // Its connection went without the session ending: the app is told.
            self.s.state = State::Closed;
            self.s.incoming.retain(|r| matches!(r, Reply::Closed(_)));
            self.step();
        }
    }
}

impl WsTask {
    /// One turn of the session: the app's messages, the client's frames, pings, the close.
    fn step(&mut self) {
        let ex = &self.ex;
        let s = &mut self.s;
        let settings = self.settings;
        let mut replies: Vec<(Py<PyAny>, Reply)> = Vec::new();
        let mut app_done = None;
        if self.gone && s.state != State::Closed {
            s.incoming.push_back(Reply::Closed(1006));
            s.close_code = 1006;
            s.state = State::Closed;
        }
        match s.out.flush() {
            Err(_) => s.state = State::Closed,
            Ok(false) if s.out.progress.elapsed() >= s.out.client().timeout() => {
                // The client doesn't take what it is sent.
                s.state = State::Closed;
            }
            _ => {}
        }
        for event in ex.take() {
            match event {
                Event::Receive(fut) => {
                    if s.connect_sent {
                        s.parked.push(fut);
                    } else {
                        s.connect_sent = true;
                        replies.push((fut, Reply::Connect));
                    }
                }
                Event::Accept { subprotocol, headers } => {
                    if s.state == State::Handshake {
                        s.accept(&self.accept_key, subprotocol.as_deref(), &headers, &self.extra_headers);
                    }
                }
                Event::Frame { text, data, waiter } => {
                    self.unflushed += data.len();
                    if s.state == State::Open {
                        s.send(if text { Opcode::Text } else { Opcode::Binary }, &data);
                    }
                    if let Some(fut) = waiter {
                        self.waiters.push(fut);
                    }
                }
                Event::Close { code, reason } => s.close_by_app(code, &reason),
                Event::Done(err) => app_done = Some(err),
                Event::Start { .. } | Event::Body { .. } => {}
            }
        }
        if let Some(err) = &app_done {
            if let Some(err) = err {
                s.app_error = true;
                let tb = Python::attach(|py| format_exception(py, err));
                tracing::error!("{}: the ASGI app raised:\n{tb}", self.what);
            }
            match s.state {
                // The app ended without accepting: refused (403), or failed (500).
                State::Handshake => s.refuse(if err.is_some() { 500 } else { 403 }),
                State::Open => s.close_by_app(if err.is_some() { 1011 } else { 1000 }, ""),
                _ => {}
            }
            s.state = State::Closed;
        }
        // Frames are read while the app takes messages and the client takes ours.
        if matches!(s.state, State::Open | State::Closing(_)) && s.incoming.len() < READ_AHEAD && s.out.is_empty() {
            s.read_frames(settings.max_size);
        }
        while !s.parked.is_empty() && !s.incoming.is_empty() {
            let fut = s.parked.remove(0);
            if let Some(reply) = s.incoming.pop_front() {
                replies.push((fut, reply));
            }
        }
        if let State::Closing(since) = s.state {
            if since.elapsed() >= CLOSE_WAIT {
                s.state = State::Closed;
            }
        }
        if s.state == State::Open {
            s.keep_alive_ping(settings);
            if self.stopping.as_deref().is_some_and(|stopping| stopping.load(Ordering::Relaxed)) {
                // The worker stops (reload, recycling): "going away", as a browser expects.
                s.close_by_app(1001, "server restarting");
                s.incoming.push_back(Reply::Closed(1001));
            }
        }
        if s.out.is_empty() || s.state == State::Closed {
            // What the app sent is written (or never will be): its `send()`s go on.
            if self.unflushed > 0 {
                let mut inbox = ex.lock();
                inbox.queued = inbox.queued.saturating_sub(self.unflushed);
                self.unflushed = 0;
            }
            replies.extend(self.waiters.drain(..).map(|fut| (fut, Reply::None)));
        }
        // Messages that arrived before the client's close still reach an app that reads
        // them (for at most CLOSE_WAIT), unless the app is done.
        let undelivered = s.incoming.iter().any(|r| !matches!(r, Reply::Closed(_)));
        if s.state == State::Closed && undelivered && app_done.is_none() {
            let since = *self.closed_at.get_or_insert_with(Instant::now);
            if since.elapsed() < CLOSE_WAIT {
                resolve(self.feed.as_deref(), replies);
                return;
            }
        }
        if s.state == State::Closed {
            let mut inbox = ex.lock();
            inbox.finished = true;
            inbox.close_code = s.close_code;
            for event in inbox.events.drain(..) {
                match event {
                    Event::Receive(fut) => s.parked.push(fut),
                    Event::Frame { waiter: Some(fut), .. } => replies.push((fut, Reply::None)),
                    _ => {}
                }
            }
            drop(inbox);
            let code = s.close_code;
            replies.extend(s.parked.drain(..).map(|fut| (fut, Reply::Closed(code))));
            self.finished = true;
        }
        resolve(self.feed.as_deref(), replies);
    }
}

const SERVER_ERROR: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nInternal Server Error\n";

impl Session {
    /// Writes `bytes`; a failed write ends the session (the client is gone).
    fn write(&mut self, bytes: &[u8]) {
        if self.out.queue(&[bytes]).is_err() {
            self.state = State::Closed;
        }
    }

    fn send(&mut self, opcode: Opcode, payload: &[u8]) {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        match self.deflate.as_mut().filter(|_| !opcode.is_control()) {
            Some(deflate) => encode_compressed_frame(&mut frame, opcode, &deflate.compress(payload)),
            None => encode_frame(&mut frame, true, opcode, payload),
        }
        self.write(&frame);
    }

    /// The 101 response.
    fn accept(
        &mut self,
        key: &str,
        subprotocol: Option<&str>,
        headers: &[(Vec<u8>, Vec<u8>)],
        extra: &[(String, String)],
    ) {
        let mut head = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {key}\r\n")
            .into_bytes();
        let mut count = 3;
        if let Some(p) = subprotocol {
            head.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
            count += 1;
        }
        if let Some(deflate) = &self.deflate {
            head.extend_from_slice(format!("Sec-WebSocket-Extensions: {}\r\n", deflate.response).as_bytes());
            count += 1;
        }
        for (k, v) in
            headers.iter().map(|(k, v)| (&k[..], &v[..])).chain(extra.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
        {
            head.extend_from_slice(k);
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
            count += 1;
        }
        head.extend_from_slice(b"\r\n");
        self.header_bytes = head.len();
        self.header_count = count;
        self.status = 101;
        self.write(&head);
        if self.state == State::Handshake {
            self.state = State::Open;
            self.heard = Instant::now();
        }
    }

    /// The app closed (or ended) before accepting: an HTTP error instead of the upgrade.
    fn refuse(&mut self, status: u16) {
        let reply = if status == 403 {
            &b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"[..]
        } else {
            SERVER_ERROR
        };
        self.status = status;
        self.write(reply);
        self.state = State::Closed;
    }

    /// `websocket.close` from the app (or its end): our close frame, then wait for theirs.
    fn close_by_app(&mut self, code: u16, reason: &str) {
        match self.state {
            State::Handshake => self.refuse(403),
            State::Open => {
                self.send(Opcode::Close, &encode_close_payload(code, reason));
                self.close_code = code;
                if self.state == State::Open {
                    self.state = State::Closing(Instant::now());
                }
            }
            _ => {}
        }
    }

    /// The client broke the protocol: close with the matching code, tell the app.
    fn fail(&mut self, e: FrameError) {
        tracing::debug!("WebSocket closed: {e}");
        if self.state == State::Open {
            self.send(Opcode::Close, &encode_close_payload(e.close_code(), ""));
        }
        self.close_code = e.close_code();
        self.incoming.push_back(Reply::Closed(self.close_code));
        self.state = State::Closed;
    }

    /// Reads what the socket has and handles every complete frame in it.
    fn read_frames(&mut self, max: u64) {
        loop {
            let read = SCRATCH.with_borrow_mut(|chunk| {
                let read = self.out.client().try_read(chunk);
                if let Ok(n) = read {
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                read
            });
            match read {
                Ok(0) => {
                    // End of stream without a close frame.
                    self.incoming.push_back(Reply::Closed(1006));
                    self.close_code = 1006;
                    self.state = State::Closed;
                    return;
                }
                Ok(n) => {
                    self.heard = Instant::now();
                    self.ping_sent = None;
                    // A short read emptied the socket; past one message's worth, parse first
                    // (a client can't grow the buffer faster than the app takes messages).
                    if n < READ_CHUNK || self.buf.len() as u64 > max.saturating_add(READ_CHUNK as u64) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.incoming.push_back(Reply::Closed(1006));
                    self.state = State::Closed;
                    return;
                }
            }
        }
        while matches!(self.state, State::Open | State::Closing(_)) {
            let head = match parse_frame_head(&self.buf, max, self.deflate.is_some()) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(e) => return self.fail(e),
            };
            let end = head.header_len + head.len as usize;
            if self.buf.len() < end {
                return;
            }
            let mut payload = self.buf[head.header_len..end].to_vec();
            self.buf.drain(..end);
            unmask(&mut payload, head.mask, 0);
            match head.opcode {
                Opcode::Ping => {
                    if self.state == State::Open {
                        self.send(Opcode::Pong, &payload);
                    }
                }
                Opcode::Pong => {}
                Opcode::Close => {
                    let (code, reply_code) = match parse_close_payload(&payload) {
                        Ok((code, _)) => (code, if code == 1005 { None } else { Some(code) }),
                        Err(e) => return self.fail(e),
                    };
                    if self.state == State::Open {
                        // Echo the close (RFC 6455 §5.5.1), then the session is over.
                        let echo = reply_code.map(|c| encode_close_payload(c, "")).unwrap_or_default();
                        self.send(Opcode::Close, &echo);
                        self.close_code = code;
                    }
                    self.incoming.push_back(Reply::Closed(self.close_code));
                    self.state = State::Closed;
                    return;
                }
                _ => match self.assembler.push(&head, payload, max, self.deflate.as_mut()) {
                    Ok(Some(Message::Text(text))) => self.incoming.push_back(Reply::Text(text)),
                    Ok(Some(Message::Binary(data))) => self.incoming.push_back(Reply::Bytes(data)),
                    Ok(None) => {}
                    Err(e) => return self.fail(e),
                },
            }
        }
    }

    /// Pings a client quiet for `ping_freq`; closes one whose pong is late.
    fn keep_alive_ping(&mut self, settings: Settings) {
        match self.ping_sent {
            Some(at) if at.elapsed() >= settings.pong_tolerance => {
                tracing::debug!("WebSocket client did not answer a ping within {:?}", settings.pong_tolerance);
                self.incoming.push_back(Reply::Closed(1006));
                self.close_code = 1006;
                self.state = State::Closed;
            }
            None if self.heard.elapsed() >= settings.ping_freq => {
                self.send(Opcode::Ping, b"");
                self.ping_sent = Some(Instant::now());
            }
            _ => {}
        }
    }
}
