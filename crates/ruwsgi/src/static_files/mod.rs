//! `static-map`, `static-map2` and `check-static`: files answered by the worker's Rust code
//! without entering Python. Built once per worker from the config ([`StaticFiles::new`]:
//! roots canonicalised, expires regexps compiled, `mimefile`s read); the connection loop
//! asks [`StaticFiles::respond`] about every GET/HEAD right after the head is parsed and
//! either gets `None` (not a static file: on to the app) or a [`Reply`] to send.
//!
//! - `resolve.rs`: pure: path decoding and checks, mount matching, conditional/range rules.
//! - `serve.rs`: I/O: realpath/open/fstat, response heads, the resumable sendfile transfer.
//!
//! uWSGI semantics: maps are tried in the order given; the first map whose mount matches
//! and whose file exists serves it; a missing file falls through to the next map, then to
//! `check-static` docroots, then to the app.

mod resolve;
mod serve;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use regex::Regex;
use ruwsgi_config::Config;
use ruwsgi_proto::{BodyFraming, RequestHead, UwsgiPacket};

pub use resolve::Conditions;
pub use serve::{Progress, Reply, Transfer};

/// The static-file configuration of one worker, ready to answer requests.
pub struct StaticFiles {
    /// `static-map`/`static-map2` in config order.
    maps: Vec<Map>,
    /// `check-static` docroots (canonical).
    docroots: Vec<PathBuf>,
    /// `static-index` names tried in a directory.
    index: Vec<String>,
    /// `static-safe` roots (canonical) symlinks may point into.
    safe: Vec<PathBuf>,
    /// `static-gzip-all`.
    gzip_all: bool,
    /// `static-gzip-dir` (canonical).
    gzip_dirs: Vec<PathBuf>,
    /// `static-skip-ext`: file-name endings never served.
    skip_ext: Vec<String>,
    /// `static-expires*` rules.
    expires: ExpiresRules,
    /// `mimefile` entries: lowercase extension → type; they win over the built-in table.
    mime: HashMap<String, String>,
    /// `add-header`.
    extra_headers: Vec<(String, String)>,
}

/// One `static-map` entry.
struct Map {
    /// URL prefix without a trailing slash (`/static`), or `/`.
    mount: String,
    /// The directory (or single file), canonical when it existed at start-up.
    root: PathBuf,
    /// `static-map2`: the file is `root/<mount>/<rest>`.
    keep_mount: bool,
}

/// Precompiled `static-expires-type`, `static-expires`, `static-expires-uri`.
#[derive(Default)]
struct ExpiresRules {
    /// `(mime type, seconds)`.
    types: Vec<(String, u64)>,
    /// `(regexp on the real file path, seconds)`.
    files: Vec<(Regex, u64)>,
    /// `(regexp on REQUEST_URI, seconds)`.
    uris: Vec<(Regex, u64)>,
}

impl ExpiresRules {
    fn new(cfg: &Config) -> Result<Self, String> {
        let compile = |rules: &[(String, u64)], option: &str| -> Result<Vec<(Regex, u64)>, String> {
            rules
                .iter()
                .map(|(re, secs)| {
                    Regex::new(re)
                        .map(|r| (r, *secs))
                        .map_err(|e| format!("{option} = \"{re} {secs}\": bad regexp: {e}"))
                })
                .collect()
        };
        Ok(ExpiresRules {
            types: cfg.static_expires_type.clone(),
            files: compile(&cfg.static_expires, "static-expires")?,
            uris: compile(&cfg.static_expires_uri, "static-expires-uri")?,
        })
    }

    /// Seconds of freshness: the first match of the type rules, then the file rules, then
    /// the URI rules (uWSGI checks them in that order).
    fn seconds(&self, mime: &str, file: &str, uri: &str) -> Option<u64> {
        self.types
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(mime))
            .map(|&(_, s)| s)
            .or_else(|| self.files.iter().find(|(re, _)| re.is_match(file)).map(|&(_, s)| s))
            .or_else(|| self.uris.iter().find(|(re, _)| re.is_match(uri)).map(|&(_, s)| s))
    }
}

/// One request as the static layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct StaticRequest<'a> {
    /// `GET` or `HEAD` (others never get here).
    pub head_only: bool,
    /// Path without the query string.
    pub path: &'a [u8],
    /// `path` is still percent-encoded (HTTP) rather than decoded (uwsgi `PATH_INFO`).
    pub encoded: bool,
    /// `REQUEST_URI`, for `static-expires-uri` and the log.
    pub uri: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// `Accept-Encoding`.
    pub accept_encoding: Option<&'a [u8]>,
    /// Validators and range.
    pub conditions: Conditions<'a>,
}

