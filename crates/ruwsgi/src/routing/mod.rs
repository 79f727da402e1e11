//! Internal routing (`route*` options) as uWSGI's `core/routing.c` and its `router_*`
//! plugins run it: the rules, compiled at start-up by `ruwsgi_config::route`, run in order
//! on every request right after its head is parsed, before static files and before Python
//! is entered. A rule's action either goes on to the next rule (`addheader`, `donotlog`,
//! `rewrite`...), stops routing and lets the app answer (`continue`/`last`,
//! `rewrite-last`), or answers itself (`return`, `break`, `redirect`, `basicauth`...).
//!
//! - `vars.rs`: the request as CGI variables, for HTTP heads and uwsgi packets (pure).
//! - this file: the rule runner and the answers it builds (pure but for `isfile`-like
//!   conditions, htpasswd files and `log:` lines).
//!
//! The connection loop calls [`Router::run`] only when rules exist, so a server without
//! rules pays nothing; a request no rule touches allocates nothing. What the rules leave
//! for later (headers to add or drop, environ variables, `donotlog`) is a [`RouteState`]
//! handed to the app call and consulted by the request log.
//!
//! `error-route*`/`response-route*` rules are resolved by [`Router::run`] into
//! [`HeadRules`] (only their `-status` matchers wait) that the response writer runs when
//! the head is written; `final-route*` rules run from the request log through
//! [`Router::run_final`].

mod vars;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::sync::Arc;

use base64::Engine as _;
use regex::{CaptureLocations, Regex};
use ruwsgi_config::route::{Action, Condition, Credentials, Matcher, Route};
use ruwsgi_config::Config;
use ruwsgi_proto::percent_decode;

pub use vars::{HttpVars, RequestVars, UwsgiVars};

/// The routing table of one worker.
pub struct Router {
    /// The rules, in config order.
    routes: Vec<Route>,
    /// `final-route*`: run after the response is sent, before the request-log line.
    final_routes: Vec<Route>,
    /// `error-route*` then `response-route*`: run on the app's response head.
    head_chains: [Vec<Route>; 2],
    /// `add-header`: uWSGI puts them on routed answers too.
    extra_headers: Vec<(String, String)>,
}

/// What the rules decided for one request, kept for the app call and the request log.
/// Allocated only when a rule touches it.
#[derive(Debug, Default)]
pub struct RouteState {
    /// `donotlog`: no request-log line.
    pub donotlog: bool,
    /// `logvar`: request-log variables (`%(KEY)` in a `log-format`, as uWSGI's logvars).
    pub logvars: Vec<(String, String)>,
    /// `addheader`: added to the response (the app's or a routed answer).
    pub add_headers: Vec<(String, String)>,
    /// `delheader`/`remheader`: lowercase names dropped from the app's headers.
    pub del_headers: Vec<String>,
    /// Environ entries set over the request's own: `addvar`, `rewrite` (`PATH_INFO`,
    /// `QUERY_STRING`), `basicauth` (`REMOTE_USER`). A later one wins.
    pub vars: Vec<(String, Vec<u8>)>,
    /// `send`/`send-crnl`: raw bytes written to the client before anything else.
    pub sent: Vec<u8>,
    /// `static`: the file that answers (served by `static_files`).
    pub static_file: Option<std::path::PathBuf>,
    /// `error-route*`/`response-route*` rules, resolved for this request, for the app's
    /// response head.
    pub head_rules: Option<Arc<HeadRules>>,
}

/// `error-route*` and `response-route*` rules resolved for one request by
/// [`Router::run`]; only the `-status` matchers are left, for [`HeadRules::run`].
#[derive(Debug)]
pub struct HeadRules(Vec<(When, HeadAction)>);

/// Whether a resolved head rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Its request matcher failed (or it is a label).
    Never,
    /// Its request matcher held.
    Always,
    /// `-status`: when the response has this status.
    Status(u16),
}

/// A head rule's action, its templates filled.
#[derive(Debug)]
pub enum HeadAction {
    /// `goto` (index in the resolved list), and `continue` (the end of its chain).
    Goto(usize),
    /// `donotlog`.
    DoNotLog,
    /// `log`: the line (without its newline).
    Log(String),
    /// `logvar`.
    LogVar(String, String),
    /// `addheader`: `Name: value`.
    AddHeader(String),
    /// `delheader`: the lowercase name.
    DelHeader(String),
}

/// What head rules did to one response.
#[derive(Debug, Default)]
pub struct HeadEffects {
    /// Headers to add after the app's.
    pub add_headers: Vec<(String, String)>,
    /// Lowercase names of the app's headers to drop.
    pub del_headers: Vec<String>,
    /// `donotlog` fired.
    pub donotlog: bool,
    /// `logvar`s set.
    pub logvars: Vec<(String, String)>,
}

