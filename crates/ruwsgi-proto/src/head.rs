//! HTTP/1.x request-head parsing with request-smuggling defences (RFC 9112).
//!
//! httparse tokenizes the request line and header fields; this module adds what httparse
//! leaves to the caller: the head-size limit, body framing (Content-Length versus
//! Transfer-Encoding), Host rules, bare-LF rejection, request-target checks, persistence
//! (`Connection`) and `Expect: 100-continue`. Anything ambiguous is rejected here so the
//! runtime never sees it. No I/O: the connection loop in the runtime owns the buffer and
//! calls [`parse_request_head`] again when more bytes arrive.

use std::mem::MaybeUninit;

use crate::syntax::{is_token, list_elements, trim_ows};

/// Default for [`Limits::max_head`]: uWSGI's default `buffer-size`.
pub const DEFAULT_MAX_HEAD: usize = 4096;
/// Default for [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Largest `Content-Length` accepted: `i64::MAX`, Python's `sys.maxsize` on 64-bit. A larger
/// value is a valid number no app can read (`wsgi.input.read(n)` raises `OverflowError`), so
/// the client gets 413 Content Too Large before the app runs.
pub const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;

/// Limits a request-head parser enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head in bytes, from the request line through the blank line that ends
    /// it. Set by uWSGI's `buffer-size` (default 4096). A client whose head is longer, or
    /// whose unfinished head already is, gets 431 Request Header Fields Too Large.
    pub max_head: usize,
    /// Most header fields one head may carry (default 100). uWSGI has no exact equivalent;
    /// its `max-vars` bounds the CGI variables a request turns into. A client sending more
    /// gets 431 Request Header Fields Too Large.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_head: DEFAULT_MAX_HEAD, max_headers: DEFAULT_MAX_HEADERS }
    }
}

/// A parsed request head. Every slice borrows from the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// Request method, an RFC 9110 token such as `GET`. Case is kept as sent.
    pub method: &'b str,
    /// Raw request-target as sent: origin-form `/path?query`, absolute-form `http://host/x`,
    /// or `*` (only with `OPTIONS`). Authority-form, relative and other targets are rejected
    /// (RFC 9112 §3.2). Only visible ASCII (0x21..=0x7E) gets this far; nothing is decoded.
    pub target: &'b str,
    /// The authority (`host[:port]`) of an absolute-form target, which RFC 9112 §3.2.2 says
    /// replaces the Host header; `None` for the other forms.
    pub authority: Option<&'b str>,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1. Other versions are rejected with 505.
    pub minor_version: u8,
    /// Header fields in the order received, duplicates kept. Names keep their case; values
    /// are trimmed of surrounding whitespace and may contain obs-text (bytes >= 0x80).
    pub headers: Vec<(&'b str, &'b [u8])>,
    /// How the request body is delimited.
    pub body: BodyFraming,
    /// Whether the connection may carry another request after this one (RFC 9112 §9.3):
    /// HTTP/1.1 unless `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent in an HTTP/1.1 request (ignored in HTTP/1.0, as
    /// RFC 9110 §10.1.1 requires).
    pub expect_continue: bool,
}

impl<'b> RequestHead<'b> {
    /// The value of the first header named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|&(_, v)| v)
    }

    /// The path of the target (still percent-encoded): up to the first `?`, without the
    /// scheme and authority of an absolute-form target, `/` when that path is empty, `*`
    /// for `OPTIONS *`.
    #[must_use]
    pub fn path(&self) -> &'b str {
        let rest = self.path_and_query();
        match rest.split_once('?').map_or(rest, |(p, _)| p) {
            "" => "/",
            path => path,
        }
    }

    /// The target after the first `?`, or `""` when there is none.
    #[must_use]
    pub fn query(&self) -> &'b str {
        self.path_and_query().split_once('?').map_or("", |(_, q)| q)
    }

    /// The target without the `scheme://authority` of an absolute-form target.
    fn path_and_query(&self) -> &'b str {
        match self.authority {
            // `check_target` found `://` followed by the authority.
            Some(authority) => self.target.split_once("://").map_or("", |(_, rest)| &rest[authority.len()..]),
            None => self.target,
        }
    }
}

/// How a request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither Content-Length nor Transfer-Encoding was sent.
    None,
    /// Exactly this many bytes follow the head (`Content-Length`, possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`crate::ChunkedDecoder`].
    Chunked,
}

