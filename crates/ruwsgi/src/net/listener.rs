//! Listening sockets: bound by the master from the config (or inherited across a reload
//! `exec`), then shared by every worker. No protocol knowledge here.

use std::fs;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use ruwsgi_config::{Config, SocketProtocol, SocketSpec};
use socket2::{Domain, SockAddr, Socket, Type};

use super::activation::{self, Activated};
use super::tls::TlsSite;

/// Environment variable carrying listening fds across a reload `exec`: `fd=address;...`,
/// the fd written `sN` for a socket from systemd (`activation.rs`).
pub const INHERIT_ENV: &str = "RUWSGI_LISTEN_FDS";

/// One listening socket and what it speaks.
#[derive(Debug)]
pub struct Listener {
    /// The bound socket, non-blocking.
    pub socket: Socket,
    /// Protocol spoken on it.
    pub protocol: SocketProtocol,
    /// The address as configured (`:8080`, `/run/app.sock`), used in logs and for inheritance.
    pub name: String,
    /// Unix socket path, removed by `vacuum`.
    pub unix_path: Option<PathBuf>,
    /// `SERVER_NAME` for requests arriving here.
    pub server_name: String,
    /// `SERVER_PORT` for requests arriving here.
    pub server_port: String,
    /// Passed by systemd socket activation (`activation.rs`): systemd owns it, so it is
    /// never unlinked, filtered or left out of a reload.
    pub activated: bool,
    /// `https`: the TLS contexts its connections start with.
    pub tls: Option<Arc<TlsSite>>,
}

impl Listener {
    /// The raw fd, for epoll registration.
    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// A unix socket (file or abstract), not TCP.
    pub fn is_unix(&self) -> bool {
        is_unix(&self.name)
    }

    /// Borrowed fd, for epoll registration.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }

    /// Stops new TCP clients from joining the accept queue while the ones already there stay
    /// (a graceful stop, `master/drain.rs`): a socket filter that drops each opening SYN, so
    /// a new client goes unanswered (it retries, and is refused once the socket is closed,
    /// or reaches another `reuse-port` instance). A filter is the only way: a `shutdown()`
    /// of a listening socket, or its close, resets the queued connections.
    ///
    /// Only SYNs: a client whose SYN was answered just before must still get its final ACK
    /// through (it already counts itself connected), and a connection made from the listener
    /// inherits its filter, so a drop-all filter would also swallow its request.
    pub fn refuse_newcomers(&self) -> io::Result<()> {
        use socket2::SockFilter;
        // Classic BPF; a TCP socket's filter sees the packet from the TCP header on, whose
        // byte 13 holds the flags (ACK 0x10, SYN 0x02).
        const LD_B_ABS: u16 = 0x30;
        const AND_K: u16 = 0x54;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        self.socket.attach_filter(&[
            SockFilter::new(LD_B_ABS, 0, 0, 13),
            SockFilter::new(AND_K, 0, 0, 0x12),
            // SYN without ACK: fall through to the drop; anything else: skip it.
            SockFilter::new(JEQ_K, 0, 1, 0x02),
            SockFilter::new(RET_K, 0, 0, 0),
            SockFilter::new(RET_K, 0, 0, u32::MAX),
        ])
    }

    /// Drops this process's reference to the listening socket, keeping the fd number taken
    /// (it now refers to `/dev/null`) so nothing else can reuse it while `self` still names
    /// it. Once every process has done so the kernel closes the socket: new clients are
    /// refused at once. Take the socket out of every epoll set first.
    pub fn close_here(&self) {
        let Ok(null) = fs::File::open("/dev/null") else {
            tracing::warn!("cannot open /dev/null to close {}", self.name);
            return;
        };
        // SAFETY: dup3 onto an fd this struct owns; both fds are open for the call, and the
        // fd stays owned by `self.socket` (now naming /dev/null), so it is closed once.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::dup3(null.as_raw_fd(), self.raw_fd(), libc::O_CLOEXEC) };
        if rc < 0 {
            tracing::warn!("cannot close {}: {}", self.name, io::Error::last_os_error());
        }
    }
}

