//! uWSGI's spool file: one task of a spooler queue directory, as `uwsgi.spool()` writes it
//! and the spooler reads it (uWSGI `core/spooler.c`). Same bytes as uWSGI 2.0 so a queue
//! directory filled by uWSGI is drained by ruwsgi after the switch, and the other way round.
//!
//! A file is a uwsgi packet with `modifier1 = 17`: a 4-byte header (`17`, `u16le` size of
//! the vars, `0`), the task's arguments as uwsgi vars (`u16le key_len, key, u16le
//! val_len, val`), then the optional `body`: every byte after the vars. A few vars steer
//! the spooler: `spooler` (which queue directory), `priority` (a numbered subdirectory) and
//! `at` (not before this epoch second; uWSGI keeps it as the file's mtime). Files are named
//! `uwsgi_spoolfile_on_<hostname>_<pid>_<counter>_<random>_<sec>_<usec>`.
//!
//! No I/O here: the spooler process (`ruwsgi::spooler`) reads, locks and deletes the files.

use std::cmp::Ordering;

use crate::uwsgi::{UwsgiVar, UWSGI_HEADER_LEN};

/// The `modifier1` of a spool file's header (uWSGI's spooler modifier).
pub const SPOOL_MODIFIER1: u8 = 17;
/// Every spool file's name starts so; the spooler ignores other files.
pub const SPOOL_FILE_PREFIX: &str = "uwsgi_spoolfile_on_";
/// Most bytes of vars one task can carry (a u16 size): bigger values go in the `body`.
pub const MAX_SPOOL_VARS: usize = 0xffff;

/// One task read from a spool file. Borrows from the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolTask<'b> {
    /// The task's arguments in file order.
    pub vars: Vec<UwsgiVar<'b>>,
    /// Everything after the vars (empty when the task has no body).
    pub body: &'b [u8],
}

/// Why a spool file can't be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// The header announces more vars than the file holds. uWSGI deletes such a file.
    #[error("spool file truncated: {size} bytes of vars announced, {have} present")]
    Truncated {
        /// The vars size of the header.
        size: usize,
        /// Bytes after the header.
        have: usize,
    },
    /// A var is cut short, or its key is empty (uWSGI's parser refuses both).
    #[error("spool file vars malformed at offset {offset}")]
    BadVars {
        /// Offset in the file of the var that doesn't parse.
        offset: usize,
    },
    /// [`encode_spool_file`]: the vars exceed 64 KiB, or a key is empty or too long.
    /// uWSGI's message, for the log.
    #[error("args buffer is limited to 64k, use the 'body' for bigger values")]
    TooLarge,
}

/// Parses a spool file's bytes.
///
/// `Ok(None)`: fewer than 4 bytes, a file still being written (uWSGI skips it and tries
/// again later). `Err`: the file is broken for good (uWSGI deletes it).
pub fn parse_spool_file(buf: &[u8]) -> Result<Option<SpoolTask<'_>>, SpoolError> {
    // uWSGI reads the header without checking `modifier1`; so do we.
    let Some(&[_, lo, hi, _]) = buf.first_chunk::<UWSGI_HEADER_LEN>() else {
        return Ok(None);
    };
    let size = usize::from(u16::from_le_bytes([lo, hi]));
    let end = UWSGI_HEADER_LEN + size;
    let Some(block) = buf.get(UWSGI_HEADER_LEN..end) else {
        return Err(SpoolError::Truncated { size, have: buf.len() - UWSGI_HEADER_LEN });
    };
    let mut vars = Vec::new();
    let mut pos = 0;
    while pos < block.len() {
        let bad = SpoolError::BadVars { offset: UWSGI_HEADER_LEN + pos };
        let (key, after_key) = take(block, pos).ok_or(bad)?;
        if key.is_empty() {
            return Err(bad);
        }
        let (value, after_value) = take(block, after_key).ok_or(bad)?;
        vars.push((key, value));
        pos = after_value;
    }
    Ok(Some(SpoolTask { vars, body: &buf[end..] }))
}

/// A `u16le len, bytes` string at `pos`: the bytes and the position after them.
fn take(block: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let &[lo, hi] = block.get(pos..pos + 2)? else {
        return None;
    };
    let start = pos + 2;
    let end = start + usize::from(u16::from_le_bytes([lo, hi]));
    Some((block.get(start..end)?, end))
}

