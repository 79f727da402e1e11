//! Incremental decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! The decoder is a state machine fed whatever bytes the connection loop has; it keeps no
//! input between calls, so the caller may drop consumed bytes right away. Chunk data is
//! copied out, bounded per call by `max_out` so the caller controls memory. Chunk
//! extensions and trailer fields are checked for syntax, then discarded; a trailer naming
//! a field that must not be sent as a trailer (framing, routing, content handling: RFC 9110
//! §6.5.1) is an error, since a proxy that merges trailers into the header section would
//! see a different request than we do. No I/O here.

use crate::syntax::{is_field_value_byte, is_tchar};

/// Longest chunk-size line accepted, extensions included, CRLF excluded. Clients use a few
/// bytes; 4096 matches uWSGI's default `buffer-size`. Longer gets [`ChunkError::LineTooLong`].
pub const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted, in bytes. Trailers are discarded, so this only bounds
/// the work a client can make us do. Larger gets [`ChunkError::TrailerTooLarge`].
pub const MAX_TRAILER_SECTION: usize = 4096;
/// 16 hex digits fill a u64; a longer chunk-size is refused rather than parsed.
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a chunked body was refused. Every variant answers 400 and closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size line without any hex digit.
    #[error("empty chunk size")]
    EmptySize,
    /// A byte that is neither a hex digit nor the start of an extension or the line end.
    #[error("invalid byte in chunk size")]
    InvalidSize,
    /// More than 16 hex digits.
    #[error("chunk size overflows")]
    SizeOverflow,
    /// The chunk-size line is longer than [`MAX_CHUNK_LINE`].
    #[error("chunk-size line too long")]
    LineTooLong,
    /// Chunk extension syntax: whitespace not followed by `;`, or a control byte.
    #[error("invalid chunk extension")]
    InvalidExtension,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not followed by CRLF")]
    MissingDataCrlf,
    /// An LF not preceded by CR in the chunk framing.
    #[error("bare LF in chunk framing")]
    BareLf,
    /// A CR not followed by LF in the chunk framing.
    #[error("bare CR in chunk framing")]
    BareCr,
    /// A trailer line that isn't `token ":" field-value`.
    #[error("invalid trailer field")]
    InvalidTrailer,
    /// The trailer section is larger than [`MAX_TRAILER_SECTION`].
    #[error("trailer section too large")]
    TrailerTooLarge,
    /// A trailer field that RFC 9110 §6.5.1 keeps out of trailers, such as
    /// `Content-Length`, `Transfer-Encoding` or `Host` (see [`FORBIDDEN_TRAILERS`]).
    #[error("field not allowed in a trailer")]
    ForbiddenTrailer,
}

/// Fields a client must not send as trailers (RFC 9110 §6.5.1): message framing, routing,
/// request modifiers, authentication and how to process the content. Each one is refused
/// with 400 ([`ChunkError::ForbiddenTrailer`]); other trailers are accepted and dropped.
pub const FORBIDDEN_TRAILERS: &[&str] = &[
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "expect",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "max-forwards",
    "pragma",
    "proxy-authorization",
    "range",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Longest name in [`FORBIDDEN_TRAILERS`]: longer trailer names need no comparison.
const NAME_KEPT: usize = 19;

/// The start of a trailer field name, lower-cased, kept to compare with
/// [`FORBIDDEN_TRAILERS`] when the colon arrives (the decoder keeps no input otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrailerName {
    /// The first bytes of the name.
    kept: [u8; NAME_KEPT],
    /// Length of the name so far; past [`NAME_KEPT`] only "longer" matters.
    len: usize,
}

impl TrailerName {
    fn first(b: u8) -> Self {
        Self { kept: [0; NAME_KEPT], len: 0 }.push(b)
    }

    fn push(mut self, b: u8) -> Self {
        if let Some(slot) = self.kept.get_mut(self.len) {
            *slot = b.to_ascii_lowercase();
        }
        self.len = self.len.saturating_add(1);
        self
    }

