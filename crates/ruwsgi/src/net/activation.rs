//! systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`, as
//! `sd_listen_fds(3)`): the sockets a `.socket` unit passed are used for the `socket`,
//! `http-socket` and `http` entries whose address they are bound to, speaking the entry's
//! protocol; one no entry names is served with the uwsgi protocol, as uWSGI serves it
//! (`core/setup_utils.c`, `core/socket.c`). Differs from uWSGI: uWSGI 2.0.31 serves every
//! activated socket with the uwsgi protocol, even when an `http-socket` entry names its
//! address (an HTTP request then fails with `invalid request block size: 21573`). They are read once, by the first master image, before it
//! daemonizes (the variables name its pid), and then travel across reloads with the other
//! listeners (`listener::INHERIT_ENV`), marked as systemd's: systemd owns them, so they are
//! never unlinked, filtered at a stop or dropped from a reload.
//!
//! Matching is by bound address: a TCP socket matches an entry with the same port and
//! address, an unspecified address (`:8080`, `0.0.0.0:8080`, `[::]:8080`) matching any
//! other unspecified one (systemd's `ListenStream=8080` binds `[::]`; differs from uWSGI,
//! whose `:8080` entry then tries to bind a second socket and fails); a unix socket matches
//! its path (a relative entry is taken from the directory the sockets are bound in) and an
//! abstract one `@name`. No I/O besides reading the sockets' addresses.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use socket2::{SockAddr, Socket};

/// One socket passed by systemd.
#[derive(Debug)]
pub struct Activated {
    /// The socket (`FD_CLOEXEC` set).
    pub fd: OwnedFd,
    /// `FileDescriptorName=` of the socket unit (systemd's default: the unit's name).
    pub fd_name: String,
    /// The address it is bound to, as an entry would write it (`127.0.0.1:8080`,
    /// `[::]:8080`, `/run/app.sock`, `@name`).
    pub address: String,
}

/// Takes the sockets systemd passed to this process and clears the variables, so neither
/// a worker nor a program the app starts takes them for its own. Empty when not activated.
/// Runs before logging is set up: `listener::bind_all` logs what it found.
pub fn take() -> Result<Vec<Activated>> {
    let fds = sd_notify::listen_fds_with_names(true).context("systemd socket activation (LISTEN_FDS)")?;
    let mut out = Vec::new();
    for (raw, fd_name) in fds {
        // SAFETY: systemd passed these fds to this process for it to own (sd_listen_fds(3));
        // nothing else in the process has taken them: this runs once, first thing.
        #[allow(unsafe_code)]
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let socket = Socket::from(fd);
        let address = socket
            .local_addr()
            .ok()
            .and_then(|a| address_of(&a))
            .with_context(|| format!("systemd socket activation: fd {raw} ({fd_name}) is not a bound socket"))?;
        out.push(Activated { fd: socket.into(), fd_name, address });
    }
    Ok(out)
}

/// The entry-style address of a bound socket.
fn address_of(addr: &SockAddr) -> Option<String> {
    if let Some(ip) = addr.as_socket() {
        return Some(ip.to_string());
    }
    if let Some(path) = addr.as_pathname() {
        return Some(path.display().to_string());
    }
    addr.as_abstract_namespace().map(|name| format!("@{}", String::from_utf8_lossy(name)))
}

/// True when an activated socket bound to `bound` serves the entry written `entry`.
/// `cwd`: where relative unix socket paths of the config point.
pub fn matches(entry: &str, bound: &str, cwd: &Path) -> bool {
    if entry == bound {
        return true;
    }
    match (tcp(entry), bound.parse::<SocketAddr>()) {
        (Some(want), Ok(have)) => {
            want.port() == have.port()
                && (want.ip() == have.ip() || (want.ip().is_unspecified() && have.ip().is_unspecified()))
        }
        (None, Err(_)) if !entry.starts_with('@') => cwd.join(entry) == Path::new(bound),
        _ => false,
    }
}

/// A TCP entry's address (`:8080` = every IPv4 interface, as in uWSGI); `None` for unix ones.
fn tcp(entry: &str) -> Option<SocketAddr> {
    let full = if entry.starts_with(':') { format!("0.0.0.0{entry}") } else { entry.to_owned() };
    if full.contains('/') || !full.contains(':') {
        return None;
    }
    full.to_socket_addrs().ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_entries_match_by_port_and_address() {
        let cwd = Path::new("/srv");
        assert!(matches(":8080", "0.0.0.0:8080", cwd));
        assert!(matches(":8080", "[::]:8080", cwd), "systemd's ListenStream=8080 binds [::]");
        assert!(matches("[::]:8080", "0.0.0.0:8080", cwd));
        assert!(matches("127.0.0.1:9000", "127.0.0.1:9000", cwd));
        assert!(!matches(":8080", "0.0.0.0:8081", cwd));
        assert!(!matches("127.0.0.1:8080", "0.0.0.0:8080", cwd));
        assert!(!matches(":8080", "/run/app.sock", cwd));
    }

    #[test]
    fn unix_entries_match_by_path() {
        let cwd = Path::new("/srv");
        assert!(matches("/run/app.sock", "/run/app.sock", cwd));
        assert!(matches("app.sock", "/srv/app.sock", cwd));
        assert!(matches("@app", "@app", cwd));
        assert!(!matches("@app", "/srv/@app", cwd));
        assert!(!matches("/run/app.sock", "127.0.0.1:80", cwd));
    }
}
