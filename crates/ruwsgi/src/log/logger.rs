//! `logger` / `req-logger` destinations, as uWSGI's logger plugins (`plugins/logfile`,
//! `plugins/syslog`, `plugins/rsyslog`, `plugins/logsocket`, `plugins/systemd_logger`).
//!
//! A spec is `[name ]plugin[:args]`; `name` (letters and digits) makes it a named logger
//! that only `log-route` sends to. `parse_logger` is pure; `Logger::open` does the I/O
//! and is called in the master only: workers send their lines through the master's pipe.

use std::fs::File;
use std::io::Write;
use std::net::UdpSocket;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerSpec {
    /// `name` for `log-route`; unnamed loggers get every message no route took.
    pub id: Option<String>,
    /// Where lines go.
    pub target: Target,
}

/// The logger plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `file:PATH` or `file:logfile=PATH,maxsize=N,backupname=NAME`.
    File { path: PathBuf, maxsize: u64, backupname: Option<PathBuf> },
    /// `fd:N`.
    Fd(RawFd),
    /// `stdio`: the server's original stderr (or `logto` file).
    Stdio,
    /// `syslog[:ident[,facility]]`: the local syslog socket (`/dev/log`), priority info.
    Syslog { ident: String, facility: u8 },
    /// `rsyslog:ADDR[,tag[,priority]]`: RFC 3164 datagrams to `host:port` (UDP, port
    /// 514 by default) or a unix socket path.
    Rsyslog { addr: String, tag: Option<String>, priority: u32 },
    /// `socket:ADDR[,prefix]`: raw datagrams to `host:port` (UDP) or a unix socket path.
    Socket { addr: String, prefix: Option<String> },
    /// `systemd`: the journal's native socket.
    Systemd,
}

/// Syslog facilities by name (`syslog:ident,local0`), as uWSGI's table.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("security", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// Parses a `logger`/`req-logger` value.
pub fn parse_logger(spec: &str) -> Result<LoggerSpec, String> {
    let (id, rest) = match spec.split_once(' ') {
        Some((name, rest)) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            (Some(name.to_owned()), rest.trim_start())
        }
        _ => (None, spec),
    };
    let (plugin, args) = match rest.split_once(':') {
        Some((p, a)) => (p, Some(a).filter(|a| !a.is_empty())),
        None => (rest, None),
    };
    let target = match plugin {
        "file" => {
            let args = args.ok_or("file: expected a path")?;
            if args.contains('=') {
                let mut path = None;
                let mut maxsize = 0;
                let mut backupname = None;
                for kv in args.split(',') {
                    match kv.split_once('=') {
                        Some(("logfile", v)) => path = Some(PathBuf::from(v)),
                        Some(("maxsize", v)) => {
                            maxsize = v.parse().map_err(|_| format!("file: maxsize={v}: expected bytes"))?;
                        }
                        Some(("backupname", v)) => backupname = Some(PathBuf::from(v)),
                        _ => return Err(format!("file: unknown key in \"{kv}\" (logfile, maxsize, backupname)")),
                    }
                }
                Target::File { path: path.ok_or("file: missing logfile key")?, maxsize, backupname }
            } else {
                Target::File { path: PathBuf::from(args), maxsize: 0, backupname: None }
            }
        }
        "fd" => Target::Fd(args.and_then(|a| a.parse().ok()).ok_or("fd: expected a file descriptor number")?),
        "stdio" => Target::Stdio,
        "syslog" => {
            let (ident, facility) = match args {
                None => ("uwsgi", None),
                Some(a) => match a.split_once(',') {
                    Some((i, f)) => (i, Some(f)),
                    None => (a, None),
                },
            };
            // As uWSGI: an unknown facility name leaves `daemon`.
            let facility = facility.and_then(|f| FACILITIES.iter().find(|(n, _)| *n == f)).map_or(3, |&(_, n)| n);
            Target::Syslog { ident: ident.to_owned(), facility }
        }
        "rsyslog" => {
            let args = args.ok_or("rsyslog: expected an address")?;
            let mut parts = args.splitn(3, ',');
            let addr = parts.next().unwrap_or_default().to_owned();
            let tag = parts.next().map(str::to_owned);
            let priority = match parts.next() {
                Some(p) => p.parse().map_err(|_| format!("rsyslog: priority \"{p}\": expected a number"))?,
                None => 29,
            };
            Target::Rsyslog { addr, tag, priority }
        }
        "socket" => {
            let args = args.ok_or("socket: expected an address")?;
            let (addr, prefix) = match args.split_once(',') {
                Some((a, p)) => (a, Some(p.to_owned())),
                None => (args, None),
            };
            Target::Socket { addr: addr.to_owned(), prefix }
        }
        "systemd" => Target::Systemd,
        _ => {
            return Err(format!(
                "unable to find logger \"{plugin}\" (file, fd, stdio, syslog, rsyslog, socket, systemd)"
            ))
        }
    };
    Ok(LoggerSpec { id, target })
}

