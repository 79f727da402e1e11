//! Property tests for every parser: no panics on any bytes, encode→parse roundtrips, and
//! split-point independence (feeding input in two parts gives the same result as whole).

use proptest::prelude::*;
use std::net::{IpAddr, SocketAddr};

use ruwsgi_proto::{
    encode_chunk, encode_proxy_v1, encode_proxy_v2, encode_uwsgi_packet, parse_proxy_header, parse_request_head,
    parse_uwsgi_packet, percent_decode, ChunkError, ChunkedDecoder, Limits, ProxyStart, CHUNK_END, LAST_CHUNK,
    PROXY_V2_SIGNATURE,
};

/// Two addresses of one family, for PROXY headers.
fn address_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>(), any::<u16>())
            .prop_map(|(s, d, sp, dp)| (SocketAddr::new(IpAddr::from(s), sp), SocketAddr::new(IpAddr::from(d), dp))),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u16>(), any::<u16>())
            .prop_map(|(s, d, sp, dp)| (SocketAddr::new(IpAddr::from(s), sp), SocketAddr::new(IpAddr::from(d), dp))),
    ]
}

/// PROXY headers, valid or with a byte changed, followed by a request's first bytes.
fn proxy_opening() -> impl Strategy<Value = Vec<u8>> {
    (
        address_pair(),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..8),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|((s, d), v2, tlvs, at, byte, corrupt)| {
            let mut bytes = if v2 { encode_proxy_v2(s, d, &tlvs) } else { encode_proxy_v1(s, d) };
            if corrupt {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
            bytes
        })
}

/// Request heads that are mostly valid, with framing headers and odd bytes mixed in so that
/// both acceptance and each rejection path are exercised.
fn request_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "OPTIONS", "CONNECT", "G T", "get"]);
    let target = prop::sample::select(vec![
        "/",
        "/a?b=c",
        "*",
        "/x y",
        "/caf\u{e9}",
        "http://h/p",
        "HTTPS://h:1?q",
        "h:443",
        "x/y",
        "http://u@h/",
    ]);
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", "http/1.1"]);
    let header = prop::sample::select(vec![
        "Host: a",
        "Host: b",
        "Content-Length: 5",
        "Content-Length: 6",
        "Content-Length: 5, 5",
        "Content-Length: -1",
        "Content-Length: 9223372036854775808",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: gzip, chunked",
        "Connection: close",
        "Connection: keep-alive",
        "Expect: 100-continue",
        " folded",
        "Bad Name: x",
        "X-Nul: a\0b",
        "X-Ok: v",
    ]);
    let eol = prop::sample::select(vec!["\r\n", "\r\n", "\r\n", "\n"]);
    (
        method,
        target,
        version,
        prop::collection::vec((header, eol.clone()), 0..8),
        eol,
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(m, t, v, headers, end, tail)| {
            let mut s = format!("{m} {t} {v}\r\n");
            for (h, e) in headers {
                s.push_str(h);
                s.push_str(e);
            }
            s.push_str(end);
            let mut bytes = s.into_bytes();
            bytes.extend_from_slice(&tail);
            bytes
        })
}

/// A valid chunked body with extensions and trailers, plus the data it carries.
fn chunked_body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 0..6), any::<bool>(), any::<bool>()).prop_map(
        |(chunks, ext, trailer)| {
            let mut wire = Vec::new();
            let mut data = Vec::new();
            for c in &chunks {
                encode_chunk(&mut wire, c.len());
                if ext {
                    // Put the extension before the CRLF encode_chunk wrote.
                    wire.truncate(wire.len() - 2);
                    wire.extend_from_slice(b" ; a=\"b c\"\r\n");
                }
                wire.extend_from_slice(c);
                wire.extend_from_slice(CHUNK_END);
                data.extend_from_slice(c);
            }
            if trailer {
                wire.extend_from_slice(b"0\r\nX-Sum: 1\r\n\r\n");
            } else {
                wire.extend_from_slice(LAST_CHUNK);
            }
            (wire, data)
        },
    )
}

type Decoded = Result<(Vec<u8>, usize, bool), ChunkError>;