/// Whether this process still polls its listeners. Loop threads add and remove them from
/// their own epoll sets (`max-fd`, fd shortage) while the worker's main thread may close
/// them for good (stop): the lock orders the two, so no thread re-adds a closed listener.
#[derive(Debug)]
pub struct ListenGate {
    /// False once the listeners were closed in this process.
    open: Mutex<bool>,
}

impl Default for ListenGate {
    fn default() -> Self {
        Self { open: Mutex::new(true) }
    }
}

impl ListenGate {
    /// Adds `listeners` to `epoll` (tokens `0..`) or removes them; false once closed.
    pub fn set_polled(&self, epoll: &Epoll, listeners: &[Listener], polled: bool) -> bool {
        self.set_polled_where(epoll, listeners, polled, |_| true)
    }

    /// `set_polled` for the listeners that `which` picks.
    pub fn set_polled_where(
        &self,
        epoll: &Epoll,
        listeners: &[Listener],
        polled: bool,
        which: impl Fn(&Listener) -> bool,
    ) -> bool {
        let open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*open {
            return false;
        }
        for (i, l) in listeners.iter().enumerate().filter(|(_, l)| which(l)) {
            // Errors: already (not) there, which is the state wanted.
            let _ = if polled { epoll.add(l.fd(), listen_event(i as u64)) } else { epoll.delete(l.fd()) };
        }
        true
    }

    /// Takes the listeners that `which` picks out of `epoll` and puts them back, unless
    /// closed meanwhile: this thread then comes last in the order the kernel wakes waiting
    /// threads in. Adding a listener also checks it at once: an exclusive wake-up goes to
    /// one thread only, and if that thread then took the listeners out of its set (at
    /// `max-fd`, out of fds) with connections still queued, the others were never told; a
    /// thread doing this finds such connections.
    pub fn repoll(&self, epoll: &Epoll, listeners: &[Listener], which: impl Fn(&Listener) -> bool) {
        if self.set_polled_where(epoll, listeners, false, &which) {
            self.set_polled_where(epoll, listeners, true, which);
        }
    }

    /// Takes the listeners out of every epoll set in `epolls` and closes them in this process.
    pub fn close(&self, epolls: &[Epoll], listeners: &[Listener]) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*open {
            return;
        }
        *open = false;
        for epoll in epolls {
            for l in listeners {
                let _ = epoll.delete(l.fd());
            }
        }
        for l in listeners {
            l.close_here();
        }
    }
}

/// Epoll registration of a listener under `token`: EPOLLEXCLUSIVE, so a new
/// connection wakes one waiting thread, not every thread of every worker. The kernel
/// wakes the first waiting thread in the order they registered, so on its own it keeps
/// picking the same one; HTTP sockets, whose keep-alive connections stay with the thread
/// that accepted them, are balanced by the busier threads stepping back in that order, or
/// aside for a moment (`connection.rs`, `step_back`, `step_aside`).
fn listen_event(token: u64) -> EpollEvent {
    EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE, token)
}

/// True for addresses that name a unix socket rather than `[host]:port`.
fn is_unix(address: &str) -> bool {
    address.contains('/') || address.starts_with('@') || !address.contains(':')
}

/// The file behind a unix socket address: none for abstract ones (`@name`, Linux), which
/// live in no directory, so there is nothing to chmod, replace or vacuum.
fn socket_file(address: &str) -> Option<PathBuf> {
    (is_unix(address) && !address.starts_with('@')).then(|| PathBuf::from(address))
}

/// A listening socket this process got rather than bound: from the previous master image
/// (a reload) or from systemd.
struct Inherited {
    fd: OwnedFd,
    /// The config entry it served before the reload, or systemd's bound address.
    name: String,
    /// Passed by systemd (now or before a reload).
    activated: bool,
}

