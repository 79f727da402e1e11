//! One WSGI call: environ, `start_response` (with `exc_info` semantics), the `write()`
//! callable, iteration of the result, framing (Content-Length, chunked or close), and
//! `close()` on the result on every path. Socket writes are tried without blocking while
//! the GIL is held; waits for a full socket release it.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::exceptions::{PyAssertionError, PyIOError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use ruwsgi_proto::{encode_chunk, encode_response_head, validate_response_header, ResponseFraming, LAST_CHUNK};

use super::input::{self, Input, InputState};
use super::{environ, format_exception, FileWrapper, Origin, Request, Selected, Served, WsgiApp};
use crate::interface::{BodyReader, BodyRest, Client, FileRest, MemoryRest, Wait};

/// How the body is delimited once the head is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    /// Exactly this many bytes remain to be sent (from Content-Length).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// No length: the body ends when the connection closes.
    UntilClose,
    /// No body at all (HEAD, 204, 304).
    None,
}

/// Body of the 500 sent when the app fails before its response started.
const ERROR_BODY: &[u8] = b"Internal Server Error\n";

/// Response progress shared by the request, `start_response` and `write()`.
#[allow(clippy::struct_excessive_bools, reason = "independent facts about one response, not a state machine")]
struct ResponseState {
    /// The connection; `None` once the request is over (a late `write()` then fails).
    client: Option<Client>,
    /// HTTP minor version of the request.
    minor: u8,
    /// HEAD request: the body is never sent.
    is_head: bool,
    /// Request came over the uwsgi protocol (the connection closes after it).
    uwsgi: bool,
    /// The connection may be kept open after this response.
    keep_alive: bool,
    /// Status line text given by the app, e.g. `200 OK`.
    status: Option<Py<PyString>>,
    /// Status code parsed from `status`.
    code: u16,
    /// Headers given by the app, as its own `str` objects (checked by `start_response`;
    /// their text is borrowed, not copied, when the head is written).
    headers: Vec<(Py<PyString>, Py<PyString>)>,
    /// The head has been written.
    head_sent: bool,
    /// Body framing, fixed when the head is written.
    mode: BodyMode,
    /// Body bytes written.
    body_bytes: u64,
    /// Header lines and bytes written.
    header_count: usize,
    header_bytes: usize,
    /// The client went away or a write failed: stop sending.
    broken: bool,
    /// `add-header`.
    extra_headers: Arc<[(String, String)]>,
    /// `collect-header` / `pull-header` rules, applied when the head is written.
    collect_headers: Arc<[ruwsgi_config::CollectHeader]>,
    /// What they kept: (variable, value).
    collected: Vec<(String, Vec<u8>)>,
    /// `addheader` routing rules' headers.
    route_headers: Vec<(String, String)>,
    /// `delheader` routing rules' (lowercase) names, dropped from the app's headers.
    route_drops: Vec<String>,
    /// `Request::closing`: checked when the head is written.
    closing: Option<Arc<AtomicBool>>,
    /// `error-route*`/`response-route*` rules, run when the head is written.
    head_rules: Option<Arc<crate::routing::HeadRules>>,
    /// What they did (their `donotlog` and `logvar`s go to the request log).
    head_effects: crate::routing::HeadEffects,
    /// The end of the body the socket didn't take at once, left for the connection loop
    /// to send (see `write_or_park`); nothing is written after it.
    parked: Option<MemoryRest>,
}

/// The response state, inside the `write()` callable that `start_response` returns.
type Shared = Mutex<ResponseState>;

