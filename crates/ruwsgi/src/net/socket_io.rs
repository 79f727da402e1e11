//! Blocking-with-deadline helpers over non-blocking sockets. Callers in `wsgi/` try the
//! non-blocking call first while holding the GIL and only detach to wait.

use std::io::{self, IoSlice};
use std::os::fd::{BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Borrow a raw fd that the caller keeps open for the duration of the call.
pub(super) fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: every caller passes the fd of a connection it owns and keeps open until the
    // call returns; the 'static borrow never escapes these helpers.
    #[allow(unsafe_code)]
    unsafe {
        BorrowedFd::borrow_raw(fd)
    }
}

/// One non-blocking `read`. `Ok(0)` is end of stream; `WouldBlock` when nothing is there.
pub fn try_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(borrow(fd), buf) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// One non-blocking vectored write (`writev`/`sendmsg`), no SIGPIPE.
pub fn try_write(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    try_send(fd, bufs, false)
}

/// `try_write`, with `more` meaning more data follows at once (`MSG_MORE`): a response head
/// then goes out in the same TCP segment as the start of its `sendfile` body.
pub fn try_send(fd: RawFd, bufs: &[IoSlice<'_>], more: bool) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, MsgFlags};
    // nix has no name for MSG_MORE.
    let more = if more { MsgFlags::from_bits_retain(libc::MSG_MORE) } else { MsgFlags::empty() };
    let flags = MsgFlags::MSG_NOSIGNAL | more;
    loop {
        match sendmsg::<()>(fd, bufs, &[], flags, None) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until `fd` is readable (or writable) or `timeout` passes.
pub fn wait(fd: RawFd, writable: bool, timeout: Duration) -> io::Result<()> {
    let flags = if writable { PollFlags::POLLOUT } else { PollFlags::POLLIN };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "socket timeout"));
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(borrow(fd), flags)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `bufs`, waiting (via `wait_fn`, which the caller may run without the GIL)
/// whenever the socket is full. `sent` grows by every byte written, also when an error or
/// a timeout stops the write part way (the request log counts what went out).
pub fn write_all(fd: RawFd, bufs: &[&[u8]], sent: &mut u64, wait_fn: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    write_all_with(|slices| try_write(fd, slices), bufs, sent, wait_fn)
}

/// `write_all` over any non-blocking vectored `write` (an HTTP/2 stream's `StreamPipe`).
pub fn write_all_with(
    mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    bufs: &[&[u8]],
    sent: &mut u64,
    mut wait_fn: impl FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let mut idx = 0;
    let mut off = 0;
    while idx < bufs.len() {
        if bufs[idx].len() == off {
            idx += 1;
            off = 0;
            continue;
        }
        let mut slices: [IoSlice<'_>; 8] = [IoSlice::new(&[]); 8];
        let mut n_slices = 0;
        for (i, b) in bufs[idx..].iter().enumerate().take(8) {
            slices[i] = IoSlice::new(if i == 0 { &b[off..] } else { b });
            n_slices += 1;
        }
        match write(&slices[..n_slices]) {
            Ok(mut n) => {
                *sent += n as u64;
                while n > 0 {
                    let left = bufs[idx].len() - off;
                    if n >= left {
                        n -= left;
                        idx += 1;
                        off = 0;
                    } else {
                        off += n;
                        n = 0;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_fn()?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One non-blocking `sendfile` of up to `len` bytes from `file` at `*offset`, which is
/// advanced by what was sent. `WouldBlock` when the socket is full.
pub fn try_send_file(fd: RawFd, file: BorrowedFd<'_>, offset: &mut u64, len: u64) -> io::Result<usize> {
    loop {
        let mut off = *offset as i64;
        let chunk = len.min(1 << 30) as usize;
        match nix::sys::sendfile::sendfile(borrow(fd), file, Some(&mut off), chunk) {
            Ok(n) => {
                *offset += n as u64;
                return Ok(n);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// True when the peer has shut down its sending side or the connection failed; looks
/// without blocking and without taking any bytes. Bytes still waiting to be read hide a
/// shutdown behind them (they are the next request's).
pub fn hung_up(fd: RawFd) -> bool {
    use nix::sys::socket::{recv, MsgFlags};
    let mut probe = [0u8; 1];
    match recv(fd, &mut probe, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(n) => n == 0,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => false,
        Err(_) => true,
    }
}
