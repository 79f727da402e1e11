//! A connection's byte stream as the loop, the body reader, the app's response and static
//! files see it: the plain non-blocking socket, or a TLS session over it (`tls.rs`). Every
//! call is non-blocking (`WouldBlock` when the socket can't go on); `wait` blocks for
//! readiness and is what `wsgi/` runs without the GIL. Over TLS, `sendfile` becomes read +
//! encrypt, and a write is done only once its records have left (`write_all` flushes).
//! An HTTP/2 stream served by a loop thread is a third kind: no socket, but the in-memory
//! `StreamPipe` to the HTTP/2 thread, with the same non-blocking calls.

use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::socket_io;
use super::stream_pipe::{StreamPipe, RESPONSE_ROOM};
use super::tls::{ClientCert, Session, WRITE_CHUNK};

/// A connection's stream; cheap to clone (the TLS session is shared).
#[derive(Clone)]
pub struct Io {
    /// The socket, owned by the connection (`-1`: closed, see `Io::closed`).
    fd: RawFd,
    /// The TLS session, on an `https` socket.
    tls: Option<Arc<Mutex<Session>>>,
    /// An HTTP/2 stream's pipe (then `fd()` is its eventfd, for epoll and `poll` only).
    pipe: Option<Arc<StreamPipe>>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.tls.is_some() {
            ", tls"
        } else if self.pipe.is_some() {
            ", http2 stream"
        } else {
            ""
        };
        write!(f, "Io({}{kind})", self.fd)
    }
}

/// What the environ says about a TLS connection.
pub struct TlsFacts {
    /// The client's certificate, when it sent one.
    pub client: Option<Arc<ClientCert>>,
}

impl Io {
    /// The plain socket `fd`.
    pub fn plain(fd: RawFd) -> Self {
        Self { fd, tls: None, pipe: None }
    }

    /// TLS over `fd`.
    pub fn tls(fd: RawFd, session: Session) -> Self {
        Self { fd, tls: Some(Arc::new(Mutex::new(session))), pipe: None }
    }

    /// An HTTP/2 stream's `pipe`.
    pub fn stream(pipe: Arc<StreamPipe>) -> Self {
        Self { fd: -1, tls: None, pipe: Some(pipe) }
    }

    /// No connection (a finished request's): every read or write fails.
    pub fn closed() -> Self {
        Self { fd: -1, tls: None, pipe: None }
    }

    /// The HTTP/2 stream's pipe, when this is one.
    pub fn pipe(&self) -> Option<&StreamPipe> {
        self.pipe.as_deref()
    }

    /// The socket (an HTTP/2 stream's eventfd, made on this first call).
    pub fn fd(&self) -> RawFd {
        self.pipe.as_ref().map_or(self.fd, |pipe| pipe.signal_fd())
    }

    /// True for `Io::closed`.
    pub fn is_closed(&self) -> bool {
        self.fd < 0 && self.pipe.is_none()
    }