fn lock(s: &Shared) -> MutexGuard<'_, ResponseState> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ResponseState {
    /// Decides the framing and writes the head plus `body` in one vectored write.
    /// `total` is the whole body length when the caller knows it. `last`: the app's
    /// `bytes` object whose whole text is the last of `body`; when it ends the body (its
    /// Content-Length is reached) and the socket is full, its unsent end is parked for the
    /// connection loop instead of waited for.
    fn send(
        &mut self,
        py: Python<'_>,
        body: &[&[u8]],
        total: Option<u64>,
        last: Option<&Bound<'_, PyBytes>>,
    ) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
        }
        let Some(client) = self.client.clone() else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "the request has already finished"));
        };
        let mut head = Vec::new();
        if !self.head_sent {
            // Room for a typical head at once, instead of growing through four reallocations.
            head.reserve(256);
            self.encode_head(py, &mut head, total);
        }
        let mut chunk_line = Vec::new();
        let mut parts: Vec<&[u8]> = Vec::with_capacity(body.len() + 3);
        if !head.is_empty() {
            parts.push(&head);
        }
        let len: u64 = body.iter().map(|b| b.len() as u64).sum();
        match self.mode {
            BodyMode::None => {}
            BodyMode::Length(left) => {
                let mut room = left;
                for b in body {
                    let n = (b.len() as u64).min(room) as usize;
                    parts.push(&b[..n]);
                    room -= n as u64;
                }
                if len > left {
                    // The app sent more than its Content-Length: the rest is dropped and
                    // the connection closed, so the client isn't confused.
                    tracing::warn!("app sent more than its Content-Length; truncated");
                    self.keep_alive = false;
                }
                self.mode = BodyMode::Length(room);
            }
            BodyMode::Chunked => {
                if len > 0 {
                    encode_chunk(&mut chunk_line, len as usize);
                    parts.push(&chunk_line);
                    parts.extend_from_slice(body);
                    parts.push(b"\r\n");
                }
            }
            BodyMode::UntilClose => parts.extend_from_slice(body),
        }
        // Body bytes sit after the head and the chunk-size line; a write cut short (the
        // client stalled past socket-timeout) still counts what went out of them.
        let before_body = (head.len() + chunk_line.len()) as u64;
        let body_len =
            parts.iter().map(|p| p.len() as u64).sum::<u64>() - before_body - if chunk_line.is_empty() { 0 } else { 2 };
        // Parked only when nothing may follow (the Content-Length is reached with this
        // write) and `last` is whole at the end of `parts`.
        let last = last.filter(|b| {
            self.mode == BodyMode::Length(0)
                && body.last().is_some_and(|l| l.len() == b.as_bytes().len())
                && parts.last().is_some_and(|p| p.len() == b.as_bytes().len())
        });
        let mut n = 0;
        let sent = match last {
            Some(last) => self.write_or_park(py, &client, &parts, last, &mut n),
            None => client.write_all(&parts, &mut n, |wait| py.detach(|| wait.run())),
        };
        self.body_bytes += n.saturating_sub(before_body).min(body_len);
        match sent {
            Ok(()) => Ok(()),
            Err(e) => {
                self.broken = true;
                self.keep_alive = false;
                Err(e)
            }
        }
    }

    /// Writes the status line and headers into `out` and fixes `mode`.
    fn encode_head(&mut self, py: Python<'_>, out: &mut Vec<u8>, total: Option<u64>) {
        // Taken out while the head is built (no copy), put back after.
        let status = self.status.take();
        let app_headers = std::mem::take(&mut self.headers);
        // One vector for the head's lines: the app's headers first (as `start_response`
        // checked them), then the routes' and `add-header`'s.
        let mut headers: Vec<(&[u8], &[u8])> =
            Vec::with_capacity(app_headers.len() + self.route_headers.len() + self.extra_headers.len());
        headers.extend(app_headers.iter().map(|(k, v)| (str_bytes(py, k), str_bytes(py, v))));
        let given_length = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(b"content-length"))
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
        let no_body = self.is_head || self.code == 204 || self.code == 304 || (100..200).contains(&self.code);
        let (framing, mode) = match (given_length, total) {
            (Some(n), _) => (ResponseFraming::AsGiven, BodyMode::Length(n)),
            // A HEAD answered with an empty body says nothing about the GET's length.
            (None, Some(n))
                if !(self.code == 204
                    || self.code == 304
                    || (100..200).contains(&self.code)
                    || (self.is_head && n == 0)) =>
            {
                (ResponseFraming::Length(n), BodyMode::Length(n))
            }
            (None, _) if no_body => (ResponseFraming::AsGiven, BodyMode::None),
            (None, None) if self.minor >= 1 && !self.uwsgi => (ResponseFraming::Chunked, BodyMode::Chunked),
            (None, _) => {
                self.keep_alive = false;
                (ResponseFraming::Close, BodyMode::UntilClose)
            }
        };
        self.mode = if no_body { BodyMode::None } else { mode };
        if self.closing.as_ref().is_some_and(|stopping| stopping.load(Ordering::Relaxed)) {
            self.keep_alive = false;
        }
        if let Some(rules) = self.head_rules.take() {
            rules.run(self.code, &mut self.head_effects);
            self.route_headers.append(&mut self.head_effects.add_headers);
            self.route_drops.append(&mut self.head_effects.del_headers);
        }
        for rule in self.collect_headers.iter() {
            if let Some((_, v)) = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(rule.header.as_bytes())) {
                self.collected.push((rule.var.clone(), v.to_vec()));
            }
        }
        let pulled =
            |k: &[u8]| self.collect_headers.iter().any(|r| r.pull && r.header.as_bytes().eq_ignore_ascii_case(k));
        let dropped = |k: &[u8]| self.route_drops.iter().any(|d| d.as_bytes().eq_ignore_ascii_case(k)) || pulled(k);
        // PEP 3333: the app's header values are latin-1 text, one byte per character on
        // the wire (`header_text` checked that each fits); rare past ASCII, so copied only then.
        let latin1: Vec<Vec<u8>>;
        if headers.iter().any(|(_, v)| !v.is_ascii()) {
            latin1 = headers
                .iter()
                .map(|(_, v)| {
                    let text = std::str::from_utf8(v).unwrap_or_default();
                    text.chars().map(|c| u8::try_from(c).unwrap_or(b'?')).collect()
                })
                .collect();
            for ((_, v), l) in headers.iter_mut().zip(&latin1) {
                *v = l;
            }
        }
        headers.retain(|(k, _)| !dropped(k));
        headers.extend(
            self.route_headers.iter().chain(self.extra_headers.iter()).map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        );
        let start = out.len();
        // Checked by `start_response` as the headers are, so the default is never used.
        let status_line =
            status.as_ref().map_or("500 Internal Server Error", |s| s.bind(py).to_str().unwrap_or_default());
        encode_response_head(out, self.minor, status_line.as_bytes(), &headers, framing, self.keep_alive);
        self.header_bytes = out.len() - start;
        self.header_count = headers.len();
        drop(headers);
        self.headers = app_headers;
        self.status = status;
        self.head_sent = true;
    }
}