/// An open destination.
pub struct Logger {
    /// `name` for `log-route`.
    pub id: Option<String>,
    out: Out,
}

enum Out {
    File { file: File, path: PathBuf, maxsize: u64, backupname: Option<PathBuf>, last_check: u64 },
    Fd(File),
    Stdio,
    Syslog { socket: Option<UnixDatagram>, ident: String, priority: u8 },
    Datagram { socket: Datagram, head: Vec<u8>, rsyslog: Option<(u32, String)> },
    Systemd(Option<UnixDatagram>),
}

enum Datagram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Datagram {
    fn connect(addr: &str, default_port: Option<u16>) -> std::io::Result<Self> {
        if addr.starts_with('/') || addr.starts_with('@') {
            let s = UnixDatagram::unbound()?;
            s.connect(addr)?;
            return Ok(Self::Unix(s));
        }
        let s = UdpSocket::bind(if addr.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })?;
        match default_port {
            Some(port) if !addr.contains(':') => s.connect((addr, port))?,
            _ => s.connect(addr)?,
        }
        Ok(Self::Udp(s))
    }

    fn send(&self, bytes: &[u8]) {
        let _ = match self {
            Self::Udp(s) => s.send(bytes),
            Self::Unix(s) => s.send(bytes),
        };
    }
}

impl Logger {
    /// Opens the destination (files, sockets); the error names it.
    pub fn open(spec: &LoggerSpec) -> Result<Self, String> {
        let out = match &spec.target {
            Target::File { path, maxsize, backupname } => Out::File {
                file: crate::master::logfile::open(path).map_err(|e| format!("{e:#}"))?,
                path: path.clone(),
                maxsize: *maxsize,
                backupname: backupname.clone(),
                last_check: 0,
            },
            // Opened through /proc so the logger owns a descriptor of its own.
            Target::Fd(fd) => Out::Fd(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(format!("/proc/self/fd/{fd}"))
                    .map_err(|e| format!("fd:{fd}: {e}"))?,
            ),
            Target::Stdio => Out::Stdio,
            Target::Syslog { ident, facility } => Out::Syslog {
                // A missing /dev/log (containers) loses the lines, as syslog(3) does.
                socket: UnixDatagram::unbound().ok().filter(|s| s.connect("/dev/log").is_ok()),
                ident: ident.clone(),
                priority: facility * 8 + 6,
            },
            Target::Rsyslog { addr, tag, priority } => {
                let socket = Datagram::connect(addr, Some(514)).map_err(|e| format!("rsyslog:{addr}: {e}"))?;
                let tag = tag.clone().unwrap_or_else(|| format!("{} uwsgi", super::hostname()));
                Out::Datagram { socket, head: Vec::new(), rsyslog: Some((*priority, tag)) }
            }
            Target::Socket { addr, prefix } => {
                let socket = Datagram::connect(addr, None).map_err(|e| format!("socket:{addr}: {e}"))?;
                Out::Datagram { socket, head: prefix.clone().unwrap_or_default().into_bytes(), rsyslog: None }
            }
            // Without a journal (not under systemd) the lines go to the original stderr.
            Target::Systemd => {
                Out::Systemd(UnixDatagram::unbound().ok().filter(|s| s.connect("/run/systemd/journal/socket").is_ok()))
            }
        };
        Ok(Self { id: spec.id.clone(), out })
    }

