//! WebSocket (RFC 6455) framing for the server side: the opening handshake's accept key,
//! frame parsing (client frames, masked) and encoding (server frames, unmasked), and the
//! reassembly of fragmented messages with the protocol checks a server must make. No I/O:
//! the caller owns the socket and its buffer.
//!
//! Hand-written rather than taken from tungstenite: its codec is tied to its own stream
//! and buffer types, while ruwsgi's connection threads read into their own buffer and
//! need "need more bytes" without blocking; the framing itself is small.

use base64::Engine as _;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most payload bytes a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
#[must_use]
pub fn websocket_accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim_ascii());
    sha.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// A frame's opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// Continuation of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close (with an optional code and reason).
    Close,
    /// Ping.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    /// The opcode of a frame's low four bits; `None` for a reserved one.
    #[must_use]
    pub fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0 => Opcode::Continuation,
            1 => Opcode::Text,
            2 => Opcode::Binary,
            8 => Opcode::Close,
            9 => Opcode::Ping,
            10 => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0,
            Opcode::Text => 1,
            Opcode::Binary => 2,
            Opcode::Close => 8,
            Opcode::Ping => 9,
            Opcode::Pong => 10,
        }
    }

    /// Close, ping and pong.
    #[must_use]
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// Why the client's frames break the protocol; each maps to the close code the server
/// sends before closing ([`FrameError::close_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// RSV bits set (no extension was negotiated), or an unknown opcode.
    #[error("reserved bits or opcode used")]
    Reserved,
    /// A client frame without a mask (RFC 6455 §5.1).
    #[error("client frame not masked")]
    Unmasked,
    /// A control frame fragmented or longer than 125 bytes.
    #[error("bad control frame")]
    BadControl,
    /// A continuation frame with no message started, or a new message inside one.
    #[error("bad fragmentation")]
    BadFragment,
    /// A message (or frame) larger than the configured maximum (`websockets-max-size`).
    #[error("message too big")]
    TooBig,
    /// A text message that is not UTF-8.
    #[error("text message is not UTF-8")]
    BadUtf8,
    /// A close frame with a 1-byte payload, an invalid code or a reason that is not UTF-8.
    #[error("bad close frame")]
    BadClose,
    /// A compressed message (permessage-deflate) that doesn't inflate.
    #[error("compressed message doesn't inflate")]
    BadDeflate,
}

impl FrameError {
    /// The close code to answer with (RFC 6455 §7.4.1).
    #[must_use]
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::TooBig => 1009,
            FrameError::BadUtf8 | FrameError::BadDeflate => 1007,
            _ => 1002,
        }
    }
}

/// One parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHead {
    /// Last frame of its message.
    pub fin: bool,
    /// The opcode.
    pub opcode: Opcode,
    /// The masking key (client frames are always masked).
    pub mask: [u8; 4],
    /// Payload length.
    pub len: u64,
    /// Bytes of the header (2 to 14).
    pub header_len: usize,
    /// RSV1: the first frame of a compressed message (permessage-deflate).
    pub compressed: bool,
}

/// Parses a client frame's header from the front of `buf`. `Ok(None)`: need more bytes.
/// A payload longer than `max_payload` is refused before it arrives. `deflate`: the
/// connection negotiated permessage-deflate, so RSV1 may mark a message's first frame.
pub fn parse_frame_head(buf: &[u8], max_payload: u64, deflate: bool) -> Result<Option<FrameHead>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let compressed = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (compressed && !deflate) {
        return Err(FrameError::Reserved);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::Reserved)?;
    // RFC 7692 §6.1: RSV1 only on the first frame of a data message.
    if compressed && (opcode.is_control() || opcode == Opcode::Continuation) {
        return Err(FrameError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(FrameError::Unmasked);
    }
    let (len, mut at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else { return Ok(None) };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else { return Ok(None) };
            let mut n = [0u8; 8];
            n.copy_from_slice(b);
            (u64::from_be_bytes(n), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || len > MAX_CONTROL_PAYLOAD as u64) {
        return Err(FrameError::BadControl);
    }
    if len > max_payload {
        return Err(FrameError::TooBig);
    }
    let Some(m) = buf.get(at..at + 4) else { return Ok(None) };
    let mask = [m[0], m[1], m[2], m[3]];
    at += 4;
    Ok(Some(FrameHead { fin, opcode, mask, len, header_len: at, compressed }))
}

/// Where the frame at the front of `buf` ends, whatever it holds (reserved bits or opcode,
/// a long control frame, no mask): `(opcode bits, header length, payload length)`, `None`
/// until the header is complete. For skipping what a client sends after a close of ours,
/// where the frame that broke the protocol is still in front of the client's close.
#[must_use]
pub fn frame_extent(buf: &[u8]) -> Option<(u8, usize, u64)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, at) = match b1 & 0x7F {
        126 => (u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])), 4),
        127 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(buf.get(2..10)?);
            (u64::from_be_bytes(n), 10)
        }
        n => (u64::from(n), 2),
    };
    let header_len = if b1 & 0x80 == 0 { at } else { at + 4 };
    (buf.len() >= header_len).then_some((b0 & 0x0F, header_len, len))
}