/// The UTF-8 text of an app's status or header string. `start_response` took only strings
/// whose text `to_str` gives, so the default (an empty text) is never used.
fn str_bytes<'a>(py: Python<'a>, s: &'a Py<PyString>) -> &'a [u8] {
    s.bind(py).to_str().unwrap_or_default().as_bytes()
}

/// The `start_response` callable. It returns its `write()` callable, which holds the
/// response's state (so neither points back at the other).
#[pyclass(frozen, module = "ruwsgi")]
struct StartResponse {
    writer: Py<Writer>,
}

/// The `write()` callable `start_response` returns, and the response's state: shared by
/// the request, `start_response` and `write()`.
#[pyclass(frozen, module = "ruwsgi")]
struct Writer {
    state: Shared,
}

/// PEP 3333's hop-by-hop headers (wsgiref's list), which a WSGI app must not set, beyond
/// those `validate_response_header` refuses to every app: `Transfer-Encoding` and the two
/// `Proxy-*` fields. The server owns the connection and frames the body.
fn is_hop_by_hop(name: &str) -> bool {
    // By length first: most names (`Content-Type`...) are no such name's length.
    let hop = match name.len() {
        17 => "transfer-encoding",
        18 => "proxy-authenticate",
        19 => "proxy-authorization",
        _ => return false,
    };
    name.eq_ignore_ascii_case(hop)
}

/// A header name or value (or the status) checked to be a latin-1 `str` (PEP 3333
/// "native strings") whose text `to_str` gives.
fn header_text<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyString>> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must be a str, not {}",
            obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })?;
    let text = s.to_str()?;
    if !text.is_ascii() && text.chars().any(|c| u32::from(c) > 0xFF) {
        return Err(PyValueError::new_err(format!("{what} {text:?} is not latin-1")));
    }
    Ok(s.clone())
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Writer>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let status = header_text(status, "status")?;
        let code = parse_status(status.to_str()?)?;
        let mut parsed = Vec::new();
        // A list (the usual headers) is read by index: no iterator object.
        let list = headers.cast::<PyList>().ok();
        let iter = match list {
            Some(_) => None,
            None => Some(headers.try_iter()?),
        };
        let items = list.into_iter().flat_map(|l| l.iter().map(Ok)).chain(iter.into_iter().flatten());
        for item in items {
            let item = item?;
            let pair = item
                .cast::<PyTuple>()
                .map_err(|_| PyTypeError::new_err("each header must be a (name, value) tuple"))?;
            if pair.len() != 2 {
                return Err(PyTypeError::new_err("each header must be a (name, value) tuple"));
            }
            let name = header_text(&pair.get_item(0)?, "header name")?;
            let value = header_text(&pair.get_item(1)?, "header value")?;
            let (name_text, value_text) = (name.to_str()?, value.to_str()?);
            if let Err(e) = validate_response_header(name_text.as_bytes(), value_text.as_bytes()) {
                return Err(PyValueError::new_err(format!("invalid header {name_text:?}: {e}")));
            }
            if is_hop_by_hop(name_text) {
                return Err(PyAssertionError::new_err(format!(
                    "hop-by-hop header {name_text:?} is not allowed in a WSGI response"
                )));
            }
            parsed.push((name.unbind(), value.unbind()));
        }
        let writer = self.writer.get();
        let mut st = lock(&writer.state);
        if let Some(exc) = exc_info {
            if st.head_sent {
                // PEP 3333: too late to change the response; re-raise the app's exception.
                drop(st);
                let value = exc.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if st.status.is_some() {
            return Err(PyAssertionError::new_err("start_response() called again without exc_info"));
        }
        st.status = Some(status.unbind());
        st.code = code;
        st.headers = parsed;
        drop(st);
        Ok(self.writer.clone_ref(py))
    }
}

