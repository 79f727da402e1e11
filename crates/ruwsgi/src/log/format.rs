//! `log-format`: the request-log line built from `%(name)` fields, as uWSGI's
//! `uwsgi_build_log_format`/`uwsgi_logit_lf` (`core/logging.c`) do it.
//!
//! The format is compiled once at start-up into segments (literal text, a built-in field, a
//! request variable); rendering a request walks the segments and appends bytes, without
//! parsing. Every value goes through `push_value`, the one place where escaping happens
//! (`log-json` escapes for JSON). No I/O here: the caller reads the clock and the memory
//! figures and writes the line.

use std::cell::RefCell;
use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use ruwsgi_proto::{RequestHead, UwsgiPacket};

/// uWSGI's `%(ltime)` layout (Apache's `%t`).
const LTIME: &str = "%d/%b/%Y:%H:%M:%S %z";

/// A compiled `log-format`.
#[derive(Debug, Clone)]
pub struct LogFormat {
    segments: Vec<Segment>,
    /// `%(ftime)`'s strftime items (`log-date` with `logformat-strftime`), else `ltime`'s.
    ftime: Vec<Item<'static>>,
    ltime: Vec<Item<'static>>,
    escape: Escape,
}

/// How values are written into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (uWSGI).
    Raw,
    /// As the inside of a JSON string (`log-json`); an empty value stays empty.
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(Vec<u8>),
    Field(Field),
    /// `%(var.NAME)`: a request variable (CGI/uwsgi name such as `HTTP_X_REQUEST_ID`).
    Var(String),
    /// Any other name: a uWSGI "logvar", set by a routing rule's `logvar:NAME=VALUE`
    /// (`-` when unset, as uWSGI prints an unset one; `metric.*` is always unset).
    LogVar(String),
}

/// The built-in fields, named as in uWSGI's `uwsgi_register_logchunks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Uri,
    Method,
    User,
    Addr,
    Host,
    Proto,
    Uagent,
    Referer,
    Status,
    Rsize,
    Hsize,
    Size,
    Cl,
    Micros,
    Msecs,
    Secs,
    Tmsecs,
    Tmicros,
    Time,
    Ltime,
    Ftime,
    Ctime,
    Epoch,
    Pid,
    Wid,
    Switches,
    Vars,
    Core,
    Vsz,
    Rss,
    VszM,
    RssM,
    Pktsize,
    Modifier1,
    Modifier2,
    Headers,
    Werr,
    Rerr,
    Ioerr,
    /// ruwsgi only (`log-json`): ISO 8601 local time of the request start, with ms.
    IsoTime,
}

const FIELDS: &[(&str, Field)] = &[
    ("uri", Field::Uri),
    ("method", Field::Method),
    ("user", Field::User),
    ("addr", Field::Addr),
    ("host", Field::Host),
    ("proto", Field::Proto),
    ("uagent", Field::Uagent),
    ("referer", Field::Referer),
    ("status", Field::Status),
    ("rsize", Field::Rsize),
    ("hsize", Field::Hsize),
    ("size", Field::Size),
    ("cl", Field::Cl),
    ("micros", Field::Micros),
    ("msecs", Field::Msecs),
    ("secs", Field::Secs),
    ("tmsecs", Field::Tmsecs),
    ("tmicros", Field::Tmicros),
    ("time", Field::Time),
    ("ltime", Field::Ltime),
    ("ftime", Field::Ftime),
    ("ctime", Field::Ctime),
    ("epoch", Field::Epoch),
    ("pid", Field::Pid),
    ("wid", Field::Wid),
    ("switches", Field::Switches),
    ("vars", Field::Vars),
    ("core", Field::Core),
    ("vsz", Field::Vsz),
    ("rss", Field::Rss),
    ("vszM", Field::VszM),
    ("rssM", Field::RssM),
    ("pktsize", Field::Pktsize),
    ("modifier1", Field::Modifier1),
    ("modifier2", Field::Modifier2),
    ("headers", Field::Headers),
    ("werr", Field::Werr),
    ("rerr", Field::Rerr),
    ("ioerr", Field::Ioerr),
];

