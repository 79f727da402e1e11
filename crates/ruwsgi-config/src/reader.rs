//! Config file reader: ini (uWSGI's dialect), JSON and YAML files become `Entry` lists.
//! Inclusions (`ini =`, `include =`, `json =`, `yaml =`) are spliced in place, `for`/`if-*`
//! blocks are unrolled, and magic variables, `$(VAR)` and `@(file)` are expanded line by line.
//! `%(name)` placeholders are left for `resolve`, which sees every source.
//!
//! The only I/O is reading config files and `@(file)` files, and `Path::exists` checks for
//! `if-exists`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::expand::{self, ExpandError, FileMagic};
use crate::{ConfigError, Entry, Environment, Origin};

/// The format of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Ini,
    Json,
    Yaml,
}

impl Format {
    /// By extension, for positional arguments and `include =`.
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        let ext = Path::new(path).extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "ini" => Some(Self::Ini),
            "json" | "js" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }

    /// The format an including option asks for.
    pub(crate) fn for_option(name: &str, path: &str) -> Self {
        match name {
            "json" => Self::Json,
            "yaml" => Self::Yaml,
            "include" => Self::from_path(path).unwrap_or(Self::Ini),
            _ => Self::Ini,
        }
    }
}

/// One `key = value` line before expansion.
#[derive(Debug, Clone)]
struct Line {
    number: Option<usize>,
    key: String,
    value: String,
}

/// The file a line belongs to.
struct FileCtx {
    magic: FileMagic,
    dir: PathBuf,
}

/// Reads config files into entries. One per `load`.
pub(crate) struct Reader<'e> {
    env: &'e Environment,
    /// Canonical paths and sections being read, innermost last: a repeat is a cycle. The
    /// section counts: `ini = :prod` reading another section of the same file is the idiom.
    stack: Vec<(PathBuf, String)>,
    /// The last file read and its name as written, for `ini = :section`.
    last_file: Option<(PathBuf, String)>,
    /// Everything read so far, in order.
    pub(crate) entries: Vec<Entry>,
    /// No file system at all (`parse_ini_text`): inclusions and `@(file)` are errors and
    /// `if-exists`/`if-file`/`if-dir` are false.
    pure: bool,
    /// Lines handled so far, `for` iterations included (see `MAX_STEPS`).
    steps: usize,
    /// One `getting INI configuration from FILE` line per file read, in order, as uWSGI
    /// logs them before its banner.
    pub(crate) files_read: Vec<String>,
}

/// Most lines one load may handle, `for` iterations counted: nested `for` blocks multiply,
/// and a config that unrolls past this is a mistake, not a deployment.
const MAX_STEPS: usize = 100_000;

impl<'e> Reader<'e> {
    pub(crate) fn new(env: &'e Environment) -> Self {
        Self {
            env,
            stack: Vec::new(),
            last_file: None,
            entries: Vec::new(),
            pure: false,
            steps: 0,
            files_read: Vec::new(),
        }
    }

    /// Reads `text` as the ini file `name` without touching the file system.
    pub(crate) fn read_ini_text(&mut self, text: &str, name: &str) -> Result<(), ConfigError> {
        self.pure = true;
        let section = "uwsgi".to_owned();
        let path = self.env.cwd.join(name);
        let ctx = FileCtx {
            dir: self.env.cwd.clone(),
            magic: FileMagic { path: path.clone(), display: name.to_owned(), section: section.clone() },
        };
        self.stack.push((path, section.clone()));
        let result = self.process(&ini_lines(text, &section), &ctx, None);
        self.stack.pop();
        result
    }