    fn forbidden(&self) -> bool {
        self.kept.get(..self.len).is_some_and(|name| FORBIDDEN_TRAILERS.iter().any(|f| f.as_bytes() == name))
    }
}

impl ChunkError {
    /// The HTTP status code to answer with (always 400 Bad Request).
    #[must_use]
    pub fn status(&self) -> u16 {
        400
    }
}

/// Where the decoder is within the chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading chunk-size hex digits.
    Size {
        /// Value of the digits so far.
        size: u64,
        /// How many digits so far.
        digits: u8,
    },
    /// After the size: optional BWS, then `;` extensions, up to the CR.
    Ext {
        /// The chunk size just read.
        size: u64,
        /// Length of the chunk-size line so far.
        line: usize,
        /// Whether a `;` has been seen (bare whitespace before CR is invalid).
        semicolon: bool,
    },
    /// CR of the chunk-size line seen; LF must follow.
    SizeLf {
        /// The chunk size, 0 for the last chunk.
        size: u64,
    },
    /// Inside chunk data.
    Data {
        /// Data bytes still to come in this chunk, never 0.
        remaining: u64,
    },
    /// Chunk data done; CR must follow.
    DataCr,
    /// CR after chunk data seen; LF must follow.
    DataLf,
    /// Start of a trailer line, or of the empty line that ends the body.
    TrailerStart {
        /// Trailer bytes consumed so far.
        total: usize,
    },
    /// Inside a trailer field name.
    TrailerName {
        /// Trailer bytes consumed so far.
        total: usize,
        /// The name so far.
        name: TrailerName,
    },
    /// Inside a trailer field value.
    TrailerValue {
        /// Trailer bytes consumed so far.
        total: usize,
    },
    /// CR ending a trailer line seen; LF must follow.
    TrailerLf {
        /// Trailer bytes consumed so far.
        total: usize,
    },
    /// CR of the final empty line seen; LF must follow.
    EndLf,
    /// The body is complete; nothing more is consumed.
    Done,
    /// An error happened; every later call returns it again.
    Failed(ChunkError),
}

/// Incremental `chunked` body decoder. Create one per request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedDecoder {
    /// Current position in the chunked grammar.
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder expecting the first chunk-size line.
    #[must_use]
    pub fn new() -> Self {
        Self { state: State::Size { size: 0, digits: 0 } }
    }

    /// Whether the last chunk and the trailer section have been consumed.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending body bytes to `out`, at most `max_out` of them in
    /// this call.
    ///
    /// Returns `(consumed, finished)`: `input[..consumed]` has been used and must not be
    /// passed again; `finished` is true once the last chunk and trailers are consumed (bytes
    /// after that belong to the next request and are not consumed). Consumption stops early
    /// when `max_out` body bytes were produced. After an error the decoder stays failed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, max_out: usize) -> Result<(usize, bool), ChunkError> {
        let mut pos = 0;
        let mut room = max_out;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data { remaining } => {
                    let left = input.len() - pos;
                    // `take` fits in usize: it is at most `left`.
                    let take = remaining.min(left as u64).min(room as u64) as usize;
                    if take == 0 {
                        break;
                    }
                    out.extend_from_slice(&input[pos..pos + take]);
                    pos += take;
                    room -= take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 { State::DataCr } else { State::Data { remaining } };
                }
                state => {
                    self.state = match step(state, input[pos]) {
                        Ok(next) => next,
                        Err(e) => {
                            self.state = State::Failed(e);
                            return Err(e);
                        }
                    };
                    pos += 1;
                }
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok((pos, self.state == State::Done))
    }
}

