//! uWSGI's default request-log line (`core/logging.c`, `uwsgi_logit_simple`):
//! `[pid: P|app: 0|req: N/T] ADDR () {V vars in B bytes} [CTIME] METHOD URI => generated
//! S bytes in D msecs (PROTO STATUS) H headers in HB bytes (1 switches on core C)`.

use std::fmt::Write;

/// Everything one request-log line shows.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    /// Worker pid.
    pub pid: i32,
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
    let _ = writeln!(
        out,
        "[pid: {}|app: 0|req: {}/{}] {} () {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} {}{}({} {}) {} headers in {} bytes (1 switches on core {})",
        r.pid,
        r.worker_requests,
        r.total_requests,
        r.remote_addr,
        r.vars,
        r.packet_bytes,
        r.ctime,
        r.method,
        r.uri,
        r.body_bytes,
        time,
        unit,
        via,
        r.protocol,
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
    fn matches_uwsgi_default_format() {
        let r = RequestRecord {
            pid: 79452,
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
    }
}
