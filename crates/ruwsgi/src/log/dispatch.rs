//! `log-master`: the master reads its workers' output and log lines from sequenced-packet
//! socket pairs (one message per `write`, so lines from many threads and workers never
//! interleave or split), then routes (`log-route`), encodes (`log-encoder`) and writes
//! them to the loggers, as uWSGI's `uwsgi_master_log`/`uwsgi_master_req_log`
//! (`core/logging.c`).
//!
//! Differs from uWSGI: workers write to the pipe blocking (uWSGI's end is non-blocking and
//! drops lines when the master lags), so no line is lost; and `threaded-logger` starts no
//! thread: the master is single-threaded (it forks) and drains the pipes in its poll loop.
//!
//! The `Dispatch` lives in a global so `tracing` events in the master reach the loggers
//! directly; a worker drops it right after the fork (`enter_worker`).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType};
use ruwsgi_config::Config;

use super::encoder::{encode_chain, parse_encoder, Encoder};
use super::logger::{parse_logger, Logger};

/// Socket buffer asked for on the pipes (the kernel may cap it at `wmem_max`).
const PIPE_BUFFER: usize = 4 << 20;
/// Messages handled per `drain` call, so a flood can't starve the master's other work.
const DRAIN_BATCH: usize = 4096;

static DISPATCH: Mutex<Option<Dispatch>> = Mutex::new(None);

/// The read ends the master polls.
pub struct LogPipes {
    /// Server log: workers' stdout/stderr (and request lines without `req-logger`).
    pub server: OwnedFd,
    /// Request log (`req-logger` or `log-json`).
    pub request: Option<OwnedFd>,
}

/// Loggers with their routes.
struct Chain {
    loggers: Vec<Logger>,
    /// `(regexp, index in loggers)`.
    routes: Vec<(LogRegex, usize)>,
}

struct Dispatch {
    /// `log-drain`: server messages matching one are dropped.
    drain: Vec<LogRegex>,
    /// `log-filter`: when not empty, only server messages matching one are kept.
    filter: Vec<LogRegex>,
    /// `log-master-bufsize`: longest message read; a longer one is cut.
    bufsize: usize,
    server: Chain,
    server_encoders: Vec<Encoder>,
    /// `req-logger`s; `None`: request lines use the server loggers.
    request: Option<Chain>,
    request_encoders: Vec<Encoder>,
    /// Write ends handed to each worker.
    server_write: OwnedFd,
    request_write: Option<OwnedFd>,
    /// `log-maxsize`/`log-backupname`, for `file:` loggers without their own.
    maxsize: u64,
    backupname: Option<std::path::PathBuf>,
}