/// One framing byte (anything but chunk data) moves the machine on.
fn step(state: State, b: u8) -> Result<State, ChunkError> {
    match state {
        State::Size { size, digits } => on_size(size, digits, b),
        State::Ext { size, line, semicolon } => on_ext(size, line, semicolon, b),
        State::SizeLf { size } => on_size_lf(size, b),
        State::DataCr => on_data_cr(b),
        State::DataLf => expect_lf(b, State::Size { size: 0, digits: 0 }),
        State::TrailerStart { total } => on_trailer_start(total, b),
        State::TrailerName { total, name } => on_trailer_name(total, name, b),
        State::TrailerValue { total } => on_trailer_value(total, b),
        State::TrailerLf { total } => expect_lf(b, State::TrailerStart { total: total + 1 }),
        State::EndLf => expect_lf(b, State::Done),
        // `decode` handles these without calling `step`.
        State::Data { .. } | State::Done | State::Failed(_) => Ok(state),
    }
}

fn on_size(size: u64, digits: u8, b: u8) -> Result<State, ChunkError> {
    if let Some(d) = hex_value(b) {
        if digits == MAX_SIZE_DIGITS {
            return Err(ChunkError::SizeOverflow);
        }
        return Ok(State::Size { size: size << 4 | u64::from(d), digits: digits + 1 });
    }
    if digits == 0 {
        return Err(match b {
            b'\r' | b';' | b'\n' | b' ' | b'\t' => ChunkError::EmptySize,
            _ => ChunkError::InvalidSize,
        });
    }
    let line = usize::from(digits);
    match b {
        b'\r' => Ok(State::SizeLf { size }),
        b'\n' => Err(ChunkError::BareLf),
        b';' => Ok(State::Ext { size, line: line + 1, semicolon: true }),
        b' ' | b'\t' => Ok(State::Ext { size, line: line + 1, semicolon: false }),
        _ => Err(ChunkError::InvalidSize),
    }
}

/// `chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )` (RFC 9112 §7.1.1).
/// Extensions are ignored, so beyond "whitespace leads to `;`" only the byte class is checked.
fn on_ext(size: u64, line: usize, semicolon: bool, b: u8) -> Result<State, ChunkError> {
    if line >= MAX_CHUNK_LINE {
        return Err(ChunkError::LineTooLong);
    }
    match b {
        b'\r' if semicolon => Ok(State::SizeLf { size }),
        b'\n' => Err(ChunkError::BareLf),
        b';' => Ok(State::Ext { size, line: line + 1, semicolon: true }),
        b' ' | b'\t' => Ok(State::Ext { size, line: line + 1, semicolon }),
        _ if semicolon && is_field_value_byte(b) => Ok(State::Ext { size, line: line + 1, semicolon }),
        _ => Err(ChunkError::InvalidExtension),
    }
}

fn on_size_lf(size: u64, b: u8) -> Result<State, ChunkError> {
    let next = if size == 0 { State::TrailerStart { total: 0 } } else { State::Data { remaining: size } };
    expect_lf(b, next)
}

fn on_data_cr(b: u8) -> Result<State, ChunkError> {
    match b {
        b'\r' => Ok(State::DataLf),
        b'\n' => Err(ChunkError::BareLf),
        _ => Err(ChunkError::MissingDataCrlf),
    }
}

fn on_trailer_start(total: usize, b: u8) -> Result<State, ChunkError> {
    match b {
        b'\r' => Ok(State::EndLf),
        b'\n' => Err(ChunkError::BareLf),
        _ if is_tchar(b) => trailer_byte(total, State::TrailerName { total: total + 1, name: TrailerName::first(b) }),
        _ => Err(ChunkError::InvalidTrailer),
    }
}

fn on_trailer_name(total: usize, name: TrailerName, b: u8) -> Result<State, ChunkError> {
    match b {
        b':' if name.forbidden() => Err(ChunkError::ForbiddenTrailer),
        b':' => trailer_byte(total, State::TrailerValue { total: total + 1 }),
        _ if is_tchar(b) => trailer_byte(total, State::TrailerName { total: total + 1, name: name.push(b) }),
        _ => Err(ChunkError::InvalidTrailer),
    }
}

