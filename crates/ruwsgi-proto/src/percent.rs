//! Percent-decoding (RFC 3986 §2.1) of the request path for `PATH_INFO`.
//!
//! WSGI wants `PATH_INFO` decoded and presented as latin-1, the way nginx's `$document_uri`
//! arrives over uwsgi; the runtime does the latin-1 step. No I/O here.

use std::borrow::Cow;

/// Decodes `%XX` escapes. Input without `%` is returned borrowed.
///
/// A `%` not followed by two hex digits is kept literally, as uWSGI's own decoder does;
/// `+` is not a space in a path. `%2F` becomes `/`, so the result can contain slashes the
/// client escaped (CGI has the same ambiguity).
#[must_use]
pub fn percent_decode(input: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = input.iter().position(|&b| b == b'%') else {
        return Cow::Borrowed(input);
    };
    let mut out = Vec::with_capacity(input.len());
    out.extend_from_slice(&input[..first]);
    let mut i = first;
    while i < input.len() {
        let b = input[i];
        if b == b'%' {
            if let Some(byte) = escaped_byte(input.get(i + 1..i + 3)) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

fn escaped_byte(pair: Option<&[u8]>) -> Option<u8> {
    let &[hi, lo] = pair? else {
        return None;
    };
    Some(hex_digit(hi)? << 4 | hex_digit(lo)?)
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/plain", b"/plain"),
            (b"/a%20b", b"/a b"),
            (b"/%7e%7E", b"/~~"),
            (b"/caf%C3%A9", b"/caf\xc3\xa9"),
            (b"/a%2Fb", b"/a/b"),
            (b"/%00", b"/\0"),
            (b"/100%", b"/100%"),
            (b"/%4", b"/%4"),
            (b"/%zz%41", b"/%zzA"),
            (b"/a+b", b"/a+b"),
            (b"%%41", b"%A"),
        ];
        for &(input, expected) in cases {
            assert_eq!(&*percent_decode(input), expected, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn borrows_when_nothing_to_decode() {
        assert!(matches!(percent_decode(b"/x/y"), Cow::Borrowed(_)));
    }
}