/// Encodes one task: header, vars in the order given, then `body`.
pub fn encode_spool_file(vars: &[(&[u8], &[u8])], body: &[u8]) -> Result<Vec<u8>, SpoolError> {
    let size: usize = vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    let fits = |s: &[u8]| u16::try_from(s.len()).is_ok();
    if size > MAX_SPOOL_VARS || vars.iter().any(|(k, v)| k.is_empty() || !fits(k) || !fits(v)) {
        return Err(SpoolError::TooLarge);
    }
    let mut out = Vec::with_capacity(UWSGI_HEADER_LEN + size + body.len());
    out.push(SPOOL_MODIFIER1);
    // Checked above: the size and every length fit in a u16.
    out.extend_from_slice(&(size as u16).to_le_bytes());
    out.push(0);
    for (key, value) in vars {
        for s in [key, value] {
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
    }
    out.extend_from_slice(body);
    Ok(out)
}

/// The vars that steer the spooler rather than the task (the last of each wins, as in
/// uWSGI's parser).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolRouting<'b> {
    /// `spooler`: the queue directory to use (its full path) instead of the first one.
    pub spooler: Option<&'b [u8]>,
    /// `priority`: the subdirectory of the queue the file goes in.
    pub priority: Option<&'b [u8]>,
    /// `at`: run not before this epoch second (a fraction is dropped).
    pub at: Option<u64>,
}

/// Reads `spooler`, `priority` and `at` from a task's vars. Empty values count as absent.
#[must_use]
pub fn spool_routing<'b>(vars: &[(&'b [u8], &'b [u8])]) -> SpoolRouting<'b> {
    let mut r = SpoolRouting::default();
    for &(key, value) in vars {
        match key {
            b"spooler" if !value.is_empty() => r.spooler = Some(value),
            b"priority" if !value.is_empty() => r.priority = Some(value),
            // Differs from uWSGI: an `at` that isn't a number is ignored (uWSGI reads
            // any bytes as digits and gets a meaningless time).
            b"at" => r.at = parse_at(value),
            _ => {}
        }
    }
    r
}

/// `at = "1700000000"` or `"1700000000.5"`: whole epoch seconds.
fn parse_at(value: &[u8]) -> Option<u64> {
    let whole = value.split(|&b| b == b'.').next().unwrap_or_default();
    if whole.is_empty() || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(whole).ok()?.parse().ok().filter(|&at| at > 0)
}

/// The facts a spool file's name is made of, in uWSGI's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolName<'a> {
    /// The machine's hostname.
    pub hostname: &'a str,
    /// The writing process.
    pub pid: u32,
    /// Tasks this process has spooled, this one included.
    pub counter: u64,
    /// A random number (against two processes with the same pid on two hosts).
    pub random: u32,
    /// Seconds since the epoch.
    pub sec: u64,
    /// Microseconds within that second.
    pub usec: u32,
}

/// The file name of a new task (no directory).
#[must_use]
pub fn encode_spool_name(n: &SpoolName<'_>) -> String {
    format!("{SPOOL_FILE_PREFIX}{}_{}_{}_{}_{}_{}", n.hostname, n.pid, n.counter, n.random, n.sec, n.usec)
}

/// True for a name the spooler runs: a spool file.
#[must_use]
pub fn is_spool_file_name(name: &[u8]) -> bool {
    name.starts_with(SPOOL_FILE_PREFIX.as_bytes())
}

/// True for a `priority` subdirectory's name: digits only (uWSGI's `is_a_number`).
#[must_use]
pub fn is_priority_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(u8::is_ascii_digit)
}

