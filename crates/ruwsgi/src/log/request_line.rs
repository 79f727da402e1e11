//! uWSGI's default request-log line (`core/logging.c`, `uwsgi_logit_simple`):
//! `[pid: P|app: A|req: N/T] ADDR () {V vars in B bytes} [CTIME] METHOD URI => generated
//! S bytes in D msecs (PROTO STATUS) H headers in HB bytes (1 switches on core C)`.
//! The text fields (address, method, URI, protocol) come from the client and are escaped
//! (`log::escape`); uWSGI writes them raw.

use std::fmt::Write;

use super::Field;

/// Which requests get a line: every one unless `disable-logging`, and, even then, those
/// uWSGI's conditional options pick (`log-4xx`, `log-5xx`, `log-slow`, `log-big`,
/// `log-zero`, `log-sendfile`).
#[derive(Debug, Clone, Copy, Default)]
#[allow(clippy::struct_excessive_bools)] // independent uWSGI switches, one field each
pub struct LogPolicy {
    /// Log every request.
    pub all: bool,
    /// `log-4xx`.
    pub status_4xx: bool,
    /// `log-5xx`.
    pub status_5xx: bool,
    /// `log-slow`: at least this many ms (0 = off).
    pub slow_ms: u64,
    /// `log-big`: a body of at least this many bytes (0 = off).
    pub big_bytes: u64,
    /// `log-zero`: an empty body.
    pub zero: bool,
    /// `log-sendfile`: a body sent with sendfile.
    pub sendfile: bool,
    /// `memory-report`: the worker's address space and RSS before each line.
    pub memory: bool,
}

impl LogPolicy {
    /// Whether this request gets a line.
    #[must_use]
    pub fn wants(&self, status: u16, micros: u64, body_bytes: u64, sendfile: bool) -> bool {
        self.all
            || (self.status_4xx && (400..500).contains(&status))
            || (self.status_5xx && (500..600).contains(&status))
            || (self.slow_ms > 0 && micros / 1000 >= self.slow_ms)
            || (self.big_bytes > 0 && body_bytes >= self.big_bytes)
            || (self.zero && body_bytes == 0)
            || (self.sendfile && sendfile)
    }
}

/// `memory-report`'s prefix, as uWSGI writes it: `{address space usage: B bytes/NMB}
/// {rss usage: B bytes/NMB} `.
pub fn format_memory_report(address_space: u64, rss: u64, out: &mut String) {
    let _ = write!(
        out,
        "{{address space usage: {address_space} bytes/{}MB}} {{rss usage: {rss} bytes/{}MB}} ",
        address_space >> 20,
        rss >> 20
    );
}

/// Everything one request-log line shows.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// Worker pid.
    pub pid: i32,
    /// Id of the app that served it (`mount` order); `None` prints uWSGI's `-1` (no app).
    pub app: Option<usize>,
    /// Requests served by this worker (including this one).
    pub worker_requests: u64,
    /// Requests served by the whole instance.
    pub total_requests: u64,
    /// `REMOTE_ADDR`.
    pub remote_addr: &'a str,
    /// Environ entries and request-head (or uwsgi packet) bytes.
    pub vars: usize,
    /// Bytes of the head or packet.
    pub packet_bytes: usize,
    /// `ctime()` of the request start, 24 chars.
    pub ctime: &'a str,
    /// Method and URI as received.
    pub method: &'a str,
    /// `REQUEST_URI`.
    pub uri: &'a str,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Duration in µs.
    pub micros: u64,
    /// `log-micros`: print µs instead of ms.
    pub log_micros: bool,
    /// The body went out via sendfile.
    pub sendfile: bool,
    /// `SERVER_PROTOCOL`.
    pub protocol: &'a str,
    /// Status code.
    pub status: u16,
    /// Header lines and bytes.
    pub header_count: usize,
    /// Bytes of the response head.
    pub header_bytes: usize,
    /// Worker thread index.
    pub core: usize,
}

