//! Config file reader: ini (uWSGI's dialect), JSON and YAML files become `Entry` lists.
//! Inclusions (`ini =`, `include =`, `json =`, `yaml =`) are spliced in place, `for*`/`if-*`
//! blocks are unrolled, and magic variables, `$(VAR)` and `@(file)` are expanded line by line.
//! `%(name)` placeholders are left for `resolve`, which sees every source.
//!
//! The only I/O is reading config files, `@(file)` and `for-readline` files, `for-glob`
//! directory listings, and `Path::exists` checks for `if-exists`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::expand::{self, ExpandError, FileMagic};
use crate::options::Kind;
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
    /// The first value of each name in `entries`, under the key as written (`_` as `-`) and
    /// under the option's uWSGI name: what `if-opt` and block arguments' `%(name)` see, as
    /// uWSGI's lookup returns the first value. Kept as entries are read so a long config
    /// isn't rescanned for every block.
    first_values: HashMap<String, String>,
    /// No file system at all (`parse_ini_text`): inclusions and `@(file)` are errors and
    /// `if-exists`/`if-file`/`if-dir` are false.
    pure: bool,
    /// Lines handled so far, `for` iterations included (see `MAX_STEPS`).
    steps: usize,
    /// One `getting INI configuration from FILE` line per file read, in order, as uWSGI
    /// logs them before its banner.
    pub(crate) files_read: Vec<String>,
    /// One-line warnings for the start-up log (unset `$(VAR)`, unbalanced blocks...).
    pub(crate) warnings: Vec<String>,
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
            first_values: HashMap::new(),
            pure: false,
            steps: 0,
            warnings: Vec::new(),
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
            self.step(&origin)?;
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
            match block_role(&key) {
                Some(Role::Close) => {
                    // uWSGI: `endif`/`endfor` are no-op options outside a block.
                    self.warn(format!("{origin}: \"{}\" without a block to end, ignored", l.key));
                    i += 1;
                    continue;
                }
                Some(Role::Open(name)) => {
                    let end = block_end(lines, i).unwrap_or_else(|| {
                        // uWSGI keeps a block open until a closing key, whatever follows.
                        self.warn(format!(
                            "{origin}: \"{}\" without \"{}\": the block runs to the end of the file",
                            l.key,
                            if name.starts_with("for") { "endfor" } else { "endif" }
                        ));
                        lines.len()
                    });
                    let arg = self.expand_now(&key, &l.value, ctx, context, &origin)?;
                    let body = &lines[i + 1..end];
                    for item in self.block_items(name, &l.key, &arg, ctx, &origin)? {
                        self.step(&origin)?;
                        self.process(body, ctx, Some(&item))?;
                    }
                    i = end + 1;
                    continue;
                }
                None => {}
            }
            let value = self.expand_line(&key, &l.value, ctx, context, &origin)?;
            if matches!(crate::options::find(&key), Some(o) if o.kind == Kind::ConfigFile) {
                let name = crate::options::find(&key).map_or("ini", |o| o.name);
                let format = Format::for_option(name, &value);
                self.read(name, &value, Some(format), &origin, Some(&ctx.dir))?;
            } else {
                self.first_values.entry(crate::options::normalise(&l.key)).or_insert_with(|| value.clone());
                if let Some(o) = crate::options::find(&key) {
                    self.first_values.entry(o.name.to_owned()).or_insert_with(|| value.clone());
                }
                self.entries.push(Entry { key: l.key.clone(), value, origin });
            }
            i += 1;
        }
        Ok(())
    }

    /// Counts one line or `for` iteration against `MAX_STEPS`.
    fn step(&mut self, origin: &Origin) -> Result<(), ConfigError> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(ConfigError::Syntax {
                origin: origin.clone(),
                message: format!("config unrolls to more than {MAX_STEPS} lines (nested \"for\" blocks?)"),
            });
        }
        Ok(())
    }

    /// Records a warning once (a line inside a `for` block is read once per item).
    fn warn(&mut self, warning: String) {
        if !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }

    /// Magic variables, `%(_)`, `$(VAR)` and `@(file)`: everything known while reading.
    fn expand_line(
        &mut self,
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
        let mut unset = Vec::new();
        let value = expand::expand_env(&value, self.env, &mut unset);
        for var in unset {
            self.warn(format!(
                "{origin}: {key}: environment variable {var} is not set, $({var}) is kept as written (as uWSGI does)"
            ));
        }
        if self.pure {
            return expand::refuse_files(&value).map_err(|e| expand_error(e, key, origin));
        }
        expand::expand_files(&value, self.env, Some(&ctx.dir)).map_err(|e| expand_error(e, key, origin))
    }

    /// A `for`/`if-*` argument must be known now, so its `%(name)` placeholders are expanded
    /// against the options read so far (the other values wait until everything is read).
    /// Differs from uWSGI: uWSGI 2.0 tests the argument as written, before any `$(VAR)` or
    /// `%(name)` is expanded, so `if-exists = $(HOME)/x` never holds there.
    fn expand_now(
        &mut self,
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
        let mut unknown = Vec::new();
        let value = expand::expand_placeholders(&value, &self.first_values, &mut unknown)
            .map_err(|e| expand_error(e, key, origin))?;
        for name in unknown {
            self.warn(undefined_placeholder(origin, key, &name));
        }
        Ok(value)
    }

    /// The `%(_)` values a block's body is read with: one per `for*` item, one for an `if-*`
    /// that holds, none for one that doesn't. `written` is the key as in the file.
    fn block_items(
        &mut self,
        name: &str,
        written: &str,
        arg: &str,
        ctx: &FileCtx,
        origin: &Origin,
    ) -> Result<Vec<String>, ConfigError> {
        Ok(match name {
            // uWSGI splits at spaces only (`strtok` on " ").
            "for" => arg.split(' ').filter(|t| !t.is_empty()).map(str::to_owned).collect(),
            // 1 to `atoi(arg)`; bounded so a huge count fails in `step`, not in allocation.
            "for-times" => (1..=expand::leading_i64(arg).max(0)).take(MAX_STEPS + 1).map(|n| n.to_string()).collect(),
            "for-glob" => self.glob(arg, ctx),
            "for-readline" => {
                let path = expand::resolve_path(arg, self.env, Some(&ctx.dir));
                let text = if self.pure {
                    Err("files are not read here".to_owned())
                } else {
                    std::fs::read_to_string(&path).map_err(|e| expand::io_reason(&e))
                };
                match text {
                    // Each line without its line end, empty ones included (uWSGI's `fgets` +
                    // `uwsgi_chomp`).
                    Ok(text) => text.lines().map(|l| l.trim_end_matches(['\r', '\n']).to_owned()).collect(),
                    Err(reason) => {
                        // uWSGI logs the open error and skips the block.
                        self.warn(format!("{}: {reason}, the block is skipped", origin.subject(written, arg)));
                        Vec::new()
                    }
                }
            }
            _ => self.condition(name, written, arg, origin)?.into_iter().collect(),
        })
    }

    /// `for-glob`: the paths matching `pattern`, sorted, directories with a trailing `/`, or
    /// the pattern itself when nothing matches (uWSGI's `glob(3)` with `GLOB_MARK |
    /// GLOB_NOCHECK`). A relative pattern is matched in the working directory and gives
    /// relative paths; if nothing matches there, in the config file's directory (as relative
    /// includes are found).
    fn glob(&self, pattern: &str, ctx: &FileCtx) -> Vec<String> {
        if self.pure {
            return vec![pattern.to_owned()];
        }
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        let matches = |base: Option<&Path>| -> Vec<String> {
            let full = match base.and_then(Path::to_str) {
                Some(b) => format!("{}/{pattern}", glob::Pattern::escape(b.trim_end_matches('/'))),
                None => pattern.to_owned(),
            };
            let Ok(paths) = glob::glob_with(&full, options) else { return Vec::new() };
            paths
                .filter_map(Result::ok)
                .map(|p| {
                    let mut shown = match base {
                        Some(b) if b == self.env.cwd.as_path() => {
                            p.strip_prefix(b).unwrap_or(&p).to_string_lossy().into_owned()
                        }
                        _ => p.to_string_lossy().into_owned(),
                    };
                    if p.is_dir() && !shown.ends_with('/') {
                        shown.push('/');
                    }
                    shown
                })
                .collect()
        };
        let found = if Path::new(pattern).is_absolute() {
            matches(None)
        } else {
            let here = matches(Some(&self.env.cwd));
            if here.is_empty() {
                matches(Some(&ctx.dir))
            } else {
                here
            }
        };
        if found.is_empty() {
            vec![pattern.to_owned()]
        } else {
            found
        }
    }

    /// Whether the `if-*` test `name` holds for `arg`, and its `%(_)` value when it does:
    /// the variable's or option's value for `if-env`/`if-opt` (as uWSGI), else the argument.
    fn condition(&self, name: &str, written: &str, arg: &str, origin: &Origin) -> Result<Option<String>, ConfigError> {
        let (negated, test) = match name.strip_prefix("if-not-") {
            Some(t) => (true, t),
            None => (false, name.trim_start_matches("if-")),
        };
        let path = || expand::resolve_path(arg, self.env, None);
        // `NAME` holds when set; `NAME=value` when set to exactly that.
        let set_to = |found: Option<&str>, want: Option<&str>| found.is_some_and(|f| want.is_none_or(|w| f == w));
        let (name_part, want) = arg.split_once('=').map_or((arg, None), |(n, v)| (n, Some(v)));
        let (held, value) = match test {
            "env" => {
                let found = self.env.var(name_part);
                (set_to(found, want), found)
            }
            "opt" => {
                let found = self.first_value(name_part);
                (set_to(found, want), found)
            }
            "exists" | "file" | "dir" if self.pure => (false, None),
            "exists" => (path().exists(), None),
            "file" => (path().is_file(), None),
            "dir" => (path().is_dir(), None),
            // A re-executed master (see `RELOADED_ENV`) reads its config again.
            "reload" => (self.env.var(crate::RELOADED_ENV).is_some(), None),
            "hostname" => (self.env.hostname == arg, None),
            "hostname-match" => {
                // Differs from uWSGI: an invalid regular expression is an error; uWSGI
                // counts it as a match.
                let re = regex::Regex::new(arg).map_err(|_| ConfigError::BadValue {
                    origin: origin.clone(),
                    name: written.to_owned(),
                    value: arg.to_owned(),
                    expected: "expected a regular expression".to_owned(),
                })?;
                (re.is_match(&self.env.hostname), None)
            }
            "plugin" => (crate::resolve::is_builtin_plugin(arg), None),
            _ => {
                return Err(ConfigError::Syntax {
                    origin: origin.clone(),
                    message: format!("\"{written}\" is not supported"),
                })
            }
        };
        if held == negated {
            return Ok(None);
        }
        Ok(Some(value.unwrap_or(arg).to_owned()))
    }

    /// The first value read so far for option or custom key `name` (uWSGI's
    /// `uwsgi_get_exported_opt`), aliases and `_` resolved.
    fn first_value(&self, name: &str) -> Option<&str> {
        let key = crate::options::find(name).map_or_else(|| crate::options::normalise(name), |o| o.name.to_owned());
        self.first_values.get(&key).map(String::as_str)
    }
}

