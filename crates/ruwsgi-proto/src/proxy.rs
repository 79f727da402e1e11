//! The PROXY protocol header (the spec from `HAProxy`, versions 1 and 2) that a load balancer sends
//! first on a connection to say who the real client is. Pure: bytes in, addresses out.
//!
//! The runtime calls [`parse_proxy_header`] on the first bytes of an HTTP connection when
//! `enable-proxy-protocol` is set. As in uWSGI the header is optional: a connection that
//! opens with anything else is an ordinary one. uWSGI 2.0 reads version 1 only; version 2
//! (binary, sent by AWS NLB and by `HAProxy` with `send-proxy-v2`) is accepted too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 1 starts with this.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest version 1 line, CRLF included (the spec's 107 bytes).
pub const MAX_PROXY_V1_LINE: usize = 107;
/// Version 2's 12-byte signature.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2's fixed part: signature, version/command, family/transport, length.
const V2_FIXED: usize = 16;

/// What the header says. Addresses are `None` for version 1 `UNKNOWN`, version 2 `LOCAL`
/// (a health check from the proxy itself) and families other than TCP over IPv4/IPv6: the
/// connection's own peer address then stays in effect, as the spec asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client the proxy accepted the connection from.
    pub source: Option<SocketAddr>,
    /// The address the client connected to, on the proxy.
    pub destination: Option<SocketAddr>,
}

/// How the connection opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyStart {
    /// Not with a PROXY header: the bytes are the request itself.
    Absent,
    /// With a header of `used` bytes, to be consumed before the request.
    Header {
        /// The parsed header.
        header: ProxyHeader,
        /// Its length in bytes.
        used: usize,
    },
}

/// A header that starts like a PROXY header but is not a valid one. The client gets a 400
/// and the connection is closed (see [`ProxyError::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// A version 1 line without CRLF within [`MAX_PROXY_V1_LINE`] bytes.
    #[error("PROXY v1 line longer than {MAX_PROXY_V1_LINE} bytes")]
    LineTooLong,
    /// A version 1 line that isn't `PROXY TCP4|TCP6 src dst sport dport` or `PROXY UNKNOWN...`.
    #[error("malformed PROXY v1 line")]
    BadV1,
    /// A version 2 header with a version other than 2 or an unknown command.
    #[error("unsupported PROXY v2 version or command")]
    BadV2Version,
    /// A version 2 header whose length can't hold its addresses.
    #[error("PROXY v2 address block too short for its family")]
    BadV2Length,
}

impl ProxyError {
    /// The response status: every malformed header is the client's fault.
    #[must_use]
    pub fn status(self) -> u16 {
        400
    }
}

/// Parses an optional PROXY header at the front of `buf`, the first bytes of a connection.
/// `Ok(None)`: need more bytes (`buf` is a prefix of a signature, or of a header).
pub fn parse_proxy_header(buf: &[u8]) -> Result<Option<ProxyStart>, ProxyError> {
    if starts_like(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(None);
        }
        return parse_v1(buf);
    }
    if starts_like(buf, &PROXY_V2_SIGNATURE) {
        if buf.len() < V2_FIXED {
            return Ok(None);
        }
        return parse_v2(buf);
    }
    Ok(Some(ProxyStart::Absent))
}