impl HeadRules {
    /// Runs the rules for a response of `status`, when its head is about to be written
    /// (uWSGI runs `error-route` when the app sets the status and `response-route` just
    /// before the head is sent; both before a byte of it leaves).
    pub fn run(&self, status: u16, fx: &mut HeadEffects) {
        let mut i = 0;
        while let Some((when, action)) = self.0.get(i) {
            i += 1;
            match when {
                When::Never => continue,
                When::Status(code) if *code != status => continue,
                _ => {}
            }
            match action {
                HeadAction::Goto(to) => i = *to,
                HeadAction::DoNotLog => fx.donotlog = true,
                HeadAction::Log(line) => crate::log::write_line(format!("{line}\n").as_bytes()),
                HeadAction::LogVar(key, value) => fx.logvars.push((key.clone(), value.clone())),
                HeadAction::AddHeader(line) => {
                    if let Some((name, value)) = line.split_once(':') {
                        fx.add_headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    }
                }
                HeadAction::DelHeader(name) => fx.del_headers.push(name.clone()),
            }
        }
    }
}

impl RouteState {
    fn var(&self, name: &str) -> Option<&[u8]> {
        self.vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
    }
}

/// A routed answer, ready to send.
#[derive(Debug)]
pub struct Answer {
    /// The whole response (head and body, after any `send` bytes).
    pub bytes: Vec<u8>,
    /// Status for the log (0 when `break` sent nothing).
    pub status: u16,
    /// Bytes of `bytes` that are the head.
    pub header_bytes: usize,
    /// Header lines in the head.
    pub header_count: usize,
    /// The answer is self-delimiting, so the connection may carry another request.
    pub reusable: bool,
}

/// The rules' verdict on one request.
#[derive(Debug)]
pub enum Outcome {
    /// On to static files and the app, with what the rules left for them.
    Pass(Option<Box<RouteState>>),
    /// Answered by a rule.
    Answered(Answer, Option<Box<RouteState>>),
}

/// How a routed answer is framed for this request.
#[derive(Clone, Copy)]
struct How {
    /// HTTP minor version of the status line.
    minor: u8,
    /// Add `Connection: close` (an HTTP client that won't reuse the connection).
    close: bool,
}

/// Regexp group offsets of the rule that fired, over the text they refer to.
struct Captures<'t> {
    text: Cow<'t, str>,
    locs: CaptureLocations,
}

impl Router {
    /// The worker's router; `None` when there are no rules (the loop then skips routing).
    #[must_use]
    pub fn new(cfg: &Config) -> Option<Self> {
        if cfg.routes.is_empty()
            && cfg.final_routes.is_empty()
            && cfg.error_routes.is_empty()
            && cfg.response_routes.is_empty()
        {
            return None;
        }
        Some(Router {
            routes: cfg.routes.clone(),
            final_routes: cfg.final_routes.clone(),
            head_chains: [cfg.error_routes.clone(), cfg.response_routes.clone()],
            extra_headers: cfg.add_header.clone(),
        })
    }

    /// Whether `final-route*` rules exist (the request log then runs them).
    #[must_use]
    pub fn has_final_routes(&self) -> bool {
        !self.final_routes.is_empty()
    }

    /// Runs the `final-route*` rules once the response (of `status`) is sent and before
    /// the request-log line is written, as uWSGI's `uwsgi_apply_final_routes`: `donotlog`
    /// and `logvar` act on that line, `log` writes its own. Only these, `goto` and
    /// `continue` are accepted in this chain (checked at start-up).
    pub fn run_final(
        &self,
        req: &dyn RequestVars,
        status: u16,
        donotlog: &mut bool,
        logvars: &mut Vec<(String, String)>,
    ) {
        let mut i = 0;
        while let Some(rule) = self.final_routes.get(i) {
            i += 1;
            let Some(captures) = fires(&rule.matcher, req, None, Some(status)) else { continue };
            let fill = |template: &str| expand(template, captures.as_ref(), req, None);
            match &rule.action {
                Action::Goto { target, .. } => i = *target,
                Action::DoNotLog => *donotlog = true,
                Action::Log(text) => {
                    let mut line = fill(text);
                    line.push(b'\n');
                    crate::log::write_line(&line);
                }
                Action::LogVar(key, value) => {
                    logvars.push((key.clone(), String::from_utf8_lossy(&fill(value)).into_owned()));
                }
                _ => return,
            }
        }
    }

    /// Runs the rules over one request. `http_minor` is the HTTP minor version of the
    /// response's status line; `head_only` (a HEAD request) drops the body of an answer;
    /// `close` (an HTTP client that won't keep the connection) adds `Connection: close`.
    pub fn run(&self, req: &dyn RequestVars, http_minor: u8, head_only: bool, close: bool) -> Outcome {
        match self.run_request_rules(req, http_minor, head_only, close) {
            Outcome::Pass(mut state) if self.head_chains.iter().any(|c| !c.is_empty()) => {
                let rules = self.prepare_head_rules(req, state.as_deref());
                st(&mut state).head_rules = Some(Arc::new(rules));
                Outcome::Pass(state)
            }
            // uWSGI runs them on the head of a routed answer too.
            Outcome::Answered(mut answer, mut state)
                if answer.header_bytes > 0 && self.head_chains.iter().any(|c| !c.is_empty()) =>
            {
                let mut fx = HeadEffects::default();
                self.prepare_head_rules(req, state.as_deref()).run(answer.status, &mut fx);
                let at = state.as_ref().map_or(0, |s| s.sent.len());
                edit_head(&mut answer, at, &fx);
                if fx.donotlog || !fx.logvars.is_empty() {
                    let s = st(&mut state);
                    s.donotlog |= fx.donotlog;
                    s.logvars.append(&mut fx.logvars);
                }
                Outcome::Answered(answer, state)
            }
            other => other,
        }
    }