/// Why a request head was refused. [`HeadError::status`] gives the response to send; after
/// any of these the connection must be closed, since the framing can't be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The head is longer than [`Limits::max_head`] (431).
    #[error("request head larger than the buffer-size limit")]
    TooLarge,
    /// More header fields than [`Limits::max_headers`] (431).
    #[error("too many header fields")]
    TooManyHeaders,
    /// Syntax error in the request line or a header field (400).
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// Ambiguous or invalid body framing, the usual request-smuggling vectors (400).
    #[error("invalid body framing: {0}")]
    BadFraming(&'static str),
    /// A transfer coding other than `chunked` was applied before the final `chunked` (501).
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    /// An `HTTP/x.y` version other than 1.0 and 1.1 (505).
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// A `Content-Length` larger than [`MAX_CONTENT_LENGTH`] (413).
    #[error("Content-Length larger than any app can read")]
    ContentTooLarge,
    /// `CONNECT`: ruwsgi is an origin server, not a tunnel (405, as nginx answers).
    #[error("CONNECT is not supported")]
    MethodNotAllowed,
}

impl HeadError {
    /// The HTTP status code to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge | Self::TooManyHeaders => 431,
            Self::Malformed(_) | Self::BadFraming(_) => 400,
            Self::UnsupportedTransferEncoding => 501,
            Self::UnsupportedVersion => 505,
            Self::ContentTooLarge => 413,
            Self::MethodNotAllowed => 405,
        }
    }

    /// The reason phrase that goes with [`HeadError::status`].
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self.status() {
            405 => "Method Not Allowed",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            505 => "HTTP Version Not Supported",
            _ => "Bad Request",
        }
    }
}