/// The request log line of `log-json`: the request's fields as one JSON object.
const JSON_FORMAT: &str = concat!(
    r#"{"time":"%(isotime)","pid":%(pid),"worker":%(wid),"core":%(core),"addr":"%(addr)","user":"%(user)","#,
    r#""method":"%(method)","uri":"%(uri)","proto":"%(proto)","status":%(status),"size":%(rsize),"hsize":%(hsize),"#,
    r#""msecs":%(msecs),"micros":%(micros),"host":"%(host)","referer":"%(referer)","uagent":"%(uagent)","vars":%(vars),"#,
    r#""pktsize":%(pktsize)}"#
);

/// Request variables the fields and `%(var.NAME)` read: the uwsgi packet's, the HTTP
/// head's (by their CGI names), or a copy kept for a reply that finishes later.
#[derive(Debug, Clone, Copy)]
pub enum RequestVars<'a> {
    /// An HTTP request: `HTTP_*` and `CONTENT_*` from its headers, `REQUEST_METHOD`,
    /// `REQUEST_URI`, `QUERY_STRING`, `SERVER_PROTOCOL`.
    Http(&'a RequestHead<'a>),
    /// A uwsgi packet: its variables as sent.
    Uwsgi(&'a UwsgiPacket<'a>),
    /// Copied by `LogFormat::capture`.
    Captured(&'a [(String, Vec<u8>)]),
}

impl<'a> RequestVars<'a> {
    /// The value of the variable `name` (CGI name, e.g. `HTTP_USER_AGENT`).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        match *self {
            Self::Uwsgi(packet) => packet.var(name.as_bytes()),
            Self::Captured(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice()),
            Self::Http(head) => match name {
                "REQUEST_METHOD" => Some(head.method.as_bytes()),
                "REQUEST_URI" => Some(head.target.as_bytes()),
                "QUERY_STRING" => Some(head.target.split_once('?').map_or("", |(_, q)| q).as_bytes()),
                "SERVER_PROTOCOL" => Some(if head.minor_version == 0 { b"HTTP/1.0" } else { b"HTTP/1.1" }),
                "CONTENT_LENGTH" => head.header("content-length"),
                "CONTENT_TYPE" => head.header("content-type"),
                _ => {
                    let wanted = name.strip_prefix("HTTP_")?;
                    head.headers
                        .iter()
                        .find(|(n, _)| {
                            n.len() == wanted.len()
                                && n.bytes()
                                    .zip(wanted.bytes())
                                    .all(|(a, b)| a.to_ascii_uppercase() == b || (a == b'-' && b == b'_'))
                        })
                        .map(|&(_, v)| v)
                }
            },
        }
    }
}

/// Everything a line can show besides the request variables.
#[derive(Debug, Clone)]
pub struct LineFacts<'a> {
    /// `REMOTE_ADDR` (or X-Forwarded-For with `log-x-forwarded-for`).
    pub addr: &'a str,
    /// `REQUEST_METHOD`.
    pub method: &'a str,
    /// `REQUEST_URI`.
    pub uri: &'a str,
    /// `SERVER_PROTOCOL`.
    pub proto: &'a str,
    /// Status code sent.
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Response head bytes sent.
    pub header_bytes: usize,
    /// Response header lines.
    pub header_count: usize,
    /// Request start, µs since the epoch.
    pub started: u64,
    /// Request duration in µs.
    pub micros: u64,
    /// Now, seconds since the epoch (`%(epoch)`).
    pub now_secs: u64,
    /// Worker pid, id (1-based) and thread (core).
    pub pid: i32,
    /// Worker id.
    pub wid: usize,
    /// Worker thread index.
    pub core: usize,
    /// Environ entries.
    pub vars: usize,
    /// Request head or uwsgi packet bytes.
    pub pktsize: usize,
    /// uwsgi packet modifiers (0 for HTTP).
    pub modifier1: u8,
    /// Second modifier.
    pub modifier2: u8,
    /// `(vsz, rss)` in bytes when the format asks for them (`needs_memory`).
    pub memory: (u64, u64),
    /// The request's variables.
    pub request: RequestVars<'a>,
    /// Logvars set for this request (`logvar` routing action), in order.
    pub logvars: &'a [(String, String)],
    /// Response headers `collect-header` kept: (variable, value), read by `%(var.NAME)`.
    pub collected: &'a [(String, Vec<u8>)],
}

