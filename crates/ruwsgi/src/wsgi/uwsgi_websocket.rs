//! uWSGI's WebSocket API for WSGI apps (`core/websockets.c`): inside a request the app calls
//! `uwsgi.websocket_handshake()` (the 101 goes out), then loops on `websocket_recv()` /
//! `websocket_recv_nb()` and `websocket_send()` / `websocket_send_binary()` until the
//! client leaves (`IOError`) or the app returns. The session is the request: it runs on the
//! request's thread, with the GIL released while it waits, and the connection closes when
//! the app returns. Frames go through proto's codec; pings are answered, a quiet client is
//! pinged every `websockets-ping-freq` seconds and dropped when its pong is later than
//! `websockets-pong-tolerance`.
//!
//! Differs from uWSGI: a pong echoes the ping's payload and a close frame carries its status
//! code (RFC 6455); a message over `websockets-max-size` closes with 1009 and invalid frames
//! with 1002/1007 (uWSGI drops the connection); fragmented messages come back whole (uWSGI
//! returns a one-byte placeholder per fragment); the app returning closes the session with
//! 1000 (1011 when it raised), after a close frame of ours the request waits (up to
//! `CLOSE_WAIT`) for the client's, and a stopping worker closes it with 1001; without a `proto`
//! argument the handshake answers the first protocol the client offers (uWSGI echoes the
//! whole list); permessage-deflate is not negotiated (as in uWSGI).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyIOError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use ruwsgi_proto::{
    encode_close_payload, encode_frame, frame_extent, parse_close_payload, parse_frame_head, unmask,
    websocket_accept_key, Assembler, FrameError, Message, Opcode,
};

use super::asgi_websocket::Settings;
use crate::interface::{Client, Origin};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;
/// Longest wait without looking at the worker's stop flag.
const STOP_CHECK: Duration = Duration::from_secs(1);
/// How long the request waits for the client's close frame after sending its own.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Where a request's WebSocket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Closed (by either side, or the connection failed): every call raises.
    Closed,
}

/// The request running on this thread: a plain HTTP request until the handshake, which
/// makes its session. Most requests never shake hands, so what every request sets up is
/// kept small (the session with its buffers and clocks is made only by the handshake).
/// It lives in the thread's `PerThread`.
pub(super) enum Current {
    Http(Request),
    Upgraded(Box<Session>),
}

/// What the handshake needs of a request.
pub(super) struct Request {
    client: Client,
    /// `None` for a request with none of the headers the handshake reads.
    offer: Option<Box<Offer>>,
    settings: Settings,
    extra_headers: Arc<[(String, String)]>,
    /// The worker's stop flag.
    closing: Option<Arc<AtomicBool>>,
}

/// The request's headers the handshake reads (`HTTP_SEC_WEBSOCKET_KEY`, `HTTP_ORIGIN`,
/// `HTTP_SEC_WEBSOCKET_PROTOCOL`).
#[derive(Debug, Default)]
struct Offer {
    key: Option<Vec<u8>>,
    origin: Option<Vec<u8>>,
    protocol: Option<Vec<u8>>,
    /// `GET /path`, for the log (only for requests with a key).
    what: String,
}

pub(super) struct Session {
    client: Client,
    state: State,
    /// `GET /path`, for the log (only for requests with a key).
    what: String,
    settings: Settings,
    /// The worker's stop flag.
    closing: Option<Arc<AtomicBool>>,
    /// Bytes read, not yet parsed.
    buf: Vec<u8>,
    assembler: Assembler,
    /// Last time the client sent anything, from the handshake on.
    heard: Instant,
    /// An unanswered ping of ours.
    ping_sent: Option<Instant>,
    /// We sent a close frame the client hasn't answered yet.
    close_sent: bool,
    /// For the request log.
    header_bytes: usize,
    header_count: usize,
    body_bytes: u64,
}

/// What a request that became a WebSocket sent, for the request log.
pub(super) struct Upgraded {
    pub header_bytes: usize,
    pub header_count: usize,
    pub body_bytes: u64,
}

