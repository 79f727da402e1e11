//! Value expansion, in uWSGI's order: magic variables (`%d`, `%n`, ... while a file is read,
//! referring to that file), `$(VAR)` environment variables, `@(file)` file contents, and after
//! all sources are assembled `%(name)` placeholders. Reads only `@(file)` files.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::Environment;

/// Why a value couldn't be expanded; the caller adds the origin and option name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// `$(VAR)` with `VAR` unset.
    UndefinedEnv(String),
    /// `@(file)` unreadable: (path as written, reason).
    UnreadableFile(String, String),
    /// `%(name)` with no such option, custom key or `set-ph`.
    UndefinedPlaceholder(String),
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
        let Some(end) = after.find(')') else { break };
        out.push_str(&rest[..start]);
        out.push_str(&lookup(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `$(VAR)` → the environment variable's value.
pub(crate) fn expand_env(value: &str, env: &Environment) -> Result<String, ExpandError> {
    replace_groups(value, "$(", |name| {
        env.var(name).map(str::to_owned).ok_or_else(|| ExpandError::UndefinedEnv(name.to_owned()))
    })
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

/// The names used as `%(name)` in `value`.
pub(crate) fn placeholder_names(value: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = replace_groups(value, "%(", |n| {
        names.push(n.to_owned());
        Ok(String::new())
    });
    names
}

/// `%(name)` → the placeholder's value, itself expanded (with a cycle check).
pub(crate) fn expand_placeholders(value: &str, values: &HashMap<String, String>) -> Result<String, ExpandError> {
    expand_placeholders_inner(value, values, &mut HashSet::new(), false)
}

/// Like `expand_placeholders`, but a `%(name)` naming no option or placeholder stays as
/// written, as uWSGI leaves it: `log-format`'s `%(addr)`, `%(status)`... depend on that.
pub(crate) fn expand_known_placeholders(value: &str, values: &HashMap<String, String>) -> Result<String, ExpandError> {
    expand_placeholders_inner(value, values, &mut HashSet::new(), true)
}

fn expand_placeholders_inner(
    value: &str,
    values: &HashMap<String, String>,
    active: &mut HashSet<String>,
    keep_unknown: bool,
) -> Result<String, ExpandError> {
    replace_groups(value, "%(", |name| {
        let key = crate::options::normalise(name);
        let Some(raw) = values.get(&key) else {
            return if keep_unknown {
                Ok(format!("%({name})"))
            } else {
                Err(ExpandError::UndefinedPlaceholder(name.to_owned()))
            };
        };
        if !active.insert(key.clone()) {
            return Err(ExpandError::PlaceholderCycle(name.to_owned()));
        }
        let expanded = expand_placeholders_inner(raw, values, active, keep_unknown)?;
        active.remove(&key);
        Ok(expanded)
    })
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
    fn env_groups_expand_or_name_the_missing_variable() {
        assert_eq!(expand_env("$(HOME)/x", &env()), Ok("/home/u/x".into()));
        assert_eq!(expand_env("$(NOPE)", &env()), Err(ExpandError::UndefinedEnv("NOPE".into())));
        assert_eq!(expand_env("$(unterminated", &env()), Ok("$(unterminated".into()));
    }

    #[test]
    fn placeholders_expand_recursively_and_detect_cycles() {
        let mut v = HashMap::new();
        v.insert("a".to_owned(), "%(b)/x".to_owned());
        v.insert("b".to_owned(), "root".to_owned());
        v.insert("c".to_owned(), "%(c)".to_owned());
        assert_eq!(expand_placeholders("%(a)-%(b)", &v), Ok("root/x-root".into()));
        assert_eq!(expand_placeholders("%(c)", &v), Err(ExpandError::PlaceholderCycle("c".into())));
        assert_eq!(expand_placeholders("%(d)", &v), Err(ExpandError::UndefinedPlaceholder("d".into())));
        assert_eq!(placeholder_names("%(a) and %(b_c)"), vec!["a".to_owned(), "b_c".to_owned()]);
        assert_eq!(expand_known_placeholders("%(b) %(addr) %(msecs)ms", &v), Ok("root %(addr) %(msecs)ms".into()));
    }
}