    /// Resolves the `error-route*` and `response-route*` rules for the app's response to
    /// this request (after the request rules, so it sees what they set): every matcher
    /// but `-status` and every template is decided now; [`HeadRules::run`] finishes the
    /// job once the status is known. The two chains keep their own labels and gotos;
    /// `continue` ends its chain.
    fn prepare_head_rules(&self, req: &dyn RequestVars, state: Option<&RouteState>) -> HeadRules {
        let mut steps = Vec::new();
        for chain in &self.head_chains {
            let (base, end) = (steps.len(), steps.len() + chain.len());
            for rule in chain {
                let (when, captures) = match &rule.matcher {
                    Matcher::Status(code) => (When::Status(*code), None),
                    m => fires(m, req, state, None).map_or((When::Never, None), |c| (When::Always, c)),
                };
                let fill = |t: &str| {
                    if when == When::Never {
                        return String::new();
                    }
                    String::from_utf8_lossy(&expand(t, captures.as_ref(), req, state)).into_owned()
                };
                let action = match &rule.action {
                    Action::Goto { target, .. } => HeadAction::Goto(base + target),
                    Action::DoNotLog => HeadAction::DoNotLog,
                    Action::Log(text) => HeadAction::Log(fill(text)),
                    Action::LogVar(key, value) => HeadAction::LogVar(key.clone(), fill(value)),
                    Action::AddHeader(text) => HeadAction::AddHeader(fill(text)),
                    Action::DelHeader(name) => HeadAction::DelHeader(fill(name).to_ascii_lowercase()),
                    // `continue`; other actions are refused in these chains at start-up.
                    _ => HeadAction::Goto(end),
                };
                steps.push((when, action));
            }
        }
        HeadRules(steps)
    }

    fn run_request_rules(&self, req: &dyn RequestVars, http_minor: u8, head_only: bool, close: bool) -> Outcome {
        let how = How { minor: http_minor, close };
        let mut state: Option<Box<RouteState>> = None;
        let mut i = 0;
        while let Some(rule) = self.routes.get(i) {
            i += 1;
            let Some(captures) = fires(&rule.matcher, req, state.as_deref(), None) else { continue };
            let caps = captures.as_ref();
            let fill = |template: &str, state: &Option<Box<RouteState>>| expand(template, caps, req, state.as_deref());
            match &rule.action {
                Action::Continue => return Outcome::Pass(state),
                Action::Goto { target, .. } => i = *target,
                Action::DoNotLog => st(&mut state).donotlog = true,
                Action::Log(text) => {
                    let mut line = fill(text, &state);
                    line.push(b'\n');
                    crate::log::write_line(&line);
                }
                Action::LogVar(key, value) => {
                    let value = String::from_utf8_lossy(&fill(value, &state)).into_owned();
                    st(&mut state).logvars.push((key.clone(), value));
                }
                Action::AddVar(key, value) => {
                    let value = fill(value, &state);
                    st(&mut state).vars.push((key.clone(), value));
                }
                Action::AddHeader(text) => {
                    let line = String::from_utf8_lossy(&fill(text, &state)).into_owned();
                    if let Some((name, value)) = line.split_once(':') {
                        st(&mut state).add_headers.push((name.trim().to_owned(), value.trim().to_owned()));
                    }
                }
                Action::DelHeader(name) => {
                    let name = String::from_utf8_lossy(&fill(name, &state)).to_ascii_lowercase();
                    st(&mut state).del_headers.push(name);
                }
                Action::SetPathInfo(text) => {
                    let path = fill(text, &state);
                    st(&mut state).vars.push(("PATH_INFO".to_owned(), path));
                }
                Action::Rewrite { to, last } => {
                    let target = fill(to, &state);
                    let old_query = lookup(req, state.as_deref(), "QUERY_STRING").unwrap_or_default().into_owned();
                    let s = st(&mut state);
                    rewrite(s, &target, &old_query);
                    if *last {
                        return Outcome::Pass(state);
                    }
                }
                Action::Send { data, crnl } => {
                    let mut bytes = fill(data, &state);
                    if *crnl {
                        bytes.extend_from_slice(b"\r\n");
                    }
                    st(&mut state).sent.extend_from_slice(&bytes);
                }
                Action::Chunked => {}
                Action::Static(path) => {
                    let path = String::from_utf8_lossy(&fill(path, &state)).into_owned();
                    st(&mut state).static_file = Some(path.into());
                    return Outcome::Pass(state);
                }
                Action::Break(status) => {
                    let answer = if status.len() >= 3 {
                        let (code, reason) = status_line(status);
                        let headers = [("Connection", "close"), ("Content-Type", "text/plain")];
                        self.answer(how, code, &reason, &headers, b"", state.as_deref(), false)
                    } else {
                        // Nothing but what `send` rules wrote, then the connection closes.
                        let bytes = state.as_ref().map(|s| s.sent.clone()).unwrap_or_default();
                        Answer { bytes, status: 0, header_bytes: 0, header_count: 0, reusable: false }
                    };
                    return answered(answer, state, head_only);
                }
                Action::Return(code) => {
                    let reason = reason_phrase(*code);
                    let headers = [("Content-Type", "text/plain")];
                    let answer = self.answer(how, *code, reason, &headers, reason.as_bytes(), state.as_deref(), true);
                    return answered(answer, state, head_only);
                }
                Action::Redirect { permanent, to } => {
                    let location = header_value(&fill(to, &state));
                    let (code, reason, body) = if *permanent {
                        (301, "Moved Permanently", "Moved Permanently")
                    } else {
                        (302, "Found", "Moved")
                    };
                    let headers = [("Location", location.as_str())];
                    let answer = self.answer(how, code, reason, &headers, body.as_bytes(), state.as_deref(), true);
                    return answered(answer, state, head_only);
                }
                Action::BasicAuth { realm, credentials, next } => {
                    // uWSGI: a request an earlier rule authenticated goes on.
                    if lookup(req, state.as_deref(), "REMOTE_USER").is_some_and(|u| !u.is_empty()) {
                        continue;
                    }
                    let auth = lookup(req, state.as_deref(), "HTTP_AUTHORIZATION");
                    match check_basic_auth(auth.as_deref(), credentials) {
                        Some(user) => st(&mut state).vars.push(("REMOTE_USER".to_owned(), user)),
                        // basicauth-next: a wrong (not a missing) login tries the next rule.
                        None if *next && auth.is_some() => {}
                        None => {
                            let challenge = format!("Basic realm=\"{}\"", header_value(realm.as_bytes()));
                            let headers = [("WWW-Authenticate", challenge.as_str())];
                            let answer = self.answer(
                                how,
                                401,
                                "Authorization Required",
                                &headers,
                                b"Unauthorized",
                                state.as_deref(),
                                true,
                            );
                            return answered(answer, state, head_only);
                        }
                    }
                }
            }
        }
        Outcome::Pass(state)
    }