/// What a config-logic key does to the block structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// `for`, `for-glob`, `for-readline`, `for-times`, `if-*`: its canonical name.
    Open(&'static str),
    /// `endif`, `endfor`, their aliases, and `end` (which uWSGI also accepts).
    Close,
}

fn block_role(key: &str) -> Option<Role> {
    if key == "end" {
        return Some(Role::Close);
    }
    let spec = crate::options::find(key).filter(|o| o.kind == Kind::Logic)?;
    match spec.name {
        "endif" | "endfor" => Some(Role::Close),
        name if name.starts_with("for") || name.starts_with("if-") => Some(Role::Open(name)),
        _ => None,
    }
}

/// Index of the closing key of the block opened at `start`, counting nesting. Any closing key
/// ends the innermost block, as in uWSGI where `endif` also ends a `for`.
/// Differs from uWSGI: blocks nest; uWSGI 2.0 exits with "recursive logic in options is not
/// supported" when a block opens inside a block that holds.
fn block_end(lines: &[Line], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        match block_role(&crate::options::normalise(&l.key)) {
            Some(Role::Open(_)) => depth += 1,
            Some(Role::Close) if depth == 0 => return Some(i),
            Some(Role::Close) => depth -= 1,
            None => {}
        }
    }
    None
}

pub(crate) fn expand_error(e: ExpandError, name: &str, origin: &Origin) -> ConfigError {
    let (origin, name) = (origin.clone(), name.to_owned());
    match e {
        ExpandError::UnreadableFile(path, reason) => ConfigError::UnreadableFile { origin, name, path, reason },
        ExpandError::PlaceholderCycle(placeholder) => ConfigError::PlaceholderCycle { origin, name, placeholder },
    }
}