/// Unmasks `payload` in place; `offset` is where it starts within the frame's payload.
pub fn unmask(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

/// Appends a server frame (unmasked, not fragmented unless `fin` is false) to `out`.
pub fn encode_frame(out: &mut Vec<u8>, fin: bool, opcode: Opcode, payload: &[u8]) {
    encode_frame_head(out, fin, false, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// A server frame carrying a message compressed with [`Deflate::compress`] (RSV1 set).
pub fn encode_compressed_frame(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    encode_frame_head(out, true, true, opcode, payload.len());
    out.extend_from_slice(payload);
}

fn encode_frame_head(out: &mut Vec<u8>, fin: bool, compressed: bool, opcode: Opcode, len: usize) {
    out.push(if fin { 0x80 } else { 0 } | if compressed { 0x40 } else { 0 } | opcode.bits());
    match len {
        n @ 0..=125 => out.push(n as u8),
        n @ 126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
}

/// The payload of a close frame: the code (if any) and the reason.
#[must_use]
pub fn encode_close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut out = code.to_be_bytes().to_vec();
    // A control frame's payload is at most 125 bytes: the reason is cut at a char boundary.
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&reason.as_bytes()[..end]);
    out
}

/// Parses a client's close payload: `(code, reason)`, 1005 ("no status") when empty.
pub fn parse_close_payload(payload: &[u8]) -> Result<(u16, &str), FrameError> {
    match payload.len() {
        0 => Ok((1005, "")),
        1 => Err(FrameError::BadClose),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            // RFC 6455 §7.4: codes a peer may send; 1004-1006 and 1015 are reserved.
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            let reason = std::str::from_utf8(&payload[2..]).map_err(|_| FrameError::BadUtf8)?;
            if valid {
                Ok((code, reason))
            } else {
                Err(FrameError::BadClose)
            }
        }
    }
}

/// A complete data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// Reassembles fragmented data messages (RFC 6455 §5.4), enforcing the maximum size and
/// UTF-8 for text, and inflating compressed ones. Control frames are the caller's and never
/// reach it.
#[derive(Debug, Default)]
pub struct Assembler {
    /// The message being received: its opcode, the payload so far, whether compressed.
    partial: Option<(Opcode, Vec<u8>, bool)>,
}

impl Assembler {
    /// Takes one data frame's (unmasked) payload. `Ok(Some)`: a message is complete.
    /// `deflate`: the connection's permessage-deflate state, for compressed messages.
    pub fn push(
        &mut self,
        head: &FrameHead,
        payload: Vec<u8>,
        max: u64,
        deflate: Option<&mut Deflate>,
    ) -> Result<Option<Message>, FrameError> {
        let (opcode, data, compressed) = match (head.opcode, self.partial.take()) {
            (Opcode::Continuation, Some((opcode, mut data, compressed))) => {
                data.extend_from_slice(&payload);
                (opcode, data, compressed)
            }
            // A continuation with nothing started, or a new message inside one.
            (Opcode::Continuation, None) | (_, Some(_)) => return Err(FrameError::BadFragment),
            (opcode, None) => (opcode, payload, head.compressed),
        };
        if data.len() as u64 > max {
            return Err(FrameError::TooBig);
        }
        if !head.fin {
            if opcode == Opcode::Text && !compressed {
                // Fail fast on text that can't become valid: only a trailing incomplete
                // sequence may still be completed by the next fragment.
                if let Err(e) = std::str::from_utf8(&data) {
                    if e.error_len().is_some() {
                        return Err(FrameError::BadUtf8);
                    }
                }
            }
            self.partial = Some((opcode, data, compressed));
            return Ok(None);
        }
        let data = match (compressed, deflate) {
            (false, _) => data,
            (true, Some(deflate)) => deflate.decompress(&data, max)?,
            (true, None) => return Err(FrameError::Reserved),
        };
        Ok(Some(match opcode {
            Opcode::Text => Message::Text(String::from_utf8(data).map_err(|_| FrameError::BadUtf8)?),
            _ => Message::Binary(data),
        }))
    }
}

/// permessage-deflate (RFC 7692) as negotiated for one connection: the response header
/// value, and the compressor and decompressor, which keep their context across messages
/// unless the client asked the server not to (`server_no_context_takeover`).
pub struct Deflate {
    /// `Sec-WebSocket-Extensions` value for the 101 response.
    pub response: String,
    /// Reset the compressor after each message.
    server_no_context_takeover: bool,
    compress: Compress,
    decompress: Decompress,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate").field("response", &self.response).finish_non_exhaustive()
    }
}

