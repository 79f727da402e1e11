//! `wsgi.input` (a stream over the request body that never reads past it) and
//! `wsgi.file_wrapper`. Socket waits happen with the GIL released.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pyo3::exceptions::{PyIOError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::interface::{BodyProgress as Progress, BodyReader, Wait};

/// Body reader plus bytes read from it but not yet returned (for `readline`).
pub struct InputState {
    /// The body source; replaced by an empty reader when the request ends.
    pub reader: BodyReader,
    /// Decoded body bytes not yet handed to the app.
    pending: Vec<u8>,
    /// Bytes the app has read, for the log.
    pub consumed: u64,
    /// How long to wait for a stalled client.
    timeout: Duration,
}

impl InputState {
    /// A request's body, waited for at most `timeout` at a time.
    pub fn new(reader: BodyReader, timeout: Duration) -> Self {
        Self { reader, pending: Vec::new(), consumed: 0, timeout }
    }
}

/// Locks, ignoring poisoning (a panic elsewhere leaves the state usable: it holds only bytes).
pub fn lock(s: &Mutex<InputState>) -> MutexGuard<'_, InputState> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where a read should stop.
#[derive(Clone, Copy)]
enum Until {
    /// At most this many bytes (`usize::MAX` = to the end).
    Len(usize),
    /// Through the first newline, or this many bytes.
    Line(usize),
}

impl InputState {
    /// Position in `pending` where a read of kind `until` is satisfied, if it already is.
    fn satisfied(&self, until: Until, ended: bool) -> Option<usize> {
        let have = self.pending.len();
        match until {
            Until::Len(n) if have >= n => Some(n),
            Until::Line(n) => match self.pending.iter().take(n).position(|&b| b == b'\n') {
                Some(i) => Some(i + 1),
                None if have >= n => Some(n),
                None => ended.then_some(have),
            },
            Until::Len(_) => ended.then_some(have),
        }
    }

    /// The size of the `bytes` a `read` of `until` returns, when it can be read straight
    /// into them: a length read of a `Content-Length` body with nothing pending, at most
    /// `DIRECT_MAX` bytes or what has arrived already (a larger one grows as the bytes
    /// arrive, so a client's claimed length alone doesn't allocate: a thread allocates at
    /// most `DIRECT_MAX` for bytes that may never come).
    fn direct_size(&self, until: Until) -> Option<usize> {
        let Until::Len(n) = until else { return None };
        let left = self.reader.length_left()?;
        let size = usize::try_from(left).ok()?.min(n);
        let limit = DIRECT_MAX.max(self.reader.buffered());
        (self.pending.is_empty() && size > 0 && size <= limit).then_some(size)
    }

    /// Reads until `until` is met. `wait` is called to block (up to `timeout`) for more input.
    fn read(
        &mut self,
        until: Until,
        timeout: Duration,
        mut wait: impl FnMut(Wait) -> std::io::Result<()>,
    ) -> std::io::Result<Vec<u8>> {
        let mut ended = false;
        loop {
            if let Some(n) = self.satisfied(until, ended) {
                let rest = self.pending.split_off(n);
                let out = std::mem::replace(&mut self.pending, rest);
                self.consumed += out.len() as u64;
                return Ok(out);
            }
            let missing = match until {
                Until::Len(n) | Until::Line(n) => n.saturating_sub(self.pending.len()).clamp(1, 1 << 20),
            };
            match self.reader.read_some(&mut self.pending, missing)? {
                Progress::Data(_) => {}
                Progress::End => ended = true,
                Progress::WouldBlock => wait(self.reader.readable(timeout))?,
            }
        }
    }
}

/// The `wsgi.input` object. Its state is the request's: the request reads the body reader
/// back from it when the app returns.
#[pyclass(frozen, module = "ruwsgi")]
pub struct Input {
    /// The request body.
    pub state: Mutex<InputState>,
}