impl<'a> StaticRequest<'a> {
    /// From an HTTP head; `None` when it can't be a static request (not GET/HEAD, or it
    /// has a body we would have to read first).
    pub fn from_http(head: &RequestHead<'a>) -> Option<Self> {
        let head_only = match head.method {
            "GET" => false,
            "HEAD" => true,
            _ => return None,
        };
        if head.body != BodyFraming::None || !head.target.starts_with('/') {
            return None;
        }
        Some(StaticRequest {
            head_only,
            path: head.path().as_bytes(),
            encoded: true,
            uri: head.target,
            minor_version: head.minor_version,
            keep_alive: head.keep_alive,
            accept_encoding: head.header("accept-encoding"),
            conditions: Conditions {
                if_none_match: head.header("if-none-match"),
                if_modified_since: head.header("if-modified-since"),
                range: head.header("range"),
                if_range: head.header("if-range"),
            },
        })
    }

    /// From a uwsgi packet: `PATH_INFO` (decoded by the front end), else `REQUEST_URI`.
    pub fn from_uwsgi(packet: &UwsgiPacket<'a>) -> Option<Self> {
        let head_only = match packet.var(b"REQUEST_METHOD")? {
            b"GET" => false,
            b"HEAD" => true,
            _ => return None,
        };
        let uri = packet.var(b"REQUEST_URI").and_then(|u| std::str::from_utf8(u).ok()).unwrap_or("");
        let (path, encoded) = match packet.var(b"PATH_INFO") {
            Some(p) => (p, false),
            None => (uri.split_once('?').map_or(uri, |(p, _)| p).as_bytes(), true),
        };
        Some(StaticRequest {
            head_only,
            path,
            encoded,
            uri,
            minor_version: u8::from(packet.var(b"SERVER_PROTOCOL") != Some(b"HTTP/1.0")),
            keep_alive: false,
            accept_encoding: packet.var(b"HTTP_ACCEPT_ENCODING"),
            conditions: Conditions {
                if_none_match: packet.var(b"HTTP_IF_NONE_MATCH"),
                if_modified_since: packet.var(b"HTTP_IF_MODIFIED_SINCE"),
                range: packet.var(b"HTTP_RANGE"),
                if_range: packet.var(b"HTTP_IF_RANGE"),
            },
        })
    }
}

impl StaticFiles {
    /// Builds the worker's static configuration; `Ok(None)` when no static option is set.
    /// `Err` names the option whose value is unusable (a bad regexp).
    pub fn new(cfg: &Config) -> Result<Option<Self>, String> {
        let routed = cfg.routes.iter().any(|r| matches!(r.action, ruwsgi_config::route::Action::Static(_)));
        if cfg.static_map.is_empty() && cfg.check_static.is_empty() && !routed {
            return Ok(None);
        }
        let expires = ExpiresRules::new(cfg)?;
        let maps = cfg
            .static_map
            .iter()
            .map(|m| {
                let trimmed = m.mount.trim_end_matches('/');
                let mount = if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() };
                Map { mount, root: real_root(&m.dir), keep_mount: m.keep_mount }
            })
            .collect();
        let mut mime = HashMap::new();
        for file in &cfg.mimefile {
            match std::fs::read_to_string(file) {
                Ok(text) => parse_mime_types(&text, &mut mime),
                Err(e) => tracing::warn!("mimefile {}: {e}", file.display()),
            }
        }
        Ok(Some(StaticFiles {
            maps,
            docroots: cfg.check_static.iter().map(|d| real_root(d)).collect(),
            index: cfg.static_index.clone(),
            safe: cfg.static_safe.iter().map(|d| real_root(d)).collect(),
            gzip_all: cfg.static_gzip_all,
            gzip_dirs: cfg.static_gzip_dir.iter().map(|d| real_root(d)).collect(),
            skip_ext: cfg.static_skip_ext.clone(),
            expires,
            mime,
            extra_headers: cfg.add_header.clone(),
        }))
    }

    /// The reply for `req` when it names a static file (or is refused), `None` when the
    /// app should handle it.
    pub fn respond(&self, req: &StaticRequest<'_>, routed: Option<&Path>) -> Option<Reply> {
        if let Some(file) = routed {
            return Some(self.respond_routed(req, file));
        }
        for map in &self.maps {
            let Some(rest) = resolve::strip_mount(req.path, &map.mount) else {
                continue;
            };
            let rel = match checked(rest, req.encoded) {
                Ok(rel) => rel,
                Err(why) => return Some(refuse(req, why)),
            };
            let candidate = if map.keep_mount {
                rel.under(&map.root.join(map.mount.trim_start_matches('/')))
            } else {
                rel.under(&map.root)
            };
            if let Some(reply) = self.try_candidate(req, &candidate, &map.root) {
                return Some(reply);
            }
        }
        if self.docroots.is_empty() {
            return None;
        }
        // check-static sees every request: a path unfit for a file goes to the app, which
        // may route it (an escaped slash in an API path is legitimate there).
        let rel = checked(req.path, req.encoded).ok()?;
        self.docroots.iter().find_map(|root| self.try_candidate(req, &rel.under(root), root))
    }

    /// A `static:` routing rule's file: 404 when missing. The path comes from the config
    /// but may hold request parts (`static:/srv/$1`), so `..` is refused.
    fn respond_routed(&self, req: &StaticRequest<'_>, file: &Path) -> Reply {
        if file.components().any(|c| c == std::path::Component::ParentDir) {
            return refuse(req, resolve::Refusal::DotDot);
        }
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return serve::error_reply(req, 404, "Not Found");
        };
        let Ok(root) = std::fs::canonicalize(dir) else {
            return serve::error_reply(req, 404, "Not Found");
        };
        self.try_candidate(req, &root.join(name), &root).unwrap_or_else(|| serve::error_reply(req, 404, "Not Found"))
    }

    fn try_candidate(&self, req: &StaticRequest<'_>, candidate: &Path, root: &Path) -> Option<Reply> {
        match self.find(candidate, root) {
            serve::Found::Missing => None,
            serve::Found::Refused(why) => Some(refuse(req, why)),
            serve::Found::File(file) => Some(self.reply_file(req, file, root)),
        }
    }

    fn mime_type<'s>(&'s self, path: &Path) -> &'s str {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        if let Some(t) = ext.as_deref().and_then(|e| self.mime.get(e)) {
            return t;
        }
        mime_guess::from_path(path).first_raw().unwrap_or("application/octet-stream")
    }
}

