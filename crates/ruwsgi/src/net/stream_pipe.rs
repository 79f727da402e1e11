//! The in-memory stream between the HTTP/2 thread (`http2.rs`) and the loop thread that
//! serves one HTTP/2 stream (`connection.rs`): the request body one way, the app's HTTP/1.1
//! response the other, in two bounded buffers. (The request's head is handed over with the
//! stream itself, as a value: `http2::Handed`.)
//!
//! It stands where a Unix socket pair stood, with the same semantics and without a socket,
//! its reads and writes through the kernel, or the reactor registration of the HTTP/2 side:
//! - The loop side sees a non-blocking stream (`transport::Io`): `try_read` gives request
//!   bytes or `WouldBlock`, and end of stream once the HTTP/2 side is gone (the client reset
//!   the stream); `try_write` takes response bytes while there is room, `WouldBlock` when
//!   `RESPONSE_ROOM` is queued (a client that doesn't read holds the app's writes, as a full
//!   socket does), and fails once the HTTP/2 side is gone (a client that went away).
//!   `wait` blocks on a condition variable; an eventfd (`signal`) stands for the stream in
//!   the loop's epoll set and in `poll`, readable whenever the HTTP/2 side changed
//!   something (the loop re-checks the buffers then; it is never writable-only). It is made
//!   only when the loop first needs it (a body still on its way, an ASGI request, a static
//!   file): most streams are served without one.
//! - The HTTP/2 side awaits the response (bytes, or the loop closed its end: the response is
//!   complete) with a waker the loop hands to the worker's `Bell`, so responses finished
//!   while the HTTP/2 thread is busy wake it once, not once each; and the request buffer's
//!   room with a tokio `Notify` (the body's flow-control credit goes back to the client only
//!   for what the buffer took).
//!
//! No I/O besides the eventfd; no knowledge of HTTP/2 or of the app.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::sync::Notify;

/// Request bytes queued for the app at most (the HTTP/2 side waits beyond): as the stream's
/// flow-control window, the body a slow app lets a client have in flight.
pub const REQUEST_ROOM: usize = 64 * 1024;
/// Response bytes queued for the client at most (the app's write waits beyond): room for a
/// response of a few hundred KiB in one write, as a socket pair's kernel buffer gave.
pub const RESPONSE_ROOM: usize = 256 * 1024;

/// The HTTP/2 thread's doorbell for the loop threads: they hand it the wakers of HTTP/2
/// tasks their writes made ready. A tokio task woken from another thread costs an eventfd
/// write and a turn of the runtime's epoll each time; here only the first waker of a batch
/// does (`rung`), and the HTTP/2 thread's `serve` task wakes the batch from inside the
/// runtime, where a wake is a queue push.
#[derive(Default)]
pub struct Bell {
    /// Wakers handed over since `serve` last took them.
    wakers: Mutex<Vec<Waker>>,
    /// Rung when `wakers` stops being empty.
    rung: Notify,
}

impl Bell {
    /// Wakes `waker` from the HTTP/2 thread.
    fn ring(&self, waker: Waker) {
        let mut wakers = self.wakers.lock().unwrap_or_else(PoisonError::into_inner);
        let first = wakers.is_empty();
        wakers.push(waker);
        drop(wakers);
        if first {
            self.rung.notify_one();
        }
    }

    /// Runs on the HTTP/2 thread for the worker's life: wakes what the loop threads handed.
    pub async fn serve(&self) {
        let mut batch = Vec::new();
        loop {
            self.rung.notified().await;
            std::mem::swap(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner), &mut batch);
            for waker in batch.drain(..) {
                waker.wake();
            }
        }
    }
}

/// One stream's two buffers and their wake-ups; shared (`Arc`) by both sides.
pub struct StreamPipe {
    state: Mutex<PipeState>,
    /// Wakes a loop thread blocked in `wait`.
    changed: Condvar,
    /// Wakes the HTTP/2 task that relays the response (`PipeState::relay`).
    bell: Arc<Bell>,
    /// Wakes the HTTP/2 task that pumps the request body.
    request_room: Notify,
}