#[pymethods]
impl Writer {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        let mut st = lock(&self.state);
        if st.status.is_none() {
            return Err(PyAssertionError::new_err("write() called before start_response()"));
        }
        st.send(py, &[bytes.as_bytes()], None, None).map_err(|e| PyIOError::new_err(format!("write error: {e}")))
    }
}

/// `"200 OK"` → 200; PEP 3333 requires three digits, a space and a reason.
fn parse_status(status: &str) -> PyResult<u16> {
    let b = status.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || b[3] != b' ' || status.contains(['\r', '\n']) {
        return Err(PyValueError::new_err(format!("invalid status {status:?}: expected e.g. \"200 OK\"")));
    }
    Ok(status[..3].parse().unwrap_or(500))
}

/// Calls `close()` on the app's result when dropped, whatever path the request took.
struct CloseGuard<'py, 'r> {
    result: Bound<'py, PyAny>,
    /// The request, named in the log only if `close()` raises.
    origin: &'r Origin<'r>,
}

impl Drop for CloseGuard<'_, '_> {
    fn drop(&mut self) {
        let py = self.result.py();
        // A plain list or tuple (the common result) has no `close`: looking it up would
        // build and drop an AttributeError on every request.
        if self.result.is_exact_instance_of::<PyList>() || self.result.is_exact_instance_of::<PyTuple>() {
            return;
        }
        if let Ok(close) = self.result.getattr(intern!(py, "close")) {
            if let Err(e) = close.call0() {
                tracing::error!(
                    "{}: close() of the response raised:\n{}",
                    describe(self.origin),
                    format_exception(py, &e)
                );
            }
        }
    }
}

/// Request line for log messages: `GET /path`.
pub(super) fn describe(origin: &Origin<'_>) -> String {
    match origin {
        Origin::Http { head, .. } => format!("{} {}", head.method, head.target),
        Origin::Uwsgi { packet, .. } => {
            let get = |k: &[u8]| {
                packet.vars.iter().find(|(n, _)| *n == k).map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            };
            format!(
                "{} {}",
                get(b"REQUEST_METHOD").unwrap_or_default(),
                get(b"REQUEST_URI").or_else(|| get(b"PATH_INFO")).unwrap_or_default()
            )
        }
    }
}

/// The WSGI call for one request.
pub fn handle(py: Python<'_>, app: &WsgiApp, req: &Request<'_>, body: BodyReader) -> (Served, BodyReader) {
    super::PER_THREAD.with(|thread| handle_on(py, thread, app, req, body))
}