/// Header slots kept on the stack by [`parse_request_head`]; larger limits use the heap.
const STACK_HEADER_SLOTS: usize = 128;

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: the head isn't complete yet; call again with more bytes. `Ok(Some((head,
/// used)))`: `used` bytes (through the final CRLF CRLF) were consumed; the body, if any,
/// starts at `buf[used..]`.
///
/// Only the first [`Limits::max_head`] bytes are ever looked at, so the result depends on
/// those bytes (and on whether more exist), never on how the input was split across reads.
///
/// Decisions where RFC 9112 leaves a choice:
/// - A bare LF line ending is rejected (400), although §2.2 allows accepting it: a proxy in
///   front that doesn't split lines on bare LF would see different headers than we do.
/// - Repeated Content-Length values that are all identical (`5, 5` or two `5` fields) are
///   accepted as one, as §6.3 allows; differing values are rejected.
/// - Empty elements in a Transfer-Encoding or Content-Length list are ignored (RFC 9110
///   §5.6.1); a field with no element at all is rejected.
/// - A Content-Length past [`MAX_CONTENT_LENGTH`] is 413, not 400: the number is valid, the
///   server can't take that much (RFC 9110 §15.5.14).
/// - The target must be origin-form, absolute-form with an `http`/`https` URI, or `*` with
///   `OPTIONS` (RFC 9112 §3.2); anything else is 400. `CONNECT` gets 405, as from nginx:
///   an origin server has no tunnel to open. (RFC 9110 §15.5.6 wants an Allow header with
///   405; the methods are the app's business, so, like nginx, none is sent.)
pub fn parse_request_head<'b>(buf: &'b [u8], limits: &Limits) -> Result<Option<(RequestHead<'b>, usize)>, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head)];
    // Header slots live on the stack for the usual limits: this runs for every request.
    // Left uninitialised (httparse fills the ones it uses): zeroing 128 slots was 4 KiB
    // of stores per request.
    let mut stack = [const { MaybeUninit::<httparse::Header<'b>>::uninit() }; STACK_HEADER_SLOTS];
    let mut heap_slots;
    let slots = if limits.max_headers <= STACK_HEADER_SLOTS {
        &mut stack[..limits.max_headers]
    } else {
        heap_slots = vec![MaybeUninit::uninit(); limits.max_headers];
        &mut heap_slots[..]
    };
    let mut req = httparse::Request::new(&mut []);
    let used = match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(used)) => used,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_httparse_error(e, window)),
    };
    // httparse sets all three once the parse is complete; the fallbacks are unreachable.
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    reject_bare_lf(&window[..used])?;
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeadError::Malformed("request-target contains bytes outside visible ASCII"));
    }
    let authority = check_target(method, target)?;
    let headers: Vec<(&'b str, &'b [u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let fields = HeaderSummary::collect(&headers)?;
    let body = fields.body_framing(minor_version)?;
    if minor_version == 1 && fields.host_count == 0 {
        // RFC 9112 §3.2: a server MUST respond 400 to an HTTP/1.1 request without Host.
        return Err(HeadError::Malformed("missing Host header"));
    }
    let keep_alive = if minor_version == 1 {
        !fields.connection_close
    } else {
        fields.connection_keep_alive && !fields.connection_close
    };
    let head = RequestHead {
        method,
        target,
        authority,
        minor_version,
        headers,
        body,
        keep_alive,
        expect_continue: minor_version == 1 && fields.expect_continue,
    };
    Ok(Some((head, used)))
}

/// What the framing- and connection-relevant header fields said, gathered in one pass.
// Independent facts about independent fields; an enum or bitflags would only hide them.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Default)]
struct HeaderSummary {
    /// The agreed Content-Length, if any field carried one.
    content_length: Option<u64>,
    /// Whether any Transfer-Encoding field was present.
    transfer_encoding: bool,
    /// Whether the last transfer coding seen so far is `chunked`.
    chunked_last: bool,
    /// Whether a coding other than `chunked` appears (before the final `chunked`).
    other_coding: bool,
    /// How many Host fields were sent (more than one is rejected on sight).
    host_count: usize,
    /// `Connection: close` seen.
    connection_close: bool,
    /// `Connection: keep-alive` seen.
    connection_keep_alive: bool,
    /// `Expect: 100-continue` seen.
    expect_continue: bool,
}

impl HeaderSummary {
    fn collect(headers: &[(&str, &[u8])]) -> Result<Self, HeadError> {
        let mut s = Self::default();
        for &(name, value) in headers {
            if name.eq_ignore_ascii_case("content-length") {
                s.add_content_length(value)?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                s.add_transfer_encoding(value)?;
            } else if name.eq_ignore_ascii_case("host") {
                s.host_count += 1;
                if s.host_count > 1 {
                    return Err(HeadError::Malformed("more than one Host header"));
                }
            } else if name.eq_ignore_ascii_case("connection") {
                for option in list_elements(value) {
                    s.connection_close |= option.eq_ignore_ascii_case(b"close");
                    s.connection_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if name.eq_ignore_ascii_case("expect") {
                s.expect_continue |= trim_ows(value).eq_ignore_ascii_case(b"100-continue");
            }
        }
        Ok(s)
    }

    /// RFC 9112 §6.3 item 5 and RFC 9110 §8.6: only digits, and all values must agree.
    fn add_content_length(&mut self, value: &[u8]) -> Result<(), HeadError> {
        let mut any = false;
        for element in value.split(|&b| b == b',').map(trim_ows) {
            if element.is_empty() {
                continue;
            }
            any = true;
            let n = parse_decimal(element)?;
            match self.content_length {
                Some(prev) if prev != n => return Err(HeadError::BadFraming("conflicting Content-Length values")),
                _ => self.content_length = Some(n),
            }
        }
        if any {
            Ok(())
        } else {
            Err(HeadError::BadFraming("empty Content-Length"))
        }
    }

    /// RFC 9112 §6.1: the codings of all Transfer-Encoding fields form one list, and
    /// `chunked` must be its last element and appear only there.
    fn add_transfer_encoding(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.transfer_encoding = true;
        let mut any = false;
        for coding in list_elements(value) {
            any = true;
            if self.chunked_last {
                return Err(HeadError::BadFraming("chunked is not the final transfer coding"));
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                self.chunked_last = true;
            } else if is_token(coding) {
                self.other_coding = true;
            } else {
                return Err(HeadError::BadFraming("invalid transfer coding"));
            }
        }
        if any {
            Ok(())
        } else {
            Err(HeadError::BadFraming("empty Transfer-Encoding"))
        }
    }

    fn body_framing(&self, minor_version: u8) -> Result<BodyFraming, HeadError> {
        if !self.transfer_encoding {
            return Ok(self.content_length.map_or(BodyFraming::None, BodyFraming::Length));
        }
        if self.content_length.is_some() {
            // RFC 9112 §6.1: a server MAY reject this outright, and we do (smuggling).
            return Err(HeadError::BadFraming("both Content-Length and Transfer-Encoding"));
        }
        if minor_version == 0 {
            // RFC 9112 §6.1: HTTP/1.0 has no chunked coding; treat as faulty framing.
            return Err(HeadError::BadFraming("Transfer-Encoding in HTTP/1.0"));
        }
        if !self.chunked_last {
            // RFC 9112 §6.3 item 4: the length can't be determined, so 400 and close.
            return Err(HeadError::BadFraming("chunked is not the final transfer coding"));
        }
        if self.other_coding {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        Ok(BodyFraming::Chunked)
    }
}

/// `1*DIGIT` up to [`MAX_CONTENT_LENGTH`]; signs, spaces and hex are 400, larger numbers 413.
fn parse_decimal(digits: &[u8]) -> Result<u64, HeadError> {
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::BadFraming("Content-Length is not a decimal number"));
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .filter(|&n| n <= MAX_CONTENT_LENGTH)
            .ok_or(HeadError::ContentTooLarge)?;
    }
    Ok(n)
}

/// RFC 9112 §3.2: which request-target forms this server takes. Returns the authority of an
/// absolute-form target. Origin-form (`/x`) is what clients send; absolute-form is what a
/// proxy sends and servers MUST accept (§3.2.2); `*` means "the server" and only OPTIONS
/// uses it (§3.2.4); authority-form belongs to CONNECT (§3.2.3), which isn't served.
fn check_target<'b>(method: &str, target: &'b str) -> Result<Option<&'b str>, HeadError> {
    if method == "CONNECT" {
        return if target.starts_with('/') || target == "*" || target.contains("://") {
            Err(HeadError::Malformed("CONNECT needs an authority-form target"))
        } else {
            Err(HeadError::MethodNotAllowed)
        };
    }
    if target.starts_with('/') {
        return Ok(None);
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(None)
        } else {
            Err(HeadError::Malformed("asterisk-form target on a method other than OPTIONS"))
        };
    }
    let Some((scheme, rest)) = target.split_once("://") else {
        return Err(HeadError::Malformed("request-target is neither origin-form nor absolute-form"));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(HeadError::Malformed("absolute-form target with a scheme other than http or https"));
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.is_empty() || authority.starts_with(':') {
        // RFC 9110 §4.2.1: an http URI with an empty host is invalid.
        return Err(HeadError::Malformed("absolute-form target without a host"));
    }
    if authority.contains('@') {
        // RFC 9110 §4.2.4: userinfo in an http URI is to be treated as an error.
        return Err(HeadError::Malformed("absolute-form target with userinfo"));
    }
    Ok(Some(authority))
}