/// Starts a request on this thread: the `websocket_*` functions act on `client`.
pub(super) fn begin(
    thread: &super::PerThread,
    client: Client,
    origin: &Origin<'_>,
    settings: Settings,
    extra_headers: &Arc<[(String, String)]>,
    closing: Option<&Arc<AtomicBool>>,
) {
    let mut offer: Option<Box<Offer>> = None;
    let mut take = |name: &[u8], value: &[u8]| {
        let slot = if name.eq_ignore_ascii_case(b"sec-websocket-key") {
            &mut offer.get_or_insert_default().key
        } else if name.eq_ignore_ascii_case(b"origin") {
            &mut offer.get_or_insert_default().origin
        } else if name.eq_ignore_ascii_case(b"sec-websocket-protocol") {
            &mut offer.get_or_insert_default().protocol
        } else {
            return;
        };
        slot.get_or_insert_with(|| value.to_vec());
    };
    match origin {
        Origin::Http { head, .. } => head.headers.iter().for_each(|(n, v)| take(n.as_bytes(), v)),
        Origin::Uwsgi { packet } => packet.vars.iter().for_each(|(n, v)| match n.strip_prefix(b"HTTP_") {
            Some(b"SEC_WEBSOCKET_KEY") => take(b"sec-websocket-key", v),
            Some(b"ORIGIN") => take(b"origin", v),
            Some(b"SEC_WEBSOCKET_PROTOCOL") => take(b"sec-websocket-protocol", v),
            _ => {}
        }),
    }
    if let Some(offer) = offer.as_mut().filter(|o| o.key.is_some()) {
        offer.what = super::response::describe(origin);
    }
    let request =
        Request { client, offer, settings, extra_headers: Arc::clone(extra_headers), closing: closing.map(Arc::clone) };
    *thread.websocket.borrow_mut() = Some(Current::Http(request));
}

/// Ends the request on this thread. `Some` when it became a WebSocket: a session still open
/// is closed (1000, or 1011 when the app raised) and the connection must not be reused.
pub(super) fn end(thread: &super::PerThread, py: Python<'_>, app_error: bool) -> Option<Upgraded> {
    let Some(Current::Upgraded(mut s)) = thread.websocket.borrow_mut().take() else { return None };
    if s.state == State::Open {
        s.close(py, if app_error { 1011 } else { 1000 });
    }
    if s.close_sent {
        s.await_client_close(py);
    }
    Some(Upgraded { header_bytes: s.header_bytes, header_count: s.header_count, body_bytes: s.body_bytes })
}

/// The request on this thread did the handshake.
pub(super) fn upgraded(thread: &super::PerThread) -> bool {
    matches!(*thread.websocket.borrow(), Some(Current::Upgraded(_)))
}

/// Runs `f` on this thread's request once it is a WebSocket; `not_yet` is the error
/// before the handshake.
fn with_session<T>(what: &str, not_yet: &str, f: impl FnOnce(&mut Session) -> PyResult<T>) -> PyResult<T> {
    super::PER_THREAD.with(|t| match t.websocket.borrow_mut().as_mut() {
        Some(Current::Upgraded(session)) => f(session),
        Some(Current::Http(_)) => Err(PyIOError::new_err(not_yet.to_owned())),
        None => Err(no_request(what)),
    })
}

fn no_request(what: &str) -> PyErr {
    PyIOError::new_err(format!("{what}(): no request is running on this thread"))
}

/// bytes or str (uWSGI's `s#`).
fn text_or_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        Ok(b.as_bytes().to_vec())
    } else if let Ok(s) = value.cast::<PyString>() {
        Ok(s.to_str()?.as_bytes().to_vec())
    } else {
        Err(PyTypeError::new_err("expected bytes or str"))
    }
}