/// Builds the dispatch when `log-master` (or anything implying it) is set.
pub fn configure(cfg: &Config) -> Result<Option<LogPipes>> {
    if !(cfg.log_master || cfg.log_json) {
        return Ok(None);
    }
    let mut server_encoders = Vec::new();
    if cfg.log_json {
        // The server's own messages as JSON lines; request lines are JSON already.
        for spec in [r#"json {"time":"${strftime:%Y-%m-%dT%H:%M:%S%z}","source":"ruwsgi","msg":"${msg}"}"#, "nl"] {
            server_encoders.push(parse_encoder(spec).map_err(anyhow::Error::msg)?);
        }
    }
    for spec in &cfg.log_encoder {
        server_encoders.push(parse_encoder(spec).map_err(|e| anyhow::anyhow!("log-encoder = {spec}: {e}"))?);
    }
    let request_encoders = cfg
        .log_req_encoder
        .iter()
        .map(|spec| parse_encoder(spec).map_err(|e| anyhow::anyhow!("log-req-encoder = {spec}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let server = chain(&cfg.logger, &cfg.log_route, "logger", "log-route")?;
    let request = if cfg.req_logger.is_empty() {
        if !cfg.log_req_route.is_empty() {
            bail!("log-req-route needs a named req-logger");
        }
        None
    } else {
        Some(chain(&cfg.req_logger, &cfg.log_req_route, "req-logger", "log-req-route")?)
    };
    let (server_read, server_write) = pipe()?;
    let (request_read, request_write) = if request.is_some() || cfg.log_json {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let regexps = |list: &[String], option: &str| {
        list.iter()
            .map(|re| LogRegex::new(re).with_context(|| format!("{option} = {re}: invalid regexp")))
            .collect::<Result<Vec<_>>>()
    };
    *lock() = Some(Dispatch {
        drain: regexps(&cfg.log_drain, "log-drain")?,
        filter: regexps(&cfg.log_filter, "log-filter")?,
        bufsize: cfg.log_master_bufsize,
        server,
        server_encoders,
        request,
        request_encoders,
        server_write,
        request_write,
        maxsize: cfg.log_maxsize,
        backupname: cfg.log_backupname.clone(),
    });
    if cfg.threaded_logger {
        tracing::info!("threaded-logger: the master writes the log in its own loop (no thread)");
    }
    Ok(Some(LogPipes { server: server_read, request: request_read }))
}

/// A `log-route`/`log-drain`/`log-filter` regexp. uWSGI compiles them with PCRE, and real
/// configs use what only PCRE reads (look-around such as `^((?!\{).)*$`, a `{` that starts
/// no repetition taken as a literal), so they go to `fancy-regex`, which adds look-around and
/// back-references on top of the `regex` crate. Log lines are matched as (lossy) UTF-8.
struct LogRegex(fancy_regex::Regex);

impl LogRegex {
    fn new(re: &str) -> std::result::Result<Self, fancy_regex::Error> {
        fancy_regex::Regex::new(&literal_braces(re)).map(Self)
    }

    fn is_match(&self, msg: &[u8]) -> bool {
        // A match that runs out of backtracking budget counts as no match.
        self.0.is_match(String::from_utf8_lossy(msg).as_ref()).unwrap_or(false)
    }
}

/// Escapes each `{` that PCRE would read as a literal: one not starting `{n}`, `{n,}` or
/// `{n,m}` (the `regex` crate refuses those).
fn literal_braces(re: &str) -> String {
    let mut out = String::with_capacity(re.len() + 4);
    let mut escaped = false;
    for (i, c) in re.char_indices() {
        if c == '{' && !escaped && !starts_repetition(&re[i + 1..]) {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    out
}

fn starts_repetition(after: &str) -> bool {
    let Some(end) = after.find('}') else { return false };
    let (min, max) = after[..end].split_once(',').unwrap_or((&after[..end], "0"));
    !min.is_empty() && min.bytes().all(|b| b.is_ascii_digit()) && max.bytes().all(|b| b.is_ascii_digit())
}

fn chain(specs: &[String], routes: &[(String, String)], option: &str, route_option: &str) -> Result<Chain> {
    let mut loggers = Vec::new();
    for spec in specs {
        let parsed = parse_logger(spec).map_err(|e| anyhow::anyhow!("{option} = {spec}: {e}"))?;
        loggers.push(Logger::open(&parsed).map_err(|e| anyhow::anyhow!("{option} = {spec}: {e}"))?);
    }
    let routes = routes
        .iter()
        .map(|(name, re)| {
            let regex = LogRegex::new(re).with_context(|| format!("{route_option} = {name} {re}: invalid regexp"))?;
            let index = loggers
                .iter()
                .position(|l| l.id.as_deref() == Some(name.as_str()))
                .with_context(|| format!("{route_option} = {name} {re}: no {option} named \"{name}\""))?;
            Ok((regex, index))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Chain { loggers, routes })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (read, write) = socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .context("cannot create the log pipe")?;
    // Best effort: bigger buffers absorb bursts while the master is busy.
    let _ = socket::setsockopt(&read, sockopt::RcvBuf, &PIPE_BUFFER);
    let _ = socket::setsockopt(&write, sockopt::SndBuf, &PIPE_BUFFER);
    Ok((read, write))
}

fn lock() -> std::sync::MutexGuard<'static, Option<Dispatch>> {
    DISPATCH.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// In a worker: drops the master's loggers, points stdout/stderr at the server pipe and
/// returns the request pipe's write end, if any.
pub fn enter_worker() -> Option<OwnedFd> {
    let dispatch = lock().take()?;
    let _ = nix::unistd::dup2_stdout(dispatch.server_write.as_fd());
    let _ = nix::unistd::dup2_stderr(dispatch.server_write.as_fd());
    dispatch.request_write
}

/// In the master with `log-master`: dispatches one server message and returns true; false
/// anywhere else (the caller writes to stderr).
pub fn server_message(msg: &[u8]) -> bool {
    // `try_lock`: a logger failing while dispatching may log; that message goes to stderr.
    let Ok(mut guard) = DISPATCH.try_lock() else { return false };
    let Some(d) = guard.as_mut() else { return false };
    let now = now_micros();
    if d.keeps(msg) {
        d.server.emit(msg, &d.server_encoders, now);
    }
    true
}

/// Reads every message waiting on the pipes (up to a batch) and writes them out. Called by
/// the master when poll says a pipe is readable.
pub fn drain(pipes: &LogPipes) {
    let mut guard = lock();
    let Some(d) = guard.as_mut() else { return };
    let mut buf = vec![0u8; d.bufsize];
    for (fd, request) in [(Some(&pipes.server), false), (pipes.request.as_ref(), true)] {
        let Some(fd) = fd else { continue };
        for _ in 0..DRAIN_BATCH {
            let Ok(n) = socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) else { break };
            if n == 0 {
                break;
            }
            let now = now_micros();
            let msg = &buf[..n];
            if !request && !d.keeps(msg) {
                continue;
            }
            match (request, d.request.as_mut()) {
                (false, _) => d.server.emit(msg, &d.server_encoders, now),
                (true, Some(chain)) => chain.emit(msg, &d.request_encoders, now),
                (true, None) => d.server.emit(msg, &d.request_encoders, now),
            }
        }
    }
}

/// File loggers: rotation at `maxsize`/`log-maxsize` and reopening after logrotate.
pub fn maintain() {
    let mut guard = lock();
    let Some(d) = guard.as_mut() else { return };
    let now = now_micros();
    let (maxsize, backup) = (d.maxsize, d.backupname.clone());
    for chain in std::iter::once(&mut d.server).chain(d.request.as_mut()) {
        for l in &mut chain.loggers {
            l.maintain(maxsize, backup.as_deref(), now);
        }
    }
}

/// `l` on the master FIFO: reopen every `file:` logger now.
pub fn reopen() {
    let mut guard = lock();
    let Some(d) = guard.as_mut() else { return };
    for chain in std::iter::once(&mut d.server).chain(d.request.as_mut()) {
        for l in &mut chain.loggers {
            l.reopen();
        }
    }
}

impl Dispatch {
    /// `log-drain` and `log-filter`, applied to the server log as uWSGI does.
    fn keeps(&self, msg: &[u8]) -> bool {
        !self.drain.iter().any(|r| r.is_match(msg))
            && (self.filter.is_empty() || self.filter.iter().any(|r| r.is_match(msg)))
    }
}

impl Chain {
    /// uWSGI's order: lines a route matches go to that route's logger only; the others go
    /// to every unnamed logger, or to the original stderr when there is none.
    fn emit(&mut self, msg: &[u8], encoders: &[Encoder], now: u64) {
        let stderr = std::io::stderr();
        let mut routed = false;
        for (regex, index) in &self.routes {
            if regex.is_match(msg) {
                let logger = &mut self.loggers[*index];
                let encoded = encode_chain(encoders, logger.id.as_deref(), msg, now);
                logger.write(encoded.as_deref().unwrap_or(msg), stderr.as_fd(), now);
                routed = true;
            }
        }
        if routed {
            return;
        }
        let mut written = false;
        for logger in self.loggers.iter_mut().filter(|l| l.id.is_none()) {
            let encoded = encode_chain(encoders, None, msg, now);
            logger.write(encoded.as_deref().unwrap_or(msg), stderr.as_fd(), now);
            written = true;
        }
        if !written {
            let encoded = encode_chain(encoders, None, msg, now);
            let _ = nix::unistd::write(stderr.as_fd(), encoded.as_deref().unwrap_or(msg));
        }
    }
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_regexps_read_what_pcre_reads() {
        let cases: &[(&str, &[u8], bool)] = &[
            // A lone `{` is a literal, as PCRE reads it; real repetitions stay repetitions.
            ("{", b"{\"msg\": 1}", true),
            ("{", b"plain line", false),
            ("^a{2}$", b"aa", true),
            ("^a{2,}$", b"aaa", true),
            ("^x{,3}$", b"x{,3}", true),
            (r"\{", b"{", true),
            // Look-around, which only PCRE-like engines have.
            (r"^((?!\{).)*$", b"no brace here", true),
            (r"^((?!\{).)*$", b"a {json} line", false),
        ];
        for &(re, line, want) in cases {
            assert_eq!(LogRegex::new(re).unwrap().is_match(line), want, "{re} on {:?}", String::from_utf8_lossy(line));
        }
    }
}
