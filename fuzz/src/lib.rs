//! Fuzz properties over `ruwsgi-proto` and the `ruwsgi-config` ini reader, one function per
//! cargo-fuzz target.
//!
//! Each function takes arbitrary bytes and asserts properties, not only "no panic". They
//! live in a library so `cargo test` (stable) can replay `corpus/<target>/` through them,
//! and `cargo fuzz run <target>` (nightly) drives them with libFuzzer.
#![forbid(unsafe_code)]

use ruwsgi_proto::{
    encode_uwsgi_packet, parse_request_head, parse_uwsgi_packet, ChunkedDecoder, Limits,
    RequestHead,
};

/// `http_head`: no panic; `used` within bounds; the result doesn't depend on where the
/// input is split; an accepted head re-serialised (method, target, version, headers) parses
/// to the same values.
pub fn http_head(data: &[u8]) {
    let small = Limits {
        max_head: 256,
        max_headers: 8,
    };
    for limits in [Limits::default(), small] {
        let whole = parse_request_head(data, &limits);
        if let Ok(Some((head, used))) = &whole {
            assert!(*used <= data.len() && *used <= limits.max_head);
            target_form_holds(head);
            reparses_identically(head, &limits);
        }
        let cut = data
            .first()
            .map_or(0, |&b| usize::from(b) % (data.len() + 1));
        let part = parse_request_head(&data[..cut], &limits);
        assert!(
            part == Ok(None) || part == whole,
            "split at {cut} changed the result: {part:?} vs {whole:?}"
        );
    }
}

/// Only the RFC 9112 §3.2 forms get through: the path is origin-form (or `*` for OPTIONS),
/// an authority exists exactly for absolute-form, and CONNECT never does.
fn target_form_holds(head: &RequestHead<'_>) {
    let path = head.path();
    assert!(
        path.starts_with('/') || (path == "*" && head.method == "OPTIONS"),
        "path {path:?}"
    );
    assert_eq!(
        head.authority.is_some(),
        !head.target.starts_with('/') && head.target != "*"
    );
    assert_ne!(head.method, "CONNECT");
    if let ruwsgi_proto::BodyFraming::Length(n) = head.body {
        assert!(n <= ruwsgi_proto::MAX_CONTENT_LENGTH);
    }
}

