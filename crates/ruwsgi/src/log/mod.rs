//! Logging: `tracing` set up once for server messages (plain lines, uWSGI style), and the
//! request-log line, built by a pure formatter (`request_line` for uWSGI's default line,
//! `format` for `log-format` and `log-json`) and written with one `write(2)` so lines
//! from concurrent threads and workers never interleave. Both escape control and
//! separator characters (`escape`), so a client can't forge a log line.
//!
//! With `log-master` (implied by `logger`, `req-logger`, `log-route`, `log-encoder` and
//! `log-json`), workers' stdout/stderr and request lines go through sequenced-packet
//! socket pairs to the master, which routes, encodes and writes them in its poll loop
//! (`dispatch`). Settings are fixed at start-up (`configure`) and inherited by forks.

mod dispatch;
mod encoder;
mod escape;
mod format;
mod logger;
mod request_line;

pub use dispatch::{drain, maintain, reopen, LogPipes};
pub use escape::Field;
pub use format::{LineFacts, LogFormat, RequestVars};
pub use request_line::{format_memory_report, format_request_line, LogPolicy, RequestRecord};

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use chrono::format::Item;
use ruwsgi_config::Config;

/// Start-up settings every process reads.
struct Settings {
    /// `log-date`: the prefix of server messages.
    date: Option<DatePrefix>,
    /// `log-format` or `log-json`; `None`: uWSGI's default line.
    request_format: Option<LogFormat>,
}

enum DatePrefix {
    /// `ctime()` form.
    Ctime,
    /// A strftime format.
    Strftime(Vec<Item<'static>>),
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// In a worker with a request logger: where request lines go (else stderr).
static REQUEST_OUT: OnceLock<OwnedFd> = OnceLock::new();

/// Installs the subscriber: messages only, no timestamps or levels, like uWSGI's log.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| ServerMessage(Vec::new()))
        .with_target(false)
        .with_level(false)
        .without_time()
        .with_ansi(false)
        .with_max_level(if std::env::var_os("RUWSGI_DEBUG").is_some() {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        })
        .try_init();
    install_panic_hook();
}

/// Compiles the logging options (`log-format`, `log-date`, loggers, routes, encoders) and,
/// with `log-master`, opens the loggers and creates the pipes. Called once in the master
/// before anything forks; the error names the option at fault.
pub fn configure(cfg: &Config) -> anyhow::Result<Option<LogPipes>> {
    let date = match cfg.log_date.as_deref() {
        None => None,
        Some("") => Some(DatePrefix::Ctime),
        Some(f) => Some(DatePrefix::Strftime(format::parse_strftime(f).map_err(|e| anyhow::anyhow!("log-date: {e}"))?)),
    };
    let ftime = if cfg.logformat_strftime { cfg.log_date.as_deref().filter(|f| !f.is_empty()) } else { None };
    let request_format = if cfg.log_json {
        Some(LogFormat::json())
    } else {
        match &cfg.log_format {
            Some(f) => Some(LogFormat::compile(f, ftime).map_err(|e| anyhow::anyhow!("log-format: {e}"))?),
            None => None,
        }
    };
    let _ = SETTINGS.set(Settings { date: if cfg.log_json { None } else { date }, request_format });
    dispatch::configure(cfg)
}

/// In a freshly forked worker: stdout/stderr (and request lines) now go to the master.
pub fn enter_worker() {
    if let Some(request) = dispatch::enter_worker() {
        let _ = REQUEST_OUT.set(request);
    }
}

/// The compiled `log-format` (or `log-json`) request line, if any.
pub fn request_format() -> Option<&'static LogFormat> {
    SETTINGS.get().and_then(|s| s.request_format.as_ref())
}

/// Writes one complete request-log line in a single call: to the request logger's pipe
/// when there is one, else to stderr (which with `log-master` is the master's pipe).
pub fn write_request_line(line: &[u8]) {
    match REQUEST_OUT.get() {
        Some(fd) => {
            let _ = nix::unistd::write(fd, line);
        }
        None => {
            let _ = std::io::stderr().lock().write_all(line);
        }
    }
}

/// One `tracing` event, buffered so it is written (or dispatched) as one message.
struct ServerMessage(Vec<u8>);

impl Write for ServerMessage {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ServerMessage {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut msg = Vec::with_capacity(self.0.len() + 32);
        if let Some(date) = SETTINGS.get().and_then(|s| s.date.as_ref()) {
            let now = chrono::Local::now();
            let prefix = match date {
                DatePrefix::Ctime => now.format("%a %b %e %H:%M:%S %Y").to_string(),
                DatePrefix::Strftime(items) => now.format_with_items(items.iter()).to_string(),
            };
            msg.extend_from_slice(prefix.as_bytes());
            msg.extend_from_slice(b" - ");
        }
        let mut escaped = String::with_capacity(self.0.len() + 8);
        escape::escape_message(&String::from_utf8_lossy(&self.0), &mut escaped);
        msg.extend_from_slice(escaped.as_bytes());
        // In the master with `log-master`: straight to the loggers. Anywhere else: stderr
        // (a worker's is the master's pipe).
        if !dispatch::server_message(&msg) {
            let _ = std::io::stderr().lock().write_all(&msg);
        }
    }
}

/// Panics go to the log through `tracing`, with the thread and place, instead of the
/// default hook's bare stderr text. The code that catches them (connection loop, worker
/// threads) logs what it was doing and recovers.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(
            "panic in thread {}{place}: {}",
            thread.name().unwrap_or("unnamed"),
            panic_message(info.payload())
        );
    }));
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-text panic payload)")
}

/// Writes one complete server-log line (a routing rule's `log:` text) in a single call,
/// escaped like every server message, through the same path (`log-master`, loggers).
pub fn write_line(line: &[u8]) {
    let mut msg = ServerMessage(Vec::with_capacity(line.len()));
    msg.0.extend_from_slice(line);
}

/// This machine's host name (for `SERVER_NAME` on wildcard sockets).
pub fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".to_owned())
}

thread_local! {
    /// Last formatted `ctime()` and the second it was made for.
    static CTIME: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// `ctime()`-style local time of `micros` since the epoch, e.g. `Tue May 19 20:14:38 2020`,
/// cached per second per thread.
pub fn ctime(micros: u64) -> String {
    let secs = micros / 1_000_000;
    CTIME.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs {
            let t = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default().with_timezone(&chrono::Local);
            *c = (secs, t.format("%a %b %e %H:%M:%S %Y").to_string());
        }
        c.1.clone()
    })
}
