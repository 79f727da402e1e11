//! Character classes from RFC 9110 §5 shared by the parsers and encoders in this crate.
//!
//! No parsing happens here; these are the byte predicates the parsers agree on, so the head
//! parser, the chunked decoder and the response-header validator can't drift apart.

/// `tchar` (RFC 9110 §5.6.2): the bytes allowed in a token such as a field name.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `is_tchar` as a table: one load per byte of every response header name.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        #[allow(clippy::cast_possible_truncation, reason = "b < 256")]
        let c = b as u8;
        table[b] = matches!(c,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9'
            | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+'
            | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~');
        b += 1;
    }
    table
};

/// A non-empty run of `tchar`.
#[inline]
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// A byte allowed inside a field value (RFC 9110 §5.5): HTAB, SP, visible ASCII, obs-text.
/// Excludes NUL, CR, LF, DEL and every other control byte.
#[inline]
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Optional whitespace (RFC 9110 §5.6.3).
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `bytes` without leading and trailing OWS.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The non-empty elements of a comma-separated list (RFC 9110 §5.6.1), each trimmed of OWS.
/// Empty elements are skipped, as the RFC asks recipients to do.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows).filter(|e| !e.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_ows_on_both_sides() {
        assert_eq!(trim_ows(b" \ta b\t "), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
    }

    #[test]
    fn list_elements_skip_empty_ones() {
        let got: Vec<&[u8]> = list_elements(b" a, ,b ,,").collect();
        assert_eq!(got, vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn field_values_exclude_controls() {
        assert!(is_field_value_byte(b'\t'));
        assert!(is_field_value_byte(0xff));
        for b in [0u8, b'\r', b'\n', 0x7f, 0x1b] {
            assert!(!is_field_value_byte(b), "{b:#x}");
        }
    }
}
