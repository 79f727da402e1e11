//! The client connection as an app sees it: write (waiting when the socket is full), send a
//! file, wait for input. The app side (`wsgi/`, `asgi/`) gets a `Client` in each request and
//! never a raw fd; the bytes go through the connection's `transport::Io`, the plain socket
//! or a TLS session (`https`).

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use super::socket_io;
use super::transport::Io;
use crate::interface::Want;

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
    /// while its request runs); -1 for an HTTP/2 stream, which has no socket of its own.
    pub fn raw_fd(&self) -> RawFd {
        if self.io.pipe().is_some() {
            return -1;
        }
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

    /// Waits up to `timeout` for `wake` to become readable or for `want` on the connection
    /// (a parked request run to its end on one thread); true when the connection failed
    /// or the client hung up.
    pub fn wait_with(&self, wake: BorrowedFd<'_>, want: Want, timeout: Duration) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        if want == Want::Input && self.io.has_plaintext() {
            // Decrypted input already waits in the TLS session.
            return Ok(false);
        }
        if let Some(pipe) = self.io.pipe() {
            // An HTTP/2 stream: its eventfd is readable on any change; the pipe says which.
            let ready = match want {
                Want::Input => pipe.is_ready(false),
                Want::Output => pipe.is_ready(true),
                Want::Hangup => pipe.hung_up(),
                Want::Nothing => false,
            };
            if !ready {
                let me = socket_io::borrow(self.io.fd());
                let mut fds = [PollFd::new(wake, PollFlags::POLLIN), PollFd::new(me, PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => pipe.clear_signal(),
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(pipe.hung_up());
        }
        let flags = match want {
            Want::Input => PollFlags::POLLIN,
            Want::Output => PollFlags::POLLOUT,
            Want::Hangup => PollFlags::from_bits_retain(libc::POLLRDHUP),
            Want::Nothing => PollFlags::empty(),
        };
        let me = socket_io::borrow(self.io.fd());
        let mut fds = [PollFd::new(wake, PollFlags::POLLIN), PollFd::new(me, flags)];
        match poll(&mut fds, PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {
                Ok(fds[1].revents().is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The peer closed its end or the connection failed (checked without blocking and
    /// without reading: bytes waiting to be read don't count).
    pub fn hung_up(&self) -> bool {
        if let Some(pipe) = self.io.pipe() {
            return pipe.hung_up();
        }
        socket_io::hung_up(self.io.fd())
    }
}