    /// Encodes a routed answer: status line, the rule's headers, `Content-Length` when
    /// `sized`, the `addheader`/`add-header` headers, then `body`.
    #[allow(clippy::too_many_arguments)] // one response's parts
    fn answer(
        &self,
        how: How,
        code: u16,
        reason: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        state: Option<&RouteState>,
        sized: bool,
    ) -> Answer {
        let mut head = String::with_capacity(128);
        let _ = write!(head, "HTTP/1.{} {code} {reason}\r\n", how.minor);
        let mut count = 0;
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
            count += 1;
        }
        // Differs from uWSGI: routed answers carry Content-Length, so a keep-alive
        // connection (a load balancer's health check) survives them.
        // RFC 9110 §8.6: no length on 1xx/204, and 304 would describe another response.
        let bodiless = code < 200 || code == 204 || code == 304;
        let body = if bodiless { &[][..] } else { body };
        if sized && !bodiless {
            let _ = write!(head, "Content-Length: {}\r\n", body.len());
            count += 1;
        }
        if sized && how.close {
            head.push_str("Connection: close\r\n");
            count += 1;
        }
        let added = state.map(|s| s.add_headers.as_slice()).unwrap_or_default();
        for (name, value) in added.iter().chain(&self.extra_headers) {
            let _ = write!(head, "{name}: {value}\r\n");
            count += 1;
        }
        head.push_str("\r\n");
        let sent = state.map(|s| s.sent.as_slice()).unwrap_or_default();
        let mut bytes = Vec::with_capacity(sent.len() + head.len() + body.len());
        bytes.extend_from_slice(sent);
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body);
        Answer {
            bytes,
            status: code,
            header_bytes: head.len(),
            header_count: count,
            reusable: sized && sent.is_empty(),
        }
    }
}

fn answered(mut answer: Answer, state: Option<Box<RouteState>>, head_only: bool) -> Outcome {
    if head_only {
        let sent = state.as_ref().map_or(0, |s| s.sent.len());
        answer.bytes.truncate(sent + answer.header_bytes);
    }
    Outcome::Answered(answer, state)
}

/// Whether a rule's matcher fires for this request: `None` when not, else the regexp
/// groups its action may use. `status` is the response's, known to final rules only.
#[allow(clippy::option_option, reason = "no match / a match without groups / a match with groups")]
fn fires<'r>(
    matcher: &'r Matcher,
    req: &'r dyn RequestVars,
    state: Option<&'r RouteState>,
    status: Option<u16>,
) -> Option<Option<Captures<'r>>> {
    match matcher {
        Matcher::Label(_) => None,
        Matcher::Always => Some(None),
        Matcher::Status(code) => (status == Some(*code)).then_some(None),
        Matcher::Regexp { subject, pattern } => {
            let text = bytes_to_str(lookup(req, state, subject.var()).unwrap_or_default());
            pattern.0.is_match(&text).then(|| Some(capture(&pattern.0, text)))
        }
        Matcher::If { condition, left, right, pattern, negate } => {
            let (hit, captures) = test(*condition, left, right, pattern.as_ref().map(|p| &p.0), req, state);
            if hit == *negate {
                None
            } else if *negate {
                Some(None)
            } else {
                Some(captures)
            }
        }
    }
}

