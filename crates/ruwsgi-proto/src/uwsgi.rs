//! The uwsgi binary protocol: what nginx's `uwsgi_pass` sends to a `socket` listener.
//!
//! A packet is a 4-byte header (`modifier1` u8, `datasize` u16 little-endian, `modifier2`
//! u8) followed by `datasize` bytes of CGI-style variables, each `u16le key_len, key,
//! u16le val_len, val`. The request body (`CONTENT_LENGTH` bytes) follows the packet and is
//! not part of it. Only `modifier1 = 0` (a WSGI request) is accepted. No I/O here.

/// Size of the fixed uwsgi packet header.
pub const UWSGI_HEADER_LEN: usize = 4;
/// The only `modifier1` ruwsgi serves: a WSGI/Python request.
const MODIFIER1_WSGI: u8 = 0;

/// One uwsgi variable: key and value, both raw bytes.
pub type UwsgiVar<'b> = (&'b [u8], &'b [u8]);

/// One uwsgi request packet. Keys and values borrow from the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UwsgiPacket<'b> {
    /// Request type; always 0 (WSGI) in a parsed packet.
    pub modifier1: u8,
    /// Sub-type; uWSGI ignores it for WSGI requests and so do we.
    pub modifier2: u8,
    /// The variables in packet order, duplicates kept.
    pub vars: Vec<UwsgiVar<'b>>,
}

impl<'b> UwsgiPacket<'b> {
    /// The value of the first variable named exactly `key`.
    #[must_use]
    pub fn var(&self, key: &[u8]) -> Option<&'b [u8]> {
        self.vars.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }
}

/// Why a uwsgi packet was refused. uWSGI logs and closes the connection without a response
/// (nginx then answers 502); the runtime should do the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// `datasize + 4` exceeds the limit (`buffer-size`). Refused as soon as the header is
    /// read, without waiting for the vars. The message is uWSGI's, word for word.
    #[error("invalid request block size: {size} (max {max})...skip")]
    TooLarge {
        /// The `datasize` field of the header.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// The header bytes read as the start of an HTTP request line (`GET `, `POST`...):
    /// someone sent HTTP to a uwsgi socket. Plain `GET` gives datasize 21573.
    #[error("invalid request block size: {size} (max {max})...skip (looks like HTTP sent to a uwsgi socket)")]
    LooksLikeHttp {
        /// The `datasize` field of the header.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A `modifier1` other than 0 (WSGI), e.g. 10 (management) or 100 (ping).
    #[error("unsupported uwsgi modifier1 {0}")]
    UnknownModifier(u8),
    /// A key or value runs past the end of the vars block.
    #[error("uwsgi vars block truncated at offset {offset}")]
    Truncated {
        /// Offset within the packet where the var that doesn't fit starts.
        offset: usize,
    },
    /// [`try_encode_uwsgi_packet`]: the vars, a key or a value exceed 65535 bytes.
    #[error("uwsgi packet too large to encode: {size} bytes of vars (max 65535)")]
    EncodeTooLarge {
        /// The vars block size that would have been needed.
        size: usize,
    },
}

/// Parses one uwsgi packet from the front of `buf`.
///
/// `Ok(None)`: need more bytes. `Ok(Some((packet, used)))`: `used = 4 + datasize` bytes were
/// consumed; the body starts at `buf[used..]`. `max_size` is `buffer-size`: a packet whose
/// `datasize + 4` exceeds it is refused once the 4-byte header is in.
pub fn parse_uwsgi_packet(buf: &[u8], max_size: usize) -> Result<Option<(UwsgiPacket<'_>, usize)>, PacketError> {
    let Some(&[modifier1, lo, hi, modifier2]) = buf.first_chunk::<UWSGI_HEADER_LEN>() else {
        return Ok(None);
    };
    let size = usize::from(u16::from_le_bytes([lo, hi]));
    if looks_like_http(modifier1, lo, hi, modifier2) {
        return Err(PacketError::LooksLikeHttp { size, max: max_size });
    }
    if size + UWSGI_HEADER_LEN > max_size {
        return Err(PacketError::TooLarge { size, max: max_size });
    }
    if modifier1 != MODIFIER1_WSGI {
        return Err(PacketError::UnknownModifier(modifier1));
    }
    let used = UWSGI_HEADER_LEN + size;
    let Some(block) = buf.get(UWSGI_HEADER_LEN..used) else {
        return Ok(None);
    };
    let vars = parse_vars(block)?;
    let packet = UwsgiPacket { modifier1, modifier2, vars };
    Ok(Some((packet, used)))
}

/// The header spells an HTTP method start: uppercase letters, maybe a space after them.
fn looks_like_http(modifier1: u8, lo: u8, hi: u8, modifier2: u8) -> bool {
    let letter_or_space = |b: u8| b.is_ascii_uppercase() || b == b' ';
    modifier1.is_ascii_uppercase() && lo.is_ascii_uppercase() && letter_or_space(hi) && letter_or_space(modifier2)
}

fn parse_vars(block: &[u8]) -> Result<Vec<UwsgiVar<'_>>, PacketError> {
    let mut vars = Vec::with_capacity(16);
    let mut pos = 0;
    while pos < block.len() {
        let start = pos;
        let truncated = PacketError::Truncated { offset: UWSGI_HEADER_LEN + start };
        let (key, after_key) = take_string(block, pos).ok_or(truncated)?;
        let (value, after_value) = take_string(block, after_key).ok_or(truncated)?;
        vars.push((key, value));
        pos = after_value;
    }
    Ok(vars)
}