/// Binds every configured socket, reusing fds inherited from a previous master image or
/// passed by systemd (`activated`, from `activation::take`).
pub fn bind_all(cfg: &Config, activated: Vec<Activated>) -> Result<Vec<Listener>> {
    let mut reloaded = inherited_fds();
    let cwd = std::env::current_dir().unwrap_or_default();
    if !activated.is_empty() {
        tracing::info!("- SystemD socket activation detected -");
    }
    let mut from_systemd: Vec<Inherited> = activated
        .into_iter()
        .map(|a| {
            tracing::info!("systemd socket {} ({}) is available for {}", a.fd_name, a.fd.as_raw_fd(), a.address);
            Inherited { fd: a.fd, name: a.address, activated: true }
        })
        .collect();
    let mut out = Vec::with_capacity(cfg.sockets.len());
    for spec in &cfg.sockets {
        let listener = if let Some(i) = reloaded.iter().position(|x| x.name == spec.address) {
            adopt(spec, reloaded.swap_remove(i))?
        } else if let Some(i) = from_systemd.iter().position(|x| activation::matches(&spec.address, &x.name, &cwd)) {
            adopt(spec, from_systemd.swap_remove(i))?
        } else {
            bind(spec, cfg)?
        };
        let tls = spec.tls.as_ref().map(|tls| TlsSite::load(&spec.address, tls, &cfg.tls));
        let tls = tls.transpose().with_context(|| format!("https {}", spec.address))?;
        out.push(Listener { tls: tls.map(Arc::new), ..listener });
    }
    // As uWSGI: a systemd socket no entry names is served with the uwsgi protocol. It stays
    // systemd's across reloads too, whatever the config says then.
    for x in from_systemd.into_iter().chain(reloaded.extract_if(.., |x| x.activated)) {
        let spec = SocketSpec { address: x.name.clone(), protocol: SocketProtocol::Uwsgi, tls: None };
        tracing::info!("systemd socket {} matches no socket option: serving the uwsgi protocol on it", x.name);
        out.push(adopt(&spec, x)?);
    }
    // Sockets dropped from the config on reload are closed here.
    drop(reloaded);
    Ok(out)
}

/// Parses `RUWSGI_LISTEN_FDS` and clears it so workers and child programs don't see it.
fn inherited_fds() -> Vec<Inherited> {
    let Ok(list) = std::env::var(INHERIT_ENV) else {
        return Vec::new();
    };
    std::env::remove_var(INHERIT_ENV);
    list.split(';')
        .filter_map(|item| {
            let (fd, name) = item.split_once('=')?;
            let (fd, activated) = fd.strip_prefix('s').map_or((fd, false), |fd| (fd, true));
            let fd: RawFd = fd.parse().ok()?;
            // SAFETY: the previous image of this process put the fd in the environment
            // right before exec and nothing else in this process owns it.
            #[allow(unsafe_code)]
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            Some(Inherited { fd: owned, name: name.to_owned(), activated })
        })
        .collect()
}

/// Value of `RUWSGI_LISTEN_FDS` describing `listeners`, for the exec of a reload.
pub fn inherit_value(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| format!("{}{}={}", if l.activated { "s" } else { "" }, l.raw_fd(), l.name))
        .collect::<Vec<_>>()
        .join(";")
}

fn adopt(spec: &SocketSpec, inherited: Inherited) -> Result<Listener> {
    // systemd's unix socket files are systemd's to remove.
    let unix_path = if inherited.activated { None } else { socket_file(&spec.address) };
    listening(Socket::from(inherited.fd), spec, unix_path, inherited.activated)
}