    /// Writes one message. `stdio` is the server's original stderr; `now` is µs since the
    /// epoch.
    pub fn write(&mut self, msg: &[u8], stdio: BorrowedFd<'_>, now: u64) {
        match &mut self.out {
            Out::File { file, .. } | Out::Fd(file) => {
                let _ = file.write_all(msg);
            }
            Out::Stdio => {
                let _ = nix::unistd::write(stdio, msg);
            }
            Out::Syslog { socket, ident, priority } => {
                if let Some(s) = socket {
                    let line = msg.strip_suffix(b"\n").unwrap_or(msg);
                    let mut packet = format!("<{priority}>{} {ident}: ", syslog_time(now)).into_bytes();
                    packet.extend_from_slice(line);
                    let _ = s.send(&packet);
                }
            }
            Out::Datagram { socket, rsyslog: Some((priority, tag)), .. } => {
                // RFC 3164 framing as uWSGI's rsyslog plugin, one packet of at most 1024
                // bytes (the message is cut, not split).
                let line = msg.strip_suffix(b"\n").unwrap_or(msg);
                let mut packet = format!("<{priority}>{} {tag}: ", syslog_time(now)).into_bytes();
                packet.extend_from_slice(&line[..line.len().min(1024 - 30)]);
                packet.truncate(1023);
                socket.send(&packet);
            }
            Out::Datagram { socket, head, rsyslog: None } => socket.send(&[head.as_slice(), msg].concat()),
            Out::Systemd(socket) => match socket {
                Some(s) => {
                    // One journal entry per line, as uWSGI's systemd logger; the native
                    // protocol's binary form carries any bytes.
                    for line in msg.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        let mut packet = b"PRIORITY=6\nMESSAGE\n".to_vec();
                        packet.extend_from_slice(&(line.len() as u64).to_le_bytes());
                        packet.extend_from_slice(line);
                        packet.push(b'\n');
                        let _ = s.send(&packet);
                    }
                }
                None => {
                    let _ = nix::unistd::write(stdio, msg);
                }
            },
        }
    }

    /// Reopens a `file:` logger's path (after an external rotation).
    pub fn reopen(&mut self) {
        if let Out::File { file, path, .. } = &mut self.out {
            if let Ok(f) = crate::master::logfile::open(path) {
                *file = f;
            }
        }
    }

    /// File loggers: rotate at `maxsize` (or `log-maxsize`), and reopen the path when it no
    /// longer names the open file (moved by logrotate). Checked at most once a second.
    pub fn maintain(&mut self, global_maxsize: u64, global_backup: Option<&std::path::Path>, now: u64) {
        let Out::File { file, path, maxsize, backupname, last_check } = &mut self.out else { return };
        if now / 1_000_000 == *last_check {
            return;
        }
        *last_check = now / 1_000_000;
        let limit = if *maxsize > 0 { *maxsize } else { global_maxsize };
        let backup = backupname.as_deref().or(global_backup);
        let (Ok(open), on_disk) = (file.metadata(), std::fs::metadata(&*path)) else { return };
        let moved = !on_disk.is_ok_and(|m| m.ino() == open.ino() && m.dev() == open.dev());
        if !moved && limit > 0 && open.len() >= limit {
            match crate::master::logfile::rotate_path(path, backup) {
                Ok(to) => {
                    let note = format!("logfile {} rotated: previous lines are in {}\n", path.display(), to.display());
                    let _ = file.write_all(note.as_bytes());
                }
                Err(e) => {
                    let _ = file.write_all(format!("cannot rotate {}: {e}\n", path.display()).as_bytes());
                    return;
                }
            }
        } else if !moved {
            return;
        }
        if let Ok(f) = crate::master::logfile::open(path) {
            *file = f;
        }
    }
}