    fn session(&self) -> Option<MutexGuard<'_, Session>> {
        self.tls.as_ref().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// One non-blocking read. `Ok(0)` is end of stream; `WouldBlock` when nothing is there.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(pipe) = &self.pipe {
            return pipe.try_read(buf);
        }
        match self.session() {
            Some(mut s) => s.try_read(self.fd, buf),
            None => socket_io::try_read(self.fd, buf),
        }
    }

    /// One non-blocking vectored write; returns the bytes taken.
    pub fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.try_send(bufs, false)
    }

    /// `try_write`; `more` (plain sockets: `MSG_MORE`) says more data follows at once.
    pub fn try_send(&self, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
        if let Some(pipe) = &self.pipe {
            return pipe.try_write(bufs);
        }
        match self.session() {
            Some(mut s) => s.try_write(self.fd, bufs),
            None => socket_io::try_send(self.fd, bufs, more),
        }
    }

    /// Sends up to `len` bytes of `file` from `*offset`, which advances by what went out:
    /// `sendfile` on a plain socket, read + encrypt over TLS.
    pub fn try_send_file(&self, file: BorrowedFd<'_>, offset: &mut u64, len: u64) -> io::Result<usize> {
        if let Some(pipe) = &self.pipe {
            if !pipe.is_ready(true) {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let chunk = read_at(file, *offset, len.min(RESPONSE_ROOM as u64))?;
            let taken = pipe.try_write(&[IoSlice::new(&chunk)])?;
            *offset += taken as u64;
            return Ok(taken);
        }
        let Some(mut s) = self.session() else { return socket_io::try_send_file(self.fd, file, offset, len) };
        if !s.flush(self.fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let chunk = read_at(file, *offset, len.min(WRITE_CHUNK as u64))?;
        if chunk.is_empty() {
            return Ok(0);
        }
        let taken = s.try_write(self.fd, &[IoSlice::new(&chunk)])?;
        *offset += taken as u64;
        Ok(taken)
    }

    /// Waits until the stream is readable (or writable) or `timeout` passes. Decrypted
    /// plaintext not yet read counts as readable.
    pub fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()> {
        if let Some(pipe) = &self.pipe {
            return pipe.wait(writable, timeout);
        }
        if !writable && self.session().is_some_and(|mut s| s.has_plaintext()) {
            return Ok(());
        }
        socket_io::wait(self.fd, writable, timeout)
    }

    /// Writes all of `bufs` (and, over TLS, sends every record), waiting with `wait_fn`
    /// whenever the socket is full. `sent` grows by every byte taken, also when an error
    /// or a timeout stops the write part way.
    pub fn write_all(
        &self,
        bufs: &[&[u8]],
        sent: &mut u64,
        mut wait_fn: impl FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(pipe) = &self.pipe {
            return socket_io::write_all_with(|slices| pipe.try_write(slices), bufs, sent, wait_fn);
        }
        let Some(tls) = &self.tls else { return socket_io::write_all(self.fd, bufs, sent, wait_fn) };
        let (mut idx, mut off) = (0, 0);
        while idx < bufs.len() {
            if bufs[idx].len() == off {
                idx += 1;
                off = 0;
                continue;
            }
            let slices: Vec<IoSlice<'_>> =
                std::iter::once(&bufs[idx][off..]).chain(bufs[idx + 1..].iter().copied()).map(IoSlice::new).collect();
            let result = tls.lock().unwrap_or_else(PoisonError::into_inner).try_write(self.fd, &slices);
            match result {
                Ok(mut n) => {
                    *sent += n as u64;
                    while n > 0 {
                        let step = n.min(bufs[idx].len() - off);
                        off += step;
                        n -= step;
                        if off == bufs[idx].len() && idx + 1 < bufs.len() {
                            idx += 1;
                            off = 0;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_fn()?,
                Err(e) => return Err(e),
            }
        }
        while !tls.lock().unwrap_or_else(PoisonError::into_inner).flush(self.fd)? {
            wait_fn()?;
        }
        Ok(())
    }

    /// TLS only: takes `bufs` for the session's queue of records without sending them
    /// (`flush` sends); `Ok(0)` when `tls::QUEUE_LIMIT` bytes wait already.
    pub fn queue(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self.session() {
            Some(mut s) => s.queue(bufs),
            None => Err(io::Error::new(io::ErrorKind::Unsupported, "not a TLS connection")),
        }
    }

    /// TLS records are waiting for room in the socket (the loop then waits for EPOLLOUT).
    pub fn wants_write(&self) -> bool {
        self.session().is_some_and(|s| s.wants_write())
    }

    /// Sends queued TLS records: `Ok(true)` when none are left.
    pub fn flush(&self) -> io::Result<bool> {
        self.session().map_or(Ok(true), |mut s| s.flush(self.fd))
    }

    /// Decrypted input waits in the TLS session: the socket won't signal it.
    pub fn has_plaintext(&self) -> bool {
        self.session().is_some_and(|mut s| s.has_plaintext())
    }

    /// A TLS handshake is under way.
    pub fn handshaking(&self) -> bool {
        self.session().is_some_and(|s| s.handshaking())
    }

    /// Before the connection closes: TLS `close_notify`, best effort.
    pub fn close_notify(&self) {
        if let Some(mut s) = self.session() {
            s.close_notify(self.fd);
        }
    }

    /// `Some` on a TLS connection (`HTTPS=on`), with the client's certificate.
    pub fn tls_facts(&self) -> Option<TlsFacts> {
        self.session().map(|mut s| TlsFacts { client: s.client_cert() })
    }

    /// TLS with HTTP/2 agreed by ALPN.
    pub fn alpn_h2(&self) -> bool {
        self.session().is_some_and(|s| s.alpn_h2())
    }

    /// True on a TLS connection.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Up to `len` bytes of `file` from `offset` (fewer at its end).
fn read_at(file: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut chunk = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    loop {
        match nix::sys::uio::pread(file, &mut chunk, offset as i64) {
            Ok(n) => {
                chunk.truncate(n);
                return Ok(chunk);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
