//! The pure half of static serving: request path → relative file path (with every check
//! that keeps a request inside its map), mount matching, `Accept-Encoding`, and the
//! conditional/range decision that turns file facts and request headers into a [`Plan`].
//! No I/O here; `serve.rs` does the stat/open/send and asks this module what to do.

use std::path::{Path, PathBuf};

/// Why a request path can never name a static file. Each one is answered 403 and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `%2f` or `%5c`: an escaped separator would let a client hide a `..` from a proxy.
    EncodedSeparator,
    /// A literal backslash (a separator on other systems; never in a file name we serve).
    Backslash,
    /// A NUL byte, raw or `%00`: it would truncate the path in C.
    Nul,
    /// A control character (0x01–0x1f, 0x7f).
    Control,
    /// Not valid UTF-8 after decoding (this includes overlong forms such as `%c0%ae`).
    BadUtf8,
    /// A `..` segment.
    DotDot,
    /// The file's real path (after symlinks) is outside the map root and every `static-safe`.
    OutsideRoot,
}

impl Refusal {
    /// Words for the log line.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::EncodedSeparator => "encoded path separator",
            Refusal::Backslash => "backslash in path",
            Refusal::Nul => "NUL byte in path",
            Refusal::Control => "control character in path",
            Refusal::BadUtf8 => "path is not valid UTF-8",
            Refusal::DotDot => "'..' segment in path",
            Refusal::OutsideRoot => "resolves outside the static root",
        }
    }
}

/// A request path that passed every check: segments joined by `/`, no leading slash, no
/// `.`/`..`/empty segments, valid UTF-8 without NUL, control characters or backslashes.
/// Joining it to a root can only name something below that root (symlinks aside, which
/// `serve.rs` checks on the real path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(String);

impl RelPath {
    /// The checked path, e.g. `css/site.css` (empty for the root itself).
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `root/<self>`.
    pub fn under(&self, root: &Path) -> PathBuf {
        if self.0.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&self.0)
        }
    }
}

/// Decodes a still percent-encoded path exactly once and checks it. `%252e` becomes the
/// three characters `%2e`, never a dot: a second decoding pass is how double-encoding
/// attacks get through, so there is none.
pub fn decode_request_path(raw: &[u8]) -> Result<RelPath, Refusal> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex))
            {
                let byte = hi << 4 | lo;
                match byte {
                    b'/' | b'\\' => return Err(Refusal::EncodedSeparator),
                    0 => return Err(Refusal::Nul),
                    _ => out.push(byte),
                }
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    check_decoded_path(&out)
}

/// Checks an already-decoded path (`PATH_INFO` from a uwsgi packet, decoded by nginx).
pub fn check_decoded_path(path: &[u8]) -> Result<RelPath, Refusal> {
    for &b in path {
        match b {
            0 => return Err(Refusal::Nul),
            b'\\' => return Err(Refusal::Backslash),
            0x01..=0x1f | 0x7f => return Err(Refusal::Control),
            _ => {}
        }
    }
    // std's UTF-8 check rejects overlong encodings and surrogates (RFC 3629 §3).
    let text = std::str::from_utf8(path).map_err(|_| Refusal::BadUtf8)?;
    let mut clean = String::with_capacity(text.len());
    for segment in text.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(Refusal::DotDot),
            s => {
                if !clean.is_empty() {
                    clean.push('/');
                }
                clean.push_str(s);
            }
        }
    }
    Ok(RelPath(clean))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The part of `path` below `mount`, when `mount` matches at a segment boundary:
/// `/static` matches `/static` and `/static/x`, not `/staticx`. This is the only work a
/// non-static request pays per map.
///
/// Differs from uWSGI: uWSGI matches a plain prefix, so `/static` also matched
/// `/staticfoo` and mapped it to the sibling `<dir>foo`.
pub fn strip_mount<'p>(path: &'p [u8], mount: &str) -> Option<&'p [u8]> {
    let rest = path.strip_prefix(mount.as_bytes())?;
    (rest.is_empty() || rest[0] == b'/' || mount.ends_with('/')).then_some(rest)
}