/// `spooler-ordered`: the order the spooler visits a directory's entries, glibc's
/// `versionsort` as uWSGI uses it: runs of digits compare as numbers (`2` before `10`),
/// everything else byte by byte. So priority `0` comes before `1` before `10`, and all of
/// them before the `uwsgi_spoolfile_on_*` files.
#[must_use]
pub fn compare_spool_names(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (na, ea) = digit_run(a, i);
            let (nb, eb) = digit_run(b, j);
            // Leading zeros are skipped; a longer run of significant digits is bigger.
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
            (i, j) = (ea, eb);
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

/// The significant digits of the run starting at `start`, and where the run ends.
fn digit_run(s: &[u8], start: usize) -> (&[u8], usize) {
    let end = s[start..].iter().position(|b| !b.is_ascii_digit()).map_or(s.len(), |n| start + n);
    let first = s[start..end].iter().position(|&b| b != b'0').map_or(end, |n| start + n);
    (&s[first..end], end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The bytes uWSGI 2.0.31 wrote for `uwsgi.spool({b'a': b'1', b'body': b'BODY'})`.
    const UWSGI_WRITTEN: &[u8] = b"\x11\x06\x00\x00\x01\x00a\x01\x001BODY";

    #[test]
    fn reads_what_uwsgi_writes() {
        let task = parse_spool_file(UWSGI_WRITTEN).unwrap().unwrap();
        assert_eq!(task.vars, vec![(&b"a"[..], &b"1"[..])]);
        assert_eq!(task.body, b"BODY");
    }

    #[test]
    fn writes_what_uwsgi_writes() {
        assert_eq!(encode_spool_file(&[(b"a", b"1")], b"BODY").unwrap(), UWSGI_WRITTEN);
    }

    #[test]
    fn a_file_being_written_is_not_ready() {
        for cut in 0..4 {
            assert_eq!(parse_spool_file(&UWSGI_WRITTEN[..cut]), Ok(None));
        }
    }

    #[test]
    fn rejects_a_file_shorter_than_its_vars() {
        assert_eq!(parse_spool_file(&UWSGI_WRITTEN[..6]), Err(SpoolError::Truncated { size: 6, have: 2 }));
    }

    #[test]
    fn rejects_malformed_vars() {
        // Empty key; value past the end of the block; half a length.
        for bytes in [&b"\x11\x03\x00\x00\x00\x00x"[..], b"\x11\x05\x00\x00\x01\x00a\x09\x00", b"\x11\x01\x00\x00\x01"]
        {
            assert!(matches!(parse_spool_file(bytes), Err(SpoolError::BadVars { .. })), "{bytes:?}");
        }
    }

    #[test]
    fn refuses_more_than_64k_of_vars() {
        let big = vec![b'x'; 40_000];
        assert_eq!(encode_spool_file(&[(b"a", &big), (b"b", &big)], b""), Err(SpoolError::TooLarge));
        assert_eq!(encode_spool_file(&[(b"", b"x")], b""), Err(SpoolError::TooLarge));
        // The body has no limit.
        let body = vec![b'y'; 200_000];
        let file = encode_spool_file(&[(b"a", b"b")], &body).unwrap();
        assert_eq!(parse_spool_file(&file).unwrap().unwrap().body.len(), 200_000);
    }

    #[test]
    fn reads_the_routing_vars() {
        let vars: &[(&[u8], &[u8])] =
            &[(b"at", b"1700000000.25"), (b"priority", b"3"), (b"spooler", b"/q"), (b"x", b"y")];
        assert_eq!(
            spool_routing(vars),
            SpoolRouting { spooler: Some(b"/q"), priority: Some(b"3"), at: Some(1_700_000_000) }
        );
        assert_eq!(spool_routing(&[(b"at", b"soon"), (b"priority", b"")]), SpoolRouting::default());
    }

    #[test]
    fn names_files_as_uwsgi() {
        let name = encode_spool_name(&SpoolName {
            hostname: "vm",
            pid: 3112,
            counter: 1,
            random: 91_980_700,
            sec: 1_796_602_230,
            usec: 694_880,
        });
        assert_eq!(name, "uwsgi_spoolfile_on_vm_3112_1_91980700_1796602230_694880");
        assert!(is_spool_file_name(name.as_bytes()));
        assert!(!is_spool_file_name(b"notes.txt"));
        assert!(is_priority_name(b"10") && !is_priority_name(b"") && !is_priority_name(b"1a"));
    }

    #[test]
    fn orders_as_versionsort() {
        let mut names: Vec<&[u8]> =
            vec![b"uwsgi_spoolfile_on_h_1_2_3_4_5", b"10", b"uwsgi_spoolfile_on_h_1_10_3_4_5", b"2", b"0", b"02x"];
        names.sort_by(|a, b| compare_spool_names(a, b));
        assert_eq!(
            names,
            vec![&b"0"[..], b"2", b"02x", b"10", b"uwsgi_spoolfile_on_h_1_2_3_4_5", b"uwsgi_spoolfile_on_h_1_10_3_4_5"]
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_spool_file(&bytes);
        }

        #[test]
        fn encode_then_parse_gives_back_the_task(
            vars in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..20), proptest::collection::vec(any::<u8>(), 0..40)),
                0..8),
            body in proptest::collection::vec(any::<u8>(), 0..100),
        ) {
            let refs: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
            let file = encode_spool_file(&refs, &body).unwrap();
            let task = parse_spool_file(&file).unwrap().unwrap();
            prop_assert_eq!(task.vars, refs);
            prop_assert_eq!(task.body, &body[..]);
        }

        #[test]
        fn ordering_is_total(a in "[0-9a-z_]{0,12}", b in "[0-9a-z_]{0,12}") {
            let ab = compare_spool_names(a.as_bytes(), b.as_bytes());
            prop_assert_eq!(ab, compare_spool_names(b.as_bytes(), a.as_bytes()).reverse());
            prop_assert_eq!(ab == Ordering::Equal, a == b);
        }
    }
}