impl Input {
    fn read_py<'py>(&self, py: Python<'py>, until: Until) -> PyResult<Bound<'py, PyBytes>> {
        // Fast path: bytes already here (the common small body), no GIL release.
        if let Ok(mut st) = self.state.try_lock() {
            let timeout = st.timeout;
            if let Some(size) = st.direct_size(until) {
                return read_direct(py, &mut st, size, timeout);
            }
            let mut blocked = false;
            let r = st.read(until, timeout, |_| {
                blocked = true;
                Err(std::io::ErrorKind::WouldBlock.into())
            });
            match r {
                Ok(bytes) => return Ok(PyBytes::new(py, &bytes)),
                Err(_) if blocked => {}
                Err(e) => return Err(PyIOError::new_err(format!("error reading the request body: {e}"))),
            }
        }
        let state = &self.state;
        let r = py.detach(|| {
            let mut st = lock(state);
            let timeout = st.timeout;
            st.read(until, timeout, Wait::run)
        });
        match r {
            Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
            Err(e) => Err(PyIOError::new_err(format!("error reading the request body: {e}"))),
        }
    }
}

/// Largest `read()` filled straight into its `bytes` object (see `direct_size`).
const DIRECT_MAX: usize = 1 << 20;

/// Reads exactly `size` body bytes (`direct_size` said they are due) straight into a new
/// `bytes` object: one copy from the connection's buffer or the socket, none through
/// `pending`. Waits for the client with the GIL released.
fn read_direct<'py>(
    py: Python<'py>,
    st: &mut InputState,
    size: usize,
    timeout: Duration,
) -> PyResult<Bound<'py, PyBytes>> {
    let read_error = |e: std::io::Error| PyIOError::new_err(format!("error reading the request body: {e}"));
    let bytes = PyBytes::new_with(py, size, |buf| {
        let mut filled = 0;
        while filled < size {
            match st.reader.read_into(&mut buf[filled..]).map_err(read_error)? {
                Progress::Data(n) => filled += n,
                Progress::End => {
                    return Err(read_error(std::io::ErrorKind::UnexpectedEof.into()));
                }
                Progress::WouldBlock => {
                    let wait = st.reader.readable(timeout);
                    py.detach(|| wait.run()).map_err(read_error)?;
                }
            }
        }
        Ok(())
    })?;
    st.consumed += size as u64;
    Ok(bytes)
}

fn limit(size: Option<isize>) -> usize {
    match size {
        Some(n) if n >= 0 => n as usize,
        _ => usize::MAX,
    }
}

#[pymethods]
impl Input {
    /// `read(size=-1)`.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_py(py, Until::Len(limit(size)))
    }

    /// `readline(size=-1)`.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_py(py, Until::Line(limit(size)))
    }

    /// `readlines(hint=-1)`.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_py(py, Until::Line(usize::MAX))?;
            if line.as_bytes().is_empty() {
                break;
            }
            total += line.as_bytes().len();
            lines.push(line);
            if total >= hint {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let line = self.read_py(py, Until::Line(usize::MAX))?;
        if line.as_bytes().is_empty() {
            Err(PyStopIteration::new_err(()))
        } else {
            Ok(line)
        }
    }
}

/// `wsgi.file_wrapper`: iterates a file-like object in blocks; the server sends regular
/// files with `sendfile` instead of iterating.
#[pyclass(frozen, module = "ruwsgi")]
pub struct FileWrapper {
    /// The file-like object.
    pub filelike: Py<PyAny>,
    /// Block size for iteration.
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self { filelike, blksize: blksize.max(1) }
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        if data.is_truthy()? {
            Ok(data)
        } else {
            Err(PyStopIteration::new_err(()))
        }
    }

    /// Closes the wrapped file (PEP 3333: the server calls this like any iterable's close).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let f = self.filelike.bind(py);
        if f.hasattr("close")? {
            f.call_method0("close")?;
        }
        Ok(())
    }
}