/// Decodes `input` split at `cut`, in two calls, with a fresh decoder.
fn decode_split(input: &[u8], cut: usize, max_out: usize) -> Decoded {
    let mut d = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut finished = false;
    for part in [&input[..cut], &input[cut..]] {
        // Feed the part until it is used up or the decoder stops taking bytes.
        let mut offset = 0;
        loop {
            let before = out.len();
            let (used, done) = d.decode(&part[offset..], &mut out, max_out)?;
            assert!(used <= part.len() - offset, "consumed more than given");
            assert!(out.len() - before <= max_out, "produced more than max_out");
            offset += used;
            consumed += used;
            finished = done;
            if done || offset == part.len() || used == 0 {
                break;
            }
        }
        if finished {
            break;
        }
    }
    Ok((out, consumed, finished))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn head_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_request_head(&bytes, &Limits::default());
        let _ = parse_request_head(&bytes, &Limits { max_head: 16, max_headers: 2 });
    }

    #[test]
    fn head_parser_result_does_not_depend_on_split(input in request_head(), small in any::<bool>()) {
        let limits = if small { Limits { max_head: 48, max_headers: 3 } } else { Limits::default() };
        let whole = parse_request_head(&input, &limits);
        for cut in 0..input.len() {
            let part = parse_request_head(&input[..cut], &limits);
            prop_assert!(part == Ok(None) || part == whole, "cut {}: {:?} vs {:?}", cut, part, whole);
        }
    }

    #[test]
    fn head_parser_accepted_heads_reparse_identically(input in request_head()) {
        if let Ok(Some((head, used))) = parse_request_head(&input, &Limits::default()) {
            let mut again = format!("{} {} HTTP/1.{}\r\n", head.method, head.target, head.minor_version).into_bytes();
            for (name, value) in &head.headers {
                again.extend_from_slice(name.as_bytes());
                again.extend_from_slice(b": ");
                again.extend_from_slice(value);
                again.extend_from_slice(b"\r\n");
            }
            again.extend_from_slice(b"\r\n");
            let (head2, used2) = parse_request_head(&again, &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(&head2, &head);
            prop_assert!(used2 <= used);
        }
    }

    #[test]
    fn chunked_decoder_never_panics_and_respects_bounds(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        max_out in 0usize..64,
    ) {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        if let Ok((used, _)) = d.decode(&bytes, &mut out, max_out) {
            prop_assert!(used <= bytes.len());
            prop_assert!(out.len() <= max_out);
        }
    }

    #[test]
    fn chunked_decoder_roundtrips_encoded_bodies((wire, data) in chunked_body(), max_out in 1usize..50) {
        let mut tail = wire.clone();
        tail.extend_from_slice(b"NEXT");
        let whole = decode_split(&tail, 0, usize::MAX);
        prop_assert_eq!(whole.clone(), Ok((data.clone(), wire.len(), true)));
        prop_assert_eq!(decode_split(&tail, 0, max_out), whole);
    }

    #[test]
    fn chunked_decoder_result_does_not_depend_on_split((wire, _) in chunked_body(), noise in prop::collection::vec(any::<u8>(), 0..4), at in any::<prop::sample::Index>()) {
        // Splice noise in somewhere so error paths get split too.
        let mut input = wire.clone();
        let pos = at.index(input.len() + 1);
        input.splice(pos..pos, noise);
        let whole = decode_split(&input, 0, usize::MAX);
        for cut in 0..=input.len() {
            prop_assert_eq!(decode_split(&input, cut, usize::MAX), whole.clone(), "cut {}", cut);
        }
    }

    #[test]
    fn proxy_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), v2 in any::<bool>()) {
        let input = if v2 { [PROXY_V2_SIGNATURE.as_slice(), &bytes].concat() } else { [b"PROXY ".as_slice(), &bytes].concat() };
        for buf in [&bytes, &input] {
            if let Ok(Some(ProxyStart::Header { used, .. })) = parse_proxy_header(buf) {
                prop_assert!(used <= buf.len());
            }
        }
    }

    #[test]
    fn proxy_headers_roundtrip((source, destination) in address_pair(), tlvs in prop::collection::vec(any::<u8>(), 0..40)) {
        for wire in [encode_proxy_v1(source, destination), encode_proxy_v2(source, destination, &tlvs)] {
            let input = [wire.as_slice(), b"GET /"].concat();
            match parse_proxy_header(&input) {
                Ok(Some(ProxyStart::Header { header, used })) => {
                    prop_assert_eq!(used, wire.len());
                    prop_assert_eq!(header.source, Some(source));
                    prop_assert_eq!(header.destination, Some(destination));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    #[test]
    fn proxy_parser_result_does_not_depend_on_split(input in proxy_opening()) {
        let whole = parse_proxy_header(&input);
        for cut in 0..input.len() {
            let part = parse_proxy_header(&input[..cut]);
            prop_assert!(part == Ok(None) || part == whole, "cut {}: {:?} vs {:?}", cut, part, whole);
        }
    }

    #[test]
    fn uwsgi_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), max in 0usize..70_000) {
        if let Ok(Some((_, used))) = parse_uwsgi_packet(&bytes, max) {
            prop_assert!(used <= bytes.len() && used <= max);
        }
    }

    #[test]
    fn uwsgi_packets_roundtrip(
        vars in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..20), prop::collection::vec(any::<u8>(), 0..40)), 0..12),
        modifier2 in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..10),
    ) {
        let borrowed: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        let mut bytes = encode_uwsgi_packet(0, modifier2, &borrowed);
        let len = bytes.len();
        bytes.extend_from_slice(&body);
        let (packet, used) = parse_uwsgi_packet(&bytes, 65_539).unwrap().unwrap();
        prop_assert_eq!(used, len);
        prop_assert_eq!(packet.modifier2, modifier2);
        prop_assert_eq!(&packet.vars, &borrowed);
        for cut in 0..len {
            prop_assert_eq!(parse_uwsgi_packet(&bytes[..cut], 65_539), Ok(None));
        }
    }

    #[test]
    fn percent_decode_inverts_full_encoding(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let encoded: Vec<u8> = bytes
            .iter()
            .flat_map(|&b| [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
            .collect();
        prop_assert_eq!(percent_decode(&encoded).into_owned(), bytes);
    }

    #[test]
    fn percent_decode_never_grows(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        prop_assert!(percent_decode(&bytes).len() <= bytes.len());
    }
}
