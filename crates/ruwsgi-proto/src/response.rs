//! Response-side encoding: the status line and headers, chunk framing, and validation of
//! the headers a WSGI app hands to `start_response`. Appends to caller-owned buffers; no I/O.

use crate::syntax::{is_field_value_byte, is_token};

/// The last chunk plus the empty trailer section that ends a chunked response body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// What follows each chunk's data (after [`encode_chunk`] and the data itself).
pub const CHUNK_END: &[u8] = b"\r\n";

/// How [`encode_response_head`] frames the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// The body is this long: adds `Content-Length` unless the app's headers carry one.
    Length(u64),
    /// Adds `Transfer-Encoding: chunked`; the caller frames the body with [`encode_chunk`],
    /// [`CHUNK_END`] and [`LAST_CHUNK`]. Only valid for HTTP/1.1 requests.
    Chunked,
    /// The app's own headers decide (it set `Content-Length` or `Transfer-Encoding`);
    /// nothing is added.
    AsGiven,
    /// No length: the body runs until the connection closes. Forces `keep_alive = false`.
    Close,
}

/// Why a response header from the app was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The name is empty or not an RFC 9110 token (spaces, colons, control bytes...).
    #[error("response header name is not a valid token")]
    InvalidName,
    /// The value contains CR, LF, NUL or another control byte (HTAB is allowed).
    #[error("response header value contains a control character")]
    InvalidValue,
    /// A hop-by-hop header, which PEP 3333 forbids applications to set.
    #[error("hop-by-hop header not allowed in a WSGI response (PEP 3333)")]
    HopByHop,
}

/// Hop-by-hop headers no app may set, WSGI or ASGI: the server owns connection management.
///
/// `Transfer-Encoding`, `Proxy-Authenticate` and `Proxy-Authorization` are not here: the
/// interfaces differ on them. A WSGI app is refused all three as well, by PEP 3333's own
/// list (`is_hop_by_hop` in the server's WSGI response, as wsgiref); an ASGI app's
/// `Transfer-Encoding` is dropped (the server frames the body) and the two `Proxy-*`
/// fields pass, as RFC 9110 lets an origin (a proxy written in Python, say) send them.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-connection", "te", "trailer", "trailers", "upgrade"];

/// Checks one header from `start_response`: a token name, a value without CR, LF, NUL or
/// other controls (HTAB allowed, obs-text allowed), and no hop-by-hop name (see
/// [`HeaderError::HopByHop`]). Differs from uWSGI: uWSGI sends whatever the app gives.
pub fn validate_response_header(name: &[u8], value: &[u8]) -> Result<(), HeaderError> {
    if !is_token(name) {
        return Err(HeaderError::InvalidName);
    }
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err(HeaderError::InvalidValue);
    }
    if HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop.as_bytes())) {
        return Err(HeaderError::HopByHop);
    }
    Ok(())
}

/// Appends a response head to `out`: `HTTP/1.x <status>\r\n`, the app's headers in order,
/// the framing and connection headers this server adds, and the blank line.
///
/// `minor_version` is the request's (0 or 1; anything else is written as 1), copying
/// uWSGI, which answers in the request's protocol. `status` is the app's status string
/// (`b"200 OK"`), written as given; headers are written as given, so validate them first
/// with [`validate_response_header`]. `keep_alive = false` adds `Connection: close` to an
/// HTTP/1.1 response; `keep_alive = true` adds `Connection: keep-alive` to an HTTP/1.0 one.
pub fn encode_response_head(
    out: &mut Vec<u8>,
    minor_version: u8,
    status: &[u8],
    headers: &[(&[u8], &[u8])],
    framing: ResponseFraming,
    keep_alive: bool,
) {
    let http10 = minor_version == 0;
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        push_header(out, name, value);
    }
    match framing {
        ResponseFraming::Length(n) if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(b"content-length")) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => push_header(out, b"Transfer-Encoding", b"chunked"),
        _ => {}
    }
    let keep_alive = keep_alive && framing != ResponseFraming::Close;
    if !http10 && !keep_alive {
        push_header(out, b"Connection", b"close");
    } else if http10 && keep_alive {
        push_header(out, b"Connection", b"keep-alive");
    }
    out.extend_from_slice(b"\r\n");
}

/// A response head read back from its HTTP/1.1 bytes: what the HTTP/2 bridge turns into a
/// HEADERS frame (the worker answers each HTTP/2 stream as it answers any request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponseHead<'b> {
    /// Status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(&'b str, &'b [u8])>,
}

/// The response head was not HTTP/1.x or had more than `max_headers` fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed response head")]
pub struct ResponseHeadError;

/// Parses the response head at the front of `buf`. `Ok(None)`: need more bytes;
/// `Ok(Some((head, used)))`: the head took `used` bytes, the body follows.
pub fn parse_response_head(
    buf: &[u8],
    max_headers: usize,
) -> Result<Option<(ParsedResponseHead<'_>, usize)>, ResponseHeadError> {
    let mut fields = vec![httparse::EMPTY_HEADER; max_headers];
    let mut response = httparse::Response::new(&mut fields);
    match response.parse(buf) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(used)) => {
            let status = response.code.ok_or(ResponseHeadError)?;
            let headers = response.headers.iter().map(|h| (h.name, h.value)).collect();
            Ok(Some((ParsedResponseHead { status, headers }, used)))
        }
        Err(_) => Err(ResponseHeadError),
    }
}