/// A `log-format` (or `log-date`) strftime string chrono can't read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadStrftime(pub String);

impl std::fmt::Display for BadStrftime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid strftime format \"{}\"", self.0)
    }
}

/// Compiles a strftime string once.
pub fn parse_strftime(format: &str) -> Result<Vec<Item<'static>>, BadStrftime> {
    StrftimeItems::new(format).parse_to_owned().map_err(|_| BadStrftime(format.to_owned()))
}

impl LogFormat {
    /// Compiles `format`. `ftime` is the `log-date` strftime format when
    /// `logformat-strftime` is on (else `%(ftime)` is `%(ltime)`, as in uWSGI).
    pub fn compile(format: &str, ftime: Option<&str>) -> Result<Self, BadStrftime> {
        Self::compile_with(format, ftime, Escape::Raw)
    }

    /// `log-json`'s request line.
    #[must_use]
    pub fn json() -> Self {
        Self::compile_with(JSON_FORMAT, None, Escape::Json).expect("the built-in format is valid")
    }

    fn compile_with(format: &str, ftime: Option<&str>, escape: Escape) -> Result<Self, BadStrftime> {
        let mut segments = Vec::new();
        let mut rest = format;
        let mut text = Vec::new();
        while let Some(start) = rest.find("%(") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')').filter(|&e| e > 0) else { break };
            text.extend_from_slice(&rest.as_bytes()[..start]);
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            let name = &after[..end];
            segments.push(if let Some(&(_, f)) = FIELDS.iter().find(|(n, _)| *n == name) {
                Segment::Field(f)
            } else if name == "isotime" && escape == Escape::Json {
                Segment::Field(Field::IsoTime)
            } else if let Some(var) = name.strip_prefix("var.") {
                Segment::Var(var.to_owned())
            } else {
                Segment::LogVar(name.to_owned())
            });
            rest = &after[end + 1..];
        }
        text.extend_from_slice(rest.as_bytes());
        text.push(b'\n');
        segments.push(Segment::Text(text));
        let ltime = parse_strftime(LTIME)?;
        let ftime = match ftime {
            Some(f) => parse_strftime(f)?,
            None => ltime.clone(),
        };
        Ok(Self { segments, ftime, ltime, escape })
    }

    /// Whether rendering needs the worker's memory figures (`%(rss)`, `%(vsz)`...).
    #[must_use]
    pub fn needs_memory(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Field(Field::Rss | Field::Vsz | Field::RssM | Field::VszM)))
    }

    /// The request variables rendering reads, copied for a reply that ends after the
    /// request head is gone (files sent by the event loop).
    #[must_use]
    pub fn capture(&self, request: &RequestVars<'_>) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for s in &self.segments {
            let name = match s {
                Segment::Var(name) => name.as_str(),
                Segment::Field(f) => match var_of(*f) {
                    Some(name) => name,
                    None => continue,
                },
                _ => continue,
            };
            if let Some(v) = request.get(name) {
                if !out.iter().any(|(k, _)| k == name) {
                    out.push((name.to_owned(), v.to_vec()));
                }
            }
        }
        out
    }

    /// Appends the line for one request (with its newline) to `out`.
    pub fn render(&self, r: &LineFacts<'_>, out: &mut Vec<u8>) {
        for segment in &self.segments {
            match segment {
                Segment::Text(t) => out.extend_from_slice(t),
                Segment::Var(name) => {
                    let collected = || r.collected.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_slice());
                    self.push_value(out, r.request.get(name).or_else(collected).unwrap_or_default());
                }
                Segment::LogVar(name) => {
                    let value = r.logvars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_bytes());
                    self.push_value(out, value.unwrap_or_default());
                }
                Segment::Field(f) => self.field(*f, r, out),
            }
        }
    }

    fn field(&self, f: Field, r: &LineFacts<'_>, out: &mut Vec<u8>) {
        let var = |name| r.request.get(name).unwrap_or_default();
        match f {
            Field::Uri => self.push_value(out, r.uri.as_bytes()),
            Field::Method => self.push_value(out, r.method.as_bytes()),
            Field::Addr => self.push_value(out, r.addr.as_bytes()),
            Field::Proto => self.push_value(out, r.proto.as_bytes()),
            Field::User | Field::Host | Field::Uagent | Field::Referer => {
                self.push_value(out, var(var_of(f).unwrap_or_default()));
            }
            Field::Cl => {
                let cl: u64 =
                    std::str::from_utf8(var("CONTENT_LENGTH")).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
                push_num(out, cl);
            }
            Field::Status => push_num(out, u64::from(r.status)),
            Field::Rsize => push_num(out, r.body_bytes),
            Field::Hsize => push_num(out, r.header_bytes as u64),
            Field::Size => push_num(out, r.body_bytes + r.header_bytes as u64),
            Field::Micros => push_num(out, r.micros),
            Field::Msecs => push_num(out, r.micros / 1000),
            Field::Secs => {
                // uWSGI: a C float printed with "%f" into 11 bytes (so at most 10 characters).
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let secs = format!("{:.6}", (r.micros as f64 / 1e6) as f32);
                out.extend_from_slice(&secs.as_bytes()[..secs.len().min(10)]);
            }
            Field::Tmsecs => push_num(out, r.started / 1000),
            Field::Tmicros => push_num(out, r.started),
            Field::Time => push_num(out, r.started / 1_000_000),
            Field::Epoch => push_num(out, r.now_secs),
            Field::Ltime => self.push_time(out, &LTIME_CACHE, &self.ltime, r.started),
            Field::Ftime => self.push_time(out, &FTIME_CACHE, &self.ftime, r.started),
            Field::Ctime => self.push_value(out, super::ctime(r.started).as_bytes()),
            Field::IsoTime => {
                let t = local(r.started);
                let _ = write!(Utf8Sink(out), "{}", t.format("%Y-%m-%dT%H:%M:%S%.3f%:z"));
            }
            Field::Pid => push_num(out, u64::try_from(r.pid).unwrap_or(0)),
            Field::Wid => push_num(out, r.wid as u64),
            // One "switch" per request: ruwsgi has no async cores.
            Field::Switches => push_num(out, 1),
            Field::Vars => push_num(out, r.vars as u64),
            Field::Core => push_num(out, r.core as u64),
            Field::Vsz => push_num(out, r.memory.0),
            Field::Rss => push_num(out, r.memory.1),
            Field::VszM => push_num(out, r.memory.0 / 1024 / 1024),
            Field::RssM => push_num(out, r.memory.1 / 1024 / 1024),
            Field::Pktsize => push_num(out, r.pktsize as u64),
            Field::Modifier1 => push_num(out, u64::from(r.modifier1)),
            Field::Modifier2 => push_num(out, u64::from(r.modifier2)),
            Field::Headers => push_num(out, r.header_count as u64),
            // Differs from uWSGI: read and write errors are not counted per request; a
            // failed write ends the connection and is logged at debug level.
            Field::Werr | Field::Rerr | Field::Ioerr => push_num(out, 0),
        }
    }

    /// A strftime field of the request start, formatted once per second per thread.
    fn push_time(
        &self,
        out: &mut Vec<u8>,
        cache: &'static std::thread::LocalKey<RefCell<(u64, String)>>,
        items: &[Item<'static>],
        started: u64,
    ) {
        let secs = started / 1_000_000;
        cache.with(|c| {
            let mut c = c.borrow_mut();
            if c.0 != secs {
                c.1.clear();
                let _ = write!(c.1, "{}", local(started).format_with_items(items.iter()));
                c.0 = secs;
            }
            self.push_value(out, c.1.as_bytes());
        });
    }

    /// The one place a value enters the line. uWSGI writes `-` for an empty value.
    fn push_value(&self, out: &mut Vec<u8>, value: &[u8]) {
        match self.escape {
            Escape::Raw if value.is_empty() => out.push(b'-'),
            Escape::Raw => super::escape::push_escaped(out, value),
            Escape::Json => push_json_escaped(out, value),
        }
    }
}

