//! HTTP/2 frame headers (RFC 9113 §4.1), scanned as the bytes pass on their way to the
//! HTTP/2 library: which frames a connection sends and how many per second, so that the
//! runtime can close a connection that floods frames the library answers without limit
//! (PING, SETTINGS, empty DATA, `RST_STREAM`, CONTINUATION). The scanner only looks at the
//! 9-byte headers and skips payloads; validating frames is the library's job.

/// The client connection preface (RFC 9113 §3.4), sent before the first frame.
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 9;

/// Frame types (RFC 9113 §6) the budget tells apart.
pub mod frame_type {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// `RST_STREAM`.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PING.
    pub const PING: u8 = 0x6;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// `END_STREAM` flag of DATA and HEADERS frames.
pub const FLAG_END_STREAM: u8 = 0x1;
/// ACK flag of SETTINGS and PING frames.
pub const FLAG_ACK: u8 = 0x1;

/// One frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub length: u32,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (31 bits; the reserved bit is dropped).
    pub stream_id: u32,
}

/// Reads a frame header from its 9 bytes.
#[must_use]
pub fn parse_frame_header(b: &[u8; FRAME_HEADER_LEN]) -> FrameHeader {
    FrameHeader {
        length: u32::from_be_bytes([0, b[0], b[1], b[2]]),
        kind: b[3],
        flags: b[4],
        stream_id: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
    }
}

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    /// Inside the connection preface; this many of its bytes were seen.
    Preface(usize),
    /// Collecting a frame header; this many of its bytes are in `FrameScanner::header`.
    Header(usize),
    /// Skipping this many payload bytes.
    Payload(u32),
}

/// Finds the frame headers in a client's byte stream, fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    state: ScanState,
    header: [u8; FRAME_HEADER_LEN],
}

impl FrameScanner {
    /// A scanner for a stream that starts with the connection preface.
    #[must_use]
    pub fn new() -> Self {
        Self { state: ScanState::Preface(0), header: [0; FRAME_HEADER_LEN] }
    }

    /// Scans `buf`, the next bytes of the stream, calling `on_frame` for each frame header
    /// completed in it.
    pub fn scan(&mut self, mut buf: &[u8], mut on_frame: impl FnMut(FrameHeader)) {
        while !buf.is_empty() {
            match self.state {
                ScanState::Preface(seen) => {
                    let n = (H2_PREFACE.len() - seen).min(buf.len());
                    buf = &buf[n..];
                    self.state =
                        if seen + n == H2_PREFACE.len() { ScanState::Header(0) } else { ScanState::Preface(seen + n) };
                }
                ScanState::Header(got) => {
                    let n = (FRAME_HEADER_LEN - got).min(buf.len());
                    self.header[got..got + n].copy_from_slice(&buf[..n]);
                    buf = &buf[n..];
                    if got + n < FRAME_HEADER_LEN {
                        self.state = ScanState::Header(got + n);
                        continue;
                    }
                    let header = parse_frame_header(&self.header);
                    on_frame(header);
                    self.state =
                        if header.length == 0 { ScanState::Header(0) } else { ScanState::Payload(header.length) };
                }
                ScanState::Payload(left) => {
                    let n = (left as usize).min(buf.len());
                    buf = &buf[n..];
                    let left = left - n as u32;
                    self.state = if left == 0 { ScanState::Header(0) } else { ScanState::Payload(left) };
                }
            }
        }
    }
}

impl Default for FrameScanner {
    fn default() -> Self {
        Self::new()
    }
}

/// A kind of frame flood (each has its own per-second budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flood {
    /// PING frames (the server must answer each).
    Ping,
    /// SETTINGS frames (each must be acknowledged).
    Settings,
    /// `RST_STREAM` frames (rapid reset, CVE-2023-44487).
    Reset,
    /// DATA frames without payload or `END_STREAM` (CVE-2019-9518).
    EmptyData,
    /// CONTINUATION frames (CVE-2024-27316 family).
    Continuation,
}

impl Flood {
    /// What the log says.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Ping => "PING flood",
            Self::Settings => "SETTINGS flood",
            Self::Reset => "RST_STREAM flood (rapid reset)",
            Self::EmptyData => "empty DATA flood",
            Self::Continuation => "CONTINUATION flood",
        }
    }
}

/// Most frames of each kind one connection may send in one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// PING frames (ACKs included).
    pub ping: u32,
    /// SETTINGS frames (ACKs included).
    pub settings: u32,
    /// `RST_STREAM` frames.
    pub reset: u32,
    /// Empty DATA frames without `END_STREAM`.
    pub empty_data: u32,
    /// CONTINUATION frames.
    pub continuation: u32,
}

impl Default for FrameLimits {
    /// Far above what a browser or an HTTP client library sends (a few PINGs and SETTINGS
    /// per connection, a CONTINUATION only for a header list over 16 KiB), far below
    /// what a flood needs to hurt.
    fn default() -> Self {
        Self { ping: 100, settings: 100, reset: 500, empty_data: 500, continuation: 500 }
    }
}

/// Counts one connection's frames per second against `FrameLimits`. HEADERS frames (new
/// streams) are not counted: each is a request, bounded by the concurrent-streams limit, and
/// a busy client (a proxy multiplexing many users) sends thousands a second.
#[derive(Debug, Clone, Default)]
pub struct FrameBudget {
    limits: FrameLimits,
    /// The second the counts are for.
    second: u64,
    counts: [u32; 5],
}