/// True when `buf` and `signature` agree on their common length (an empty `buf` agrees).
fn starts_like(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Option<ProxyStart>, ProxyError> {
    let window = &buf[..buf.len().min(MAX_PROXY_V1_LINE)];
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= MAX_PROXY_V1_LINE { Err(ProxyError::LineTooLong) } else { Ok(None) };
    };
    let used = cr + 2;
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..cr]).map_err(|_| ProxyError::BadV1)?;
    let mut words = line.split(' ');
    let family = words.next().ok_or(ProxyError::BadV1)?;
    if family == "UNKNOWN" {
        // The rest of the line is to be ignored.
        let header = ProxyHeader { source: None, destination: None };
        return Ok(Some(ProxyStart::Header { header, used }));
    }
    let fields: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = fields[..] else { return Err(ProxyError::BadV1) };
    let ip = |s: &str| -> Result<IpAddr, ProxyError> {
        match family {
            "TCP4" => s.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| ProxyError::BadV1),
            "TCP6" => s.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| ProxyError::BadV1),
            _ => Err(ProxyError::BadV1),
        }
    };
    let port = |s: &str| -> Result<u16, ProxyError> {
        // Decimal digits only: `+80` or ` 80` parse in Rust but not in the spec.
        if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ProxyError::BadV1);
        }
        s.parse().map_err(|_| ProxyError::BadV1)
    };
    let header = ProxyHeader {
        source: Some(SocketAddr::new(ip(src)?, port(sport)?)),
        destination: Some(SocketAddr::new(ip(dst)?, port(dport)?)),
    };
    Ok(Some(ProxyStart::Header { header, used }))
}

fn parse_v2(buf: &[u8]) -> Result<Option<ProxyStart>, ProxyError> {
    let version_command = buf[12];
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let command = version_command & 0x0f;
    if version_command >> 4 != 2 || command > 1 {
        return Err(ProxyError::BadV2Version);
    }
    let used = V2_FIXED + len;
    if buf.len() < used {
        return Ok(None);
    }
    let addresses = &buf[V2_FIXED..used];
    // Command 0 is LOCAL (the proxy's own health check), 1 is PROXY.
    let local = command == 0;
    // High nibble: 1 = IPv4, 2 = IPv6; low nibble: 1 = stream (TCP).
    let header = match (family >> 4, family & 0x0f) {
        _ if local => ProxyHeader { source: None, destination: None },
        (1, 1) => {
            let a: &[u8; 12] = addresses.get(..12).and_then(|a| a.try_into().ok()).ok_or(ProxyError::BadV2Length)?;
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            ProxyHeader {
                source: Some(SocketAddr::new(ip(0), port(8))),
                destination: Some(SocketAddr::new(ip(4), port(10))),
            }
        }
        (2, 1) => {
            let a: &[u8; 36] = addresses.get(..36).and_then(|a| a.try_into().ok()).ok_or(ProxyError::BadV2Length)?;
            let ip = |i: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |i: usize| u16::from_be_bytes([a[i], a[i + 1]]);
            ProxyHeader {
                source: Some(SocketAddr::new(ip(0), port(32))),
                destination: Some(SocketAddr::new(ip(16), port(34))),
            }
        }
        // UNSPEC, unix sockets, UDP: keep the connection's own address.
        _ => ProxyHeader { source: None, destination: None },
    };
    Ok(Some(ProxyStart::Header { header, used }))
}

/// A version 1 header for `source` → `destination` (both of one family), as a proxy sends it.
#[must_use]
pub fn encode_proxy_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!("PROXY {family} {} {} {} {}\r\n", source.ip(), destination.ip(), source.port(), destination.port())
        .into_bytes()
}

/// A version 2 `PROXY` header over TCP for `source` → `destination` (both of one family),
/// followed by `tlvs` (opaque to ruwsgi, counted in the length).
#[must_use]
pub fn encode_proxy_v2(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut out = PROXY_V2_SIGNATURE.to_vec();
    out.push(0x21);
    let mut addresses = Vec::with_capacity(36 + tlvs.len());
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            addresses.extend_from_slice(&to_v6(s).octets());
            addresses.extend_from_slice(&to_v6(d).octets());
        }
    }
    addresses.extend_from_slice(&source.port().to_be_bytes());
    addresses.extend_from_slice(&destination.port().to_be_bytes());
    addresses.extend_from_slice(tlvs);
    let len = u16::try_from(addresses.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&addresses[..usize::from(len)]);
    out
}