/// RFC 7692 §7.2.1: the end of every compressed message, left off on the wire.
const DEFLATE_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Picks the first permessage-deflate offer in the client's `Sec-WebSocket-Extensions`
/// values that ruwsgi can honour: any `client_max_window_bits`, `server_max_window_bits`
/// only at 15 (the Rust deflate backend has no smaller window), either
/// `*_no_context_takeover`. `None`: no such offer; the connection runs uncompressed.
#[must_use]
pub fn negotiate_deflate<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> Option<Deflate> {
    for value in values {
        let Ok(value) = std::str::from_utf8(value) else { continue };
        'offers: for offer in value.split(',') {
            let mut parts = offer.split(';').map(str::trim);
            if !parts.next().is_some_and(|name| name.eq_ignore_ascii_case("permessage-deflate")) {
                continue;
            }
            let (mut server_reset, mut client_reset, mut server_bits, mut client_bits) = (false, false, false, false);
            for param in parts {
                let (name, value) = match param.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (param, None),
                };
                let seen = match (name.to_ascii_lowercase().as_str(), value) {
                    ("server_no_context_takeover", None) => std::mem::replace(&mut server_reset, true),
                    ("client_no_context_takeover", None) => std::mem::replace(&mut client_reset, true),
                    ("server_max_window_bits", Some("15")) => std::mem::replace(&mut server_bits, true),
                    ("client_max_window_bits", None) => std::mem::replace(&mut client_bits, true),
                    ("client_max_window_bits", Some(v)) if v.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b)) => {
                        std::mem::replace(&mut client_bits, true)
                    }
                    _ => continue 'offers,
                };
                if seen {
                    // RFC 7692 §7: a parameter given twice makes the offer invalid.
                    continue 'offers;
                }
            }
            let mut response = String::from("permessage-deflate");
            if server_reset {
                response.push_str("; server_no_context_takeover");
            }
            if client_reset {
                response.push_str("; client_no_context_takeover");
            }
            if server_bits {
                response.push_str("; server_max_window_bits=15");
            }
            return Some(Deflate {
                response,
                server_no_context_takeover: server_reset,
                compress: Compress::new(Compression::fast(), false),
                decompress: Decompress::new(false),
            });
        }
    }
    None
}