    /// Reads `spec` (`file`, `file:section` or `:section`) given to option `name` at `origin`.
    /// `dir` is the including file's directory, if any.
    pub(crate) fn read(
        &mut self,
        name: &str,
        spec: &str,
        format: Option<Format>,
        origin: &Origin,
        dir: Option<&Path>,
    ) -> Result<(), ConfigError> {
        let (file, section) = split_section(spec);
        let unreadable = |reason: String| ConfigError::UnreadableFile {
            origin: origin.clone(),
            name: name.to_owned(),
            path: spec.to_owned(),
            reason,
        };
        let (path, display) = if file.is_empty() {
            // `ini = :section`: another section of the last file read.
            self.last_file.clone().ok_or_else(|| unreadable("no file was read before".to_owned()))?
        } else {
            (expand::resolve_path(file, self.env, dir), file.to_owned())
        };
        if self.pure {
            return Err(unreadable("inclusions are not read here".to_owned()));
        }
        let format = format.unwrap_or_else(|| Format::for_option(name, &display));
        let section = section.unwrap_or("uwsgi").to_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| unreadable(expand::io_reason(&e)))?;
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if self.stack.iter().any(|(p, s)| *p == canonical && *s == section) {
            return Err(ConfigError::IncludeCycle {
                origin: origin.clone(),
                name: name.to_owned(),
                path: spec.to_owned(),
            });
        }
        let kind = match format {
            Format::Ini => "INI",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        };
        self.files_read.push(format!("[ruwsgi] getting {kind} configuration from {spec}"));
        let lines = match format {
            Format::Ini => ini_lines(&text, &section),
            Format::Json => {
                let doc: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| unreadable(format!("invalid JSON: {e}")))?;
                structured_lines(&json_to_tree(&doc), &section).map_err(unreadable)?
            }
            Format::Yaml => {
                let doc: serde_norway::Value =
                    serde_norway::from_str(&text).map_err(|e| unreadable(format!("invalid YAML: {e}")))?;
                structured_lines(&yaml_to_tree(&doc), &section).map_err(unreadable)?
            }
        };
        let abs = if canonical.is_absolute() { canonical.clone() } else { self.env.cwd.join(&canonical) };
        let ctx = FileCtx {
            dir: abs.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf),
            magic: FileMagic { path: abs, display: display.clone(), section },
        };
        self.last_file = Some((path, display));
        self.stack.push((canonical, ctx.magic.section.clone()));
        let result = self.process(&lines, &ctx, None);
        self.stack.pop();
        result
    }

    /// Handles `lines` in order; `context` is the `%(_)` value inside `for`/`if-*` blocks.
    fn process(&mut self, lines: &[Line], ctx: &FileCtx, context: Option<&str>) -> Result<(), ConfigError> {
        let mut i = 0;
        while i < lines.len() {
            let l = &lines[i];
            let key = crate::options::normalise(&l.key);
            let origin = Origin::File { file: ctx.magic.display.clone(), line: l.number };
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(ConfigError::Syntax {
                    origin,
                    message: format!("config unrolls to more than {MAX_STEPS} lines (nested \"for\" blocks?)"),
                });
            }
            // uWSGI's ini has no escapes, so a control character (tab aside) in a line is a
            // corrupt file; it is named by code point, never echoed (it would break the log).
            if l.number.is_some() {
                if let Some(c) = l.key.chars().chain(l.value.chars()).find(|&c| c.is_control() && c != '\t') {
                    return Err(ConfigError::Syntax {
                        origin,
                        message: format!("control character U+{:04X} in the line", u32::from(c)),
                    });
                }
            }
            if key == "endfor" || key == "endif" {
                return Err(ConfigError::Syntax { origin, message: format!("\"{key}\" without a matching block") });
            }
            if key == "for" || is_if(&key) {
                let end = block_end(lines, i, &key).ok_or_else(|| ConfigError::Syntax {
                    origin: origin.clone(),
                    message: format!("\"{key}\" without \"{}\"", if key == "for" { "endfor" } else { "endif" }),
                })?;
                let arg = self.expand_now(&key, &l.value, ctx, context, &origin)?;
                let body = &lines[i + 1..end];
                if key == "for" {
                    for item in arg.split_whitespace() {
                        self.process(body, ctx, Some(item))?;
                    }
                } else if let Some(value) = self.condition(&key, &arg) {
                    self.process(body, ctx, Some(&value))?;
                }
                i = end + 1;
                continue;
            }
            let value = self.expand_line(&key, &l.value, ctx, context, &origin)?;
            if matches!(crate::options::find(&key), Some(o) if o.kind == crate::options::Kind::ConfigFile) {
                let name = crate::options::find(&key).map_or("ini", |o| o.name);
                let format = Format::for_option(name, &value);
                self.read(name, &value, Some(format), &origin, Some(&ctx.dir))?;
            } else {
                self.entries.push(Entry { key: l.key.clone(), value, origin });
            }
            i += 1;
        }
        Ok(())
    }

    /// Magic variables, `%(_)`, `$(VAR)` and `@(file)`: everything known while reading.
    fn expand_line(
        &self,
        key: &str,
        value: &str,
        ctx: &FileCtx,
        context: Option<&str>,
        origin: &Origin,
    ) -> Result<String, ConfigError> {
        let value = match context {
            Some(c) => value.replace("%(_)", c),
            None => value.to_owned(),
        };
        let value = expand::expand_magic(&value, &ctx.magic, self.env);
        let value = expand::expand_env(&value, self.env).map_err(|e| expand_error(e, key, origin))?;
        if self.pure {
            return expand::refuse_files(&value).map_err(|e| expand_error(e, key, origin));
        }
        expand::expand_files(&value, self.env, Some(&ctx.dir)).map_err(|e| expand_error(e, key, origin))
    }

    /// A `for`/`if-*` argument must be known now, so its `%(name)` placeholders are expanded
    /// against the options read so far (the other values wait until everything is read).
    fn expand_now(
        &self,
        key: &str,
        value: &str,
        ctx: &FileCtx,
        context: Option<&str>,
        origin: &Origin,
    ) -> Result<String, ConfigError> {
        let value = self.expand_line(key, value, ctx, context, origin)?;
        if !value.contains("%(") {
            return Ok(value);
        }
        let mut known = HashMap::new();
        for e in &self.entries {
            known.insert(crate::options::normalise(&e.key), e.value.clone());
            if let Some(o) = crate::options::find(&e.key) {
                known.insert(o.name.to_owned(), e.value.clone());
            }
        }
        expand::expand_placeholders(&value, &known).map_err(|e| expand_error(e, key, origin))
    }

    /// Whether an `if-*` block is kept, and its `%(_)` value when it is.
    fn condition(&self, key: &str, arg: &str) -> Option<String> {
        let (negated, test) = match key.strip_prefix("if-not-") {
            Some(t) => (true, t),
            None => (false, key.trim_start_matches("if-")),
        };
        let path = || expand::resolve_path(arg, self.env, None);
        let held = match test {
            // `VAR` is true when set; `VAR=value` when set to exactly that.
            "env" => match arg.split_once('=') {
                Some((var, want)) => self.env.var(var) == Some(want),
                None => self.env.var(arg).is_some(),
            },
            "exists" | "file" | "dir" if self.pure => false,
            "exists" => path().exists(),
            "file" => path().is_file(),
            "dir" => path().is_dir(),
            "opt" => {
                let (name, want) = arg.split_once('=').map_or((arg, None), |(n, v)| (n, Some(v)));
                let name =
                    crate::options::find(name).map_or_else(|| crate::options::normalise(name), |o| o.name.to_owned());
                self.entries
                    .iter()
                    .rev()
                    .find(|e| {
                        crate::options::find(&e.key)
                            .map_or_else(|| crate::options::normalise(&e.key), |o| o.name.to_owned())
                            == name
                    })
                    .is_some_and(|e| want.is_none_or(|w| e.value == w))
            }
            _ => false,
        };
        if held == negated {
            return None;
        }
        Some(match (test, negated) {
            ("env", false) => self.env.var(arg.split_once('=').map_or(arg, |(v, _)| v)).unwrap_or_default().to_owned(),
            _ => arg.to_owned(),
        })
    }
}