/// Applies head rules' header edits to a routed answer whose head starts at `at`.
fn edit_head(answer: &mut Answer, at: usize, fx: &HeadEffects) {
    if fx.add_headers.is_empty() && fx.del_headers.is_empty() {
        return;
    }
    let head = String::from_utf8_lossy(&answer.bytes[at..at + answer.header_bytes]).into_owned();
    let mut lines: Vec<String> = head.trim_end_matches("\r\n").split("\r\n").map(str::to_owned).collect();
    let dropped = |line: &str| {
        line.split_once(':').is_some_and(|(name, _)| fx.del_headers.iter().any(|d| d.eq_ignore_ascii_case(name.trim())))
    };
    let status_line = lines.remove(0);
    lines.retain(|l| !dropped(l));
    lines.extend(fx.add_headers.iter().map(|(name, value)| format!("{name}: {value}")));
    let mut new_head = status_line;
    for line in &lines {
        new_head.push_str("\r\n");
        new_head.push_str(line);
    }
    new_head.push_str("\r\n\r\n");
    answer.bytes.splice(at..at + answer.header_bytes, new_head.bytes());
    answer.header_bytes = new_head.len();
    answer.header_count = lines.len();
}

/// The request's state, created on first use.
fn st(state: &mut Option<Box<RouteState>>) -> &mut RouteState {
    state.get_or_insert_with(Box::default)
}

/// A variable as the rules see it: what a rule set wins over the request's own.
fn lookup<'r>(req: &'r dyn RequestVars, state: Option<&'r RouteState>, name: &str) -> Option<Cow<'r, [u8]>> {
    if let Some(v) = state.and_then(|s| s.var(name)) {
        return Some(Cow::Borrowed(v));
    }
    req.var(name)
}

fn bytes_to_str(b: Cow<'_, [u8]>) -> Cow<'_, str> {
    match b {
        Cow::Borrowed(b) => String::from_utf8_lossy(b),
        Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    }
}

fn capture<'t>(re: &Regex, text: Cow<'t, str>) -> Captures<'t> {
    let mut locs = re.capture_locations();
    re.captures_read(&mut locs, &text);
    Captures { text, locs }
}

/// Evaluates a `route-if` condition; the captures of a `regexp` one.
fn test<'t>(
    condition: Condition,
    left: &str,
    right: &str,
    pattern: Option<&Regex>,
    req: &dyn RequestVars,
    state: Option<&RouteState>,
) -> (bool, Option<Captures<'t>>) {
    let l = expand(left, None, req, state);
    let path = || std::path::PathBuf::from(String::from_utf8_lossy(&l).into_owned());
    let r = || expand(right, None, req, state);
    let number = |b: &[u8]| -> i64 {
        let s = String::from_utf8_lossy(b);
        let s = s.trim();
        let end =
            s.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-'))).map_or(s.len(), |(i, _)| i);
        s[..end].parse().unwrap_or(0)
    };
    let hit = match condition {
        Condition::Exists => std::fs::symlink_metadata(path()).is_ok(),
        Condition::IsFile => std::fs::metadata(path()).is_ok_and(|m| m.is_file()),
        Condition::IsDir => std::fs::metadata(path()).is_ok_and(|m| m.is_dir()),
        Condition::IsLink => std::fs::symlink_metadata(path()).is_ok_and(|m| m.file_type().is_symlink()),
        Condition::IsExec => std::fs::metadata(path())
            .is_ok_and(|m| !m.file_type().is_dir() && !m.file_type().is_fifo() && m.permissions().mode() & 0o111 != 0),
        Condition::Equal => l == r(),
        Condition::StartsWith => l.starts_with(&r()),
        Condition::EndsWith => l.ends_with(&r()),
        Condition::Contains => {
            let needle = r();
            needle.is_empty() || l.windows(needle.len()).any(|w| w == needle.as_slice())
        }
        Condition::Higher => number(&l) > number(&r()),
        Condition::Lower => number(&l) < number(&r()),
        Condition::HigherEqual => number(&l) >= number(&r()),
        Condition::LowerEqual => number(&l) <= number(&r()),
        Condition::Empty => l.is_empty(),
        Condition::Regexp => {
            let Some(re) = pattern else { return (false, None) };
            let text = Cow::Owned(String::from_utf8_lossy(&l).into_owned());
            if !re.is_match(&text) {
                return (false, None);
            }
            return (true, Some(capture(re, text)));
        }
    };
    (hit, None)
}