fn reparses_identically(head: &RequestHead<'_>, limits: &Limits) {
    let mut again = Vec::new();
    again.extend_from_slice(head.method.as_bytes());
    again.push(b' ');
    again.extend_from_slice(head.target.as_bytes());
    again.extend_from_slice(if head.minor_version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    for (name, value) in &head.headers {
        again.extend_from_slice(name.as_bytes());
        again.extend_from_slice(b": ");
        again.extend_from_slice(value);
        again.extend_from_slice(b"\r\n");
    }
    again.extend_from_slice(b"\r\n");
    // The canonical form is never longer than what was accepted, except that it spells out
    // ": " where the client may have sent ":"; give it room for that.
    let roomy = Limits {
        max_head: limits.max_head + 2 * head.headers.len() + 2,
        ..*limits
    };
    match parse_request_head(&again, &roomy) {
        Ok(Some((head2, used2))) => {
            assert_eq!(&head2, head);
            assert_eq!(used2, again.len());
        }
        other => panic!("re-serialised head did not parse: {other:?}"),
    }
}

/// `chunked`: the first byte picks `max_out`, the second a split point. The decoder never
/// consumes more than it's given, never outputs more than `max_out` per call, and bounded
/// output or a split gives the same body, consumption and outcome as one unbounded call.
pub fn chunked(data: &[u8]) {
    let (max_out, cut, input) = match data {
        [a, b, rest @ ..] => (
            usize::from(*a % 64),
            usize::from(*b) % (rest.len() + 1),
            rest,
        ),
        _ => return,
    };
    let whole = decode_in_parts(input, input.len(), usize::MAX);
    assert_eq!(
        decode_in_parts(input, cut, usize::MAX),
        whole,
        "split at {cut}"
    );
    if max_out > 0 {
        assert_eq!(
            decode_in_parts(input, cut, max_out),
            whole,
            "max_out {max_out}"
        );
    }
}

type Decoded = Result<(Vec<u8>, usize, bool), ruwsgi_proto::ChunkError>;

fn decode_in_parts(input: &[u8], cut: usize, max_out: usize) -> Decoded {
    let mut decoder = ChunkedDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    for part in [&input[..cut], &input[cut..]] {
        let mut offset = 0;
        loop {
            let before = out.len();
            let (used, done) = decoder.decode(&part[offset..], &mut out, max_out)?;
            assert!(used <= part.len() - offset, "consumed more than given");
            assert!(out.len() - before <= max_out, "output more than max_out");
            offset += used;
            consumed += used;
            if done {
                return Ok((out, consumed, true));
            }
            if offset == part.len() {
                break;
            }
            // Not done, input left: only a full output budget may stop it.
            assert_eq!(out.len() - before, max_out, "stopped early without reason");
        }
    }
    Ok((out, consumed, false))
}

/// `uwsgi_packet`: no panic; a parsed packet re-encodes to exactly the bytes consumed; and
/// the input read as a list of vars encodes then parses back to that list.
pub fn uwsgi_packet(data: &[u8]) {
    for max in [4096, 65_539] {
        if let Ok(Some((packet, used))) = parse_uwsgi_packet(data, max) {
            assert!(used <= data.len() && used <= max);
            let encoded = encode_uwsgi_packet(packet.modifier1, packet.modifier2, &packet.vars);
            assert_eq!(encoded, &data[..used]);
        }
    }
    // Split the input on 0xff into alternating keys and values.
    let pieces: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let vars: Vec<(&[u8], &[u8])> = pieces
        .chunks(2)
        .map(|kv| (kv[0], kv.get(1).copied().unwrap_or_default()))
        .collect();
    if let Ok(encoded) = ruwsgi_proto::try_encode_uwsgi_packet(0, 7, &vars) {
        let (packet, used) = parse_uwsgi_packet(&encoded, 65_539)
            .expect("encoded packet parses")
            .expect("encoded packet is complete");
        assert_eq!(used, encoded.len());
        assert_eq!((packet.modifier1, packet.modifier2), (0, 7));
        assert_eq!(packet.vars, vars);
    }
}

/// `spool_file`: no panic; a parsed task re-encodes to exactly the input; its routing vars
/// read without panicking; the input read as vars and a body encodes then parses back.
pub fn spool_file(data: &[u8]) {
    if let Ok(Some(task)) = ruwsgi_proto::parse_spool_file(data) {
        let _ = ruwsgi_proto::spool_routing(&task.vars);
        let encoded =
            ruwsgi_proto::encode_spool_file(&task.vars, task.body).expect("a parsed task encodes");
        // The header's modifier bytes are not kept: compare from the size on.
        assert_eq!(encoded[1..3], data[1..3]);
        assert_eq!(encoded[4..], data[4..]);
    }
    // Split on 0xff: keys and values alternate, the last piece is the body.
    let mut pieces: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let body = pieces.pop().unwrap_or_default();
    let vars: Vec<(&[u8], &[u8])> = pieces
        .chunks(2)
        .map(|kv| (kv[0], kv.get(1).copied().unwrap_or_default()))
        .collect();
    if let Ok(encoded) = ruwsgi_proto::encode_spool_file(&vars, body) {
        let task = ruwsgi_proto::parse_spool_file(&encoded)
            .expect("an encoded task parses")
            .expect("an encoded task is complete");
        assert_eq!(task.vars, vars);
        assert_eq!(task.body, body);
    }
}

/// `proxy_header`: no panic; `used` within bounds; the result doesn't depend on where the
/// input is split; a header with addresses re-encodes (v1, or v2 without its TLVs) to one
/// that parses to the same addresses.
pub fn proxy_header(data: &[u8]) {
    use ruwsgi_proto::{encode_proxy_v1, encode_proxy_v2, parse_proxy_header, ProxyStart};
    let whole = parse_proxy_header(data);
    if let Ok(Some(ProxyStart::Header { header, used })) = &whole {
        assert!(*used <= data.len());
        if let (Some(source), Some(destination)) = (header.source, header.destination) {
            if source.is_ipv4() == destination.is_ipv4() {
                for again in [encode_proxy_v1(source, destination), encode_proxy_v2(source, destination, b"")] {
                    match parse_proxy_header(&again) {
                        Ok(Some(ProxyStart::Header { header: h, used: n })) => {
                            assert_eq!((h.source, h.destination, n), (header.source, header.destination, again.len()));
                        }
                        other => panic!("re-encoded header didn't parse: {other:?}"),
                    }
                }
            }
        }
    }
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let part = parse_proxy_header(&data[..cut]);
    assert!(part == Ok(None) || part == whole, "split at {cut} changed the result: {part:?} vs {whole:?}");
}

/// `ini`: the input (lossily UTF-8) read as an ini file by `parse_ini_text`, which touches
/// no files. No panic; an error is one line naming the file; the result is the same on a
/// second parse, and with CRLF line ends or trailing blank/comment lines.
pub fn ini(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let first = ruwsgi_config::parse_ini_text(&text, "fuzz.ini");
    if let Err(e) = &first {
        let message = e.to_string();
        assert!(!message.contains(['\n', '\r']), "error is not one line: {message:?}");
        assert!(!message.is_empty());
    }
    assert_eq!(ruwsgi_config::parse_ini_text(&text, "fuzz.ini"), first, "not deterministic");
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(ruwsgi_config::parse_ini_text(&crlf, "fuzz.ini"), first, "CRLF changed the result");
    let padded = format!("{text}\n\n; trailing comment\n# another\n");
    assert_eq!(ruwsgi_config::parse_ini_text(&padded, "fuzz.ini"), first, "a trailing comment changed the result");
}

/// `websocket`: the input read as a stream of client frames, as the server's session reads
/// it (`max` 256 bytes). No panic; a header is 2 to 14 bytes and a prefix of the input
/// gives `Ok(None)` or the same header; every message out of the `Assembler` is at most
/// `max` bytes (text ones are UTF-8 by type); a close payload that parses has a code a
/// peer may send; the server's own frames of each payload parse back (once masked).
pub fn websocket(data: &[u8]) {
    websocket_frames(data, None);
    // Again with permessage-deflate negotiated: compressed messages inflate within MAX too.
    websocket_frames(data, ruwsgi_proto::negotiate_deflate([&b"permessage-deflate"[..]]));
}

fn websocket_frames(data: &[u8], mut deflate: Option<ruwsgi_proto::Deflate>) {
    use ruwsgi_proto::{parse_close_payload, parse_frame_head, unmask, Assembler, Message, Opcode};
    const MAX: u64 = 256;
    let mut rest = data;
    let mut assembler = Assembler::default();
    let negotiated = deflate.is_some();
    while let Ok(Some(head)) = parse_frame_head(rest, MAX, negotiated) {
        assert!((2..=14).contains(&head.header_len) && head.header_len <= rest.len());
        let cut = usize::from(rest[0]) % head.header_len;
        assert_eq!(parse_frame_head(&rest[..cut], MAX, negotiated), Ok(None), "a prefix of a header");
        let end = head.header_len + usize::try_from(head.len).expect("bounded by MAX");
        let Some(raw) = rest.get(head.header_len..end) else { break };
        let mut payload = raw.to_vec();
        unmask(&mut payload, head.mask, 0);
        match head.opcode {
            Opcode::Close => {
                if let Ok((code, _)) = parse_close_payload(&payload) {
                    assert!(matches!(code, 1000..=1003 | 1005 | 1007..=1014 | 3000..=4999), "{code}");
                }
            }
            Opcode::Ping | Opcode::Pong => assert!(payload.len() <= ruwsgi_proto::MAX_CONTROL_PAYLOAD),
            _ => match assembler.push(&head, payload.clone(), MAX, deflate.as_mut()) {
                Ok(Some(Message::Text(t))) => assert!(t.len() as u64 <= MAX),
                Ok(Some(Message::Binary(b))) => assert!(b.len() as u64 <= MAX),
                Ok(None) => {}
                Err(_) => assembler = Assembler::default(),
            },
        }
        // What the server would send with this payload parses back once a client masks it.
        let mut frame = Vec::new();
        ruwsgi_proto::encode_frame(&mut frame, true, Opcode::Binary, &payload);
        let header = frame.len() - payload.len();
        let mut masked = frame[..header].to_vec();
        masked[1] |= 0x80;
        masked.extend_from_slice(&head.mask);
        let mut body = payload.clone();
        unmask(&mut body, head.mask, 0);
        masked.extend_from_slice(&body);
        let again = parse_frame_head(&masked, MAX, false).expect("re-encoded frame").expect("whole");
        assert_eq!((again.len, again.opcode, again.fin), (payload.len() as u64, Opcode::Binary, true));
        let mut back = masked[again.header_len..].to_vec();
        unmask(&mut back, again.mask, 0);
        assert_eq!(back, payload);
        rest = &rest[end..];
    }
}

/// HTTP/2 frame scanner: the frame headers found don't depend on how the stream is cut
/// into pieces, and the frame budget never panics on them.
pub fn h2_frames(data: &[u8]) {
    let (cut, input) = match data {
        [a, rest @ ..] => (usize::from(*a) % (rest.len() + 1), rest),
        _ => return,
    };
    let scan = |parts: &[&[u8]]| {
        let mut scanner = ruwsgi_proto::FrameScanner::new();
        let mut seen = Vec::new();
        for part in parts {
            scanner.scan(part, |h| seen.push(h));
        }
        seen
    };
    let whole = scan(&[input]);
    assert_eq!(scan(&[&input[..cut], &input[cut..]]), whole, "split at {cut}");
    let mut budget = ruwsgi_proto::FrameBudget::new(ruwsgi_proto::FrameLimits::default());
    for (i, h) in whole.iter().enumerate() {
        let _ = budget.count(h, i as u64 / 100);
    }
}