fn optional(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u8>>> {
    match value {
        Some(v) if !v.is_none() => Ok(Some(text_or_bytes(v)?).filter(|v| !v.is_empty())),
        _ => Ok(None),
    }
}

/// `uwsgi.websocket_handshake(key=None, origin=None, proto=None)`: answers the request with
/// the 101 (the arguments default to the request's own headers).
#[pyfunction]
#[pyo3(signature = (key=None, origin=None, proto=None))]
fn websocket_handshake(
    py: Python<'_>,
    key: Option<&Bound<'_, PyAny>>,
    origin: Option<&Bound<'_, PyAny>>,
    proto: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let (key, origin, proto) = (optional(key)?, optional(origin)?, optional(proto)?);
    super::PER_THREAD.with(|t| {
        let mut current = t.websocket.borrow_mut();
        let req = match current.as_mut() {
            Some(Current::Http(req)) => req,
            Some(Current::Upgraded(_)) => {
                return Err(PyIOError::new_err(
                    "unable to complete websocket handshake: the handshake was already done",
                ))
            }
            None => return Err(no_request("websocket_handshake")),
        };
        let offer = req.offer.as_deref();
        let Some(key) = key.or_else(|| offer.and_then(|o| o.key.clone())) else {
            return Err(PyIOError::new_err(
                "unable to complete websocket handshake: the request has no Sec-WebSocket-Key",
            ));
        };
        let origin = origin.or_else(|| offer.and_then(|o| o.origin.clone())).unwrap_or_else(|| b"*".to_vec());
        // The client offers a list; the server answers one of them.
        let proto = proto.or_else(|| {
            let offered = offer?.protocol.as_deref()?;
            let first = offered.split(|&b| b == b',').next()?.trim_ascii();
            (!first.is_empty()).then(|| first.to_vec())
        });
        let mut head =
            b"HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n".to_vec();
        let mut lines: Vec<(&[u8], &[u8])> = vec![(b"Sec-WebSocket-Origin", &origin)];
        if let Some(p) = &proto {
            lines.push((b"Sec-WebSocket-Protocol", p));
        }
        let accept = websocket_accept_key(&key);
        lines.push((b"Sec-WebSocket-Accept", accept.as_bytes()));
        lines.extend(req.extra_headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        for (name, value) in &lines {
            head.extend_from_slice(name);
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        // The request is a WebSocket from here on, also when the write fails.
        let mut s = Box::new(Session {
            client: req.client.clone(),
            state: State::Open,
            what: req.offer.as_mut().map(|o| std::mem::take(&mut o.what)).unwrap_or_default(),
            settings: req.settings,
            closing: req.closing.take(),
            buf: Vec::new(),
            assembler: Assembler::default(),
            heard: Instant::now(),
            ping_sent: None,
            close_sent: false,
            header_bytes: head.len(),
            header_count: lines.len() + 2,
            body_bytes: 0,
        });
        let sent = s
            .client
            .write_all(&[&head], &mut 0, |w| py.detach(|| w.run()))
            .map_err(|e| PyIOError::new_err(format!("unable to complete websocket handshake: {e}")))
            .inspect_err(|_| s.state = State::Closed);
        *current = Some(Current::Upgraded(s));
        sent
    })
}

/// `uwsgi.websocket_recv()`: waits for the next message (bytes).
#[pyfunction]
fn websocket_recv(py: Python<'_>) -> PyResult<Py<PyBytes>> {
    let msg = with_session("websocket_recv", NOT_OPEN, |s| s.recv(py, true))?;
    Ok(PyBytes::new(py, &msg.unwrap_or_default()).unbind())
}

/// `uwsgi.websocket_recv_nb()`: the next message if one is there, else `b""`.
#[pyfunction]
fn websocket_recv_nb(py: Python<'_>) -> PyResult<Py<PyBytes>> {
    let msg = with_session("websocket_recv_nb", NOT_OPEN, |s| s.recv(py, false))?;
    Ok(PyBytes::new(py, &msg.unwrap_or_default()).unbind())
}

/// `uwsgi.websocket_send(msg)`: a text message.
#[pyfunction]
fn websocket_send(py: Python<'_>, msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = text_or_bytes(msg)?;
    let failed = "unable to send websocket message";
    with_session("websocket_send", failed, |s| s.send_message(py, Opcode::Text, &data, failed))
}

/// `uwsgi.websocket_send_binary(msg)`: a binary message.
#[pyfunction]
fn websocket_send_binary(py: Python<'_>, msg: &Bound<'_, PyAny>) -> PyResult<()> {
    let data = text_or_bytes(msg)?;
    let failed = "unable to send websocket binary message";
    with_session("websocket_send_binary", failed, |s| s.send_message(py, Opcode::Binary, &data, failed))
}

/// Adds the functions to the `uwsgi` module.
pub(super) fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(websocket_handshake, m)?)?;
    m.add_function(wrap_pyfunction!(websocket_recv, m)?)?;
    m.add_function(wrap_pyfunction!(websocket_recv_nb, m)?)?;
    m.add_function(wrap_pyfunction!(websocket_send, m)?)?;
    m.add_function(wrap_pyfunction!(websocket_send_binary, m)?)
}

/// Why a session ended (or never began), as the app sees it.
const NOT_OPEN: &str = "unable to receive websocket message";

fn closed() -> PyErr {
    PyIOError::new_err(NOT_OPEN)
}

impl Session {
    /// Writes one frame; a failed write closes the session.
    fn write_frame(&mut self, py: Python<'_>, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, true, opcode, payload);
        let mut sent = 0;
        let result = self.client.write_all(&[&frame], &mut sent, |w| py.detach(|| w.run()));
        self.body_bytes += sent;
        if result.is_err() {
            self.state = State::Closed;
        }
        result
    }

    fn send_message(&mut self, py: Python<'_>, opcode: Opcode, data: &[u8], failed: &str) -> PyResult<()> {
        if self.state != State::Open {
            return Err(PyIOError::new_err(failed.to_owned()));
        }
        self.write_frame(py, opcode, data).map_err(|_| PyIOError::new_err(failed.to_owned()))
    }

    /// Our close frame; the session is over (the connection closes when the app returns).
    fn close(&mut self, py: Python<'_>, code: u16) {
        if self.state == State::Open {
            self.close_sent = self.write_frame(py, Opcode::Close, &encode_close_payload(code, "")).is_ok();
        }
        self.state = State::Closed;
    }

    /// After our close frame: reads (and drops) what the client sends until its close frame,
    /// its end, or `CLOSE_WAIT`. Closing a socket with unread input resets the connection,
    /// which could cost the client the frames sent last (RFC 6455 §7.1.1: the client answers
    /// the close, then the server closes the TCP connection).
    fn await_client_close(&mut self, py: Python<'_>) {
        let deadline = Instant::now() + CLOSE_WAIT;
        let mut chunk = [0u8; READ_CHUNK];
        // Payload bytes of the current frame still to drop (frames are skipped, not kept).
        // `frame_extent`, not `parse_frame_head`: the frame that broke the protocol may be
        // the first one here, and the client's close comes after it.
        let mut skip: u64 = 0;
        loop {
            loop {
                let n = usize::try_from(skip).unwrap_or(usize::MAX).min(self.buf.len());
                self.buf.drain(..n);
                skip -= n as u64;
                if skip > 0 {
                    break;
                }
                match frame_extent(&self.buf) {
                    Some((opcode, _, _)) if Opcode::from_bits(opcode) == Some(Opcode::Close) => return,
                    Some((_, header_len, len)) => {
                        self.buf.drain(..header_len);
                        skip = len;
                    }
                    None => break,
                }
            }
            if Instant::now() >= deadline {
                return;
            }
            match self.client.try_read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let wait = self.client.readable_within(left);
                    if left.is_zero() || py.detach(|| wait.run()).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }

    /// The next message; `None` when `block` is false and none is complete yet.
    fn recv(&mut self, py: Python<'_>, block: bool) -> PyResult<Option<Vec<u8>>> {
        if self.state != State::Open {
            return Err(closed());
        }
        loop {
            if let Some(msg) = self.next_message(py)? {
                return Ok(Some(msg));
            }
            self.read_available()?;
            if let Some(msg) = self.next_message(py)? {
                return Ok(Some(msg));
            }
            self.keep_alive(py)?;
            if !block {
                return Ok(None);
            }
            let wait = self.client.readable_within(self.until_next_check());
            match py.detach(|| wait.run()) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => {
                    self.state = State::Closed;
                    return Err(closed());
                }
            }
        }
    }

    /// How long the client has been silent (since the handshake at most).
    fn quiet_for(&self) -> Duration {
        self.heard.elapsed()
    }

    /// How long a wait may last before pings, pong deadlines or the stop flag need a look.
    fn until_next_check(&self) -> Duration {
        let due = match self.ping_sent {
            Some(at) => self.settings.pong_tolerance.saturating_sub(at.elapsed()),
            None => self.settings.ping_freq.saturating_sub(self.quiet_for()),
        };
        due.clamp(Duration::from_millis(10), STOP_CHECK)
    }

    /// Reads what the socket has (without waiting).
    fn read_available(&mut self) -> PyResult<()> {
        let mut chunk = [0u8; READ_CHUNK];
        // Past one message's worth, parse before reading more.
        while self.buf.len() as u64 <= self.settings.max_size.saturating_add(READ_CHUNK as u64) {
            match self.client.try_read(&mut chunk) {
                Ok(0) => {
                    tracing::debug!("{}: the WebSocket client went away without a close frame", self.what);
                    self.state = State::Closed;
                    return Err(closed());
                }
                Ok(n) => {
                    self.heard = Instant::now();
                    self.ping_sent = None;
                    self.buf.extend_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.state = State::Closed;
                    return Err(closed());
                }
            }
        }
        Ok(())
    }

    /// Pings a quiet client, drops one whose pong is late, closes when the worker stops.
    fn keep_alive(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.closing.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            self.close(py, 1001);
            return Err(closed());
        }
        match self.ping_sent {
            Some(at) if at.elapsed() >= self.settings.pong_tolerance => {
                tracing::warn!(
                    "{}: no WebSocket pong received in {} seconds: closing",
                    self.what,
                    self.settings.pong_tolerance.as_secs()
                );
                self.state = State::Closed;
                Err(closed())
            }
            None if self.quiet_for() >= self.settings.ping_freq => {
                self.write_frame(py, Opcode::Ping, b"").map_err(|_| closed())?;
                self.ping_sent = Some(Instant::now());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Handles the complete frames in the buffer until a message is complete.
    fn next_message(&mut self, py: Python<'_>) -> PyResult<Option<Vec<u8>>> {
        let max = self.settings.max_size;
        while self.state == State::Open {
            let head = match parse_frame_head(&self.buf, max, false) {
                Ok(Some(head)) => head,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.fail(py, e)),
            };
            let end = head.header_len + usize::try_from(head.len).unwrap_or(usize::MAX);
            if self.buf.len() < end {
                return Ok(None);
            }
            let mut payload = self.buf[head.header_len..end].to_vec();
            self.buf.drain(..end);
            unmask(&mut payload, head.mask, 0);
            match head.opcode {
                Opcode::Ping => self.write_frame(py, Opcode::Pong, &payload).map_err(|_| closed())?,
                Opcode::Pong => {}
                Opcode::Close => {
                    let code = match parse_close_payload(&payload) {
                        Ok((code, _)) => code,
                        Err(e) => {
                            let err = self.fail(py, e);
                            // The client's (bad) close was its last frame: no answer to wait for.
                            self.close_sent = false;
                            return Err(err);
                        }
                    };
                    tracing::debug!("{}: WebSocket closed by the client with {code}", self.what);
                    // Echo the close (RFC 6455 §5.5.1).
                    let echo = if code == 1005 { Vec::new() } else { encode_close_payload(code, "") };
                    let _ = self.write_frame(py, Opcode::Close, &echo);
                    self.state = State::Closed;
                    return Err(closed());
                }
                _ => match self.assembler.push(&head, payload, max, None) {
                    Ok(Some(Message::Text(text))) => return Ok(Some(text.into_bytes())),
                    Ok(Some(Message::Binary(data))) => return Ok(Some(data)),
                    Ok(None) => {}
                    Err(e) => return Err(self.fail(py, e)),
                },
            }
        }
        Err(closed())
    }

    /// The client broke the protocol (or sent too much): close with the matching code.
    fn fail(&mut self, py: Python<'_>, e: FrameError) -> PyErr {
        tracing::warn!("{}: closing the WebSocket with {}: {e}", self.what, e.close_code());
        self.close(py, e.close_code());
        closed()
    }
}
