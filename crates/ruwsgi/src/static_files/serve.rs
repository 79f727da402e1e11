//! The I/O half of static serving: find the file (realpath, root/`static-safe` check,
//! `static-index`, open without following a last-moment symlink, fstat), choose the gzip
//! variant, build the response head, and send it: the head in one write, the body with
//! `sendfile`. A [`Transfer`] is resumable, so the connection loop can park a slow
//! download in its epoll set instead of blocking the thread.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use ruwsgi_proto::{encode_response_head, ResponseFraming};

use super::resolve::{self, FileFacts, Plan, Refusal};
use super::{StaticFiles, StaticRequest};
use crate::interface::MemoryRest;
use crate::net::transport::Io;

/// Most body bytes one [`Transfer::advance`] sends before yielding, so one fast download
/// can't starve the other connections of its thread (epoll is level-triggered, so the
/// connection is woken again right away).
const SEND_SLICE: u64 = 8 << 20;

/// Result of looking a candidate path up on disk.
pub(super) enum Found {
    /// Nothing servable there: fall through to the next map or the app.
    Missing,
    /// It exists but must not be served.
    Refused(Refusal),
    /// An open regular file.
    File(OpenFile),
}

/// An opened regular file and what we know about it.
pub(super) struct OpenFile {
    file: File,
    /// Real path (symlinks resolved).
    path: PathBuf,
    facts: FileFacts,
}

/// A response ready to go out.
pub struct Reply {
    /// The bytes and the file to send.
    pub transfer: Transfer,
    /// Status code.
    pub status: u16,
    /// Header lines in the head.
    pub header_count: usize,
    /// The connection may carry another request afterwards.
    pub keep_alive: bool,
    /// The body goes out with sendfile (for the request log's `via sendfile()`).
    pub sendfile: bool,
}

/// Outcome of one [`Transfer::advance`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything was sent.
    Done,
    /// The socket is full (or this turn's slice is used up): call again when writable.
    Blocked,
}

/// A response on its way out: head (plus any small inline body), then a file range or the
/// unsent end of a body in memory.
pub struct Transfer {
    /// Head bytes, followed by the inline body, if any.
    head: Vec<u8>,
    /// Bytes of `head` that are the response head (the rest is inline body).
    head_len: usize,
    /// Bytes of `head` already written.
    written: usize,
    /// The file, when a body comes from one.
    file: Option<File>,
    /// Next file offset to send.
    offset: u64,
    /// File bytes still to send.
    remaining: u64,
    /// File (or `memory`) bytes sent so far.
    file_sent: u64,
    /// The unsent end of an app's body in memory (instead of a file).
    memory: Option<MemoryRest>,
}

/// Done once the TLS records (if any) have left too.
fn flushed(io: &Io) -> io::Result<Progress> {
    Ok(if io.flush()? { Progress::Done } else { Progress::Blocked })
}

impl Transfer {
    /// The rest of a file body whose head (`head_bytes` long) and first `sent` body bytes
    /// already went out: a `wsgi.file_wrapper` response the app's thread handed over.
    pub fn file_rest(file: File, offset: u64, remaining: u64, head_bytes: usize, sent: u64) -> Self {
        Transfer {
            head: Vec::new(),
            head_len: head_bytes,
            written: head_bytes,
            file: Some(file),
            offset,
            remaining,
            file_sent: sent,
            memory: None,
        }
    }

    /// The unsent end of an in-memory body whose head (`head_bytes` long) and first `sent`
    /// body bytes already went out: the app's thread handed it over.
    pub fn memory_rest(rest: MemoryRest, head_bytes: usize, sent: u64) -> Self {
        Transfer {
            head: Vec::new(),
            head_len: head_bytes,
            written: head_bytes,
            file: None,
            offset: 0,
            remaining: 0,
            file_sent: sent,
            memory: Some(rest),
        }
    }