/// Whether an `Accept-Encoding` value accepts gzip (`gzip` or `*` without `q=0`).
pub fn accepts_gzip(header: Option<&[u8]>) -> bool {
    let Some(value) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
        return false;
    };
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let zero = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .or_else(|| p.strip_prefix("Q="))
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return !zero;
        }
        if coding == "*" {
            star = Some(!zero);
        }
    }
    star.unwrap_or(false)
}

/// What the file looks like, for the conditional and range decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime: i64,
}

impl FileFacts {
    /// The entity tag: `"<mtime hex>-<size hex>"`, the form nginx uses.
    pub fn etag(&self) -> String {
        format!("\"{:x}-{:x}\"", self.mtime, self.size)
    }
}

/// The request headers that shape a static response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `Range`.
    pub range: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
}

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 304: the client's copy is current.
    NotModified,
    /// 200 with the whole file.
    Full,
    /// 206 with `len` bytes from `start`.
    Partial {
        /// First byte.
        start: u64,
        /// Number of bytes (at least 1).
        len: u64,
    },
    /// 416: the range starts past the end.
    Unsatisfiable,
}

/// RFC 9110 §13.2.2 order: `If-None-Match` (which, when present, makes
/// `If-Modified-Since` ignored), then `If-Modified-Since`, then `Range` guarded by
/// `If-Range`. A `Range` we can't parse or with several ranges is ignored (200), as
/// §14.2 allows; only a syntactically valid range past the end gets 416.
pub fn plan(file: &FileFacts, cond: &Conditions<'_>) -> Plan {
    let etag = file.etag();
    if let Some(inm) = cond.if_none_match {
        if etag_list_matches(inm, &etag) {
            return Plan::NotModified;
        }
    } else if let Some(ims) = cond.if_modified_since.and_then(parse_http_date) {
        if file.mtime <= ims {
            return Plan::NotModified;
        }
    }
    let Some(range) = cond.range else {
        return Plan::Full;
    };
    if let Some(if_range) = cond.if_range {
        let if_range = trim(if_range);
        let current = if if_range.first() == Some(&b'"') {
            if_range == etag.as_bytes()
        } else {
            parse_http_date(if_range) == Some(file.mtime)
        };
        if !current {
            return Plan::Full;
        }
    }
    match parse_range(range, file.size) {
        RangeSpec::Ignore => Plan::Full,
        RangeSpec::Unsatisfiable => Plan::Unsatisfiable,
        RangeSpec::Bytes { start, len } => Plan::Partial { start, len },
    }
}

/// A parsed single `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// Not a single byte range we understand: serve the whole file.
    Ignore,
    /// Starts at or past the end (or a zero-length suffix).
    Unsatisfiable,
    /// Satisfiable, clipped to the file.
    Bytes { start: u64, len: u64 },
}

fn parse_range(value: &[u8], size: u64) -> RangeSpec {
    let Ok(value) = std::str::from_utf8(trim(value)) else {
        return RangeSpec::Ignore;
    };
    let Some(spec) = value.strip_prefix("bytes=").or_else(|| value.strip_prefix("Bytes=")) else {
        return RangeSpec::Ignore;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        if !digits(last) {
            return RangeSpec::Ignore;
        }
        let n = last.parse::<u64>().unwrap_or(u64::MAX);
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        let len = n.min(size);
        return RangeSpec::Bytes { start: size - len, len };
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return RangeSpec::Ignore;
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeSpec::Unsatisfiable;
    };
    let end = if last.is_empty() { u64::MAX } else { last.parse::<u64>().unwrap_or(u64::MAX) };
    if end < start {
        return RangeSpec::Ignore;
    }
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    let end = end.min(size - 1);
    RangeSpec::Bytes { start, len: end - start + 1 }
}