fn on_trailer_value(total: usize, b: u8) -> Result<State, ChunkError> {
    match b {
        b'\r' => trailer_byte(total, State::TrailerLf { total: total + 1 }),
        b'\n' => Err(ChunkError::BareLf),
        _ if is_field_value_byte(b) => trailer_byte(total, State::TrailerValue { total: total + 1 }),
        _ => Err(ChunkError::InvalidTrailer),
    }
}

/// Accepts one more trailer byte unless the section would exceed its bound.
fn trailer_byte(total: usize, next: State) -> Result<State, ChunkError> {
    if total >= MAX_TRAILER_SECTION {
        Err(ChunkError::TrailerTooLarge)
    } else {
        Ok(next)
    }
}

fn expect_lf(b: u8, next: State) -> Result<State, ChunkError> {
    if b == b'\n' {
        Ok(next)
    } else {
        Err(ChunkError::BareCr)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` in one call with unbounded output.
    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut out = Vec::new();
        let (used, done) = ChunkedDecoder::new().decode(input, &mut out, usize::MAX)?;
        Ok((out, used, done))
    }

    #[test]
    fn decodes_chunks_and_stops_after_trailers() {
        let input = b"3\r\nabc\r\nA;name=\"v\"\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let (out, used, done) = decode_all(input).unwrap();
        assert_eq!(out, b"abc0123456789");
        assert!(done);
        assert_eq!(&input[used..], b"NEXT");
    }

    #[test]
    fn accepts_uppercase_hex_leading_zeros_and_bws_before_extension() {
        let (out, _, done) = decode_all(b"0002\r\nhi\r\nB \t; x\r\nhello world\r\n0\r\n\r\n").unwrap();
        assert_eq!(out, b"hihello world");
        assert!(done);
    }

    #[test]
    fn rejects_bad_framing_table() {
        let long_ext = [b"1;".as_slice(), &[b'a'; MAX_CHUNK_LINE], b"\r\nx\r\n0\r\n\r\n"].concat();
        let big_trailer = [b"0\r\nX: ".as_slice(), &[b'a'; MAX_TRAILER_SECTION], b"\r\n\r\n"].concat();
        let cases: &[(&str, &[u8], ChunkError)] = &[
            ("empty_size", b"\r\n", ChunkError::EmptySize),
            ("extension_without_size", b";a\r\n", ChunkError::EmptySize),
            ("invalid_hex", b"g\r\n", ChunkError::InvalidSize),
            ("hex_prefix", b"0x5\r\n", ChunkError::InvalidSize),
            ("signed_size", b"+5\r\n", ChunkError::InvalidSize),
            ("seventeen_digits", b"00000000000000001\r\n", ChunkError::SizeOverflow),
            ("size_over_u64", b"1ffffffffffffffff\r\n", ChunkError::SizeOverflow),
            ("extension_too_long", &long_ext, ChunkError::LineTooLong),
            ("whitespace_without_semicolon", b"5 \r\nhello\r\n", ChunkError::InvalidExtension),
            ("garbage_after_whitespace", b"5 x\r\n", ChunkError::InvalidExtension),
            ("control_in_extension", b"5;a\x01\r\n", ChunkError::InvalidExtension),
            ("nul_in_extension", b"5;a=\0\r\n", ChunkError::InvalidExtension),
            ("bare_lf_after_size", b"5\nhello\r\n", ChunkError::BareLf),
            ("bare_lf_after_extension", b"5;a\nhello\r\n", ChunkError::BareLf),
            ("bare_cr_after_size", b"5\rhello\r\n", ChunkError::BareCr),
            ("data_longer_than_size", b"3\r\nabcd\r\n", ChunkError::MissingDataCrlf),
            ("bare_lf_after_data", b"3\r\nabc\n0\r\n\r\n", ChunkError::BareLf),
            ("bare_cr_after_data", b"3\r\nabc\r0\r\n\r\n", ChunkError::BareCr),
            ("bare_lf_ending_body", b"0\r\n\n", ChunkError::BareLf),
            ("bare_cr_ending_body", b"0\r\n\rx", ChunkError::BareCr),
            ("trailer_without_colon", b"0\r\nX\r\n\r\n", ChunkError::InvalidTrailer),
            ("trailer_space_before_colon", b"0\r\nX : 1\r\n\r\n", ChunkError::InvalidTrailer),
            ("trailer_obs_fold", b"0\r\n y\r\n\r\n", ChunkError::InvalidTrailer),
            ("trailer_nul", b"0\r\nX: \0\r\n\r\n", ChunkError::InvalidTrailer),
            ("trailer_bare_lf", b"0\r\nX: 1\n\r\n", ChunkError::BareLf),
            ("trailer_too_large", &big_trailer, ChunkError::TrailerTooLarge),
            ("trailer_content_length", b"0\r\nContent-Length: 5\r\n\r\n", ChunkError::ForbiddenTrailer),
            ("trailer_host_any_case", b"0\r\nhOST: evil\r\n\r\n", ChunkError::ForbiddenTrailer),
            ("trailer_transfer_encoding", b"0\r\nTransfer-Encoding: chunked\r\n\r\n", ChunkError::ForbiddenTrailer),
            ("trailer_te_after_allowed", b"0\r\nX: 1\r\nTE: trailers\r\n\r\n", ChunkError::ForbiddenTrailer),
            ("trailer_longest_forbidden", b"0\r\nProxy-Authorization: x\r\n\r\n", ChunkError::ForbiddenTrailer),
        ];
        for &(name, input, expected) in cases {
            assert_eq!(decode_all(input).map(|_| ()), Err(expected), "{name}");
            assert_eq!(expected.status(), 400);
        }
    }

    #[test]
    fn accepts_trailers_that_only_resemble_forbidden_ones() {
        for name in ["Hosts", "Hos", "X-Host", "Content-Lengthy", "Proxy-Authorizations", "Content-MD5", "Digest"] {
            let input = format!("0\r\n{name}: v\r\n\r\n");
            assert_eq!(decode_all(input.as_bytes()), Ok((Vec::new(), input.len(), true)), "{name}");
        }
        assert!(FORBIDDEN_TRAILERS.iter().all(|f| f.len() <= NAME_KEPT && f.bytes().all(|b| !b.is_ascii_uppercase())));
    }

    #[test]
    fn stays_failed_after_an_error() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(b"z", &mut out, 10), Err(ChunkError::InvalidSize));
        assert_eq!(d.decode(b"0\r\n\r\n", &mut out, 10), Err(ChunkError::InvalidSize));
    }

    #[test]
    fn max_out_bounds_each_call() {
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let (used, done) = d.decode(input, &mut out, 4).unwrap();
        assert_eq!((out.as_slice(), done), (&b"0123"[..], false));
        let (used2, done) = d.decode(&input[used..], &mut out, 0).unwrap();
        assert_eq!((used2, done), (0, false));
        let (used3, done) = d.decode(&input[used..], &mut out, 100).unwrap();
        assert_eq!(out, b"0123456789");
        assert!(done && d.is_finished());
        assert_eq!(used + used3, input.len());
    }

    #[test]
    fn consumes_nothing_after_finishing() {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        assert_eq!(d.decode(b"0\r\n\r\n", &mut out, 0), Ok((5, true)));
        assert_eq!(d.decode(b"0\r\n\r\n", &mut out, 0), Ok((0, true)));
    }

    #[test]
    fn one_byte_at_a_time_matches_whole() {
        let input = b"4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nA: b\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let mut done = false;
        for b in input {
            let (used, finished) = d.decode(std::slice::from_ref(b), &mut out, usize::MAX).unwrap();
            assert_eq!(used, 1);
            done = finished;
        }
        assert!(done);
        assert_eq!(out, b"Wikipedia");
    }
}