fn handle_on(
    py: Python<'_>,
    thread: &super::PerThread,
    app: &WsgiApp,
    req: &Request<'_>,
    body: BodyReader,
) -> (Served, BodyReader) {
    let (minor, is_head, keep_alive, uwsgi) = match &req.origin {
        Origin::Http { head, .. } => (head.minor_version, head.method == "HEAD", head.keep_alive, false),
        Origin::Uwsgi { packet, .. } => {
            let get = |k: &[u8]| packet.vars.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
            let minor = u8::from(get(b"SERVER_PROTOCOL") != Some(b"HTTP/1.0"));
            (minor, get(b"REQUEST_METHOD") == Some(b"HEAD"), false, true)
        }
    };
    let state = ResponseState {
        client: Some(req.client.clone()),
        minor,
        is_head,
        uwsgi,
        keep_alive,
        status: None,
        code: 0,
        headers: Vec::new(),
        head_sent: false,
        mode: BodyMode::None,
        body_bytes: 0,
        header_count: 0,
        header_bytes: 0,
        broken: false,
        extra_headers: Arc::clone(&app.extra_headers),
        collect_headers: Arc::clone(&app.collect_headers),
        collected: Vec::new(),
        route_headers: req.route.map(|r| r.add_headers.clone()).unwrap_or_default(),
        route_drops: req.route.map(|r| r.del_headers.clone()).unwrap_or_default(),
        closing: req.closing.map(Arc::clone),
        head_rules: req.route.and_then(|r| r.head_rules.clone()),
        head_effects: crate::routing::HeadEffects::default(),
        parked: None,
    };
    let objects = match PerRequest::take(py, thread, state, InputState::new(body, req.client.timeout())) {
        Ok(objects) => objects,
        Err(e) => {
            // Python is out of memory: not even a 500 can be built. The body reader went
            // with the failed object, so the connection can't be reused.
            tracing::error!("{}: cannot start the request:\n{}", describe(&req.origin), format_exception(py, &e));
            return (Served { status: 500, app_error: true, ..Served::default() }, BodyReader::empty());
        }
    };
    let state = &objects.start_response.get().writer.get().state;
    let selected = app.route(&req.origin);
    let vhost = app.mounts.is_vhost().then(|| String::from_utf8_lossy(super::vhost_host(&req.origin)).into_owned());
    let mut served = Served {
        app: selected.as_ref().map(|s| s.id),
        vhost,
        donotlog: req.route.is_some_and(|r| r.donotlog),
        logvars: req.route.map(|r| r.logvars.clone()).unwrap_or_default(),
        ..Served::default()
    };
    super::uwsgi_module::begin_request(thread, req.client.raw_fd(), std::mem::take(&mut served.logvars));
    super::uwsgi_websocket::begin(
        thread,
        req.client.clone(),
        &req.origin,
        app.websockets,
        &app.extra_headers,
        req.closing,
    );
    let outcome = match &selected {
        Some(selected) => call_app(py, thread, app, selected, req, &objects, &mut served).map_err(Some),
        None => Err(None),
    };
    served.logvars = super::uwsgi_module::end_request(thread);
    let upgraded = super::uwsgi_websocket::end(thread, py, matches!(outcome, Err(Some(_))));
    let mut st = lock(state);
    if let Some(ws) = upgraded {
        // The 101 and the frames went out: nothing more is written, and the connection
        // closes (what the app returns is ignored, as in uWSGI).
        st.head_sent = true;
        st.mode = BodyMode::None;
        st.code = 101;
        st.header_count = ws.header_count;
        st.header_bytes = ws.header_bytes;
        st.body_bytes += ws.body_bytes;
        st.keep_alive = false;
    }
    if let Err(raised) = outcome {
        let what = describe(&req.origin);
        if let Some(err) = raised {
            served.app_error = true;
            tracing::error!("{what}: the app raised:\n{}", format_exception(py, &err));
        } else {
            // uWSGI's words, then why: only `no-default-app` leaves a request without an app.
            tracing::error!(
                "--- no python application found, check your startup logs for errors --- ({what}: no mountpoint matches and no-default-app is set)"
            );
            // uWSGI closes the connection after this 500.
            st.keep_alive = false;
        }
        if st.head_sent {
            // Too late for a 500: close so the client sees a truncated response.
            st.keep_alive = false;
        } else {
            st.status = Some(intern!(py, "500 Internal Server Error").clone().unbind());
            st.code = 500;
            st.headers =
                vec![(intern!(py, "Content-Type").clone().unbind(), intern!(py, "text/plain").clone().unbind())];
            let _ = st.send(py, &[ERROR_BODY], Some(ERROR_BODY.len() as u64), None);
        }
    } else if !st.head_sent && !st.broken {
        let _ = st.send(py, &[], Some(0), None);
    }
    if st.head_sent && !st.broken {
        match st.mode {
            BodyMode::Chunked if !served.app_error => {
                let _ = st.send_raw(py, LAST_CHUNK);
            }
            BodyMode::Length(left) if left > 0 => {
                tracing::warn!("{}: the app sent {} bytes less than its Content-Length", describe(&req.origin), left);
                st.keep_alive = false;
            }
            _ => {}
        }
    }
    st.client = None;
    served.status = st.code;
    served.body_bytes += st.body_bytes;
    served.header_count = st.header_count;
    served.header_bytes = st.header_bytes;
    served.keep_alive = st.keep_alive && !st.broken;
    served.donotlog |= st.head_effects.donotlog;
    served.logvars.append(&mut st.head_effects.logvars);
    served.collected.append(&mut st.collected);
    served.rest = st.parked.take().map(BodyRest::Memory).or(served.rest.take());
    drop(st);
    let reader = std::mem::replace(&mut input::lock(&objects.input.get().state).reader, BodyReader::empty());
    objects.keep(thread);
    (served, reader)
}