/// Appends the chunk-size line for a chunk of `data_len` bytes (`<hex>\r\n`). The caller
/// then appends the data and [`CHUNK_END`]. Don't call it with 0: that is [`LAST_CHUNK`].
pub fn encode_chunk(out: &mut Vec<u8>, data_len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = data_len as u64;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(minor: u8, headers: &[(&[u8], &[u8])], framing: ResponseFraming, keep_alive: bool) -> String {
        let mut out = Vec::new();
        encode_response_head(&mut out, minor, b"200 OK", headers, framing, keep_alive);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encoding_table() {
        let ct: &[(&[u8], &[u8])] = &[(b"Content-Type", b"text/plain")];
        let cl: &[(&[u8], &[u8])] = &[(b"content-length", b"2")];
        let cases = [
            (
                1,
                ct,
                ResponseFraming::Length(5),
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
            ),
            (1, cl, ResponseFraming::Length(2), true, "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"),
            (
                1,
                ct,
                ResponseFraming::Chunked,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
            ),
            (
                1,
                ct,
                ResponseFraming::AsGiven,
                false,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            ),
            (
                1,
                ct,
                ResponseFraming::Close,
                true,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            ),
            (
                0,
                ct,
                ResponseFraming::Length(0),
                true,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            ),
            (0, ct, ResponseFraming::Close, false, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
            (0, ct, ResponseFraming::Close, true, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"),
            (
                1,
                &[],
                ResponseFraming::Length(u64::MAX),
                true,
                "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
            ),
        ];
        for (minor, headers, framing, keep_alive, expected) in cases {
            assert_eq!(head(minor, headers, framing, keep_alive), expected);
        }
    }

    #[test]
    fn appends_to_existing_buffer() {
        let mut out = b"prev".to_vec();
        encode_response_head(&mut out, 1, b"404 Not Found", &[], ResponseFraming::Length(0), true);
        assert_eq!(out, b"prevHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        for (len, expected) in
            [(1usize, &b"1\r\n"[..]), (10, b"a\r\n"), (4096, b"1000\r\n"), (usize::MAX, b"ffffffffffffffff\r\n")]
        {
            let mut out = Vec::new();
            encode_chunk(&mut out, len);
            assert_eq!(out, expected);
        }
        assert_eq!(LAST_CHUNK, b"0\r\n\r\n");
    }

    #[test]
    fn validates_response_headers() {
        type Case = (&'static [u8], &'static [u8], Result<(), HeaderError>);
        let cases: &[Case] = &[
            (b"Content-Type", b"text/html; charset=utf-8", Ok(())),
            (b"X-Tab", b"a\tb", Ok(())),
            (b"X-Latin1", b"caf\xe9", Ok(())),
            (b"X-Empty", b"", Ok(())),
            (b"Transfer-Encoding", b"chunked", Ok(())),
            (b"Set-Cookie", b"a=b; Path=/", Ok(())),
            (b"", b"x", Err(HeaderError::InvalidName)),
            (b"Bad Name", b"x", Err(HeaderError::InvalidName)),
            (b"Bad:Name", b"x", Err(HeaderError::InvalidName)),
            (b"X\r\nInjected", b"x", Err(HeaderError::InvalidName)),
            (b"X", b"a\r\nSet-Cookie: evil", Err(HeaderError::InvalidValue)),
            (b"X", b"a\nb", Err(HeaderError::InvalidValue)),
            (b"X", b"a\rb", Err(HeaderError::InvalidValue)),
            (b"X", b"a\0b", Err(HeaderError::InvalidValue)),
            (b"X", b"a\x7fb", Err(HeaderError::InvalidValue)),
            (b"Connection", b"close", Err(HeaderError::HopByHop)),
            (b"keep-alive", b"timeout=5", Err(HeaderError::HopByHop)),
            (b"Upgrade", b"websocket", Err(HeaderError::HopByHop)),
            (b"TE", b"trailers", Err(HeaderError::HopByHop)),
            (b"Trailer", b"X", Err(HeaderError::HopByHop)),
            (b"Proxy-Connection", b"x", Err(HeaderError::HopByHop)),
        ];
        for &(name, value, expected) in cases {
            assert_eq!(validate_response_header(name, value), expected, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn response_head_parses_back() {
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            1,
            b"201 Created",
            &[(b"X-A".as_slice(), b"1".as_slice())],
            ResponseFraming::Length(3),
            false,
        );
        out.extend_from_slice(b"abc");
        assert_eq!(parse_response_head(&out[..out.len() - 5], 8), Ok(None));
        let (head, used) = parse_response_head(&out, 8).unwrap().unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.headers[0], ("X-A", b"1".as_slice()));
        assert_eq!(&out[used..], b"abc");
        assert_eq!(parse_response_head(b"garbage\r\n\r\n", 8), Err(ResponseHeadError));
    }
}