/// A `u16le len, bytes` string at `pos`: the bytes and the position after them.
fn take_string(block: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let &[lo, hi] = block.get(pos..pos + 2)? else {
        return None;
    };
    let start = pos + 2;
    let end = start + usize::from(u16::from_le_bytes([lo, hi]));
    Some((block.get(start..end)?, end))
}

/// Encodes a uwsgi packet, or says why it can't: the vars block, or a key or value, would
/// not fit a u16 length.
pub fn try_encode_uwsgi_packet(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Result<Vec<u8>, PacketError> {
    let size: usize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    let too_long = |s: &[u8]| u16::try_from(s.len()).is_err();
    let Ok(datasize) = u16::try_from(size) else {
        return Err(PacketError::EncodeTooLarge { size });
    };
    if vars.iter().any(|(k, v)| too_long(k) || too_long(v)) {
        return Err(PacketError::EncodeTooLarge { size });
    }
    let mut out = Vec::with_capacity(UWSGI_HEADER_LEN + size);
    out.push(modifier1);
    out.extend_from_slice(&datasize.to_le_bytes());
    out.push(modifier2);
    for (key, value) in vars {
        for s in [key, value] {
            // Checked above: every length fits in a u16.
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
    Ok(out)
}

/// Encodes a uwsgi packet: header, then the vars in order.
///
/// # Panics
/// If the vars block would exceed 65535 bytes; use [`try_encode_uwsgi_packet`] when the
/// input isn't known to be small.
#[must_use]
pub fn encode_uwsgi_packet(modifier1: u8, modifier2: u8, vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    match try_encode_uwsgi_packet(modifier1, modifier2, vars) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{e}"),
    }
}

/// Encodes a uwsgi packet one variable at a time into one buffer, for a caller whose keys
/// are made on the fly (the `HTTP_*` names of an HTTP/2 request's headers): no list of
/// pairs, no allocation per key. `finish` fills in the header's size.
#[derive(Debug)]
pub struct UwsgiPacketWriter {
    out: Vec<u8>,
    /// A key or value did not fit a u16 length.
    overflow: bool,
}

impl UwsgiPacketWriter {
    /// A packet with these modifiers, with room for `capacity` bytes of variables.
    #[must_use]
    pub fn new(modifier1: u8, modifier2: u8, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(UWSGI_HEADER_LEN + capacity);
        out.extend_from_slice(&[modifier1, 0, 0, modifier2]);
        Self { out, overflow: false }
    }

    fn string(&mut self, len: usize, put: impl FnOnce(&mut Vec<u8>)) {
        let Ok(len16) = u16::try_from(len) else {
            self.overflow = true;
            return;
        };
        self.out.extend_from_slice(&len16.to_le_bytes());
        put(&mut self.out);
    }

    /// Appends the variable `key` = `value`.
    pub fn var(&mut self, key: &[u8], value: &[u8]) {
        self.string(key.len(), |out| out.extend_from_slice(key));
        self.string(value.len(), |out| out.extend_from_slice(value));
    }

    /// Appends a variable whose key is `prefix` then `name` with each byte mapped by `map`
    /// (`HTTP_` + a header name upper-cased, `-` as `_`).
    pub fn var_mapped(&mut self, prefix: &[u8], name: &[u8], map: impl Fn(u8) -> u8, value: &[u8]) {
        self.string(prefix.len() + name.len(), |out| {
            out.extend_from_slice(prefix);
            out.extend(name.iter().map(|&b| map(b)));
        });
        self.string(value.len(), |out| out.extend_from_slice(value));
    }

    /// The packet, or why it can't be one (as [`try_encode_uwsgi_packet`]).
    ///
    /// # Errors
    /// `EncodeTooLarge` when the vars block, or a key or value, doesn't fit a u16 length.
    pub fn finish(mut self) -> Result<Vec<u8>, PacketError> {
        let size = self.out.len() - UWSGI_HEADER_LEN;
        match u16::try_from(size) {
            Ok(datasize) if !self.overflow => {
                self.out[1..3].copy_from_slice(&datasize.to_le_bytes());
                Ok(self.out)
            }
            _ => Err(PacketError::EncodeTooLarge { size }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_makes_the_packet_the_encoder_makes() {
        let mut w = UwsgiPacketWriter::new(0, 0, 64);
        w.var(b"REQUEST_METHOD", b"GET");
        w.var_mapped(b"HTTP_", b"x-forwarded-for", |b| if b == b'-' { b'_' } else { b.to_ascii_uppercase() }, b"1");
        w.var(b"EMPTY", b"");
        let vars: &[(&[u8], &[u8])] = &[(b"REQUEST_METHOD", b"GET"), (b"HTTP_X_FORWARDED_FOR", b"1"), (b"EMPTY", b"")];
        assert_eq!(w.finish().unwrap(), encode_uwsgi_packet(0, 0, vars));
    }

    #[test]
    fn the_writer_refuses_what_does_not_fit_a_packet() {
        let big = vec![b'x'; 40_000];
        let mut w = UwsgiPacketWriter::new(0, 0, 0);
        w.var(b"A", &big);
        w.var(b"B", &big);
        assert!(matches!(w.finish(), Err(PacketError::EncodeTooLarge { .. })));
        let mut w = UwsgiPacketWriter::new(0, 0, 0);
        w.var(b"A", &vec![b'x'; 70_000]);
        assert!(w.finish().is_err());
    }

    #[test]
    fn parses_nginx_style_packet_and_leaves_body() {
        let vars: &[(&[u8], &[u8])] =
            &[(b"REQUEST_METHOD", b"POST"), (b"PATH_INFO", b"/x"), (b"CONTENT_LENGTH", b"3"), (b"EMPTY", b"")];
        let mut bytes = encode_uwsgi_packet(0, 0, vars);
        let packet_len = bytes.len();
        bytes.extend_from_slice(b"abc");
        let (packet, used) = parse_uwsgi_packet(&bytes, 4096).unwrap().unwrap();
        assert_eq!(used, packet_len);
        assert_eq!(packet.vars, vars);
        assert_eq!(packet.var(b"PATH_INFO"), Some(&b"/x"[..]));
        assert_eq!(&bytes[used..], b"abc");
    }

    #[test]
    fn waits_for_header_and_vars() {
        let bytes = encode_uwsgi_packet(0, 0, &[(b"A", b"B")]);
        for cut in 0..bytes.len() {
            assert_eq!(parse_uwsgi_packet(&bytes[..cut], 4096), Ok(None), "cut {cut}");
        }
    }

    #[test]
    fn rejects_oversized_block_from_header_alone() {
        let err = parse_uwsgi_packet(&[0, 0xff, 0x0f, 0], 4096).unwrap_err();
        assert_eq!(err, PacketError::TooLarge { size: 4095, max: 4096 });
        assert_eq!(err.to_string(), "invalid request block size: 4095 (max 4096)...skip");
        // datasize + 4 == max fits.
        assert_eq!(parse_uwsgi_packet(&[0, 0xfc, 0x0f, 0], 4096), Ok(None));
    }

    #[test]
    fn recognises_http_sent_to_uwsgi_socket() {
        let err = parse_uwsgi_packet(b"GET / HTTP/1.1\r\n", 4096).unwrap_err();
        assert_eq!(err, PacketError::LooksLikeHttp { size: 21573, max: 4096 });
        assert_eq!(
            err.to_string(),
            "invalid request block size: 21573 (max 4096)...skip (looks like HTTP sent to a uwsgi socket)"
        );
        for http in [&b"POST /"[..], b"PUT /", b"HEAD /", b"DELETE /", b"OPTIONS *"] {
            assert!(matches!(parse_uwsgi_packet(http, 65535), Err(PacketError::LooksLikeHttp { .. })));
        }
    }

    #[test]
    fn rejects_other_modifiers() {
        for m in [5u8, 10, 17, 30, 72, 100, 255] {
            let bytes = encode_uwsgi_packet(m, 0, &[]);
            assert_eq!(parse_uwsgi_packet(&bytes, 4096), Err(PacketError::UnknownModifier(m)));
        }
    }

    #[test]
    fn rejects_truncated_vars() {
        let cases: &[&[u8]] = &[
            &[0, 1, 0, 0, 5],                      // half a key length
            &[0, 4, 0, 0, 3, 0, b'a', b'b'],       // key runs past the block
            &[0, 5, 0, 0, 1, 0, b'a', 1, 0],       // value length but no value
            &[0, 6, 0, 0, 1, 0, b'a', 9, 0, b'x'], // value runs past the block
        ];
        for &bytes in cases {
            assert!(matches!(parse_uwsgi_packet(bytes, 4096), Err(PacketError::Truncated { .. })), "{bytes:?}");
        }
    }

    #[test]
    fn refuses_to_encode_oversized_packets() {
        let big = vec![b'x'; 70_000];
        assert!(matches!(try_encode_uwsgi_packet(0, 0, &[(b"K", &big)]), Err(PacketError::EncodeTooLarge { .. })));
        let half = vec![b'x'; 40_000];
        assert!(try_encode_uwsgi_packet(0, 0, &[(b"A", &half), (b"B", &half)]).is_err());
    }
}