/// Fills a template as uWSGI does: `$0..$9` are the groups of the rule's regexp (empty
/// when absent), `${VAR}` a request variable, `${qs[key]}` and `${cookie[name]}` a query
/// or cookie value; any other `$` is kept.
fn expand(template: &str, caps: Option<&Captures<'_>>, req: &dyn RequestVars, state: Option<&RouteState>) -> Vec<u8> {
    let t = template.as_bytes();
    let mut out = Vec::with_capacity(t.len() + 32);
    let mut i = 0;
    while i < t.len() {
        if t[i] != b'$' || i + 1 >= t.len() {
            out.push(t[i]);
            i += 1;
            continue;
        }
        let next = t[i + 1];
        if next.is_ascii_digit() {
            if let Some(c) = caps {
                if let Some((s, e)) = c.locs.get(usize::from(next - b'0')) {
                    out.extend_from_slice(&c.text.as_bytes()[s..e]);
                }
            }
            i += 2;
        } else if next == b'{' {
            let Some(len) = t[i + 2..].iter().position(|&b| b == b'}') else {
                // uWSGI keeps an unterminated `${...` as written.
                out.extend_from_slice(&t[i..]);
                break;
            };
            let key = &template[i + 2..i + 2 + len];
            out.extend_from_slice(&route_var(key, req, state));
            i += len + 3;
        } else {
            out.push(b'$');
            i += 1;
        }
    }
    out
}

/// `${key}`: a request variable, or `qs[name]`/`cookie[name]`.
fn route_var(key: &str, req: &dyn RequestVars, state: Option<&RouteState>) -> Vec<u8> {
    if let Some((func, arg)) = key.strip_suffix(']').and_then(|k| k.split_once('[')) {
        let (var, sep) = match func {
            "qs" => ("QUERY_STRING", b'&'),
            "cookie" => ("HTTP_COOKIE", b';'),
            _ => return Vec::new(),
        };
        let all = lookup(req, state, var).unwrap_or_default();
        return all
            .split(|&b| b == sep)
            .map(<[u8]>::trim_ascii)
            .find_map(|pair| pair.strip_prefix(arg.as_bytes()).and_then(|rest| rest.strip_prefix(b"=")))
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
    }
    lookup(req, state, key).map(Cow::into_owned).unwrap_or_default()
}

/// `rewrite`: the new `PATH_INFO` (percent-decoded) and, after a `?`, the new query with
/// the old one appended after `&` (as uWSGI's `router_rewrite`).
fn rewrite(state: &mut RouteState, target: &[u8], old_query: &[u8]) {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => {
            let mut query = target[q + 1..].to_vec();
            if !old_query.is_empty() {
                query.push(b'&');
                query.extend_from_slice(old_query);
            }
            (&target[..q], Some(query))
        }
        None => (target, None),
    };
    state.vars.push(("PATH_INFO".to_owned(), percent_decode(path).into_owned()));
    if let Some(query) = query {
        state.vars.push(("QUERY_STRING".to_owned(), query));
    }
}

/// `Basic base64(user:password)` checked against the rule's credentials; the user name
/// when they match.
fn check_basic_auth(header: Option<&[u8]>, credentials: &Credentials) -> Option<Vec<u8>> {
    let encoded = header?.strip_prefix(b"Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let ok = match credentials {
        Credentials::Inline(expected) => decoded == expected.as_bytes(),
        Credentials::File(path) => htpasswd_accepts(path, user, password),
    };
    ok.then(|| user.to_vec())
}

/// An htpasswd file (read on each check, as uWSGI, so edits apply at once) accepts
/// `user`/`password`. Differs from uWSGI: `{SHA}` lines only; crypt(3) hashes (uWSGI
/// checks 13-character DES ones) never match and are warned about.
fn htpasswd_accepts(path: &str, user: &[u8], password: &[u8]) -> bool {
    use sha1::Digest as _;
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!("basicauth: htpasswd file {path}: {e}");
            return false;
        }
    };
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        if &line[..colon] != user {
            continue;
        }
        let stored = &line[colon + 1..];
        if let Some(hash) = stored.strip_prefix(b"{SHA}") {
            let digest = sha1::Sha1::digest(password);
            return base64::engine::general_purpose::STANDARD.encode(digest).as_bytes() == hash;
        }
        tracing::warn!("basicauth: htpasswd file {path}: only {{SHA}} passwords are supported (htpasswd -s)");
        return false;
    }
    false
}

/// A header value from expanded text: CR and LF can't end the header early.
fn header_value(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace(['\r', '\n'], "")
}

/// `break:403` or `break:403 Forbidden`: the status and its reason (added when missing).
fn status_line(text: &str) -> (u16, Cow<'_, str>) {
    let text = text.trim();
    let (code, reason) = text.split_once(' ').unwrap_or((text, ""));
    let code: u16 = code.parse().unwrap_or(0);
    let reason = if reason.is_empty() { Cow::Borrowed(reason_phrase(code)) } else { Cow::Borrowed(reason) };
    (code, reason)
}

