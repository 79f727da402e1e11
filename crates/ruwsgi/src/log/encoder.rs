//! `log-encoder` / `log-req-encoder`: transformations applied, in the order given, to each
//! log message before a logger writes it, as uWSGI's `uwsgi_log_encoder_*`
//! (`core/logging.c`): `prefix`, `suffix`, `nl`, `format`, `json`, `gzip`, `compress`.
//!
//! `name[:logger] args`: with `:logger` the encoder applies only to messages going to the
//! logger with that name. `format` and `json` take a template with `${msg}` (the message
//! without its trailing newline), `${msgnl}` (with it), `${unix}`, `${micros}`, `${millis}`
//! and `${strftime:FORMAT}`; `json` escapes what it inserts. Parsed once at start-up; pure
//! apart from reading the clock through the `now` argument.

use std::fmt::Write as _;
use std::io::Write as _;

use chrono::format::Item;

use super::format::{parse_strftime, push_json_escaped};

/// One link of an encoder chain.
#[derive(Debug, Clone)]
pub struct Encoder {
    kind: Kind,
    /// `:name`: applies only to messages for the logger with this name.
    pub use_for: Option<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Nl,
    Format(Vec<Piece>),
    Json(Vec<Piece>),
    Gzip,
    Compress,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(Vec<u8>),
    Msg,
    MsgNl,
    Unix,
    Micros,
    Millis,
    Strftime(Vec<Item<'static>>),
    /// A `${name}` uWSGI doesn't know: writes nothing, as there.
    Nothing,
}

/// Parses `name[:logger][ args]`; the error names what is wrong.
pub fn parse_encoder(spec: &str) -> Result<Encoder, String> {
    let (head, args) = spec.split_once(' ').unwrap_or((spec, ""));
    let (name, use_for) = match head.split_once(':') {
        Some((n, f)) => (n, Some(f.to_owned())),
        None => (head, None),
    };
    let kind = match name {
        "prefix" => Kind::Prefix(args.as_bytes().to_vec()),
        "suffix" => Kind::Suffix(args.as_bytes().to_vec()),
        "nl" => Kind::Nl,
        "format" => Kind::Format(parse_template(args)?),
        "json" => Kind::Json(parse_template(args)?),
        "gzip" => Kind::Gzip,
        "compress" => Kind::Compress,
        _ => {
            return Err(format!("log encoder \"{name}\" not found (prefix, suffix, nl, format, json, gzip, compress)"))
        }
    };
    Ok(Encoder { kind, use_for })
}

/// `${var}` templates. A `$` not followed by `{`, or a `${` never closed, is text.
fn parse_template(args: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = args;
    let mut text = Vec::new();
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        text.extend_from_slice(&rest.as_bytes()[..start]);
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        let var = &after[..end];
        pieces.push(match var {
            "msg" => Piece::Msg,
            "msgnl" => Piece::MsgNl,
            "unix" => Piece::Unix,
            "micros" => Piece::Micros,
            "millis" => Piece::Millis,
            _ => match var.strip_prefix("strftime:") {
                Some(f) => Piece::Strftime(parse_strftime(f).map_err(|e| e.to_string())?),
                None => Piece::Nothing,
            },
        });
        rest = &after[end + 1..];
    }
    text.extend_from_slice(rest.as_bytes());
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

impl Encoder {
    /// Whether this encoder applies to a message for the logger named `logger` (`None`:
    /// an unnamed logger or the plain output). As uWSGI: an encoder with `:name` applies
    /// only to that named logger.
    #[must_use]
    pub fn applies_to(&self, logger: Option<&str>) -> bool {
        match &self.use_for {
            None => true,
            Some(name) => logger == Some(name.as_str()),
        }
    }

    /// Encodes `msg`; `now` is the time in µs since the epoch.
    #[must_use]
    pub fn encode(&self, msg: &[u8], now: u64) -> Vec<u8> {
        match &self.kind {
            Kind::Prefix(p) => [p.as_slice(), msg].concat(),
            Kind::Suffix(s) => [msg, s.as_slice()].concat(),
            Kind::Nl => [msg, b"\n"].concat(),
            Kind::Format(pieces) => expand(pieces, msg, now, false),
            Kind::Json(pieces) => expand(pieces, msg, now, true),
            Kind::Gzip => gzip(msg),
            Kind::Compress => zlib(msg),
        }
    }
}

/// Runs `msg` through every encoder of `chain` that applies to `logger`.
#[must_use]
pub fn encode_chain(chain: &[Encoder], logger: Option<&str>, msg: &[u8], now: u64) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for e in chain.iter().filter(|e| e.applies_to(logger)) {
        out = Some(e.encode(out.as_deref().unwrap_or(msg), now));
    }
    out
}