fn bind(spec: &SocketSpec, cfg: &Config) -> Result<Listener> {
    let backlog = i32::try_from(cfg.listen).unwrap_or(i32::MAX);
    check_backlog(cfg.listen)?;
    let (socket, unix_path) = if let Some(name) = spec.address.strip_prefix('@') {
        (
            bind_abstract(name, backlog)
                .with_context(|| format!("cannot bind abstract unix socket {}", spec.address))?,
            None,
        )
    } else if is_unix(&spec.address) {
        let path = PathBuf::from(&spec.address);
        (
            bind_unix(&path, backlog, cfg).with_context(|| format!("cannot bind unix socket {}", spec.address))?,
            Some(path),
        )
    } else {
        (
            bind_tcp(&spec.address, backlog, cfg.reuse_port, !cfg.no_defer_accept)
                .with_context(|| format!("cannot bind {}", spec.address))?,
            None,
        )
    };
    if let Some(size) = cfg.socket_sndbuf.filter(|&size| size > 0) {
        // As uWSGI: set on the sockets it binds (not inherited ones); accepted connections
        // inherit it, and the kernel no longer grows their send buffers (tcp_wmem).
        socket
            .set_send_buffer_size(size)
            .with_context(|| format!("socket-sndbuf = {size}: cannot set SO_SNDBUF on {}", spec.address))?;
    } else if cfg.socket_sndbuf.is_none() && bound_to_loopback(&socket) {
        // Differs from uWSGI: a TCP socket bound to a loopback address (every peer is on
        // this host: a proxy, a benchmark) gets a fixed send buffer unless `socket-sndbuf`
        // is given. Autotuned loopback buffers grow to 4 MiB each, and 64 of them hold more
        // than the L3 cache, so copying bodies into them runs cache-cold; a fixed 256 KiB
        // (the kernel doubles it) is plenty at loopback round-trip times. A body the buffer
        // can't take waits in the connection loop (`BodyRest`), not in the app's thread.
        // docs/benchmarks.md, "Parked response bodies and the loopback send buffer".
        if let Err(e) = socket.set_send_buffer_size(LOOPBACK_SNDBUF) {
            tracing::warn!("cannot set SO_SNDBUF on {}: {e}; the kernel's autotuning applies", spec.address);
        }
    }
    listening(socket, spec, unix_path, false)
}

/// `SO_SNDBUF` of TCP sockets bound to a loopback address when `socket-sndbuf` isn't given.
const LOOPBACK_SNDBUF: usize = 256 * 1024;

/// The socket is bound to 127.0.0.0/8 or `::1`, so every peer is on this host.
fn bound_to_loopback(socket: &Socket) -> bool {
    socket.local_addr().ok().and_then(|a| a.as_socket()).is_some_and(|a| a.ip().is_loopback())
}

/// The listener for `spec` on a bound (or inherited) `socket`, made non-blocking; TLS, if
/// any, is added by the caller.
fn listening(socket: Socket, spec: &SocketSpec, unix_path: Option<PathBuf>, activated: bool) -> Result<Listener> {
    socket.set_nonblocking(true)?;
    if socket.local_addr().is_ok_and(|a| a.as_socket().is_some()) {
        // Accepted connections inherit TCP_NODELAY from the listener: set once here (bound
        // sockets have it already; systemd's may not), not with a syscall per connection.
        socket.set_tcp_nodelay(true)?;
    }
    let (server_name, server_port) = server_identity(&socket);
    Ok(Listener {
        socket,
        protocol: spec.protocol,
        name: spec.address.clone(),
        unix_path,
        server_name,
        server_port,
        tls: None,
        activated,
    })
}

/// `:8080` means all IPv4 interfaces as in uWSGI; `[::]:8080` all IPv6 ones.
fn resolve(address: &str) -> Result<SocketAddr> {
    let full = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_owned() };
    full.to_socket_addrs()?.next().with_context(|| format!("{address} resolves to no address"))
}

fn bind_tcp(address: &str, backlog: i32, reuse_port: bool, defer: bool) -> Result<Socket> {
    let addr = resolve(address)?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        // `reuse-port`: every instance (of the same user) that sets it may bind this port
        // too; the kernel spreads new connections over their sockets.
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    if defer {
        defer_accept(&socket);
    }
    Ok(socket)
}

/// `TCP_DEFER_ACCEPT` on every TCP listener (uWSGI sets it on all of its TCP sockets unless
/// `no-defer-accept`): the kernel queues a connection for `accept()` only once its first bytes
/// arrived, so a worker is woken once per connection, with the request ready to read, instead
/// of once for the handshake and again for the request (nginx's uwsgi connections and
/// `Connection: close` clients open a connection per request). A client that connects and
/// never sends is queued anyway after the SYN-ACK retransmit past the timeout (about 1 s, 3 s
/// at most), and from then on `max-fd`, `socket-timeout` and `http-timeout` see it as any
/// other. Differs from uWSGI: the timeout is 1 s, not `socket-timeout` (4 s by default).
/// Best effort: where the kernel refuses, connections are handed over at once.
fn defer_accept(socket: &Socket) {
    let seconds: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a c_int that outlives the call
    // and its exact size; no memory is retained by the kernel.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            std::ptr::addr_of!(seconds).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!("TCP_DEFER_ACCEPT not set: {}", io::Error::last_os_error());
    }
}