fn is_if(key: &str) -> bool {
    key.starts_with("if-")
}

/// Index of the `endfor`/`endif` closing the block opened at `start`, counting nesting.
fn block_end(lines: &[Line], start: usize, key: &str) -> Option<usize> {
    let opens = |k: &str| if key == "for" { k == "for" } else { is_if(k) };
    let closer = if key == "for" { "endfor" } else { "endif" };
    let mut depth = 0usize;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        let k = crate::options::normalise(&l.key);
        if opens(&k) {
            depth += 1;
        } else if k == closer {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

pub(crate) fn expand_error(e: ExpandError, name: &str, origin: &Origin) -> ConfigError {
    let (origin, name) = (origin.clone(), name.to_owned());
    match e {
        ExpandError::UndefinedEnv(var) => ConfigError::UndefinedEnv { origin, name, var },
        ExpandError::UnreadableFile(path, reason) => ConfigError::UnreadableFile { origin, name, path, reason },
        ExpandError::UndefinedPlaceholder(placeholder) => {
            ConfigError::UndefinedPlaceholder { origin, name, placeholder }
        }
        ExpandError::PlaceholderCycle(placeholder) => ConfigError::PlaceholderCycle { origin, name, placeholder },
    }
}

/// `file:section` → (`file`, `section`). A colon followed by a `/` belongs to the path.
fn split_section(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((file, section)) if !section.contains('/') && !section.is_empty() => (file, Some(section)),
        _ => (spec, None),
    }
}

/// The lines of `section` in uWSGI's ini dialect: whole-line `;`/`#` comments, no quoting,
/// key and value split at the first `=` and trimmed, a bare key meaning `true`. A section
/// may appear several times; all its parts are read in order.
fn ini_lines(text: &str, section: &str) -> Vec<Line> {
    let mut current: Option<&str> = None;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim());
            continue;
        }
        if current != Some(section) {
            continue;
        }
        let (key, value) = line.split_once('=').map_or((line, "true"), |(k, v)| (k.trim(), v.trim()));
        out.push(Line { number: Some(n + 1), key: key.to_owned(), value: value.to_owned() });
    }
    out
}