/// A request's `start_response` (with its `write()`) and `wsgi.input` objects. Made for a
/// request, and kept for the thread's next request when nothing else holds them once the
/// app returned (the app may keep any of them, e.g. the environ with its `wsgi.input`:
/// those are left to it). The state lives in the objects, so none is allocated apart:
/// with the objects and the two `Arc`s made and freed for each request, hello world cost
/// ~1,770 more instructions per request (callgrind).
struct PerRequest {
    start_response: Py<StartResponse>,
    input: Py<Input>,
}

/// The objects a thread kept from its last request (see `PerRequest`).
#[derive(Default)]
pub(super) struct Spare {
    start_response: Option<Py<StartResponse>>,
    input: Option<Py<Input>>,
}

impl Spare {
    pub(super) const EMPTY: Spare = Spare { start_response: None, input: None };
}

impl PerRequest {
    /// The thread's kept objects with the new request's state, or new ones.
    fn take(py: Python<'_>, thread: &super::PerThread, state: ResponseState, input: InputState) -> PyResult<Self> {
        let spare = std::mem::take(&mut *thread.spare.borrow_mut());
        let start_response = if let Some(kept) = spare.start_response {
            let last = std::mem::replace(&mut *lock(&kept.get().writer.get().state), state);
            last.release_app_strings(py);
            kept
        } else {
            let writer = Py::new(py, Writer { state: Mutex::new(state) })?;
            Py::new(py, StartResponse { writer })?
        };
        let input = if let Some(kept) = spare.input {
            *input::lock(&kept.get().state) = input;
            kept
        } else {
            Py::new(py, Input { state: Mutex::new(input) })?
        };
        Ok(Self { start_response, input })
    }

    /// Keeps the objects only this one refers to for the thread's next request.
    fn keep(self, thread: &super::PerThread) {
        let start_response = (only_reference(&self.start_response)
            && only_reference(&self.start_response.get().writer))
        .then_some(self.start_response);
        let input = only_reference(&self.input).then_some(self.input);
        *thread.spare.borrow_mut() = Spare { start_response, input };
    }
}

/// What of `parts` is left after the first `sent` bytes.
fn unsent<'a>(parts: &[&'a [u8]], mut sent: u64) -> Vec<&'a [u8]> {
    let mut left = Vec::with_capacity(parts.len());
    for part in parts {
        let len = part.len() as u64;
        if sent >= len {
            sent -= len;
            continue;
        }
        // Usize: `sent` is below the length of `part` here.
        left.push(&part[sent as usize..]);
        sent = 0;
    }
    left
}

/// True when `obj` is referred to by nothing but `obj` (the app kept no reference).
fn only_reference<T>(obj: &Py<T>) -> bool {
    // SAFETY: `obj` holds a reference to a live object, so its header can be read; the
    // callers hold the GIL, so no other thread changes the count meanwhile. (pyo3 0.29
    // deprecated its safe `get_refcnt` for this call.)
    #[allow(unsafe_code)]
    let count = unsafe { pyo3::ffi::Py_REFCNT(obj.as_ptr()) };
    count == 1
}

impl ResponseState {
    /// Writes `parts`, whose last is the whole of `last`; once the socket is full with only
    /// (part of) `last` left, that end is parked in `self.parked` (held by reference, not
    /// copied) and the thread goes on, so a client that reads slowly doesn't hold it. Waits
    /// (without the GIL) while earlier parts are unsent. `n` counts the bytes written.
    fn write_or_park(
        &mut self,
        py: Python<'_>,
        client: &Client,
        parts: &[&[u8]],
        last: &Bound<'_, PyBytes>,
        n: &mut u64,
    ) -> io::Result<()> {
        let total: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let before_last = total - last.as_bytes().len() as u64;
        // The whole of `parts` at first (no copy of the list: most responses go at once).
        let mut left = std::borrow::Cow::Borrowed(parts);
        loop {
            let mut full: Option<Wait> = None;
            let mut done = 0;
            let written = client.write_all(&left, &mut done, |wait| {
                full = Some(wait);
                Err(io::ErrorKind::WouldBlock.into())
            });
            *n += done;
            match (written, full) {
                (Err(e), Some(wait)) if e.kind() == io::ErrorKind::WouldBlock => {
                    if *n >= before_last {
                        // Usize: `n - before_last` is at most the length of `last`.
                        let offset = (*n - before_last) as usize;
                        self.parked = Some(MemoryRest { bytes: Box::new(PyBackedBytes::from(last.clone())), offset });
                        return Ok(());
                    }
                    py.detach(|| wait.run())?;
                    left = std::borrow::Cow::Owned(unsent(parts, *n));
                }
                (written, _) => return written,
            }
        }
    }