    /// Writes as much as the socket takes now (over TLS, done once the records are out).
    pub fn advance(&mut self, io: &Io) -> io::Result<Progress> {
        let body_follows = self.file.is_some() && self.remaining > 0;
        while self.written < self.head.len() {
            match io.try_send(&[IoSlice::new(&self.head[self.written..])], body_follows) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) => return Err(e),
            }
        }
        if let Some(rest) = &mut self.memory {
            let bytes = (*rest.bytes).as_ref();
            let mut this_turn = 0u64;
            while rest.offset < bytes.len() {
                if this_turn >= SEND_SLICE {
                    return Ok(Progress::Blocked);
                }
                match io.try_write(&[IoSlice::new(&bytes[rest.offset..])]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        rest.offset += n;
                        self.file_sent += n as u64;
                        this_turn += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                    Err(e) => return Err(e),
                }
            }
            return flushed(io);
        }
        let Some(file) = &self.file else {
            return flushed(io);
        };
        let mut this_turn = 0u64;
        while self.remaining > 0 {
            if this_turn >= SEND_SLICE {
                return Ok(Progress::Blocked);
            }
            match io.try_send_file(file.as_fd(), &mut self.offset, self.remaining.min(SEND_SLICE)) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")),
                Ok(n) => {
                    self.remaining -= n as u64;
                    self.file_sent += n as u64;
                    this_turn += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Progress::Blocked),
                Err(e) => return Err(e),
            }
        }
        flushed(io)
    }

    /// Body bytes sent so far (inline and from the file).
    pub fn body_bytes(&self) -> u64 {
        self.written.saturating_sub(self.head_len) as u64 + self.file_sent
    }

    /// Size of the response head.
    pub fn head_bytes(&self) -> usize {
        self.head_len
    }
}

impl StaticFiles {
    /// Looks `candidate` up: a regular file, or a directory with a `static-index` file, whose
    /// real path stays under `root` (or a `static-safe` root).
    pub(super) fn find(&self, candidate: &Path, root: &Path) -> Found {
        // Fast path, the common case: no symlink anywhere on the way. Then the candidate is
        // its own real path, under `root` (a real path) by construction, and one open does
        // what canonicalize (a readlink per component) and a stat would.
        if plainly_under(candidate, root) {
            match open_without_symlinks(candidate) {
                Ok(file) => return self.found(file, candidate.to_path_buf(), root),
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES) => return Found::Missing,
                // ELOOP: a symlink on the way; ENOSYS/EPERM: no openat2 here.
                Err(_) => {}
            }
        }
        let Ok(real) = std::fs::canonicalize(candidate) else {
            return Found::Missing;
        };
        if !real.starts_with(root) && !self.safe.iter().any(|s| real.starts_with(s)) {
            return Found::Refused(Refusal::OutsideRoot);
        }
        // O_NOFOLLOW: the real path has no symlinks, so one appearing now is a swap race.
        // O_NONBLOCK: a FIFO swapped in must not block the thread; `found` rejects it.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&real);
        match opened {
            Ok(file) => self.found(file, real, root),
            Err(_) => Found::Missing,
        }
    }

    /// What an opened `path` (a real path) answers: a regular file, or a directory's
    /// `static-index` file. Directories are never listed.
    fn found(&self, file: File, path: PathBuf, root: &Path) -> Found {
        let Ok(meta) = file.metadata() else {
            return Found::Missing;
        };
        if meta.is_dir() {
            drop(file);
            for name in &self.index {
                match self.find(&path.join(name), root) {
                    Found::Missing => {}
                    found => return found,
                }
            }
            return Found::Missing;
        }
        if !meta.is_file() {
            return Found::Missing;
        }
        let name = path.as_os_str().as_encoded_bytes();
        if self.skip_ext.iter().any(|ext| name.ends_with(ext.as_bytes())) {
            return Found::Missing;
        }
        let facts = FileFacts { size: meta.len(), mtime: meta.mtime() };
        Found::File(OpenFile { file, path, facts })
    }

    /// Builds the reply for a found file: gzip variant, validators, range, expires.
    pub(super) fn reply_file(&self, req: &StaticRequest<'_>, found: OpenFile, root: &Path) -> Reply {
        let mime = self.mime_type(&found.path).to_owned();
        let file_name = found.path.to_string_lossy();
        let expires = self.expires.seconds(&mime, &file_name, req.uri);
        let mut vary = false;
        let mut chosen = found;
        let mut gzip = false;
        if self.gzip_all || self.gzip_dirs.iter().any(|d| chosen.path.starts_with(d)) {
            let mut gz = chosen.path.clone().into_os_string();
            gz.push(".gz");
            if let Found::File(variant) = self.find(Path::new(&gz), root) {
                vary = true;
                if resolve::accepts_gzip(req.accept_encoding) {
                    chosen = variant;
                    gzip = true;
                }
            }
        }
        let facts = &chosen.facts;
        let plan = resolve::plan(facts, &req.conditions);
        let etag = facts.etag();
        let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(facts.mtime.max(0) as u64));
        let expires_at = expires.map(|s| httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(s)));
        let max_age = expires.map(|s| format!("max-age={s}"));
        let content_range;
        let mut headers: Vec<(&[u8], &[u8])> = Vec::with_capacity(10);
        let (status, body): (&[u8], Option<(u64, u64)>) = match plan {
            Plan::NotModified => (b"304 Not Modified", None),
            Plan::Full => (b"200 OK", Some((0, facts.size))),
            Plan::Partial { start, len } => {
                content_range = format!("bytes {start}-{}/{}", start + len - 1, facts.size);
                headers.push((b"Content-Range", content_range.as_bytes()));
                (b"206 Partial Content", Some((start, len)))
            }
            Plan::Unsatisfiable => {
                content_range = format!("bytes */{}", facts.size);
                let mut reply = error_reply(req, 416, "Range Not Satisfiable");
                let extra = format!("Content-Range: {content_range}\r\n");
                // Splice the extra header in before the blank line ending the head.
                let at = reply.transfer.head_len - 2;
                reply.transfer.head.splice(at..at, extra.bytes());
                reply.transfer.head_len += extra.len();
                reply.header_count += 1;
                return reply;
            }
        };
        if body.is_some() {
            headers.push((b"Content-Type", mime.as_bytes()));
            headers.push((b"Accept-Ranges", b"bytes"));
        }
        if gzip {
            headers.push((b"Content-Encoding", b"gzip"));
        }
        if vary {
            headers.push((b"Vary", b"Accept-Encoding"));
        }
        headers.extend(self.extra_headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())));
        headers.push((b"Last-Modified", last_modified.as_bytes()));
        headers.push((b"ETag", etag.as_bytes()));
        if let (Some(at), Some(age)) = (&expires_at, &max_age) {
            // Differs from uWSGI: Cache-Control max-age is sent along with Expires.
            headers.push((b"Expires", at.as_bytes()));
            headers.push((b"Cache-Control", age.as_bytes()));
        }
        let framing = match body {
            Some((_, len)) => ResponseFraming::Length(len),
            None => ResponseFraming::AsGiven,
        };
        let mut head = Vec::with_capacity(320);
        encode_response_head(&mut head, req.minor_version, status, &headers, framing, req.keep_alive);
        let header_count = headers.len() + usize::from(body.is_some()) + count_connection_header(req);
        let (offset, remaining) = match body {
            Some(range) if !req.head_only => range,
            _ => (0, 0),
        };
        let head_len = head.len();
        Reply {
            transfer: Transfer {
                head,
                head_len,
                written: 0,
                file: (remaining > 0).then_some(chosen.file),
                offset,
                remaining,
                file_sent: 0,
                memory: None,
            },
            status: match plan {
                Plan::NotModified => 304,
                Plan::Partial { .. } => 206,
                _ => 200,
            },
            header_count,
            keep_alive: req.keep_alive,
            sendfile: remaining > 0,
        }
    }
}