/// RFC 3164 timestamp, `Mmm dd hh:mm:ss` (day padded with a space), local time.
fn syslog_time(now: u64) -> String {
    let secs = i64::try_from(now / 1_000_000).unwrap_or(0);
    let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().with_timezone(&chrono::Local);
    t.format("%b %e %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn logger_specs_parse_as_uwsgi_reads_them() {
        let file = |p: &str| Target::File { path: PathBuf::from(p), maxsize: 0, backupname: None };
        let table: &[(&str, Option<&str>, Target)] = &[
            ("file:/var/log/app/uwsgi.log", None, file("/var/log/app/uwsgi.log")),
            ("file1 file:/tmp/a.log", Some("file1"), file("/tmp/a.log")),
            (
                "file:logfile=/tmp/b.log,maxsize=100,backupname=/tmp/b.old",
                None,
                Target::File {
                    path: PathBuf::from("/tmp/b.log"),
                    maxsize: 100,
                    backupname: Some(PathBuf::from("/tmp/b.old")),
                },
            ),
            ("stdio", None, Target::Stdio),
            ("fd:3", None, Target::Fd(3)),
            ("syslog", None, Target::Syslog { ident: "uwsgi".into(), facility: 3 }),
            ("syslog:myapp,local0", None, Target::Syslog { ident: "myapp".into(), facility: 16 }),
            (
                "rsyslog:127.0.0.1:514,myapp",
                None,
                Target::Rsyslog { addr: "127.0.0.1:514".into(), tag: Some("myapp".into()), priority: 29 },
            ),
            ("socket:/tmp/log.sock", None, Target::Socket { addr: "/tmp/log.sock".into(), prefix: None }),
            (
                "net socket:127.0.0.1:9999,app: ",
                Some("net"),
                Target::Socket { addr: "127.0.0.1:9999".into(), prefix: Some("app: ".into()) },
            ),
            ("systemd", None, Target::Systemd),
        ];
        for (spec, id, target) in table {
            let parsed = parse_logger(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(parsed.id.as_deref(), *id, "{spec}");
            assert_eq!(&parsed.target, target, "{spec}");
        }
        assert!(parse_logger("redislog:127.0.0.1").unwrap_err().contains("redislog"));
        assert!(parse_logger("file:").is_err());
        assert!(parse_logger("file:logfile=/a,color=red").is_err());
    }

    #[test]
    fn syslog_and_journal_packets() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let mut syslog =
            Logger { id: None, out: Out::Syslog { socket: Some(ours), ident: "myapp".into(), priority: 16 * 8 + 6 } };
        let stderr = std::io::stderr();
        syslog.write(b"hello\n", stderr.as_fd(), 1_589_919_278_000_000);
        let mut buf = [0; 256];
        let n = theirs.recv(&mut buf).unwrap();
        let packet = std::str::from_utf8(&buf[..n]).unwrap();
        // glibc's syslog(3) framing: <PRI>Mmm dd hh:mm:ss IDENT: MSG (local time).
        assert!(packet.starts_with("<134>May ") && packet.ends_with(" myapp: hello"), "{packet}");
        assert_eq!(packet.len(), "<134>May 19 20:14:38 myapp: hello".len());

        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let mut journal = Logger { id: None, out: Out::Systemd(Some(ours)) };
        journal.write(b"one\ntwo\n", stderr.as_fd(), 0);
        for line in [&b"one"[..], b"two"] {
            let n = theirs.recv(&mut buf).unwrap();
            let mut want = b"PRIORITY=6\nMESSAGE\n".to_vec();
            want.extend_from_slice(&(line.len() as u64).to_le_bytes());
            want.extend_from_slice(line);
            want.push(b'\n');
            assert_eq!(&buf[..n], want.as_slice());
        }
    }

    #[test]
    fn socket_logger_sends_one_datagram_per_message() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-logger-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let spec = parse_logger(&format!("socket:{},[p] ", path.display())).unwrap();
        let mut logger = Logger::open(&spec).unwrap();
        let stderr = std::io::stderr();
        logger.write(b"one\n", stderr.as_fd(), 0);
        let mut buf = [0; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"[p] one\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
