//! Value expansion, in uWSGI's order: magic variables (`%d`, `%n`, ... while a file is read,
//! referring to that file), `$(VAR)` environment variables, `@(file)` file contents, and after
//! all sources are assembled `%(name)` placeholders, with uWSGI's arithmetic (`%(%k * 2)`).
//! Reads only `@(file)` files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::Environment;

/// Why a value couldn't be expanded; the caller adds the origin and option name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// `@(file)` unreadable: (path as written, reason).
    UnreadableFile(String, String),
    /// `%(name)` expanding to itself.
    PlaceholderCycle(String),
}

/// What the magic variables of one config file expand to.
#[derive(Debug, Clone)]
pub(crate) struct FileMagic {
    /// `%p`: absolute path.
    pub path: PathBuf,
    /// The file as the user named it (for `%x`).
    pub display: String,
    /// `%x`'s section part.
    pub section: String,
}

impl FileMagic {
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("/"))
    }
}

/// Expands `%d`-style magic variables. Unknown `%X` stay as written (as in uWSGI), and `%(`
/// is left for the placeholder pass.
pub(crate) fn expand_magic(value: &str, magic: &FileMagic, env: &Environment) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(&next) = chars.peek() else {
            out.push('%');
            break;
        };
        let lossy = |p: &Path| p.to_string_lossy().into_owned();
        let replacement = match next {
            'd' => {
                let mut d = lossy(magic.dir());
                if !d.ends_with('/') {
                    d.push('/');
                }
                Some(d)
            }
            'p' => Some(lossy(&magic.path)),
            's' => magic.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            'n' => magic.path.file_stem().map(|n| n.to_string_lossy().into_owned()),
            // uWSGI's %e is the extension without the dot.
            'e' => Some(magic.path.extension().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            'c' => Some(magic.dir().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            'x' => Some(format!("{}:{}", magic.display, magic.section)),
            'v' => Some(lossy(&env.cwd)),
            'h' => Some(env.hostname.clone()),
            'k' => Some(env.cpu_cores.to_string()),
            '%' => Some("%".to_owned()),
            _ => None,
        };
        match replacement {
            Some(r) => {
                chars.next();
                out.push_str(&r);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Where the group whose text starts `after` its opening `(` ends: the `)` that balances it,
/// as uWSGI's config pass counts nested parentheses (`%((%k * 2) + 1)` is one group).
fn group_end(after: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in after.bytes().enumerate() {
        match b {
            b'(' => depth += 1,
            b')' if depth == 0 => return Some(i),
            b')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Finds `<open>NAME)` groups (`$(`, `@(`, `%(`) and replaces each with `lookup(NAME)`.
fn replace_groups(
    value: &str,
    open: &str,
    mut lookup: impl FnMut(&str) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        let Some(end) = group_end(after) else { break };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `$(VAR)` → the environment variable's value. An unset variable is left as written, as
/// uWSGI 2.0 leaves it (its `getenv` pass skips what it can't replace); the names of unset
/// variables are pushed to `unset` so the caller can warn.
pub(crate) fn expand_env(value: &str, env: &Environment, unset: &mut Vec<String>) -> String {
    let expanded = replace_groups(value, "$(", |name| {
        Ok(env.var(name).map_or_else(
            || {
                unset.push(name.to_owned());
                format!("$({name})")
            },
            str::to_owned,
        ))
    });
    // The lookup never fails.
    expanded.unwrap_or_else(|_| value.to_owned())
}

/// `@(file)` → the file's content without its trailing newline. Relative paths resolve
/// against the working directory, then against `dir` (the config file's directory).
pub(crate) fn expand_files(value: &str, env: &Environment, dir: Option<&Path>) -> Result<String, ExpandError> {
    replace_groups(value, "@(", |name| {
        let path = resolve_path(name, env, dir);
        let content =
            std::fs::read_to_string(&path).map_err(|e| ExpandError::UnreadableFile(name.to_owned(), io_reason(&e)))?;
        Ok(content.strip_suffix('\n').map_or(content.as_str(), |c| c.strip_suffix('\r').unwrap_or(c)).to_owned())
    })
}

/// `@(file)` where no file may be read: the first one is an error, naming it.
pub(crate) fn refuse_files(value: &str) -> Result<String, ExpandError> {
    replace_groups(value, "@(", |name| {
        Err(ExpandError::UnreadableFile(name.to_owned(), "files are not read here".to_owned()))
    })
}

/// A relative path against the working directory when it exists there, else against `dir`
/// (uWSGI only tries the working directory; the fallback makes includes beside the config
/// work wherever ruwsgi is started).
pub(crate) fn resolve_path(name: &str, env: &Environment, dir: Option<&Path>) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let from_cwd = env.cwd.join(p);
    match dir {
        Some(d) if !from_cwd.exists() => d.join(p),
        _ => from_cwd,
    }
}

/// One short phrase for an I/O error, without the OS error number.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        std::io::ErrorKind::InvalidData => "not valid UTF-8".to_owned(),
        k => k.to_string(),
    }
}

/// The names used as `%(name)` in `value`, including the operands of `%(a + 1)`.
pub(crate) fn placeholder_names(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = replace_groups(value, "%(", |n| {
        if n.contains(' ') {
            names.extend(tokens(n).filter_map(|t| match Token::of(t) {
                Token::Name(name) => Some(name.to_owned()),
                _ => None,
            }));
        } else {
            names.push(n.to_owned());
        }
        Ok(String::new())
    });
    names
}

/// `%(name)` → the placeholder's value, itself expanded (with a cycle check). A `%(name)`
/// naming no option or placeholder stays as written, as uWSGI leaves it (`log-format`'s
/// `%(addr)`, `%(status)`... depend on that); its name is pushed to `unknown` so the caller
/// can warn where that is most likely a mistake.
pub(crate) fn expand_placeholders(
    value: &str,
    values: &HashMap<String, String>,
    unknown: &mut Vec<String>,
) -> Result<String, ExpandError> {
    expand_placeholders_inner(value, values, &mut HashSet::new(), unknown)
}

fn expand_placeholders_inner(
    value: &str,
    values: &HashMap<String, String>,
    active: &mut HashSet<String>,
    unknown: &mut Vec<String>,
) -> Result<String, ExpandError> {
    replace_groups(value, "%(", |name| {
        if name.contains(' ') {
            // A missing operand reads as empty, as in uWSGI.
            let result = evaluate(name, |operand| {
                if values.contains_key(&crate::options::normalise(operand)) {
                    lookup(operand, values, active, unknown)
                } else {
                    Ok(String::new())
                }
            })?;
            // Only operators (`%( + )`): uWSGI leaves the text as written.
            return Ok(result.unwrap_or_else(|| format!("%({name})")));
        }
        lookup(name, values, active, unknown)
    })
}

/// One placeholder's value, itself expanded.
fn lookup(
    name: &str,
    values: &HashMap<String, String>,
    active: &mut HashSet<String>,
    unknown: &mut Vec<String>,
) -> Result<String, ExpandError> {
    let key = crate::options::normalise(name);
    let Some(raw) = values.get(&key) else {
        unknown.push(name.to_owned());
        return Ok(format!("%({name})"));
    };
    if !active.insert(key.clone()) {
        return Err(ExpandError::PlaceholderCycle(name.to_owned()));
    }
    let expanded = expand_placeholders_inner(raw, values, active, unknown)?;
    active.remove(&key);
    Ok(expanded)
}

/// The space-separated tokens of a `%(...)` expression (runs of spaces count as one, as
/// uWSGI's `strtok`).
fn tokens(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(' ').filter(|t| !t.is_empty())
}

/// What a token of a `%(...)` expression is, by uWSGI's rules: all digits is a number, `+ - *
/// /` set the next operation, `++`/`--` change the value so far, anything else is a
/// placeholder name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Number(&'a str),
    Op(Op),
    Increment(i64),
    Name(&'a str),
}

/// How the next operand joins the value so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Concat,
    Add,
    Sub,
    Mul,
    Div,
}

impl<'a> Token<'a> {
    fn of(t: &'a str) -> Self {
        match t {
            _ if t.bytes().all(|b| b.is_ascii_digit()) => Self::Number(t),
            "+" => Self::Op(Op::Add),
            "-" => Self::Op(Op::Sub),
            "*" => Self::Op(Op::Mul),
            "/" => Self::Op(Op::Div),
            "++" => Self::Increment(1),
            "--" => Self::Increment(-1),
            name => Self::Name(name),
        }
    }
}

/// uWSGI's placeholder arithmetic (`uwsgi_manage_placeholder`): the tokens are read left to
/// right, no precedence. Each operand (a number, or a name's value) is joined to the value so
/// far by the pending operation, which then resets to concatenation: `%(a b)` is the two
/// values side by side, `%(%k * 2 + 1)` is `(cores * 2) + 1`. Arithmetic reads both sides as
/// `strtoll` does (leading integer, else 0) in 64 bits; dividing by zero gives 0. `None` when
/// there was no operand at all.
fn evaluate(
    expr: &str,
    mut operand_value: impl FnMut(&str) -> Result<String, ExpandError>,
) -> Result<Option<String>, ExpandError> {
    let mut current: Option<String> = None;
    let mut op = Op::Concat;
    for token in tokens(expr) {
        let operand = match Token::of(token) {
            Token::Op(o) => {
                op = o;
                continue;
            }
            Token::Increment(by) => {
                current = current.map(|c| leading_i64(&c).wrapping_add(by).to_string());
                op = Op::Concat;
                continue;
            }
            Token::Number(n) => n.to_owned(),
            Token::Name(name) => operand_value(name)?,
        };
        let (a, b) = (current.as_deref().map_or(0, leading_i64), leading_i64(&operand));
        current = Some(match op {
            Op::Concat => current.unwrap_or_default() + &operand,
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div if b == 0 => "0".to_owned(),
            Op::Div => a.wrapping_div(b).to_string(),
        });
        op = Op::Concat;
    }
    Ok(current)
}

/// C's `strtoll(s, NULL, 10)`: leading whitespace, an optional sign, the digits that follow;
/// 0 when there are none, saturated on overflow.
pub(crate) fn leading_i64(s: &str) -> i64 {
    let s = s.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for d in digits.bytes().take_while(u8::is_ascii_digit) {
        let d = i64::from(d - b'0');
        n = match n.checked_mul(10).and_then(|n| if negative { n.checked_sub(d) } else { n.checked_add(d) }) {
            Some(n) => n,
            None => return if negative { i64::MIN } else { i64::MAX },
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            vars: vec![("HOME".into(), "/home/u".into())],
            cwd: PathBuf::from("/srv"),
            hostname: "box".into(),
            cpu_cores: 2,
        }
    }

    #[test]
    fn magic_variables_refer_to_the_file() {
        let m = FileMagic { path: "/etc/app/site.ini".into(), display: "site.ini".into(), section: "uwsgi".into() };
        assert_eq!(
            expand_magic("%d|%p|%s|%n|%e|%c|%x|%h|%k|%%|%q|%(x)", &m, &env()),
            "/etc/app/|/etc/app/site.ini|site.ini|site|ini|app|site.ini:uwsgi|box|2|%|%q|%(x)"
        );
    }

    #[test]
    fn env_groups_expand_and_unset_ones_stay_as_written() {
        let mut unset = Vec::new();
        assert_eq!(expand_env("$(HOME)/x", &env(), &mut unset), "/home/u/x");
        assert_eq!(expand_env("a$(NOPE)b$(HOME)", &env(), &mut unset), "a$(NOPE)b/home/u");
        assert_eq!(expand_env("$(unterminated", &env(), &mut unset), "$(unterminated");
        assert_eq!(unset, ["NOPE"]);
    }

    /// Each row was checked against uWSGI 2.0.31 (`uwsgi --ini t.ini --get x`) with
    /// `processes = 4`, `name = web` and `three = %(2 + 1)`.
    #[test]
    fn placeholder_arithmetic_follows_uwsgi() {
        let mut v = HashMap::new();
        v.insert("processes".to_owned(), "4".to_owned());
        v.insert("name".to_owned(), "web".to_owned());
        v.insert("three".to_owned(), "%(2 + 1)".to_owned());
        for (expr, want) in [
            ("%(2 * 2)", "4"),
            ("%(2 + 1)", "3"),
            ("%(processes + 1)", "5"),
            ("%(processes * 2 + 1)", "9"),
            ("%(1 + 2 * 3)", "9"),
            ("%(2 - 5)", "-3"),
            ("%(7 / 2)", "3"),
            ("%(7 / 0)", "0"),
            ("%(three ++)", "4"),
            ("%(three --)", "2"),
            ("%(three processes)", "34"),
            ("%(name 2)", "web2"),
            ("%(name + 1)", "1"),
            ("%(missing + 1)", "1"),
            ("%(2 * 1/2)", "0"),
            ("%(2  *   3)", "6"),
            ("%(2 +)", "2"),
            ("%( + )", "%( + )"),
            ("n=%(processes * 2)/x", "n=8/x"),
            ("%(9223372036854775807 + 1)", "-9223372036854775808"),
            // Nested parentheses belong to one group; `(2` and `2)` read as 0, as strtol does.
            ("%((2 * 2) + 1)", "1"),
        ] {
            assert_eq!(expand_placeholders(expr, &v, &mut Vec::new()), Ok(want.to_owned()), "{expr}");
        }
        assert_eq!(placeholder_names("%(base * 2) %(x)"), ["base", "x"]);
    }

    #[test]
    fn leading_i64_reads_like_strtoll() {
        for (s, n) in [("12abc", 12), (" -3", -3), ("+7", 7), ("x", 0), ("", 0), ("99999999999999999999", i64::MAX)] {
            assert_eq!(leading_i64(s), n, "{s:?}");
        }
    }

    #[test]
    fn placeholders_expand_recursively_and_detect_cycles() {
        let mut v = HashMap::new();
        v.insert("a".to_owned(), "%(b)/x".to_owned());
        v.insert("b".to_owned(), "root".to_owned());
        v.insert("c".to_owned(), "%(c)".to_owned());
        let mut unknown = Vec::new();
        assert_eq!(expand_placeholders("%(a)-%(b)", &v, &mut unknown), Ok("root/x-root".into()));
        assert_eq!(expand_placeholders("%(c)", &v, &mut unknown), Err(ExpandError::PlaceholderCycle("c".into())));
        assert!(unknown.is_empty());
        assert_eq!(placeholder_names("%(a) and %(b_c)"), vec!["a".to_owned(), "b_c".to_owned()]);
        // A name that is no option or placeholder stays as written (log-format depends on it).
        assert_eq!(
            expand_placeholders("%(b) %(addr) %(msecs)ms", &v, &mut unknown),
            Ok("root %(addr) %(msecs)ms".into())
        );
        assert_eq!(unknown, ["addr", "msecs"]);
    }
}
