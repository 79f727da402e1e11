//! Logging: `tracing` set up once for server messages (plain lines on stderr, uWSGI
//! style), and the uWSGI request-log line, built by a pure formatter and written with one
//! `write(2)` so lines from concurrent threads and workers never interleave. Both escape
//! control and separator characters (`escape`), so a client can't forge a log line.

mod escape;
mod request_line;

pub use escape::Field;
pub use request_line::{format_memory_report, format_request_line, LogPolicy, RequestRecord};

use std::io::Write;

/// Installs the subscriber: messages only, no timestamps or levels, like uWSGI's log.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| EscapingStderr)
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

/// stderr for `tracing`: each formatted message is escaped (`escape::escape_message`) and
/// written in one call. The fmt layer hands over a whole message per `write_all`.
struct EscapingStderr;

impl Write for EscapingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = String::with_capacity(buf.len() + 8);
        escape::escape_message(&String::from_utf8_lossy(buf), &mut out);
        std::io::stderr().lock().write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Writes one complete line to stderr in a single call.
pub fn write_line(line: &[u8]) {
    let _ = std::io::stderr().lock().write_all(line);
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
