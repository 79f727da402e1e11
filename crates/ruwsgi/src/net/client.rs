//! The client connection as an app sees it: write (waiting when the socket is full), send a
//! file, wait for input. The app side (`wsgi/`, `asgi/`) gets a `Client` in each request and
//! never a raw fd; the bytes go through the connection's `transport::Io`, the plain socket
//! or a TLS session (`https`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use super::socket_io;
use super::transport::Io;

/// One request's connection, non-blocking. Cloned into the request (a clone shares the TLS
/// session); valid until the app's `handle` returns.
#[derive(Debug, Clone)]
pub struct Client {
    /// The stream.
    io: Io,
    /// `socket-timeout`: the longest wait for a client that doesn't read (or send).
    timeout: Duration,
}

/// A wait for the socket, run by the app side where it likes (`wsgi/` runs it with the
/// GIL released). `Send`, so it can cross into `Python::detach`.
#[derive(Debug, Clone)]
pub struct Wait {
    io: Io,
    writable: bool,
    timeout: Duration,
}

impl Wait {
    /// Blocks until the socket is ready or the timeout passes (`TimedOut`).
    pub fn run(self) -> io::Result<()> {
        self.io.wait(self.writable, self.timeout)
    }
}

impl Client {
    /// The connection `io`, waited on for at most `timeout` at a time.
    pub fn new(io: Io, timeout: Duration) -> Self {
        Self { io, timeout }
    }

    /// The socket's fd, for `uwsgi.connection_fd()` (an app that wants it may only use it
    /// while its request runs).
    pub fn raw_fd(&self) -> RawFd {
        self.io.fd()
    }

    /// The stream (for the environ's TLS facts).
    pub fn io(&self) -> &Io {
        &self.io
    }

    /// The socket-timeout this connection waits with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Writes all of `bufs`; when the socket is full, hands a `Wait` to `wait` (which runs
    /// it, e.g. without the GIL). `sent` grows by every byte written, also when the write
    /// stops part way.
    pub fn write_all(
        &self,
        bufs: &[&[u8]],
        sent: &mut u64,
        mut wait: impl FnMut(Wait) -> io::Result<()>,
    ) -> io::Result<()> {
        let w = Wait { io: self.io.clone(), writable: true, timeout: self.timeout };
        self.io.write_all(bufs, sent, || wait(w.clone()))
    }

    /// One non-blocking `sendfile` of up to `len` bytes of `file` from `*offset`
    /// (advanced by what went out); `WouldBlock` when the socket is full.
    pub fn try_send_file(&self, file: BorrowedFd<'_>, offset: &mut u64, len: u64) -> io::Result<usize> {
        self.io.try_send_file(file, offset, len)
    }

    /// One non-blocking read (`Ok(0)`: the client closed; `WouldBlock`: nothing yet).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// A wait for input (the rest of a request body).
    pub fn readable(&self) -> Wait {
        Wait { io: self.io.clone(), writable: false, timeout: self.timeout }
    }

    /// A wait for input of at most `timeout` (a WebSocket's wait between its pings).
    pub fn readable_within(&self, timeout: Duration) -> Wait {
        Wait { io: self.io.clone(), writable: false, timeout }
    }

    /// Waits up to `timeout` for `other` to become readable or for input (or a hang-up) on
    /// the connection; true when the connection is the one that woke.
    pub fn wait_with(&self, other: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if self.io.has_plaintext() {
            // Decrypted input already waits in the TLS session.
            return Ok(true);
        }
        let me = socket_io::borrow(self.io.fd());
        let mut fds = [PollFd::new(other, PollFlags::POLLIN), PollFd::new(me, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(fds[1].any().unwrap_or(false)),
            Err(e) => Err(e.into()),
        }
    }

    /// A duplicate of the socket for a session that outlives the request (a WebSocket
    /// moving to a thread of its own); the connection loop closes its own copy.
    pub fn try_clone_owned(&self) -> io::Result<OwnedClient> {
        if self.io.is_tls() {
            // The TLS session stays with the connection loop, which closes it after the
            // request: over TLS a long session keeps the request's thread instead.
            return Err(io::Error::new(io::ErrorKind::Unsupported, "a TLS connection can't leave its loop"));
        }
        let fd = socket_io::borrow(self.io.fd()).try_clone_to_owned()?;
        Ok(OwnedClient { fd, timeout: self.timeout })
    }

    /// The peer closed its end or the connection failed (checked without blocking and
    /// without reading: bytes waiting to be read don't count).
    pub fn hung_up(&self) -> bool {
        socket_io::hung_up(self.io.fd())
    }
}

/// A connection owned by the app side (see `Client::try_clone_owned`); closed when dropped.
#[derive(Debug)]
pub struct OwnedClient {
    fd: OwnedFd,
    timeout: Duration,
}

impl OwnedClient {
    /// The connection, to write and wait on.
    pub fn client(&self) -> Client {
        Client { io: Io::plain(self.fd.as_raw_fd()), timeout: self.timeout }
    }
}