/// The warning for a `%(name)` that names no option or placeholder (kept as written).
pub(crate) fn undefined_placeholder(origin: &Origin, key: &str, name: &str) -> String {
    format!("{origin}: {key}: placeholder %({name}) is not defined, it is kept as written (as uWSGI does)")
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

    fn env(vars: &[(&str, &str)], cwd: &Path) -> Environment {
        Environment {
            vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            cwd: cwd.to_path_buf(),
            hostname: "web1.example.com".into(),
            cpu_cores: 2,
        }
    }

    /// Reads `body` as the `[uwsgi]` section of `t.ini` without files; returns `key=value`
    /// lines and the warnings.
    fn read(body: &str, vars: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
        let env = env(vars, Path::new("/"));
        let mut r = Reader::new(&env);
        r.read_ini_text(&format!("[uwsgi]\n{body}"), "t.ini").unwrap();
        (r.entries.iter().map(|e| format!("{}={}", e.key, e.value)).collect(), r.warnings)
    }

    #[test]
    fn for_blocks_repeat_with_each_item() {
        let (got, _) =
            read("for = a  b\nx = %(_)\nendfor\nfor-times = 3\nn = %(_)\nend-for\nfor-times = 0\nz = 1\nend\n", &[]);
        assert_eq!(got, ["x=a", "x=b", "n=1", "n=2", "n=3"]);
    }

    #[test]
    fn if_blocks_test_as_uwsgi_and_give_their_value() {
        let vars = [("DEPLOY", "prod"), (crate::RELOADED_ENV, "1")];
        let text = "if-env = DEPLOY\na = %(_)\nendif\nifenv = DEPLOY=dev\nb = 1\nendif\n\
                    if-not-env = DEPLOY=dev\nc = %(_)\nendif\nif-not-env = NOPE\nd = %(_)\nendif\n\
                    if-opt = a\ne = %(_)\nendif\nif-not-opt = a=prod\nf = 1\nend-if\n\
                    if-hostname = web1.example.com\ng = %(_)\nendif\nif-not-hostname = web1\nh = 1\nendif\n\
                    if-hostname-match = ^web[0-9]\\.\ni = 1\nendif\nif-not-hostname-match = ^db\nj = 1\nendif\n\
                    if-reload\nk = 1\nendif\nif-not-reload\nl = 1\nendif\n\
                    if-plugin = python3\nm = %(_)\nendif\nif-not-plugin = php\nn = 1\nendif\n\
                    if-exists = /\no = 1\nendif\nif-not-dir = /\np = 1\nendif\n";
        let (got, warnings) = read(text, &vars);
        assert_eq!(
            got,
            [
                "a=prod",
                "c=prod",
                "d=NOPE",
                "e=prod",
                "g=web1.example.com",
                "h=1",
                "i=1",
                "j=1",
                "k=1",
                "m=python3",
                "n=1",
                "p=1"
            ]
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let (got, _) = read("if-reload\nk = 1\nendif\nif-not-reload\nl = 1\nendif\n", &[]);
        assert_eq!(got, ["l=1"]);
    }

    #[test]
    fn any_closing_key_ends_the_innermost_block_and_blocks_nest() {
        let text = "for = a b\nif-env = X\nx = %(_)\nend\ny = %(_)\nendif\nz = 1\n";
        let (got, _) = read(text, &[("X", "on")]);
        assert_eq!(got, ["x=on", "y=a", "x=on", "y=b", "z=1"]);
    }

    #[test]
    fn unbalanced_blocks_warn_instead_of_failing() {
        let (got, warnings) = read("endif\nfor = a b\nx = %(_)\n", &[]);
        assert_eq!(got, ["x=a", "x=b"]);
        assert_eq!(
            warnings,
            [
                "t.ini:2: \"endif\" without a block to end, ignored",
                "t.ini:3: \"for\" without \"endfor\": the block runs to the end of the file",
            ]
        );
    }

    #[test]
    fn unset_env_vars_stay_as_written_with_one_warning() {
        let (got, warnings) = read("for = a b\nx = $(NOPE)/%(_)\nendfor\n", &[]);
        assert_eq!(got, ["x=$(NOPE)/a", "x=$(NOPE)/b"]);
        assert_eq!(
            warnings,
            ["t.ini:3: x: environment variable NOPE is not set, $(NOPE) is kept as written (as uWSGI does)"]
        );
    }

    #[test]
    fn for_glob_lists_sorted_marks_directories_and_falls_back_to_the_pattern() {
        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config");
        let here = env(&[], &golden);
        let reader = Reader::new(&here);
        let ctx = |dir: &Path| FileCtx {
            dir: dir.to_path_buf(),
            magic: FileMagic { path: dir.join("t.ini"), display: "t.ini".into(), section: "uwsgi".into() },
        };
        assert_eq!(reader.glob("conf.d/*.ini", &ctx(&golden)), ["conf.d/a.ini", "conf.d/b.ini"]);
        assert_eq!(reader.glob("in?", &ctx(&golden)), ["inc/"]);
        assert_eq!(reader.glob("nothing/*.ini", &ctx(&golden)), ["nothing/*.ini"]);
        let absolute = format!("{}/conf.d/a.*", golden.display());
        assert_eq!(reader.glob(&absolute, &ctx(&golden)), [format!("{}/conf.d/a.ini", golden.display())]);
        // Relative to the config file when the working directory has no match.
        let elsewhere = env(&[], Path::new("/"));
        let reader = Reader::new(&elsewhere);
        assert_eq!(reader.glob("conf.d/b.*", &ctx(&golden)), [format!("{}/conf.d/b.ini", golden.display())]);
    }

    #[test]
    fn splits_section_suffix_but_not_paths() {
        assert_eq!(split_section("a.ini:prod"), ("a.ini", Some("prod")));
        assert_eq!(split_section("a.ini"), ("a.ini", None));
        assert_eq!(split_section(":prod"), ("", Some("prod")));
        assert_eq!(split_section("c:/x.ini"), ("c:/x.ini", None));
    }
}