thread_local! {
    static LTIME_CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    static FTIME_CACHE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The request variable a header-like field shows.
fn var_of(f: Field) -> Option<&'static str> {
    match f {
        Field::User => Some("REMOTE_USER"),
        Field::Host => Some("HTTP_HOST"),
        Field::Uagent => Some("HTTP_USER_AGENT"),
        Field::Referer => Some("HTTP_REFERER"),
        Field::Cl => Some("CONTENT_LENGTH"),
        _ => None,
    }
}

fn local(micros: u64) -> chrono::DateTime<chrono::Local> {
    let secs = i64::try_from(micros / 1_000_000).unwrap_or(0);
    let nanos = u32::try_from((micros % 1_000_000) * 1000).unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default().with_timezone(&chrono::Local)
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    let _ = write!(Utf8Sink(out), "{n}");
}

/// `fmt::Write` into a byte line.
struct Utf8Sink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8Sink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `value` as the inside of a JSON string. Differs from uWSGI (whose `json`
/// encoder escapes only `"`, `\`, tab, CR and LF): every control character is escaped and
/// bytes that aren't UTF-8 become U+FFFD, so the line is always valid JSON.
pub fn push_json_escaped(out: &mut Vec<u8>, value: &[u8]) {
    for c in String::from_utf8_lossy(value).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(Utf8Sink(out), "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(request: RequestVars<'_>) -> LineFacts<'_> {
        LineFacts {
            addr: "127.0.0.1",
            method: "GET",
            uri: "/x?y=1",
            proto: "HTTP/1.1",
            status: 200,
            body_bytes: 12,
            header_bytes: 83,
            header_count: 2,
            started: 1_589_919_278_123_456,
            micros: 1_234,
            now_secs: 1_589_919_279,
            pid: 4242,
            wid: 3,
            core: 1,
            vars: 19,
            pktsize: 410,
            modifier1: 0,
            modifier2: 0,
            memory: (171_843_584, 30_564_352),
            request,
            logvars: &[],
            collected: &[],
        }
    }

    #[test]
    fn logvars_set_by_routing_fill_unknown_names() {
        let f = LogFormat::compile("%(who) %(tier) %(unset)", None).unwrap();
        let vars = [("who".to_owned(), "probe".to_owned()), ("who".to_owned(), "kube".to_owned())];
        let mut out = Vec::new();
        f.render(&LineFacts { logvars: &vars, ..facts(RequestVars::Captured(&[])) }, &mut out);
        assert_eq!(out, b"kube - -\n", "the last value set wins; unset ones print -");
    }

    fn render(format: &str, request: RequestVars<'_>) -> String {
        let f = LogFormat::compile(format, None).unwrap();
        let mut out = Vec::new();
        f.render(&facts(request), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fields_render_as_in_uwsgi() {
        let head = ruwsgi_proto::parse_request_head(
            b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nX-Request-Id: abc\r\nContent-Length: 0\r\n\r\n",
            &ruwsgi_proto::Limits::default(),
        )
        .unwrap()
        .unwrap()
        .0;
        let http = RequestVars::Http(&head);
        let table: &[(&str, &str)] = &[
            ("%(addr) %(user) %(method) %(uri) %(proto)", "127.0.0.1 - GET /x?y=1 HTTP/1.1"),
            ("%(status) %(size) %(rsize) %(hsize) %(cl)", "200 95 12 83 0"),
            ("%(host)|%(uagent)|%(referer)", "example.com|curl/8|-"),
            ("%(msecs) %(micros) %(secs)", "1 1234 0.001234"),
            ("%(time) %(tmsecs) %(tmicros) %(epoch)", "1589919278 1589919278123 1589919278123456 1589919279"),
            ("%(pid) %(wid) %(core) %(switches) %(vars) %(headers)", "4242 3 1 1 19 2"),
            ("%(vsz) %(rss) %(vszM) %(rssM)", "171843584 30564352 163 29"),
            ("%(pktsize) %(modifier1) %(modifier2) %(werr) %(rerr) %(ioerr)", "410 0 0 0 0 0"),
            ("%(var.HTTP_X_REQUEST_ID) %(var.QUERY_STRING) %(var.NOPE)", "abc y=1 -"),
            ("%(unknown) %(metric.core.busy)", "- -"),
            ("100%% %(msecs)ms %(", "100%% 1ms %("),
            ("no fields", "no fields"),
        ];
        for (format, want) in table {
            assert_eq!(render(format, http), format!("{want}\n"), "{format}");
        }
    }

    #[test]
    fn time_fields_use_local_time_layouts() {
        let ltime = render("%(ltime)", RequestVars::Captured(&[]));
        // 19/May/2020:20:14:38 +0000 in UTC; the zone depends on the machine.
        assert_eq!(ltime.len(), "19/May/2020:20:14:38 +0000\n".len(), "{ltime}");
        assert!(ltime.starts_with("19/May/2020:") || ltime.starts_with("20/May/2020:"), "{ltime}");
        assert_eq!(render("%(ctime)", RequestVars::Captured(&[])).len(), 25);
        let f = LogFormat::compile("[%(ftime)]", Some("%Y-%m-%d")).unwrap();
        let mut out = Vec::new();
        f.render(&facts(RequestVars::Captured(&[])), &mut out);
        assert!(out.starts_with(b"[2020-05-"), "{}", String::from_utf8_lossy(&out));
        assert!(LogFormat::compile("%(ftime)", Some("%Q")).is_err());
    }

    #[test]
    fn uwsgi_packet_vars_are_read_as_sent() {
        let packet = UwsgiPacket {
            modifier1: 0,
            modifier2: 0,
            vars: vec![(&b"REMOTE_USER"[..], &b"bob"[..]), (&b"HTTP_REFERER"[..], &b"http://a/"[..])],
        };
        assert_eq!(render("%(user) %(referer) %(uagent)", RequestVars::Uwsgi(&packet)), "bob http://a/ -\n");
        let f = LogFormat::compile("%(user) %(var.HTTP_REFERER) %(var.X)", None).unwrap();
        let kept = f.capture(&RequestVars::Uwsgi(&packet));
        assert_eq!(
            kept,
            vec![("REMOTE_USER".to_owned(), b"bob".to_vec()), ("HTTP_REFERER".to_owned(), b"http://a/".to_vec())]
        );
        assert_eq!(render("%(user)", RequestVars::Captured(&kept)), "bob\n");
    }

    #[test]
    fn json_line_escapes_values_and_keeps_numbers_bare() {
        let packet =
            UwsgiPacket { modifier1: 0, modifier2: 0, vars: vec![(&b"HTTP_USER_AGENT"[..], &b"a\"b\\c\x01\n"[..])] };
        let f = LogFormat::json();
        let mut out = Vec::new();
        f.render(&facts(RequestVars::Uwsgi(&packet)), &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("}\n"), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["status"], 200);
        assert_eq!(v["uagent"], "a\"b\\c\u{1}\n");
        assert_eq!(v["referer"], "");
        assert_eq!(v["uri"], "/x?y=1");
        assert_eq!(v["msecs"], 1);
    }

    #[test]
    fn nginx_combined_layout() {
        let head = ruwsgi_proto::parse_request_head(
            b"GET /x?y=1 HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\nUser-Agent: ua\r\n\r\n",
            &ruwsgi_proto::Limits::default(),
        )
        .unwrap()
        .unwrap()
        .0;
        let line = render(
            r#"%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)" %(msecs)ms"#,
            RequestVars::Http(&head),
        );
        let (start, end) = line.split_once('[').unwrap();
        assert_eq!(start, "127.0.0.1 - - ");
        assert!(end.ends_with("] \"GET /x?y=1 HTTP/1.1\" 200 95 \"http://r/\" \"ua\" 1ms\n"), "{line}");
    }
}