fn bind_unix(path: &Path, backlog: i32, cfg: &Config) -> Result<Socket> {
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!("{} exists and is not a socket", path.display());
        }
        // A live server answers connect(); a stale file from a crashed run refuses it. Any
        // other failure (no permission to connect) says nothing, so the file stays.
        match UnixStream::connect(path) {
            Ok(_) => bail!("{} is in use by another server", path.display()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!("removing stale unix socket {}", path.display());
                fs::remove_file(path)?;
            }
            Err(e) => bail!("{} exists and can't be checked for a live server: {e}", path.display()),
        }
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    if let Some(mode) = cfg.chmod_socket {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    }
    if let Some(owner) = &cfg.chown_socket {
        chown(path, owner)?;
    }
    Ok(socket)
}

/// `@name`: a Linux abstract socket, as in uWSGI. Two servers can't share a name: bind fails.
fn bind_abstract(name: &str, backlog: i32) -> Result<Socket> {
    let mut raw = vec![0u8];
    raw.extend_from_slice(name.as_bytes());
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // A leading NUL byte makes the address abstract (unix(7)).
    socket.bind(&SockAddr::unix(std::ffi::OsStr::from_bytes(&raw))?)?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// Like uWSGI, refuse a `listen` the kernel would silently cut to `net.core.somaxconn`.
fn check_backlog(listen: u32) -> Result<()> {
    let max = fs::read_to_string("/proc/sys/net/core/somaxconn").ok().and_then(|s| s.trim().parse::<u32>().ok());
    match max {
        Some(max) if listen > max => {
            bail!("listen = {listen}: the listen queue size is greater than the system max net.core.somaxconn ({max})")
        }
        _ => Ok(()),
    }
}

/// `chown-socket = user[:group]`, names or numbers.
fn chown(path: &Path, owner: &str) -> Result<()> {
    use nix::unistd::{Group, User};
    let (user, group) = owner.split_once(':').map_or((owner, None), |(u, g)| (u, Some(g)));
    let uid = match user.parse::<u32>() {
        Ok(n) => nix::unistd::Uid::from_raw(n),
        Err(_) => User::from_name(user)?.with_context(|| format!("chown-socket: no user {user}"))?.uid,
    };
    let gid = match group {
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(n) => nix::unistd::Gid::from_raw(n),
            Err(_) => Group::from_name(g)?.with_context(|| format!("chown-socket: no group {g}"))?.gid,
        }),
    };
    nix::unistd::chown(path, Some(uid), gid)?;
    Ok(())
}

/// `SERVER_NAME`/`SERVER_PORT` for a socket: the bound host and port; the host name for
/// wildcard addresses; `localhost`/`0` for unix sockets.
fn server_identity(socket: &Socket) -> (String, String) {
    let Some(addr) = socket.local_addr().ok().and_then(|a| a.as_socket()) else {
        return ("localhost".to_owned(), "0".to_owned());
    };
    let host = if addr.ip().is_unspecified() { crate::log::hostname() } else { addr.ip().to_string() };
    (host, addr.port().to_string())
}

/// Human form of the bound address, with the real port when `:0` was asked.
pub fn describe(l: &Listener) -> String {
    match l.socket.local_addr().ok().and_then(|a| a.as_socket()) {
        Some(addr) => addr.to_string(),
        None => l.name.clone(),
    }
}

/// Removes unix socket files (`vacuum`).
pub fn vacuum(listeners: &[Listener]) {
    for path in listeners.iter().filter_map(|l| l.unix_path.as_ref()) {
        if let Err(e) = fs::remove_file(path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("vacuum: cannot remove {}: {e}", path.display());
            }
        }
    }
}