impl Deflate {
    /// Compresses one message (the payload of a frame sent with RSV1).
    pub fn compress(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() / 2 + 64);
        let start_in = self.compress.total_in();
        loop {
            let consumed = (self.compress.total_in() - start_in) as usize;
            out.reserve(data.len() / 4 + 64);
            // A sync flush ends the output on a byte boundary with the 4-byte tail.
            let done = self.compress.compress_vec(&data[consumed..], &mut out, FlushCompress::Sync);
            let consumed = (self.compress.total_in() - start_in) as usize;
            if done.is_err() || (consumed == data.len() && out.len() < out.capacity() && out.ends_with(&DEFLATE_TAIL)) {
                break;
            }
        }
        if out.ends_with(&DEFLATE_TAIL) {
            out.truncate(out.len() - DEFLATE_TAIL.len());
        }
        if self.server_no_context_takeover {
            self.compress.reset();
        }
        out
    }

    /// Inflates one compressed message, refusing one that grows past `max` bytes.
    pub fn decompress(&mut self, data: &[u8], max: u64) -> Result<Vec<u8>, FrameError> {
        let mut input = Vec::with_capacity(data.len() + DEFLATE_TAIL.len());
        input.extend_from_slice(data);
        input.extend_from_slice(&DEFLATE_TAIL);
        let mut out = Vec::new();
        let start_in = self.decompress.total_in();
        loop {
            let consumed = (self.decompress.total_in() - start_in) as usize;
            out.reserve((input.len() * 2).clamp(1024, 256 * 1024));
            let before_out = out.len();
            let status = self
                .decompress
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|_| FrameError::BadDeflate)?;
            if out.len() as u64 > max {
                return Err(FrameError::TooBig);
            }
            let consumed_now = (self.decompress.total_in() - start_in) as usize;
            let all_in = consumed_now == input.len();
            if status == Status::StreamEnd || (all_in && out.len() < out.capacity()) {
                return Ok(out);
            }
            if consumed_now == consumed && out.len() == before_out && out.len() < out.capacity() {
                // No progress with room to spare: the stream is cut short.
                return Err(FrameError::BadDeflate);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 0x7e);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 0x7f);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn parse_whole(frame: &[u8]) -> (FrameHead, Vec<u8>) {
        let head = parse_frame_head(frame, 1 << 20, false).unwrap().unwrap();
        let mut payload = frame[head.header_len..].to_vec();
        unmask(&mut payload, head.mask, 0);
        (head, payload)
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(websocket_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn parses_masked_text_frame_of_each_length_form() {
        for len in [0usize, 5, 125, 126, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let frame = client_frame(true, 1, &payload);
            let (head, got) = parse_whole(&frame);
            assert_eq!((head.fin, head.opcode, head.len), (true, Opcode::Text, len as u64));
            assert_eq!(got, payload);
        }
    }

    #[test]
    fn needs_more_bytes_at_every_split_of_the_header() {
        let frame = client_frame(true, 2, &[9u8; 300]);
        let head_len = parse_frame_head(&frame, 1 << 20, false).unwrap().unwrap().header_len;
        for cut in 0..head_len {
            assert_eq!(parse_frame_head(&frame[..cut], 1 << 20, false), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn frame_extent_skips_any_frame() {
        // Reserved bits and opcode, a long fragmented ping, no mask: all are measured.
        assert_eq!(frame_extent(&[0xC3, 0x83, 1, 2, 3, 4]), Some((3, 6, 3)));
        let ping = client_frame(false, 9, &[0; 200]);
        assert_eq!(frame_extent(&ping), Some((9, 8, 200)));
        assert_eq!(frame_extent(&[0x88, 0x02]), Some((8, 2, 2)));
        let mut long = vec![0x82, 0xFF];
        long.extend_from_slice(&(1u64 << 40).to_be_bytes());
        long.extend_from_slice(&[0; 4]);
        assert_eq!(frame_extent(&long), Some((2, 14, 1 << 40)));
        for cut in 0..14 {
            assert_eq!(frame_extent(&long[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn rejects_unmasked_reserved_and_bad_control_frames() {
        assert_eq!(parse_frame_head(&[0x81, 0x00], 10, false), Err(FrameError::Unmasked));
        assert_eq!(parse_frame_head(&[0xC1, 0x80, 0, 0, 0, 0], 10, false), Err(FrameError::Reserved));
        assert_eq!(parse_frame_head(&[0x83, 0x80, 0, 0, 0, 0], 10, false), Err(FrameError::Reserved));
        assert_eq!(parse_frame_head(&client_frame(false, 9, b"x"), 10, false), Err(FrameError::BadControl));
        assert_eq!(parse_frame_head(&client_frame(true, 9, &[0; 126]), 1000, false), Err(FrameError::BadControl));
    }

    #[test]
    fn refuses_a_frame_over_the_maximum_before_its_payload() {
        let frame = client_frame(true, 2, &[0; 2000]);
        assert_eq!(parse_frame_head(&frame[..8], 1000, false), Err(FrameError::TooBig));
        assert_eq!(FrameError::TooBig.close_code(), 1009);
    }

    #[test]
    fn reassembles_fragments_and_checks_their_order() {
        let mut a = Assembler::default();
        let (h1, p1) = parse_whole(&client_frame(false, 1, "héllo ".as_bytes()));
        let (h2, p2) = parse_whole(&client_frame(false, 0, b"wor"));
        let (h3, p3) = parse_whole(&client_frame(true, 0, b"ld"));
        assert_eq!(a.push(&h1, p1, 100, None), Ok(None));
        assert_eq!(a.push(&h2, p2, 100, None), Ok(None));
        assert_eq!(a.push(&h3, p3, 100, None), Ok(Some(Message::Text("héllo world".into()))));
        let (h, p) = parse_whole(&client_frame(true, 0, b"x"));
        assert_eq!(a.push(&h, p, 100, None), Err(FrameError::BadFragment));
        let mut a = Assembler::default();
        let (h1, p1) = parse_whole(&client_frame(false, 2, b"ab"));
        let (h2, p2) = parse_whole(&client_frame(true, 1, b"cd"));
        assert_eq!(a.push(&h1, p1, 100, None), Ok(None));
        assert_eq!(a.push(&h2, p2, 100, None), Err(FrameError::BadFragment));
    }

    #[test]
    fn text_must_be_utf8_even_split_across_fragments() {
        let mut a = Assembler::default();
        let bytes = "é".as_bytes();
        let (h1, p1) = parse_whole(&client_frame(false, 1, &bytes[..1]));
        let (h2, p2) = parse_whole(&client_frame(true, 0, &bytes[1..]));
        assert_eq!(a.push(&h1, p1, 100, None), Ok(None), "an incomplete sequence may continue");
        assert_eq!(a.push(&h2, p2, 100, None), Ok(Some(Message::Text("é".into()))));
        let mut a = Assembler::default();
        let (h, p) = parse_whole(&client_frame(false, 1, &[0xff, b'a']));
        assert_eq!(a.push(&h, p, 100, None), Err(FrameError::BadUtf8));
        assert_eq!(FrameError::BadUtf8.close_code(), 1007);
    }

    #[test]
    fn message_size_counts_all_fragments() {
        let mut a = Assembler::default();
        let (h1, p1) = parse_whole(&client_frame(false, 2, &[0; 60]));
        let (h2, p2) = parse_whole(&client_frame(true, 0, &[0; 60]));
        assert_eq!(a.push(&h1, p1, 100, None), Ok(None));
        assert_eq!(a.push(&h2, p2, 100, None), Err(FrameError::TooBig));
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close_payload(b""), Ok((1005, "")));
        assert_eq!(parse_close_payload(&[0x03, 0xe8, b'o', b'k']), Ok((1000, "ok")));
        assert_eq!(parse_close_payload(&[0x03]), Err(FrameError::BadClose));
        assert_eq!(parse_close_payload(&1005u16.to_be_bytes()), Err(FrameError::BadClose));
        assert_eq!(parse_close_payload(&999u16.to_be_bytes()), Err(FrameError::BadClose));
        assert_eq!(parse_close_payload(&[0x03, 0xe8, 0xff]), Err(FrameError::BadUtf8));
        let long = "é".repeat(100);
        let p = encode_close_payload(1000, &long);
        assert!(p.len() <= MAX_CONTROL_PAYLOAD);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }

    #[test]
    fn encodes_server_frames_unmasked_with_each_length_form() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let mut out = Vec::new();
            encode_frame(&mut out, true, Opcode::Binary, &vec![1u8; len]);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0, "server frames are not masked");
            let header = match len {
                0..=125 => 2,
                126..=65535 => 4,
                _ => 10,
            };
            assert_eq!(out.len(), header + len);
        }
    }

    #[test]
    fn negotiates_the_first_deflate_offer_it_can_honour() {
        let pick = |v: &str| negotiate_deflate([v.as_bytes()]).map(|d| d.response);
        assert_eq!(pick("permessage-deflate; client_max_window_bits").as_deref(), Some("permessage-deflate"));
        assert_eq!(
            pick("permessage-deflate; server_no_context_takeover; client_no_context_takeover").as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        // A smaller server window can't be honoured: the next offer is taken.
        assert_eq!(
            pick("permessage-deflate; server_max_window_bits=10, permessage-deflate; server_max_window_bits=15")
                .as_deref(),
            Some("permessage-deflate; server_max_window_bits=15")
        );
        assert_eq!(pick("permessage-deflate; server_max_window_bits=10"), None);
        assert_eq!(pick("permessage-deflate; client_max_window_bits=7"), None);
        assert_eq!(pick("permessage-deflate; server_no_context_takeover; server_no_context_takeover"), None);
        assert_eq!(pick("permessage-deflate; mystery"), None);
        assert_eq!(pick("x-webkit-deflate-frame"), None);
        assert_eq!(negotiate_deflate(std::iter::empty::<&[u8]>()).map(|d| d.response), None);
    }

    #[test]
    fn inflates_the_rfc_7692_example_and_round_trips_with_context() {
        let mut d = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        // RFC 7692 §7.2.3.1: "Hello" compressed, without the tail.
        assert_eq!(d.decompress(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100).unwrap(), b"Hello");
        let mut client = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        let mut server = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        for _ in 0..3 {
            let text = "the same words again and again, the same words ".repeat(20);
            let packed = server.compress(text.as_bytes());
            assert!(packed.len() < text.len() / 4, "{} bytes", packed.len());
            assert_eq!(client.decompress(&packed, 1 << 20).unwrap(), text.as_bytes());
        }
        let big = vec![b'a'; 1 << 20];
        let packed = server.compress(&big);
        assert_eq!(client.decompress(&packed, 1 << 20).unwrap().len(), big.len());
        let empty = server.compress(b"");
        assert_eq!(client.decompress(&empty, 10).unwrap(), b"");
    }

    #[test]
    fn refuses_a_message_that_inflates_past_the_maximum_or_is_not_deflate() {
        let mut server = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        let bomb = server.compress(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 * 1024);
        let mut client = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        assert_eq!(client.decompress(&bomb, 1 << 20), Err(FrameError::TooBig));
        let mut client = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        assert_eq!(client.decompress(&[0xff, 0xff, 0xff, 0xff, 0xff], 1 << 20), Err(FrameError::BadDeflate));
    }

    #[test]
    fn rsv1_only_on_the_first_frame_of_a_negotiated_data_message() {
        let mut compressed = client_frame(true, 1, b"x");
        compressed[0] |= 0x40;
        assert_eq!(parse_frame_head(&compressed, 10, false), Err(FrameError::Reserved));
        assert!(parse_frame_head(&compressed, 10, true).unwrap().unwrap().compressed);
        let mut cont = client_frame(true, 0, b"x");
        cont[0] |= 0x40;
        assert_eq!(parse_frame_head(&cont, 10, true), Err(FrameError::Reserved));
        let mut ping = client_frame(true, 9, b"x");
        ping[0] |= 0x40;
        assert_eq!(parse_frame_head(&ping, 10, true), Err(FrameError::Reserved));
        // A compressed message split in fragments inflates once whole.
        let mut server = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        let packed = server.compress("héllo héllo héllo".as_bytes());
        let (first, rest) = packed.split_at(packed.len() / 2);
        let mut f1 = client_frame(false, 1, first);
        f1[0] |= 0x40;
        let (h1, p1) = {
            let head = parse_frame_head(&f1, 1 << 20, true).unwrap().unwrap();
            let mut p = f1[head.header_len..].to_vec();
            unmask(&mut p, head.mask, 0);
            (head, p)
        };
        let (h2, p2) = parse_whole(&client_frame(true, 0, rest));
        let mut inflate = negotiate_deflate([&b"permessage-deflate"[..]]).unwrap();
        let mut a = Assembler::default();
        assert_eq!(a.push(&h1, p1, 100, Some(&mut inflate)), Ok(None));
        assert_eq!(a.push(&h2, p2, 100, Some(&mut inflate)), Ok(Some(Message::Text("héllo héllo héllo".into()))));
    }

    proptest::proptest! {
        #[test]
        fn header_parser_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32)) {
            let _ = parse_frame_head(&bytes, 1 << 20, true);
        }
    }
}