    /// Drops the state of a kept object's last request. The app's status and header
    /// strings go as `Bound`s, released at once: a `Py`'s drop first looks up pyo3's
    /// thread-local count of GIL holds (a `__tls_get_addr` call in this `dlopen`ed library),
    /// five of them for a response with two headers. (The status stays until then: a late
    /// `start_response` on an object the app kept must still see that it was called.)
    fn release_app_strings(mut self, py: Python<'_>) {
        for (name, value) in self.headers.drain(..) {
            drop((name.into_bound(py), value.into_bound(py)));
        }
        if let Some(status) = self.status.take() {
            drop(status.into_bound(py));
        }
    }

    /// Writes framing bytes (the last chunk) outside the body accounting.
    fn send_raw(&mut self, py: Python<'_>, bytes: &[u8]) -> io::Result<()> {
        let Some(client) = self.client.clone() else { return Ok(()) };
        client.write_all(&[bytes], &mut 0, |wait| py.detach(|| wait.run()))
    }
}

fn call_app(
    py: Python<'_>,
    thread: &super::PerThread,
    app: &WsgiApp,
    selected: &Selected<'_>,
    req: &Request<'_>,
    objects: &PerRequest,
    served: &mut Served,
) -> PyResult<()> {
    let state = &objects.start_response.get().writer.get().state;
    let template = if matches!(req.origin, Origin::Http { .. }) { &app.http_template } else { &app.template };
    let env = template.bind(py).copy()?;
    environ::fill(py, &env, &req.origin)?;
    if let Some(tls) = req.client.io().tls_facts() {
        environ::fill_tls(py, &env, &tls)?;
    }
    if let Some(path_info) = &selected.path_info {
        // manage-script-name: the mountpoint moves from PATH_INFO to SCRIPT_NAME.
        let script_name = environ::latin1(py, app.mounts.mountpoint(selected.id).as_bytes());
        env.set_item(intern!(py, "SCRIPT_NAME"), script_name)?;
        env.set_item(intern!(py, "PATH_INFO"), environ::latin1(py, path_info))?;
    }
    if app.mounts.is_vhost() {
        // uWSGI adds the key it routed by, `host|SCRIPT_NAME`, to the request's vars.
        let script_name = match &req.origin {
            Origin::Uwsgi { packet } => super::last_var(packet, b"SCRIPT_NAME"),
            Origin::Http { .. } => b"",
        };
        let key = [super::vhost_host(&req.origin), b"|", script_name].concat();
        env.set_item(intern!(py, "UWSGI_APPID"), environ::latin1(py, &key))?;
    }
    if let Some(route) = req.route {
        // addvar, rewrite, basicauth's REMOTE_USER: set over the request's own values.
        for (key, value) in &route.vars {
            env.set_item(PyString::new(py, key), environ::latin1(py, value))?;
        }
    }
    env.set_item(intern!(py, "wsgi.input"), objects.input.bind(py))?;
    served.vars = env.len();
    let result = app.callables[selected.id].bind(py).call1((env, objects.start_response.bind(py)))?;
    let _guard = CloseGuard { result: result.clone(), origin: &req.origin };
    if super::uwsgi_websocket::upgraded(thread) {
        // The request became a WebSocket: what the app returns (usually `[]`, no
        // start_response) is not a response.
        return Ok(());
    }
    if let Ok(list) = result.cast::<PyList>() {
        if list.len() == 1 {
            // The common `[body]`: no vector of items.
            return send_all(py, state, &[list.get_item(0)?]);
        }
        let items: Vec<Bound<'_, PyAny>> = list.iter().collect();
        return send_all(py, state, &items);
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        let items: Vec<Bound<'_, PyAny>> = tuple.iter().collect();
        return send_all(py, state, &items);
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if send_file(py, state, wrapper.get(), served)? {
            return Ok(());
        }
    }
    for item in result.try_iter()? {
        let item = item?;
        let bytes = as_bytes(&item)?;
        let mut st = lock(state);
        if st.broken {
            break;
        }
        if bytes.is_empty() && !st.head_sent {
            continue;
        }
        if st.status.is_none() {
            return Err(PyAssertionError::new_err("the app yielded body data before calling start_response()"));
        }
        if st.send(py, &[bytes], None, item.cast::<PyBytes>().ok()).is_err() {
            tracing::debug!("{}: client disconnected", describe(&req.origin));
            break;
        }
    }
    Ok(())
}