/// Weak comparison (RFC 9110 §8.8.3.2) of each tag in an `If-None-Match` list.
fn etag_list_matches(list: &[u8], etag: &str) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    list.split(',').map(str::trim).any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// An HTTP date (any of the three RFC 9110 §5.6.7 forms) as seconds since the epoch.
pub fn parse_http_date(value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(trim(value)).ok()?;
    let time = httpdate::parse_http_date(text).ok()?;
    let secs = time.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    i64::try_from(secs).ok()
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_and_normalises() {
        assert_eq!(decode_request_path(b"/css/site.css").unwrap().as_str(), "css/site.css");
        assert_eq!(decode_request_path(b"//a/./b//c").unwrap().as_str(), "a/b/c");
        assert_eq!(decode_request_path(b"/a%20b.txt").unwrap().as_str(), "a b.txt");
        assert_eq!(decode_request_path(b"/caf%C3%A9").unwrap().as_str(), "café");
        assert_eq!(decode_request_path(b"").unwrap().as_str(), "");
        // Double encoding stays literal: `%2e%2e` is a (harmless) file name, not `..`.
        assert_eq!(decode_request_path(b"/%252e%252e/x").unwrap().as_str(), "%2e%2e/x");
        // A lone `%` is kept, as uWSGI's decoder does.
        assert_eq!(decode_request_path(b"/100%").unwrap().as_str(), "100%");
    }

    #[test]
    fn refuses_every_escape_form() {
        let table: &[(&[u8], Refusal)] = &[
            (b"/../etc/passwd", Refusal::DotDot),
            (b"/a/../../x", Refusal::DotDot),
            (b"/..", Refusal::DotDot),
            (b"/%2e%2e/x", Refusal::DotDot),
            (b"/%2E%2E/x", Refusal::DotDot),
            (b"/.%2e/x", Refusal::DotDot),
            (b"/%2e./x", Refusal::DotDot),
            (b"/..%2fx", Refusal::EncodedSeparator),
            (b"/a%2F..%2F..%2Fx", Refusal::EncodedSeparator),
            (b"/..%5cx", Refusal::EncodedSeparator),
            (b"/..\\x", Refusal::Backslash),
            (b"/x%00.css", Refusal::Nul),
            (b"/x\0", Refusal::Nul),
            (b"/%c0%ae%c0%ae/x", Refusal::BadUtf8),
            (b"/%c0%af", Refusal::BadUtf8),
            (b"/%e0%80%ae", Refusal::BadUtf8),
            (b"/%ed%a0%80", Refusal::BadUtf8),
            (b"/%ff", Refusal::BadUtf8),
            (b"/a%0d%0aSet-Cookie:x", Refusal::Control),
            (b"/a%7f", Refusal::Control),
        ];
        for (raw, want) in table {
            assert_eq!(decode_request_path(raw), Err(*want), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn decoded_paths_get_the_same_checks() {
        assert_eq!(check_decoded_path(b"/a/../b"), Err(Refusal::DotDot));
        assert_eq!(check_decoded_path(b"/a\\b"), Err(Refusal::Backslash));
        assert_eq!(check_decoded_path(b"/a\xc0\xae"), Err(Refusal::BadUtf8));
        // nginx already decoded: a `%2e` here is literal text.
        assert_eq!(check_decoded_path(b"/%2e%2e/x").unwrap().as_str(), "%2e%2e/x");
    }

    #[test]
    fn mounts_match_at_segment_boundaries() {
        assert_eq!(strip_mount(b"/static/x.css", "/static"), Some(&b"/x.css"[..]));
        assert_eq!(strip_mount(b"/static", "/static"), Some(&b""[..]));
        assert_eq!(strip_mount(b"/staticfoo", "/static"), None);
        assert_eq!(strip_mount(b"/static/x", "/static/"), Some(&b"x"[..]));
        assert_eq!(strip_mount(b"/x", "/"), Some(&b"x"[..]));
        assert_eq!(strip_mount(b"/other", "/static"), None);
    }

    #[test]
    fn gzip_acceptance() {
        assert!(accepts_gzip(Some(b"gzip, deflate, br")));
        assert!(accepts_gzip(Some(b"br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(Some(b"*")));
        assert!(!accepts_gzip(Some(b"gzip;q=0")));
        assert!(!accepts_gzip(Some(b"gzip;q=0.0, *")));
        assert!(!accepts_gzip(Some(b"deflate, br")));
        assert!(!accepts_gzip(Some(b"identity")));
        assert!(!accepts_gzip(None));
    }

    fn facts() -> FileFacts {
        FileFacts { size: 100, mtime: 1_700_000_000 }
    }

    #[test]
    fn conditional_requests() {
        fn c<'a>(inm: Option<&'a [u8]>, ims: Option<&'a [u8]>) -> Conditions<'a> {
            Conditions { if_none_match: inm, if_modified_since: ims, ..Conditions::default() }
        }
        let f = facts();
        let tag = f.etag();
        assert_eq!(plan(&f, &c(Some(tag.as_bytes()), None)), Plan::NotModified);
        assert_eq!(plan(&f, &c(Some(format!("\"x\", W/{tag}").as_bytes()), None)), Plan::NotModified);
        assert_eq!(plan(&f, &c(Some(b"*"), None)), Plan::NotModified);
        assert_eq!(plan(&f, &c(Some(b"\"other\""), None)), Plan::Full);
        let same = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        let older = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000));
        assert_eq!(plan(&f, &c(None, Some(same.as_bytes()))), Plan::NotModified);
        assert_eq!(plan(&f, &c(None, Some(older.as_bytes()))), Plan::Full);
        assert_eq!(plan(&f, &c(None, Some(b"garbage"))), Plan::Full);
        // A non-matching If-None-Match wins over a matching If-Modified-Since.
        assert_eq!(plan(&f, &c(Some(b"\"other\""), Some(same.as_bytes()))), Plan::Full);
    }

    #[test]
    fn ranges() {
        let f = facts();
        let r = |v: &str| plan(&f, &Conditions { range: Some(v.as_bytes()), ..Conditions::default() });
        assert_eq!(r("bytes=0-9"), Plan::Partial { start: 0, len: 10 });
        assert_eq!(r("bytes=90-"), Plan::Partial { start: 90, len: 10 });
        assert_eq!(r("bytes=90-1000"), Plan::Partial { start: 90, len: 10 });
        assert_eq!(r("bytes=-5"), Plan::Partial { start: 95, len: 5 });
        assert_eq!(r("bytes=-500"), Plan::Partial { start: 0, len: 100 });
        assert_eq!(r("bytes=100-"), Plan::Unsatisfiable);
        assert_eq!(r("bytes=500-600"), Plan::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Plan::Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-"), Plan::Unsatisfiable);
        for ignored in ["bytes=5-1", "bytes=0-1,5-6", "items=0-1", "bytes=a-b", "bytes=-", "bytes=1-x"] {
            assert_eq!(r(ignored), Plan::Full, "{ignored}");
        }
    }

    #[test]
    fn if_range_guards_the_range() {
        let f = facts();
        let tag = f.etag();
        let with = |ir: &[u8]| {
            plan(&f, &Conditions { range: Some(b"bytes=0-0"), if_range: Some(ir), ..Conditions::default() })
        };
        assert_eq!(with(tag.as_bytes()), Plan::Partial { start: 0, len: 1 });
        assert_eq!(with(b"\"stale\""), Plan::Full);
        let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert_eq!(with(date.as_bytes()), Plan::Partial { start: 0, len: 1 });
        assert_eq!(with(b"Mon, 01 Jan 2001 00:00:00 GMT"), Plan::Full);
    }
}