/// The RFC 9110 reason phrase (`return:404` answers `404 Not Found` with it as the body).
pub(crate) fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruwsgi_config::route::{parse_route, resolve_gotos, Chain};

    /// A request given as CGI variables.
    struct Vars(Vec<(&'static str, &'static str)>);

    impl RequestVars for Vars {
        fn var(&self, name: &str) -> Option<Cow<'_, [u8]>> {
            self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| Cow::Borrowed(v.as_bytes()))
        }
    }

    fn router(rules: &[(&str, &str)]) -> Router {
        let chain = |want: Option<Chain>| {
            let mut routes: Vec<Route> = rules
                .iter()
                .filter(|(o, _)| Chain::of(o).map(|c| c.0) == want)
                .map(|(o, v)| parse_route(o, v).unwrap())
                .collect();
            resolve_gotos(&mut routes).unwrap();
            routes
        };
        Router {
            routes: chain(None),
            final_routes: chain(Some(Chain::Final)),
            head_chains: [chain(Some(Chain::Error)), chain(Some(Chain::Response))],
            extra_headers: Vec::new(),
        }
    }

    #[test]
    fn head_rules_resolve_request_matchers_early_and_status_late() {
        let r = router(&[
            ("route", "^/api addvar:TIER=api"),
            ("route", "^/gone return:404"),
            ("error-route-status", "500 addheader:X-Error: ${TIER}"),
            ("error-route-run", "continue:"),
            ("error-route-run", "addheader:X-Never: 1"),
            ("response-route-status", "404 addheader:X-Missing: $1yes"),
            ("response-route", "^/api/(.*) goto:api"),
            ("response-route-run", "delheader:Content-Type"),
            ("response-route-label", "api"),
            ("response-route-if", "equal:${TIER};api logvar:tier=${TIER}"),
            ("response-route-status", "204 donotlog:"),
        ]);
        let effects = |path: &str, status: u16| {
            let Outcome::Pass(Some(state)) = r.run(&request(path), 1, false, false) else { panic!("{path}") };
            let mut fx = HeadEffects::default();
            state.head_rules.as_ref().unwrap().run(status, &mut fx);
            let added: Vec<String> = fx.add_headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("{} del={:?} donotlog={} logvars={:?}", added.join(","), fx.del_headers, fx.donotlog, fx.logvars)
        };
        assert_eq!(effects("/api/x", 500), "X-Error: api del=[] donotlog=false logvars=[(\"tier\", \"api\")]");
        assert_eq!(effects("/api/x", 404), "X-Missing: yes del=[] donotlog=false logvars=[(\"tier\", \"api\")]");
        assert_eq!(effects("/web", 200), " del=[\"content-type\"] donotlog=false logvars=[]");
        assert_eq!(effects("/web", 204), " del=[\"content-type\"] donotlog=true logvars=[]");
        // Routed answers get them too.
        let Outcome::Answered(a, state) = r.run(&request("/gone"), 1, false, false) else { panic!() };
        assert_eq!(
            String::from_utf8_lossy(&a.bytes),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nX-Missing: yes\r\n\r\nNot Found"
        );
        assert_eq!((a.header_bytes, a.header_count), (a.bytes.len() - 9, 2));
        assert!(state.is_none());
        // No head rules: nothing is allocated for a request the rules don't touch.
        assert!(matches!(
            router(&[("final-route", "^/x log:x")]).run(&request("/"), 1, false, false),
            Outcome::Pass(None)
        ));
    }

    #[test]
    fn final_rules_see_the_status_and_touch_the_log_only() {
        let r = router(&[
            ("final-route", "^/healthz donotlog:"),
            ("final-route-status", "404 logvar:miss=${REQUEST_URI}"),
            ("final-route-run", "continue:"),
            ("final-route-run", "logvar:never=1"),
        ]);
        let run = |path: &str, status: u16| {
            let (mut donotlog, mut logvars) = (false, Vec::new());
            r.run_final(&request(path), status, &mut donotlog, &mut logvars);
            (donotlog, logvars)
        };
        assert_eq!(run("/healthz", 200), (true, vec![]));
        assert_eq!(run("/x", 404), (false, vec![("miss".to_owned(), "/x".to_owned())]));
        assert_eq!(run("/x", 200), (false, vec![]));
    }

    fn request(path: &str) -> Vars {
        let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
        Vars(vec![
            ("PATH_INFO", path),
            ("REQUEST_URI", path),
            ("QUERY_STRING", "a=1&b=2"),
            ("HTTP_HOST", "example.com"),
            ("REQUEST_METHOD", "GET"),
            ("HTTP_COOKIE", "sid=abc; theme=dark"),
        ])
    }

    /// The answer's bytes, or "pass" with the state's interesting parts.
    fn outcome(rules: &[(&str, &str)], path: &str) -> String {
        match router(rules).run(&request(path), 1, false, false) {
            Outcome::Answered(a, _) => String::from_utf8_lossy(&a.bytes).into_owned(),
            Outcome::Pass(None) => "pass".to_owned(),
            Outcome::Pass(Some(s)) => {
                let vars: Vec<String> =
                    s.vars.iter().map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v))).collect();
                let headers: Vec<String> = s.add_headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(
                    "pass donotlog={} vars=[{}] headers=[{}] del=[{}] logvars={:?}",
                    s.donotlog,
                    vars.join(","),
                    headers.join(","),
                    s.del_headers.join(","),
                    s.logvars
                )
            }
        }
    }

    #[test]
    fn rules_give_the_expected_answers() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let table: &[Case<'_>] = &[
            (&[("route", "^/x donotlog:")], "/y", "pass"),
            (&[("route", "^/x donotlog:")], "/x", "pass donotlog=true vars=[] headers=[] del=[] logvars=[]"),
            (&[("route", "^/h return:200")], "/h", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK"),
            (&[("route", "^/h return:204")], "/h", "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n"),
            (&[("route", "^/b break:")], "/b", ""),
            (&[("route", "^/b break:404")], "/b", "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n"),
            (
                &[("route", "^/(\\w+)/(\\w+)$ redirect:/$2/$1/$3?${QUERY_STRING}&h=${HTTP_HOST}")],
                "/a/b",
                "HTTP/1.1 302 Found\r\nLocation: /b/a/?a=1&b=2&h=example.com\r\nContent-Length: 5\r\n\r\nMoved",
            ),
            (
                &[("route", "^/c addheader:X-Sid: ${cookie[sid]} ${qs[b]} ${nope} $x ${unterminated")],
                "/c",
                "pass donotlog=false vars=[] headers=[X-Sid: abc 2  $x ${unterminated] del=[] logvars=[]",
            ),
            (
                &[("route", "^/(.*) rewrite:/new/$1%21?z=9"), ("route", "^/new/p! addvar:SEEN=${PATH_INFO}")],
                "/p",
                "pass donotlog=false vars=[PATH_INFO=/new/p!,QUERY_STRING=z=9&a=1&b=2,SEEN=/new/p!] headers=[] del=[] logvars=[]",
            ),
            (
                &[("route", "^/ delheader:Server"), ("route", "^/ logvar:k=${REQUEST_METHOD}")],
                "/",
                "pass donotlog=false vars=[] headers=[] del=[server] logvars=[(\"k\", \"GET\")]",
            ),
            // continue stops routing: the return after it never runs.
            (&[("route", "^/ continue:"), ("route-run", "return:500")], "/", "pass"),
            // goto skips the rules between it and the label.
            (
                &[("route-run", "goto:l"), ("route-run", "return:500"), ("route-label", "l"), ("route-run", "return:201")],
                "/",
                "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nCreated",
            ),
            (&[("route-if", "equal:${HTTP_HOST};example.com return:403")], "/", "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nForbidden"),
            (&[("route-if-not", "equal:${HTTP_HOST};example.com return:403")], "/", "pass"),
            (&[("route-if", "startswith:${PATH_INFO};/st return:410")], "/stuff", "HTTP/1.1 410 Gone\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nGone"),
            (&[("route-if", "endswith:${PATH_INFO};.php return:404")], "/x.php", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nNot Found"),
            (&[("route-if", "contains:${QUERY_STRING};b=2 donotlog:")], "/", "pass donotlog=true vars=[] headers=[] del=[] logvars=[]"),
            (&[("route-if", "empty:${HTTP_REFERER} donotlog:")], "/", "pass donotlog=true vars=[] headers=[] del=[] logvars=[]"),
            (&[("route-if", "ishigher:10;9 donotlog:")], "/", "pass donotlog=true vars=[] headers=[] del=[] logvars=[]"),
            (&[("route-if", "<:10;9 donotlog:")], "/", "pass"),
            (
                &[("route-if", "regexp:${HTTP_HOST};^(\\w+)\\.com$ addvar:SITE=$1")],
                "/",
                "pass donotlog=false vars=[SITE=example] headers=[] del=[] logvars=[]",
            ),
            (&[("route-if", "isdir:/ donotlog:")], "/", "pass donotlog=true vars=[] headers=[] del=[] logvars=[]"),
            (&[("route-if", "isfile:/no/such/file donotlog:")], "/", "pass"),
            (
                &[("route", "^/a basicauth:R,u:p")],
                "/a",
                "HTTP/1.1 401 Authorization Required\r\nWWW-Authenticate: Basic realm=\"R\"\r\nContent-Length: 12\r\n\r\nUnauthorized",
            ),
            (
                &[("route-run", "send:one"), ("route-run", "send-crnl:two"), ("route-run", "return:200")],
                "/",
                "onetwo\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK",
            ),
        ];
        for (rules, path, want) in table {
            assert_eq!(outcome(rules, path), *want, "{rules:?} on {path}");
        }
    }

    #[test]
    fn basic_auth_credentials() {
        let inline = Credentials::Inline("admin:s3cret".into());
        assert_eq!(check_basic_auth(Some(b"Basic YWRtaW46czNjcmV0"), &inline), Some(b"admin".to_vec()));
        assert_eq!(check_basic_auth(Some(b"Basic YWRtaW46d3Jvbmc="), &inline), None);
        assert_eq!(check_basic_auth(Some(b"Bearer YWRtaW46czNjcmV0"), &inline), None);
        assert_eq!(check_basic_auth(Some(b"Basic !!!"), &inline), None);
        assert_eq!(check_basic_auth(None, &inline), None);
    }

    #[test]
    fn head_requests_get_no_body() {
        let r = router(&[("route-run", "return:200")]);
        let Outcome::Answered(a, _) = r.run(&request("/"), 0, true, true) else { panic!() };
        assert_eq!(
            String::from_utf8_lossy(&a.bytes),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn unmatched_requests_allocate_no_state() {
        let r = router(&[("route", "^/healthz$ donotlog:"), ("route-host", "^old\\. redirect:/")]);
        assert!(matches!(r.run(&request("/app"), 1, false, false), Outcome::Pass(None)));
    }
}