/// A small text reply (403, 416) that keeps the connection usable.
pub(super) fn error_reply(req: &StaticRequest<'_>, status: u16, reason: &str) -> Reply {
    let body = format!("{status} {reason}\n");
    let status_line = format!("{status} {reason}");
    let mut head = Vec::with_capacity(160);
    encode_response_head(
        &mut head,
        req.minor_version,
        status_line.as_bytes(),
        &[(b"Content-Type", b"text/plain")],
        ResponseFraming::Length(body.len() as u64),
        req.keep_alive,
    );
    let head_len = head.len();
    if !req.head_only {
        head.extend_from_slice(body.as_bytes());
    }
    Reply {
        transfer: Transfer {
            head,
            head_len,
            written: 0,
            file: None,
            offset: 0,
            remaining: 0,
            file_sent: 0,
            memory: None,
        },
        status,
        header_count: 2 + count_connection_header(req),
        keep_alive: req.keep_alive,
        sendfile: false,
    }
}

/// 1 when `encode_response_head` adds a `Connection` header.
fn count_connection_header(req: &StaticRequest<'_>) -> usize {
    usize::from((req.minor_version == 0) == req.keep_alive)
}

/// True when `path` is `root` followed by plain names only (no `.`, `..` or root parts).
fn plainly_under(path: &Path, root: &Path) -> bool {
    path.strip_prefix(root).is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
}

/// Opens `path` read-only, failing with ELOOP if any component is a symlink (`openat2`
/// with `RESOLVE_NO_SYMLINKS`, Linux 5.6+). Non-blocking and without a controlling tty, so
/// a FIFO or device in a static directory can't stall or take over the worker.
fn open_without_symlinks(path: &Path) -> Result<File, Errno> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(AT_FDCWD, path, how).map(File::from)
}
