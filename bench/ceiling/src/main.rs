//! The benchmark ceiling: a tiny HTTP/1.1 keep-alive server without Python that answers every
//! request with the same bytes as the hello-world WSGI app (`200`, `text/plain`, 13-byte body).
//!
//! Same shape as a ruwsgi worker thread: N threads, each with its own epoll instance;
//! edge-free (level-triggered) reads, pipelined requests answered in one write. Each thread
//! has its own `SO_REUSEPORT` listener on the address, so the kernel spreads new connections
//! over the threads by their addresses' hash, as ruwsgi balances its keep-alive connections
//! over its workers. (Threads sharing one listener race for a burst of connections, and the
//! winner takes them all: one thread then serves a benchmark's 64 connections alone, a
//! different server from ruwsgi's two busy workers.) The few epoll calls are declared here
//! against the C library that std already links.
//!
//! Its threads run as `SCHED_BATCH`, as ruwsgi's workers do by default (`sched-batch`).
//!
//! Usage: `ceiling [ADDR] [THREADS]` (default `127.0.0.1:8000`, 2 threads).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

const EPOLLIN: u32 = 0x001;
const EPOLLERR: u32 = 0x008;
const EPOLLHUP: u32 = 0x010;
const EPOLLRDHUP: u32 = 0x2000;
const EPOLL_CTL_ADD: i32 = 1;
const EPOLL_CLOEXEC: i32 = 0o2_000_000;
const EINTR: i32 = 4;

/// `struct epoll_event`: packed on x86-64, naturally aligned elsewhere.
#[cfg_attr(target_arch = "x86_64", repr(C, packed))]
#[cfg_attr(not(target_arch = "x86_64"), repr(C))]
#[derive(Clone, Copy)]
struct EpollEvent {
    events: u32,
    data: u64,
}

extern "C" {
    fn epoll_create1(flags: i32) -> i32;
    fn epoll_ctl(epfd: i32, op: i32, fd: i32, event: *mut EpollEvent) -> i32;
    fn epoll_wait(epfd: i32, events: *mut EpollEvent, maxevents: i32, timeout: i32) -> i32;
    fn sched_setscheduler(pid: i32, policy: i32, param: *const i32) -> i32;
}

/// Linux's `SCHED_BATCH`.
const SCHED_BATCH: i32 = 3;

fn add(epfd: RawFd, fd: RawFd, events: u32) -> std::io::Result<()> {
    let mut ev = EpollEvent { events, data: u64::try_from(fd).expect("fd >= 0") };
    // SAFETY: valid epoll fd and socket fd; `ev` outlives the call.
    if unsafe { epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &raw mut ev) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Number of complete request heads in `buf`; the consumed prefix length is returned too.
fn complete_requests(buf: &[u8]) -> (usize, usize) {
    let mut count = 0;
    let mut consumed = 0;
    let mut i = 0;
    while i + 4 <= buf.len() {
        if &buf[i..i + 4] == b"\r\n\r\n" {
            count += 1;
            i += 4;
            consumed = i;
        } else {
            i += 1;
        }
    }
    (count, consumed)
}

struct Conn {
    stream: TcpStream,
    pending: Vec<u8>,
}

fn serve(listener: &TcpListener) -> std::io::Result<()> {
    // SAFETY: plain syscall.
    let epfd = unsafe { epoll_create1(EPOLL_CLOEXEC) };
    if epfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let lfd = listener.as_raw_fd();
    add(epfd, lfd, EPOLLIN)?;
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut events = [EpollEvent { events: 0, data: 0 }; 64];
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::with_capacity(16 * RESPONSE.len());
    loop {
        // SAFETY: `events` is a valid buffer of 64 entries.
        let n = unsafe { epoll_wait(epfd, events.as_mut_ptr(), 64, -1) };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(EINTR) {
                continue;
            }
            return Err(err);
        }
        for ev in &events[..usize::try_from(n).unwrap_or(0)] {
            let fd = RawFd::try_from(ev.data).expect("fd fits");
            let flags = ev.events;
            if fd == lfd {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(true)?;
                            stream.set_nodelay(true)?;
                            let cfd = stream.as_raw_fd();
                            add(epfd, cfd, EPOLLIN | EPOLLRDHUP)?;
                            conns.insert(cfd, Conn { stream, pending: Vec::new() });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                continue;
            }
            let mut close = flags & (EPOLLERR | EPOLLHUP) != 0;
            if let Some(conn) = conns.get_mut(&fd) {
                if !close {
                    close = !handle(conn, &mut buf, &mut out);
                }
            }
            if close {
                // Dropping the stream closes the fd, which also removes it from the epoll set.
                conns.remove(&fd);
            }
        }
    }
}

/// Reads what is there and answers every complete request; false when the connection is done.
fn handle(conn: &mut Conn, buf: &mut [u8], out: &mut Vec<u8>) -> bool {
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                conn.pending.extend_from_slice(&buf[..n]);
                let (count, consumed) = complete_requests(&conn.pending);
                conn.pending.drain(..consumed);
                if count > 0 {
                    out.clear();
                    for _ in 0..count {
                        out.extend_from_slice(RESPONSE);
                    }
                    // Responses are tiny: a blocking-style write loop is fine for a ceiling.
                    let mut off = 0;
                    while off < out.len() {
                        match conn.stream.write(&out[off..]) {
                            Ok(w) => off += w,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(_) => return false,
                        }
                    }
                }
                if n < buf.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// A non-blocking `SO_REUSEPORT` listener on `addr`, backlog 1024 (the connection-scaling
/// cells open thousands at once; ruwsgi gets `listen = 1024` there).
fn listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let threads: usize = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let bound = addr
        .parse::<SocketAddr>()
        .map_err(std::io::Error::other)
        .and_then(|a| (0..threads).map(|_| listener(a)).collect::<std::io::Result<Vec<TcpListener>>>());
    let listeners = bound.unwrap_or_else(|e| {
        eprintln!("ceiling: cannot bind {addr}: {e}");
        std::process::exit(1);
    });
    // As a ruwsgi worker (`sched-batch`): the threads started below inherit it.
    let priority = 0i32;
    // SAFETY: the calling thread (pid 0); `struct sched_param` is one int.
    if unsafe { sched_setscheduler(0, SCHED_BATCH, &raw const priority) } != 0 {
        eprintln!("ceiling: cannot switch to SCHED_BATCH: {}", std::io::Error::last_os_error());
    }
    eprintln!("ceiling: listening on {addr} with {threads} threads (SCHED_BATCH)");
    std::thread::scope(|s| {
        for listener in &listeners {
            s.spawn(move || {
                if let Err(e) = serve(listener) {
                    eprintln!("ceiling: {e}");
                    std::process::exit(1);
                }
            });
        }
    });
}