impl FrameBudget {
    /// A budget with these limits.
    #[must_use]
    pub fn new(limits: FrameLimits) -> Self {
        Self { limits, second: 0, counts: [0; 5] }
    }

    /// Counts `frame`, seen during second `now` (any monotonic count of seconds). `Some`:
    /// this frame is one over its kind's budget for the second.
    pub fn count(&mut self, frame: &FrameHeader, now: u64) -> Option<Flood> {
        use frame_type::{CONTINUATION, DATA, PING, RST_STREAM, SETTINGS};
        let (flood, limit) = match frame.kind {
            PING => (Flood::Ping, self.limits.ping),
            SETTINGS => (Flood::Settings, self.limits.settings),
            RST_STREAM => (Flood::Reset, self.limits.reset),
            DATA if frame.length == 0 && frame.flags & FLAG_END_STREAM == 0 => {
                (Flood::EmptyData, self.limits.empty_data)
            }
            CONTINUATION => (Flood::Continuation, self.limits.continuation),
            _ => return None,
        };
        if now != self.second {
            self.second = now;
            self.counts = [0; 5];
        }
        let count = &mut self.counts[flood as usize];
        *count += 1;
        (*count > limit).then_some(flood)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn stream() -> Vec<u8> {
        let mut bytes = H2_PREFACE.to_vec();
        bytes.extend(frame(frame_type::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        bytes.extend(frame(frame_type::HEADERS, 0x4, 1, b"\x82\x86\x84"));
        bytes.extend(frame(frame_type::DATA, FLAG_END_STREAM, 1, &[7; 300]));
        bytes.extend(frame(frame_type::PING, 0, 0, &[0; 8]));
        bytes.extend(frame(frame_type::RST_STREAM, 0, 0x8000_0003, &[0, 0, 0, 8]));
        bytes
    }

    fn headers_of(bytes: &[u8], piece: usize) -> Vec<FrameHeader> {
        let mut scanner = FrameScanner::new();
        let mut seen = Vec::new();
        for part in bytes.chunks(piece.max(1)) {
            scanner.scan(part, |h| seen.push(h));
        }
        seen
    }

    #[test]
    fn finds_every_frame_header_after_the_preface() {
        let seen = headers_of(&stream(), 4096);
        let kinds: Vec<u8> = seen.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, [4, 1, 0, 6, 3]);
        assert_eq!(seen[2], FrameHeader { length: 300, kind: 0, flags: 1, stream_id: 1 });
        // The reserved bit is not part of the stream id.
        assert_eq!(seen[4].stream_id, 3);
    }

    proptest! {
        #[test]
        fn piece_sizes_do_not_change_what_is_found(piece in 1usize..64) {
            prop_assert_eq!(headers_of(&stream(), piece), headers_of(&stream(), 4096));
        }

        #[test]
        fn any_bytes_scan_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512), piece in 1usize..40) {
            let _ = headers_of(&bytes, piece);
        }
    }

    #[test]
    fn budget_flags_the_frame_over_the_limit_and_resets_each_second() {
        let limits = FrameLimits { ping: 3, ..FrameLimits::default() };
        let mut budget = FrameBudget::new(limits);
        let ping = FrameHeader { length: 8, kind: frame_type::PING, flags: 0, stream_id: 0 };
        for _ in 0..3 {
            assert_eq!(budget.count(&ping, 10), None);
        }
        assert_eq!(budget.count(&ping, 10), Some(Flood::Ping));
        assert_eq!(budget.count(&ping, 11), None);
    }

    #[test]
    fn only_empty_data_without_end_stream_counts_as_empty_data() {
        let mut budget = FrameBudget::new(FrameLimits { empty_data: 0, ..FrameLimits::default() });
        let data = |length, flags| FrameHeader { length, kind: frame_type::DATA, flags, stream_id: 1 };
        assert_eq!(budget.count(&data(10, 0), 0), None);
        assert_eq!(budget.count(&data(0, FLAG_END_STREAM), 0), None);
        assert_eq!(budget.count(&data(0, 0), 0), Some(Flood::EmptyData));
    }

    #[test]
    fn each_kind_has_its_own_count() {
        let mut budget = FrameBudget::new(FrameLimits { settings: 1, continuation: 1, ..FrameLimits::default() });
        let of = |kind| FrameHeader { length: 0, kind, flags: 0, stream_id: 0 };
        assert_eq!(budget.count(&of(frame_type::SETTINGS), 0), None);
        assert_eq!(budget.count(&of(frame_type::CONTINUATION), 0), None);
        assert_eq!(budget.count(&of(frame_type::CONTINUATION), 0), Some(Flood::Continuation));
        assert_eq!(budget.count(&of(frame_type::SETTINGS), 0), Some(Flood::Settings));
        assert_eq!(budget.count(&of(0x8), 0), None);
    }

    #[test]
    fn new_streams_are_never_a_flood() {
        let mut budget = FrameBudget::new(FrameLimits::default());
        let headers = FrameHeader { length: 20, kind: frame_type::HEADERS, flags: 0x5, stream_id: 1 };
        assert!((0..100_000).all(|_| budget.count(&headers, 0).is_none()));
    }
}