/// JSON and YAML reduced to what uWSGI reads from them: named sections of scalar values or
/// arrays of scalars (a repeated key).
enum Tree {
    Scalar(String),
    List(Vec<Tree>),
    Map(Vec<(String, Tree)>),
    Null,
}

fn json_to_tree(v: &serde_json::Value) -> Tree {
    use serde_json::Value as J;
    match v {
        J::Null => Tree::Null,
        J::Bool(b) => Tree::Scalar(b.to_string()),
        J::Number(n) => Tree::Scalar(n.to_string()),
        J::String(s) => Tree::Scalar(s.clone()),
        J::Array(a) => Tree::List(a.iter().map(json_to_tree).collect()),
        J::Object(o) => Tree::Map(o.iter().map(|(k, v)| (k.clone(), json_to_tree(v))).collect()),
    }
}

fn yaml_to_tree(v: &serde_norway::Value) -> Tree {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Tree::Null,
        Y::Bool(b) => Tree::Scalar(b.to_string()),
        Y::Number(n) => Tree::Scalar(n.to_string()),
        Y::String(s) => Tree::Scalar(s.clone()),
        Y::Sequence(a) => Tree::List(a.iter().map(yaml_to_tree).collect()),
        Y::Mapping(m) => Tree::Map(
            m.iter()
                .map(|(k, v)| {
                    let key = match yaml_to_tree(k) {
                        Tree::Scalar(s) => s,
                        _ => String::new(),
                    };
                    (key, yaml_to_tree(v))
                })
                .collect(),
        ),
        Y::Tagged(t) => yaml_to_tree(&t.value),
    }
}

/// The lines of `section` (a top-level key) of a JSON/YAML document. A missing section reads
/// as empty, as a missing ini section does (uWSGI only warns).
fn structured_lines(doc: &Tree, section: &str) -> Result<Vec<Line>, String> {
    let Tree::Map(top) = doc else {
        return Err("expected an object at the top level".to_owned());
    };
    let Some((_, body)) = top.iter().find(|(k, _)| k == section) else {
        return Ok(Vec::new());
    };
    let Tree::Map(items) = body else {
        return Err(format!("expected \"{section}\" to be an object"));
    };
    let mut out = Vec::new();
    for (key, value) in items {
        let line = |value: String| Line { number: None, key: key.clone(), value };
        match value {
            Tree::Scalar(s) => out.push(line(s.clone())),
            // A null value is a bare key, like `master` alone on an ini line.
            Tree::Null => out.push(line("true".to_owned())),
            Tree::List(values) => {
                for v in values {
                    match v {
                        Tree::Scalar(s) => out.push(line(s.clone())),
                        _ => return Err(format!("\"{key}\": expected a list of strings, numbers or booleans")),
                    }
                }
            }
            Tree::Map(_) => return Err(format!("\"{key}\": expected a string, number, boolean or list")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_lines_follow_uwsgi_rules() {
        let text =
            "; c\n# c\n[other]\nx = 1\n[uwsgi]\nmaster\nenv = A=b=c\n  socket =  :1 ; not a comment\n[uwsgi]\nk=v\n";
        let lines: Vec<_> = ini_lines(text, "uwsgi").into_iter().map(|l| (l.number, l.key, l.value)).collect();
        assert_eq!(
            lines,
            vec![
                (Some(6), "master".into(), "true".into()),
                (Some(7), "env".into(), "A=b=c".into()),
                (Some(8), "socket".into(), ":1 ; not a comment".into()),
                (Some(10), "k".into(), "v".into()),
            ]
        );
    }

    #[test]
    fn splits_section_suffix_but_not_paths() {
        assert_eq!(split_section("a.ini:prod"), ("a.ini", Some("prod")));
        assert_eq!(split_section("a.ini"), ("a.ini", None));
        assert_eq!(split_section(":prod"), ("", Some("prod")));
        assert_eq!(split_section("c:/x.ini"), ("c:/x.ini", None));
    }
}