#[derive(Default)]
struct PipeState {
    /// Request bytes the loop thread has not read yet.
    request: BytesMut,
    /// Response bytes the HTTP/2 side has not taken yet.
    response: BytesMut,
    /// The HTTP/2 side is gone (the stream was reset or its task ended): reads see end of
    /// stream, writes fail.
    gone: bool,
    /// The request body was cut (the client's stream failed, or it passed `limit-post`):
    /// reads see end of stream once the buffer is empty, as from a socket shut for writing.
    cut: bool,
    /// The loop thread closed its end: the response is complete.
    closed: bool,
    /// Loop-side threads blocked in `wait` (the condition variable is signalled only then).
    waiters: usize,
    /// Readable when the HTTP/2 side changed something (the loop's epoll and `poll` watch
    /// it); made when the loop first asks for it, and open as long as the pipe.
    signal: Option<EventFd>,
    /// The HTTP/2 task waiting for the response (bytes, or the loop's close).
    relay: Option<Waker>,
}

/// What the HTTP/2 side finds in the response buffer.
pub enum Response {
    /// The next bytes of the response.
    Data(BytesMut),
    /// The loop thread closed its end: no more bytes come.
    Closed,
}

impl StreamPipe {
    /// An empty pipe whose HTTP/2 side is woken through `bell`.
    pub fn new(bell: Arc<Bell>) -> Self {
        Self { state: Mutex::new(PipeState::default()), changed: Condvar::new(), bell, request_room: Notify::new() }
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the loop side something changed (called with the lock held).
    fn wake_loop(&self, st: &PipeState) {
        if st.waiters > 0 {
            self.changed.notify_all();
        }
        if let (false, Some(signal)) = (st.closed, &st.signal) {
            let _ = signal.write(1);
        }
    }

    /// The eventfd the loop watches the stream with (`-1` if none can be made: the caller's
    /// epoll or `poll` then fails and the stream is closed). Made readable at once: the
    /// HTTP/2 side may have changed something before it existed, so the loop looks again.
    pub fn signal_fd(&self) -> RawFd {
        let mut st = self.lock();
        if st.signal.is_none() {
            let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
            st.signal = EventFd::from_value_and_flags(1, flags).ok();
        }
        st.signal.as_ref().map_or(-1, |s| s.as_fd().as_raw_fd())
    }

    // ---- the loop thread's side (through `transport::Io`) ----

    /// One non-blocking read of request bytes: `Ok(0)` once the HTTP/2 side is gone.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut st = self.lock();
        if st.request.is_empty() {
            return if st.gone || st.cut { Ok(0) } else { Err(io::ErrorKind::WouldBlock.into()) };
        }
        let was_full = st.request.len() >= REQUEST_ROOM;
        let n = buf.len().min(st.request.len());
        buf[..n].copy_from_slice(&st.request[..n]);
        st.request.advance(n);
        if was_full && st.request.len() < REQUEST_ROOM {
            self.request_room.notify_one();
        }
        Ok(n)
    }