/// Rejects an LF not preceded by CR. httparse already rejects a CR not followed by LF.
fn reject_bare_lf(head: &[u8]) -> Result<(), HeadError> {
    // Only the line feeds are looked at (found a vector at a time): a byte-by-byte scan
    // was ~8 instructions per byte of every head.
    if memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r') {
        return Err(HeadError::Malformed("bare LF line ending"));
    }
    Ok(())
}

fn map_httparse_error(e: httparse::Error, window: &[u8]) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version if version_token(window).starts_with(b"HTTP/") => HeadError::UnsupportedVersion,
        httparse::Error::Version => HeadError::Malformed("invalid HTTP version"),
        httparse::Error::HeaderName => {
            HeadError::Malformed("invalid header field name (whitespace before colon, obs-fold or bad byte)")
        }
        httparse::Error::HeaderValue => HeadError::Malformed("invalid byte in header field value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Token => HeadError::Malformed("invalid method or request-target"),
        httparse::Error::Status => HeadError::Malformed("invalid request line"),
    }
}

/// The third space-separated word of the request line (leading empty lines skipped), as far
/// as `window` goes. Used only to tell `GET / HTTP/2.0` (505) from garbage such as
/// `GET /a b HTTP/1.1` (400). It depends only on the word's first bytes, so a prefix of the
/// input classifies the same way as the whole.
fn version_token(window: &[u8]) -> &[u8] {
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(window.len());
    let line = &window[start..];
    let line = &line[..line.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(line.len())];
    line.split(|&b| b == b' ').nth(2).unwrap_or(b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<(RequestHead<'_>, usize)>, HeadError> {
        parse_request_head(input, &Limits::default())
    }

    fn parse_ok(input: &[u8]) -> RequestHead<'_> {
        match parse(input) {
            Ok(Some((head, used))) => {
                assert_eq!(used, input.len(), "whole input is the head");
                head
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    const MALFORMED: u16 = 400;

    /// Request-smuggling and strictness table: input → expected status.
    const REJECTED: &[(&str, &[u8], u16)] = &[
        (
            "content_length_with_chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "chunked_with_content_length_after",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            400,
        ),
        (
            "content_length_zero_with_chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (
            "duplicate_content_length_differing",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            400,
        ),
        ("content_length_list_differing", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", 400),
        ("content_length_signed_plus", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
        ("content_length_negative", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("content_length_hex", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
        ("content_length_inner_space", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n", 400),
        ("content_length_overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 413),
        ("content_length_huge", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
        ("content_length_u64_max", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", 413),
        ("content_length_over_i64", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 413),
        ("asterisk_on_get", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("authority_form_on_get", b"GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("relative_target", b"GET foo/bar HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("query_only_target", b"GET ?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        ("connect_with_origin_form", b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute_form_other_scheme", b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute_form_without_authority", b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute_form_without_slashes", b"GET http:x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("absolute_form_with_userinfo", b"GET http://u:p@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("content_length_empty", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
        ("content_length_only_commas", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ,\r\n\r\n", 400),
        ("content_length_decimal_point", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5.0\r\n\r\n", 400),
        ("gzip_then_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (
            "gzip_then_chunked_in_two_fields",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        ("chunked_then_gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        (
            "chunked_then_gzip_in_two_fields",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        ("chunked_twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        (
            "chunked_in_two_fields",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("xchunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
        ("chunked_with_suffix", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 400),
        ("only_gzip", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("identity", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 400),
        ("chunked_with_parameter", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400),
        ("quoted_chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 400),
        ("empty_transfer_encoding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        ("chunked_with_vertical_tab", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n", 400),
        ("transfer_encoding_in_http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("obs_fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        ("obs_fold_tab", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", 400),
        (
            "obs_fold_hiding_transfer_encoding",
            b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("space_before_colon", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
        ("tab_before_colon", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n", 400),
        ("space_before_first_header", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
        ("bare_lf_line_endings", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        ("bare_lf_in_one_header", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
        ("bare_lf_after_request_line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
        ("bare_cr_in_header", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("bare_cr_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
        ("nul_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
        ("escape_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bb\r\n\r\n", 400),
        ("del_in_value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", 400),
        ("nul_in_name", b"GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n", 400),
        ("empty_header_name", b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
        ("header_without_colon", b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
        ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("tab_in_target", b"GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("control_in_target", b"GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("del_in_target", b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("non_ascii_in_target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("double_space_in_request_line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("bad_method_byte", b"G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("lowercase_version", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
        ("missing_version", b"GET /\r\nHost: a\r\n\r\n", 400),
        ("http2", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("http09", b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        ("http12", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        ("http3", b"GET / HTTP/3.0\r\n\r\n", 505),
        ("missing_host_http11", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two_host_headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("two_identical_host_headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
        ("two_host_headers_http10", b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400),
    ];

    #[test]
    fn rejects_smuggling_and_malformed_heads() {
        assert!(REJECTED.len() >= 40);
        for &(name, input, status) in REJECTED {
            match parse(input) {
                Err(e) => assert_eq!(e.status(), status, "{name}: {e:?}"),
                Ok(ok) => panic!("{name}: accepted as {ok:?}"),
            }
        }
    }

    #[test]
    fn rejects_content_length_with_chunked() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(input), Err(HeadError::BadFraming(_))));
    }

    #[test]
    fn parses_small_get() {
        let head = parse_ok(b"GET /a/b?x=1&y HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a/b?x=1&y");
        assert_eq!(head.path(), "/a/b");
        assert_eq!(head.query(), "x=1&y");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.headers, vec![("Host", &b"example.com"[..]), ("Accept", &b"*/*"[..])]);
        assert_eq!(head.body, BodyFraming::None);
        assert!(head.keep_alive);
        assert!(!head.expect_continue);
        assert_eq!(head.header("host"), Some(&b"example.com"[..]));
    }

    #[test]
    fn leaves_body_bytes_unconsumed() {
        let input = b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
        let (head, used) = parse(input).unwrap().unwrap();
        assert_eq!(head.body, BodyFraming::Length(3));
        assert_eq!(&input[used..], b"abcGET");
    }

    #[test]
    fn accepted_framing_table() {
        let cases: &[(&[u8], BodyFraming)] = &[
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", BodyFraming::Length(0)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", BodyFraming::Length(7)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", BodyFraming::Length(5)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", BodyFraming::Length(5)),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n",
                BodyFraming::Length(MAX_CONTENT_LENGTH),
            ),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming::Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", BodyFraming::Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED \r\n\r\n", BodyFraming::Chunked),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", BodyFraming::Chunked),
            (b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n", BodyFraming::Length(2)),
        ];
        for &(input, framing) in cases {
            assert_eq!(parse_ok(input).body, framing, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn keep_alive_follows_rfc9112_section_9_3() {
        let cases: &[(&[u8], bool)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
        ];
        for &(input, keep_alive) in cases {
            assert_eq!(parse_ok(input).keep_alive, keep_alive, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn expect_continue_only_in_http11() {
        let h = parse_ok(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
        let h = parse_ok(b"POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue);
        let h = parse_ok(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n");
        assert!(!h.expect_continue);
    }

    #[test]
    fn http10_needs_no_host() {
        let h = parse_ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(h.minor_version, 0);
    }

    #[test]
    fn accepts_obs_text_in_values_and_leading_empty_line() {
        let h = parse_ok(b"\r\nGET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\tok\r\n\r\n");
        assert_eq!(h.header("x"), Some(&b"caf\xe9\tok"[..]));
    }

    #[test]
    fn accepts_asterisk_and_absolute_targets() {
        let h = parse_ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((h.target, h.path(), h.query(), h.authority), ("*", "*", "", None));
        let h = parse_ok(b"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.target, "http://a/x?y");
        assert_eq!((h.path(), h.query(), h.authority), ("/x", "y", Some("a")));
    }

    #[test]
    fn absolute_form_takes_host_and_path_from_the_uri() {
        // RFC 9112 §3.2.2: the authority in the URI wins over the Host header.
        let h = parse_ok(b"GET HTTPS://Example.com:8443?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((h.authority, h.path(), h.query()), (Some("Example.com:8443"), "/", "q=1"));
        let h = parse_ok(b"GET http://a HTTP/1.0\r\n\r\n");
        assert_eq!((h.authority, h.path(), h.query()), (Some("a"), "/", ""));
        let h = parse_ok(b"GET /http://a/b HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!((h.authority, h.path()), (None, "/http://a/b"));
    }

    #[test]
    fn content_length_past_i64_is_413_not_400() {
        let e = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n").unwrap_err();
        assert_eq!((e, e.status(), e.reason()), (HeadError::ContentTooLarge, 413, "Content Too Large"));
    }

    #[test]
    fn connect_is_405() {
        let e = parse(b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n").unwrap_err();
        assert_eq!((e.status(), e.reason()), (405, "Method Not Allowed"));
    }

    #[test]
    fn incomplete_head_needs_more_bytes() {
        for input in [&b""[..], b"GET", b"GET / HTTP/1.1\r\nHost: a\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n\r"] {
            assert_eq!(parse(input), Ok(None));
        }
    }

    #[test]
    fn rejects_head_longer_than_buffer_size_with_431() {
        let limits = Limits { max_head: 64, max_headers: 100 };
        let mut input = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
        input.resize(65, b'a');
        // Incomplete but already over the limit.
        assert_eq!(parse_request_head(&input, &limits), Err(HeadError::TooLarge));
        // Complete but over the limit.
        input.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_request_head(&input, &limits), Err(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status(), 431);
        assert_eq!(HeadError::TooLarge.reason(), "Request Header Fields Too Large");
        // Exactly at the limit is fine.
        let exact = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let limits = Limits { max_head: exact.len(), max_headers: 100 };
        assert!(parse_request_head(exact, &limits).unwrap().is_some());
    }

    #[test]
    fn rejects_too_many_headers_with_431() {
        let limits = Limits { max_head: 1 << 20, max_headers: 3 };
        let input = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(parse_request_head(input, &limits), Err(HeadError::TooManyHeaders));
        assert_eq!(HeadError::TooManyHeaders.status(), 431);
    }

    #[test]
    fn status_and_reason_mapping() {
        let cases = [
            (HeadError::Malformed("x"), 400, "Bad Request"),
            (HeadError::BadFraming("x"), 400, "Bad Request"),
            (HeadError::UnsupportedTransferEncoding, 501, "Not Implemented"),
            (HeadError::UnsupportedVersion, 505, "HTTP Version Not Supported"),
        ];
        for (e, status, reason) in cases {
            assert_eq!((e.status(), e.reason()), (status, reason));
        }
        assert_eq!(MALFORMED, HeadError::Malformed("").status());
    }
}
