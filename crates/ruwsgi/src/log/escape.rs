//! Escaping of what clients and apps control before it reaches a log line, so no request
//! can forge a line of its own, hide one, or drive the operator's terminal.
//!
//! The format (documented in docs/hardening.md): C0 control bytes and DEL become `\xHH`
//! (`\x0d\x0a`, `\x1b`), as nginx writes them in its access log; the C1 controls, the
//! Unicode line and paragraph separators and the bidirectional formatting characters
//! become `\uHHHH` (`\u0085`, `\u2028`), since a log reader or viewer may break lines on,
//! or reorder text at, those code points. A backslash stays as it is (unlike nginx's `\x5C`):
//! it can't start a line, and URIs with one are logged as uWSGI logs them; the price is
//! that a client can send the text `\x0a`, which reads like an escaped LF. uWSGI writes all
//! of these characters raw. Pure functions, no I/O.

use std::fmt::{self, Write};

/// What `c` is written as, if it needs escaping.
enum Escape {
    /// `\xHH`.
    Byte(u8),
    /// `\uHHHH`.
    Unicode(u32),
}

fn escape_of(c: char) -> Option<Escape> {
    match c {
        // ASCII controls and DEL; `c` fits in a byte here.
        '\0'..='\x1f' | '\x7f' => Some(Escape::Byte(c as u8)),
        '\u{80}'..='\u{9f}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Some(Escape::Unicode(u32::from(c))),
        _ => None,
    }
}

fn push_escape(out: &mut impl Write, e: &Escape) -> fmt::Result {
    match e {
        Escape::Byte(b) => write!(out, "\\x{b:02x}"),
        Escape::Unicode(u) => write!(out, "\\u{u:04x}"),
    }
}

/// A request-log field with every control and separator character escaped.
pub struct Field<'a>(pub &'a str);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        // Fast path: plain printable ASCII, what nearly every request has.
        if s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return f.write_str(s);
        }
        for c in s.chars() {
            if let Some(e) = escape_of(c) {
                push_escape(f, &e)?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Appends `value` (a `log-format` field's bytes) with every control and separator
/// character escaped, as `Field` does; invalid UTF-8 is replaced.
pub fn push_escaped(out: &mut Vec<u8>, value: &[u8]) {
    if value.iter().all(|b| (b' '..=b'~').contains(b)) {
        out.extend_from_slice(value);
        return;
    }
    let mut text = String::with_capacity(value.len() + 8);
    let _ = write!(text, "{}", Field(&String::from_utf8_lossy(value)));
    out.extend_from_slice(text.as_bytes());
}

/// One server message (as `tracing` formats it, with its final newline) made safe to
/// write: control and separator characters escaped. A message that spans lines on purpose
/// (a Python traceback) keeps its line breaks, but every line after the first is indented
/// by two spaces, so no text inside a message can start a line that looks like a
/// request-log line or another message.
pub fn escape_message(message: &str, out: &mut String) {
    let body = message.strip_suffix('\n').unwrap_or(message);
    for c in body.chars() {
        if c == '\n' {
            out.push_str("\n  ");
        } else if let Some(e) = escape_of(c) {
            let _ = push_escape(out, &e);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_escape_controls_and_separators() {
        let cases = [
            ("/plain?a=b", "/plain?a=b"),
            ("/a\r\n[pid: 1] x", "/a\\x0d\\x0a[pid: 1] x"),
            ("\0\x1b[2J\x7f\t", "\\x00\\x1b[2J\\x7f\\x09"),
            ("a\u{85}b\u{2028}c\u{2029}d", "a\\u0085b\\u2028c\\u2029d"),
            ("\u{202e}txt.exe\u{2066}", "\\u202etxt.exe\\u2066"),
            ("back\\slash", "back\\slash"),
            ("caf\u{e9} \u{1f600}", "caf\u{e9} \u{1f600}"),
        ];
        for (raw, logged) in cases {
            assert_eq!(Field(raw).to_string(), logged, "{raw:?}");
        }
    }

    #[test]
    fn messages_keep_their_lines_but_indent_continuations() {
        let mut out = String::new();
        escape_message("GET /x: the app raised:\nTraceback:\n  File \"a\\b.py\"\nValueError: x\r\x1b\n", &mut out);
        assert_eq!(out, "GET /x: the app raised:\n  Traceback:\n    File \"a\\b.py\"\n  ValueError: x\\x0d\\x1b\n");
        out.clear();
        escape_message("no newline \u{2028}", &mut out);
        assert_eq!(out, "no newline \\u2028\n");
    }
}