fn as_bytes<'a>(item: &'a Bound<'_, PyAny>) -> PyResult<&'a [u8]> {
    item.cast::<PyBytes>().map(PyBytesMethods::as_bytes).map_err(|_| {
        PyTypeError::new_err(format!(
            "the app must yield bytes, not {}",
            item.get_type().name().map(|n| n.to_string()).unwrap_or_default()
        ))
    })
}

/// A list or tuple: the whole body is known, so it goes out with a Content-Length in one write.
fn send_all(py: Python<'_>, state: &Shared, items: &[Bound<'_, PyAny>]) -> PyResult<()> {
    let one;
    let many;
    let parts: &[&[u8]] = if let [item] = items {
        one = [as_bytes(item)?];
        &one
    } else {
        many = items.iter().map(as_bytes).collect::<PyResult<Vec<&[u8]>>>()?;
        &many
    };
    let total = parts.iter().map(|p| p.len() as u64).sum();
    let mut st = lock(state);
    if st.status.is_none() {
        return Err(PyAssertionError::new_err("the app returned without calling start_response()"));
    }
    let _ = st.send(py, parts, Some(total), items.last().and_then(|i| i.cast::<PyBytes>().ok()));
    Ok(())
}

/// `wsgi.file_wrapper` over a regular file: head, then as much `sendfile` as the socket
/// takes now; what a slow client leaves goes back to the connection in `served.rest`.
/// Returns false when the object isn't a regular file (the caller iterates it instead).
fn send_file(py: Python<'_>, state: &Shared, wrapper: &FileWrapper, served: &mut Served) -> PyResult<bool> {
    let file = wrapper.filelike.bind(py);
    let Ok(fileno) = file.call_method0(intern!(py, "fileno")).and_then(|f| f.extract::<RawFd>()) else {
        return Ok(false);
    };
    // SAFETY: the file object is alive (bound above) for the whole of this function.
    #[allow(unsafe_code)]
    let file_fd = unsafe { BorrowedFd::borrow_raw(fileno) };
    let Ok(meta) = nix::sys::stat::fstat(file_fd) else { return Ok(false) };
    if meta.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Ok(false);
    }
    let offset = file.call_method0(intern!(py, "tell")).and_then(|t| t.extract::<u64>()).unwrap_or(0);
    let len = (meta.st_size as u64).saturating_sub(offset);
    let mut st = lock(state);
    if st.status.is_none() {
        return Err(PyAssertionError::new_err("the app returned without calling start_response()"));
    }
    if st.send(py, &[], Some(len), None).is_err() {
        return Ok(true);
    }
    // A known total always gives a Content-Length head, so the body is never chunked here.
    let BodyMode::Length(declared) = st.mode else { return Ok(true) };
    let to_send = declared.min(len);
    let Some(client) = st.client.clone() else { return Ok(true) };
    let mut next = offset;
    let mut left = to_send;
    while left > 0 {
        match client.try_send_file(file_fd, &mut next, left) {
            Ok(0) => break,
            Ok(n) => left -= n as u64,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                match file_fd.try_clone_to_owned() {
                    Ok(dup) => {
                        served.rest =
                            Some(BodyRest::File(FileRest { file: dup.into(), offset: next, remaining: left }));
                    }
                    Err(_) => st.broken = true,
                }
                break;
            }
            Err(_) => {
                st.broken = true;
                break;
            }
        }
    }
    let handed_over = match &served.rest {
        Some(BodyRest::File(r)) => r.remaining,
        _ => 0,
    };
    st.body_bytes += to_send - left;
    // Sent or handed over, the body is accounted for; a short file leaves `left` unsent.
    st.mode = BodyMode::Length(declared - (to_send - left) - handed_over);
    if st.broken {
        st.keep_alive = false;
    }
    served.sendfile = true;
    Ok(true)
}