fn to_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn header(buf: &[u8]) -> (ProxyHeader, usize) {
        match parse_proxy_header(buf) {
            Ok(Some(ProxyStart::Header { header, used })) => (header, used),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_v1_tcp4_and_leaves_the_request() {
        let buf = b"PROXY TCP4 203.0.113.7 10.0.0.1 56324 443\r\nGET / HTTP/1.1\r\n\r\n";
        let (h, used) = header(buf);
        assert_eq!(h.source, Some(addr("203.0.113.7:56324")));
        assert_eq!(h.destination, Some(addr("10.0.0.1:443")));
        assert_eq!(&buf[used..], b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn parses_v1_tcp6_and_unknown() {
        let (h, _) = header(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n");
        assert_eq!(h.source, Some(addr("[2001:db8::1]:1")));
        let (h, used) = header(b"PROXY UNKNOWN ffff::1 whatever\r\nGET");
        assert_eq!((h.source, used), (None, 32));
        assert_eq!(header(b"PROXY UNKNOWN\r\n").0.source, None);
    }

    #[test]
    fn rejects_malformed_v1() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",
            b"PROXY TCP4 ::1 ::1 80 443\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 80 443\r\n",
            b"PROXY \r\n",
        ] {
            assert_eq!(parse_proxy_header(bad), Err(ProxyError::BadV1), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse_proxy_header(&long), Err(ProxyError::LineTooLong));
    }

    #[test]
    fn other_openings_are_not_proxy() {
        for buf in [&b"GET / HTTP/1.1\r\n"[..], b"PROXz", b"POST", b"\r\n\r\nX"] {
            assert_eq!(parse_proxy_header(buf), Ok(Some(ProxyStart::Absent)), "{buf:?}");
        }
    }

    #[test]
    fn signature_prefixes_need_more() {
        for buf in [&b""[..], b"P", b"PROXY", b"PROXY TCP4 1.2.3.4", b"\r\n\r\n\0", &PROXY_V2_SIGNATURE] {
            assert_eq!(parse_proxy_header(buf), Ok(None), "{buf:?}");
        }
    }

    #[test]
    fn parses_v2_inet_inet6_and_skips_tlvs() {
        let v4 = encode_proxy_v2(addr("192.0.2.9:40000"), addr("10.1.1.1:80"), b"\x04\x00\x01x");
        let (h, used) = header(&[v4.as_slice(), b"GET"].concat());
        assert_eq!(h.source, Some(addr("192.0.2.9:40000")));
        assert_eq!(used, v4.len());
        let v6 = encode_proxy_v2(addr("[2001:db8::5]:7"), addr("[::1]:8"), b"");
        assert_eq!(header(&v6).0.destination, Some(addr("[::1]:8")));
        assert_eq!(parse_proxy_header(&v6[..v6.len() - 1]), Ok(None));
    }

    #[test]
    fn v2_local_and_unspec_keep_the_peer() {
        let mut local = PROXY_V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(header(&local), (ProxyHeader { source: None, destination: None }, 16));
        let mut unix = PROXY_V2_SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0, 2, 0, 0]);
        assert_eq!(header(&unix).0.source, None);
    }

    #[test]
    fn rejects_bad_v2() {
        let mut v1 = PROXY_V2_SIGNATURE.to_vec();
        v1.extend_from_slice(&[0x11, 0x11, 0, 12]);
        assert_eq!(parse_proxy_header(&v1), Err(ProxyError::BadV2Version));
        let mut cmd = PROXY_V2_SIGNATURE.to_vec();
        cmd.extend_from_slice(&[0x22, 0x11, 0, 12]);
        assert_eq!(parse_proxy_header(&cmd), Err(ProxyError::BadV2Version));
        let mut short = PROXY_V2_SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse_proxy_header(&short), Err(ProxyError::BadV2Length));
    }

    #[test]
    fn v1_encoding_round_trips() {
        let line = encode_proxy_v1(addr("[::ffff:1.2.3.4]:5"), addr("[::1]:6"));
        assert_eq!(header(&line).0.source, Some(addr("[::ffff:1.2.3.4]:5")));
        assert_eq!(line.len(), header(&line).1);
    }
}