/// A 403 for a path that must not be served, logged with the reason.
fn refuse(req: &StaticRequest<'_>, why: resolve::Refusal) -> Reply {
    tracing::info!("static file request refused ({}): {}", why.reason(), req.uri.escape_debug());
    serve::error_reply(req, 403, "Forbidden")
}

/// Start-up check in the master, so a bad regexp is one clear error instead of workers
/// that die at birth.
pub fn check(cfg: &Config) -> Result<(), String> {
    ExpiresRules::new(cfg).map(drop)
}

/// `check_decoded_path` or `decode_request_path`, by how the path arrived.
fn checked(path: &[u8], encoded: bool) -> Result<resolve::RelPath, resolve::Refusal> {
    if encoded {
        resolve::decode_request_path(path)
    } else {
        resolve::check_decoded_path(path)
    }
}

/// The real path of a configured root, so later prefix checks compare real paths. A root
/// that doesn't exist yet keeps its absolute form (its files are then simply missing).
fn real_root(dir: &Path) -> PathBuf {
    std::fs::canonicalize(dir).unwrap_or_else(|e| {
        tracing::warn!("static root {}: {e}", dir.display());
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
    })
}

/// Reads `mime.types` lines (`type ext ext...`, `#` comments) into `out`.
fn parse_mime_types(text: &str, out: &mut HashMap<String, String>) {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(mime) = words.next() else { continue };
        for ext in words {
            out.insert(ext.trim_start_matches('.').to_ascii_lowercase(), mime.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_file_lines() {
        let mut m = HashMap::new();
        parse_mime_types("# comment\ntext/x-demo demo DMO\n\napplication/wasm wasm # trailing\nlonely/type\n", &mut m);
        assert_eq!(m.get("demo").map(String::as_str), Some("text/x-demo"));
        assert_eq!(m.get("dmo").map(String::as_str), Some("text/x-demo"));
        assert_eq!(m.get("wasm").map(String::as_str), Some("application/wasm"));
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn expires_rules_in_uwsgi_order() {
        let rules = ExpiresRules {
            types: vec![("text/css".into(), 10)],
            files: vec![(Regex::new(r"\.css$").unwrap(), 20), (Regex::new(r"/img/").unwrap(), 30)],
            uris: vec![(Regex::new(r"^/static/v\d+/").unwrap(), 40)],
        };
        assert_eq!(rules.seconds("text/css", "/srv/a.css", "/static/a.css"), Some(10));
        assert_eq!(rules.seconds("text/plain", "/srv/a.css", "/x"), Some(20));
        assert_eq!(rules.seconds("image/png", "/srv/img/a.png", "/x"), Some(30));
        assert_eq!(rules.seconds("image/png", "/srv/a.png", "/static/v2/a.png"), Some(40));
        assert_eq!(rules.seconds("image/png", "/srv/a.png", "/static/a.png"), None);
    }

    #[test]
    fn builds_only_when_configured_and_reports_bad_regexps() {
        assert!(StaticFiles::new(&Config::default()).unwrap().is_none());
        let mut cfg = Config::default();
        cfg.check_static.push(PathBuf::from("."));
        cfg.static_expires.push(("(".into(), 5));
        let err = StaticFiles::new(&cfg).err().unwrap();
        assert!(err.starts_with("static-expires = \"( 5\": bad regexp"), "{err}");
    }
}