    /// One non-blocking write of response bytes, as many as there is room for.
    pub fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut st = self.lock();
        if st.gone {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let mut room = RESPONSE_ROOM.saturating_sub(st.response.len());
        if room == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut n = 0;
        for buf in bufs {
            let take = buf.len().min(room);
            st.response.extend_from_slice(&buf[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        let relay = if n > 0 { st.relay.take() } else { None };
        drop(st);
        if let Some(relay) = relay {
            self.bell.ring(relay);
        }
        Ok(n)
    }

    fn ready(st: &PipeState, writable: bool) -> bool {
        st.gone || if writable { st.response.len() < RESPONSE_ROOM } else { st.cut || !st.request.is_empty() }
    }

    /// Waits until there is request input (or room for response bytes), or `timeout`.
    pub fn wait(&self, writable: bool, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while !Self::ready(&st, writable) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "socket timeout"));
            }
            st.waiters += 1;
            st = self.changed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
            st.waiters -= 1;
        }
        Ok(())
    }

    /// Ready now for input (`writable` false) or output, or the HTTP/2 side is gone.
    pub fn is_ready(&self, writable: bool) -> bool {
        Self::ready(&self.lock(), writable)
    }

    /// The HTTP/2 side is gone (the client reset the stream).
    pub fn hung_up(&self) -> bool {
        self.lock().gone
    }

    /// Empties the eventfd (the loop is about to look at the buffers).
    pub fn clear_signal(&self) {
        if let Some(signal) = &self.lock().signal {
            let _ = signal.read();
        }
    }

    /// The loop thread is done with the stream: the response is complete. Its eventfd is
    /// left empty and written no more, so an epoll set it stays in (until the HTTP/2 side
    /// drops the pipe and it closes) never reports it again.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        if let Some(signal) = &st.signal {
            let _ = signal.read();
        }
        let relay = st.relay.take();
        drop(st);
        if let Some(relay) = relay {
            self.bell.ring(relay);
        }
    }

    // ---- the HTTP/2 thread's side ----

    /// Queues request body bytes. The caller waits for `request_room` first.
    pub fn push_request(&self, bytes: &[u8]) {
        let mut st = self.lock();
        st.request.extend_from_slice(bytes);
        self.wake_loop(&st);
    }

    /// No more request bytes come: the app's read sees end of stream after what is queued.
    pub fn cut_request(&self) {
        let mut st = self.lock();
        st.cut = true;
        self.wake_loop(&st);
    }

    /// Waits until the request buffer has room, or the loop closed its end (false).
    pub async fn request_room(&self) -> bool {
        loop {
            {
                let st = self.lock();
                if st.closed {
                    return false;
                }
                if st.request.len() < REQUEST_ROOM {
                    return true;
                }
            }
            self.request_room.notified().await;
        }
    }

    /// Waits for response bytes (all that are queued) or for the loop to close its end.
    pub async fn take_response(&self) -> Response {
        poll_fn(|cx| self.poll_response(cx)).await
    }

    fn poll_response(&self, cx: &mut Context<'_>) -> Poll<Response> {
        let mut st = self.lock();
        if !st.response.is_empty() {
            let was_full = st.response.len() >= RESPONSE_ROOM;
            let data = st.response.split();
            if was_full {
                self.wake_loop(&st);
            }
            return Poll::Ready(Response::Data(data));
        }
        if st.closed {
            return Poll::Ready(Response::Closed);
        }
        match &mut st.relay {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            relay => *relay = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The HTTP/2 side is done with the stream (answered, or reset by the client).
    pub fn finish(&self) {
        let mut st = self.lock();
        if !st.gone {
            st.gone = true;
            if !st.closed {
                self.wake_loop(&st);
            }
        }
    }

    /// The HTTP/2 side finished before a loop thread took the stream.
    pub fn abandoned(&self) -> bool {
        self.lock().gone
    }
}

/// The loop thread's hold on a stream: dropped with its connection, which ends the response.
pub struct PipeEnd(pub std::sync::Arc<StreamPipe>);

impl Drop for PipeEnd {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl std::fmt::Debug for StreamPipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamPipe")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    fn pipe() -> StreamPipe {
        StreamPipe::new(Arc::new(Bell::default()))
    }

    #[test]
    fn the_loop_reads_the_body_then_waits_and_sees_end_of_stream_once_the_http2_side_is_gone() {
        let pipe = pipe();
        pipe.push_request(b"packet");
        let mut buf = [0u8; 4];
        assert_eq!(pipe.try_read(&mut buf).unwrap(), 4);
        assert_eq!(pipe.try_read(&mut buf).unwrap(), 2);
        assert_eq!(pipe.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        pipe.finish();
        assert_eq!(pipe.try_read(&mut buf).unwrap(), 0);
        assert_eq!(pipe.try_write(&[IoSlice::new(b"x")]).unwrap_err().kind(), io::ErrorKind::BrokenPipe);
        assert!(pipe.abandoned() && pipe.hung_up());
    }

    fn readable(fd: RawFd) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let mut fds = [PollFd::new(crate::net::socket_io::borrow(fd), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::ZERO).unwrap() == 1
    }

    #[test]
    fn a_signal_made_late_is_readable_at_once_and_silent_once_the_loop_closed() {
        let pipe = pipe();
        // Body bytes came before the loop made its eventfd: it must look again.
        pipe.push_request(b"body");
        let fd = pipe.signal_fd();
        assert_eq!(fd, pipe.signal_fd(), "made once");
        assert!(readable(fd));
        pipe.clear_signal();
        assert!(!readable(fd));
        pipe.push_request(b"more");
        assert!(readable(fd));
        pipe.close();
        assert!(!readable(fd));
        pipe.finish();
        assert!(!readable(fd), "a closed loop end is told nothing more");
    }

    #[test]
    fn response_writes_stop_at_the_room_and_go_on_once_taken() {
        let pipe = pipe();
        let big = vec![7u8; RESPONSE_ROOM + 10];
        assert_eq!(pipe.try_write(&[IoSlice::new(&big)]).unwrap(), RESPONSE_ROOM);
        assert_eq!(pipe.try_write(&[IoSlice::new(b"x")]).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(!pipe.is_ready(true));
        let fd = pipe.signal_fd();
        pipe.clear_signal();
        let Response::Data(data) = block_on(pipe.take_response()) else { panic!("no data") };
        assert_eq!(data.len(), RESPONSE_ROOM);
        // Room again: the loop side was told through its eventfd.
        assert!(pipe.is_ready(true));
        let signal = crate::net::socket_io::borrow(fd);
        assert_eq!(nix::unistd::read(signal, &mut [0u8; 8]).unwrap(), 8);
        pipe.close();
        assert!(matches!(block_on(pipe.take_response()), Response::Closed));
    }

    #[test]
    fn a_blocked_writer_wakes_when_the_response_is_taken_and_a_wait_times_out() {
        let pipe = pipe();
        let pipe = Arc::new(pipe);
        assert_eq!(pipe.wait(false, Duration::from_millis(20)).unwrap_err().kind(), io::ErrorKind::TimedOut);
        pipe.try_write(&[IoSlice::new(&vec![0u8; RESPONSE_ROOM])]).unwrap();
        let writer = {
            let pipe = Arc::clone(&pipe);
            std::thread::spawn(move || pipe.wait(true, Duration::from_secs(30)))
        };
        let Response::Data(_) = block_on(pipe.take_response()) else { panic!("no data") };
        writer.join().unwrap().unwrap();
    }

    #[test]
    fn responses_written_by_another_thread_wake_their_relays_through_the_bell() {
        let bell = Arc::new(Bell::default());
        let pipes: Vec<Arc<StreamPipe>> = (0..3).map(|_| Arc::new(StreamPipe::new(Arc::clone(&bell)))).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let serving = tokio::spawn({
                let bell = Arc::clone(&bell);
                async move { bell.serve().await }
            });
            let relays: Vec<_> = pipes
                .iter()
                .map(|pipe| {
                    let pipe = Arc::clone(pipe);
                    tokio::spawn(async move { matches!(pipe.take_response().await, Response::Data(_)) })
                })
                .collect();
            // Every relay is waiting before the loop thread answers.
            tokio::task::yield_now().await;
            let loop_side = {
                let pipes = pipes.clone();
                std::thread::spawn(move || {
                    for pipe in &pipes {
                        pipe.try_write(&[IoSlice::new(b"HTTP/1.1 200 OK\r\n\r\n")]).unwrap();
                    }
                    // Closing after the bytes wakes nobody more: each relay was woken once.
                    for pipe in &pipes {
                        pipe.close();
                    }
                })
            };
            for relay in relays {
                assert!(relay.await.unwrap(), "a relay got the response bytes");
            }
            loop_side.join().unwrap();
            serving.abort();
        });
        assert!(bell.wakers.lock().unwrap().is_empty());
    }

    #[test]
    fn the_body_pump_waits_for_room_until_the_app_reads() {
        let pipe = pipe();
        pipe.push_request(&vec![1u8; REQUEST_ROOM]);
        let pipe = Arc::new(pipe);
        let reader = {
            let pipe = Arc::clone(&pipe);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                pipe.try_read(&mut [0u8; 100]).unwrap()
            })
        };
        assert!(block_on(pipe.request_room()));
        assert_eq!(reader.join().unwrap(), 100);
        pipe.close();
        pipe.push_request(&vec![1u8; REQUEST_ROOM]);
        assert!(!block_on(pipe.request_room()), "a closed loop end takes no more body");
    }
}