/// Appends the line (with its newline) to `out`.
pub fn format_request_line(r: &RequestRecord<'_>, out: &mut String) {
    let (time, unit) = if r.log_micros { (r.micros, "micros") } else { (r.micros / 1000, "msecs") };
    let via = if r.sendfile { " via sendfile() " } else { " " };
    let app = r.app.map_or(-1, |id| i64::try_from(id).unwrap_or(i64::MAX));
    let _ = writeln!(
        out,
        "[pid: {}|app: {}|req: {}/{}] {} () {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} {}{}({} {}) {} headers in {} bytes (1 switches on core {})",
        r.pid,
        app,
        r.worker_requests,
        r.total_requests,
        Field(r.remote_addr),
        r.vars,
        r.packet_bytes,
        r.ctime,
        Field(r.method),
        Field(r.uri),
        r.body_bytes,
        time,
        unit,
        via,
        Field(r.protocol),
        r.status,
        r.header_count,
        r.header_bytes,
        r.core
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_logging_as_in_uwsgi() {
        let off = LogPolicy::default();
        assert!(!off.wants(500, 10_000_000, 1 << 30, true), "disable-logging alone logs nothing");
        let errors = LogPolicy { status_4xx: true, status_5xx: true, ..off };
        assert!(errors.wants(404, 0, 10, false) && errors.wants(503, 0, 10, false));
        assert!(!errors.wants(200, 0, 10, false) && !errors.wants(302, 0, 10, false));
        let slow = LogPolicy { slow_ms: 100, ..off };
        assert!(slow.wants(200, 100_000, 10, false) && !slow.wants(200, 99_999, 10, false));
        let big = LogPolicy { big_bytes: 1000, ..off };
        assert!(big.wants(200, 0, 1000, false) && !big.wants(200, 0, 999, false));
        assert!(LogPolicy { zero: true, ..off }.wants(204, 0, 0, false));
        assert!(LogPolicy { sendfile: true, ..off }.wants(200, 0, 5, true));
        assert!(LogPolicy { all: true, ..off }.wants(200, 0, 5, false));
    }

    #[test]
    fn memory_report_prefix() {
        let mut out = String::new();
        format_memory_report(171_843_584, 30_564_352, &mut out);
        assert_eq!(out, "{address space usage: 171843584 bytes/163MB} {rss usage: 30564352 bytes/29MB} ");
    }

    #[test]
    fn matches_uwsgi_default_format() {
        let r = RequestRecord {
            pid: 79452,
            app: Some(0),
            worker_requests: 1,
            total_requests: 1,
            remote_addr: "164.67.235.242",
            vars: 42,
            packet_bytes: 839,
            ctime: "Tue May 19 20:14:38 2020",
            method: "GET",
            uri: "/",
            body_bytes: 15501,
            micros: 683_400,
            log_micros: false,
            sendfile: false,
            protocol: "HTTP/1.1",
            status: 200,
            header_count: 3,
            header_bytes: 104,
            core: 0,
        };
        let mut line = String::new();
        format_request_line(&r, &mut line);
        assert_eq!(
            line,
            "[pid: 79452|app: 0|req: 1/1] 164.67.235.242 () {42 vars in 839 bytes} [Tue May 19 20:14:38 2020] GET / => generated 15501 bytes in 683 msecs (HTTP/1.1 200) 3 headers in 104 bytes (1 switches on core 0)\n"
        );
        line.clear();
        format_request_line(
            &RequestRecord { uri: "/a\r\n[pid: 1|app: 0|req: 1/1] \u{2028}", remote_addr: "1.2.3.4\x1b", ..r.clone() },
            &mut line,
        );
        assert!(line.contains("] 1.2.3.4\\x1b () {"), "{line}");
        assert!(line.contains(" GET /a\\x0d\\x0a[pid: 1|app: 0|req: 1/1] \\u2028 => "), "{line}");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        line.clear();
        format_request_line(&RequestRecord { app: Some(2), ..r.clone() }, &mut line);
        assert!(line.starts_with("[pid: 79452|app: 2|req: 1/1] "), "{line}");
        line.clear();
        format_request_line(&RequestRecord { app: None, ..r }, &mut line);
        assert!(line.starts_with("[pid: 79452|app: -1|req: 1/1] "), "{line}");
    }
}