fn expand(pieces: &[Piece], msg: &[u8], now: u64, json: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 64);
    let insert = |out: &mut Vec<u8>, value: &[u8]| {
        if json {
            push_json_escaped(out, value);
        } else {
            out.extend_from_slice(value);
        }
    };
    for p in pieces {
        match p {
            Piece::Text(t) => out.extend_from_slice(t),
            Piece::Msg => insert(&mut out, msg.strip_suffix(b"\n").unwrap_or(msg)),
            Piece::MsgNl => insert(&mut out, msg),
            Piece::Unix => out.extend_from_slice((now / 1_000_000).to_string().as_bytes()),
            Piece::Micros => out.extend_from_slice(now.to_string().as_bytes()),
            Piece::Millis => out.extend_from_slice((now / 1000).to_string().as_bytes()),
            Piece::Strftime(items) => {
                let secs = i64::try_from(now / 1_000_000).unwrap_or(0);
                let t = chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default().with_timezone(&chrono::Local);
                let mut s = String::new();
                let _ = write!(s, "{}", t.format_with_items(items.iter()));
                insert(&mut out, s.as_bytes());
            }
            Piece::Nothing => {}
        }
    }
    out
}

/// A gzip member (RFC 1952) of `data` at zlib's default level: one member per message, as
/// uWSGI's `uwsgi_gzip`, so a file of them is a multi-member gzip stream `zcat` reads whole.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2 + 32), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// A zlib stream (RFC 1950) of `data`, as zlib's `compress()` makes (default level).
fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e =
        flate2::write::ZlibEncoder::new(Vec::with_capacity(data.len() / 2 + 16), flate2::Compression::default());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_589_919_278_123_456;

    #[test]
    fn encoders_transform_as_uwsgi_does() {
        let table: &[(&str, &[u8], &[u8])] = &[
            ("prefix [app] ", b"hello\n", b"[app] hello\n"),
            ("suffix  <<", b"hello", b"hello <<"),
            ("nl", b"hello", b"hello\n"),
            ("format ${unix} ${msg}!", b"hi\n", b"1589919278 hi!"),
            ("format ${millis}|${micros}|${msgnl}", b"hi\n", b"1589919278123|1589919278123456|hi\n"),
            ("format a ${nope} b $x ${", b"m", b"a  b $x ${"),
            ("json {\"msg\":\"${msg}\"}", b"say \"hi\"\tnow\n", b"{\"msg\":\"say \\\"hi\\\"\\tnow\"}"),
            ("json {\"m\":\"${msgnl}\"}", b"x\n", b"{\"m\":\"x\\n\"}"),
        ];
        for (spec, msg, want) in table {
            let e = parse_encoder(spec).unwrap();
            assert_eq!(e.encode(msg, NOW), *want, "{spec}");
        }
    }

    #[test]
    fn strftime_variable_uses_local_time() {
        let e = parse_encoder("json {\"time\":\"${strftime:%Y}\",\"source\":\"uwsgi\",\"msg\":\"${msg}\"}").unwrap();
        let out = String::from_utf8(e.encode(b"x\n", NOW)).unwrap();
        assert!(out == r#"{"time":"2020","source":"uwsgi","msg":"x"}"#, "{out}");
        assert!(parse_encoder("format ${strftime:%Q}").is_err());
    }

    #[test]
    fn chain_runs_in_order_and_honours_logger_names() {
        let chain: Vec<Encoder> =
            ["prefix A", "suffix B", "prefix:file1 F", "nl"].iter().map(|s| parse_encoder(s).unwrap()).collect();
        assert_eq!(encode_chain(&chain, None, b"m", NOW).unwrap(), b"AmB\n");
        assert_eq!(encode_chain(&chain, Some("file1"), b"m", NOW).unwrap(), b"FAmB\n");
        assert!(encode_chain(&[], None, b"m", NOW).is_none());
        assert!(parse_encoder("rot13").unwrap_err().contains("rot13"));
    }

    #[test]
    fn gzip_and_compress_are_valid_streams() {
        use std::io::Read as _;
        let msg = b"[pid: 7|app: 0|req: 1/1] 127.0.0.1 () {28 vars in 300 bytes} GET /healthz => generated 2 bytes\n"
            .repeat(8);
        let g = parse_encoder("gzip").unwrap().encode(&msg, NOW);
        assert_eq!(&g[..3], &[0x1f, 0x8b, 8]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(g.as_slice()).read_to_end(&mut back).unwrap();
        assert_eq!(back, msg);
        assert!(g.len() < msg.len() / 4, "gzip did not compress: {} of {}", g.len(), msg.len());

        let z = parse_encoder("compress").unwrap().encode(&msg, NOW);
        assert_eq!(z[0], 0x78);
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(z.as_slice()).read_to_end(&mut back).unwrap();
        assert_eq!(back, msg);
        assert!(z.len() < msg.len() / 4, "compress did not compress: {} of {}", z.len(), msg.len());
    }
}
