//! Internal routing rules (`route`, `route-host`, `route-if`, `route-run`, `route-label`, ...)
//! parsed and compiled once at start-up, as uWSGI's `core/routing.c` registers them: a rule
//! is `<regexp> <action>:<args>` (or `<condition>:<args> <action>:<args>` for `route-if`,
//! or just `<action>:<args>` for `route-run`). Regexps are compiled here, so a bad one is a
//! config error naming the file and line. The runtime (`ruwsgi::routing`) evaluates them.
//! Pure: no I/O.
//!
//! Differs from uWSGI: regexps use the `regex` crate, not PCRE: no look-around and no
//! back-references; everything else common in routing rules (anchors, classes, groups,
//! `(?i)`) is the same.

use regex::Regex;

/// A compiled regexp; equal when the source text is.
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// The request variable a plain rule's regexp is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// `route`: `PATH_INFO`.
    PathInfo,
    /// `route-uri`: `REQUEST_URI`.
    RequestUri,
    /// `route-qs`: `QUERY_STRING`.
    QueryString,
    /// `route-host`: `HTTP_HOST`.
    Host,
    /// `route-remote-addr`: `REMOTE_ADDR`.
    RemoteAddr,
    /// `route-user-agent`: `HTTP_USER_AGENT`.
    UserAgent,
    /// `route-referer`: `HTTP_REFERER`.
    Referer,
    /// `route-remote-user`: `REMOTE_USER`.
    RemoteUser,
}

impl Subject {
    /// The CGI variable holding the subject.
    #[must_use]
    pub fn var(self) -> &'static str {
        match self {
            Self::PathInfo => "PATH_INFO",
            Self::RequestUri => "REQUEST_URI",
            Self::QueryString => "QUERY_STRING",
            Self::Host => "HTTP_HOST",
            Self::RemoteAddr => "REMOTE_ADDR",
            Self::UserAgent => "HTTP_USER_AGENT",
            Self::Referer => "HTTP_REFERER",
            Self::RemoteUser => "REMOTE_USER",
        }
    }
}

/// A `route-if` condition (uWSGI's names and aliases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `exists`: the path exists.
    Exists,
    /// `isfile`.
    IsFile,
    /// `isdir`.
    IsDir,
    /// `islink`.
    IsLink,
    /// `isexec`: a file with an execute bit.
    IsExec,
    /// `equal`, `isequal`, `eq`, `==`: `a;b` equal.
    Equal,
    /// `startswith`: `a;b`.
    StartsWith,
    /// `endswith`: `a;b`.
    EndsWith,
    /// `contains`, `contain`: `a;b`.
    Contains,
    /// `regexp`, `re`: `value;regexp`; its groups are `$1..$9` in the action.
    Regexp,
    /// `ishigher`, `>`: numbers.
    Higher,
    /// `islower`, `<`.
    Lower,
    /// `ishigherequal`, `>=`.
    HigherEqual,
    /// `islowerequal`, `<=`.
    LowerEqual,
    /// `empty`: the expanded value is empty.
    Empty,
}

impl Condition {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "exists" => Self::Exists,
            "isfile" => Self::IsFile,
            "isdir" => Self::IsDir,
            "islink" => Self::IsLink,
            "isexec" => Self::IsExec,
            "equal" | "isequal" | "eq" | "==" => Self::Equal,
            "startswith" => Self::StartsWith,
            "endswith" => Self::EndsWith,
            "contains" | "contain" => Self::Contains,
            "regexp" | "re" => Self::Regexp,
            "ishigher" | ">" => Self::Higher,
            "islower" | "<" => Self::Lower,
            "ishigherequal" | ">=" => Self::HigherEqual,
            "islowerequal" | "<=" => Self::LowerEqual,
            "empty" => Self::Empty,
            _ => return None,
        })
    }
}

/// When a rule's action runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// `route-run`: always.
    Always,
    /// `final-route-status`: the response status is this number (uWSGI compares numbers,
    /// not a regexp).
    Status(u16),
    /// `route-label`: never; a `goto` target.
    Label(String),
    /// `route*`: the regexp matches the subject (its groups are `$0..$9`).
    Regexp {
        /// The variable matched.
        subject: Subject,
        /// The compiled regexp.
        pattern: Pattern,
    },
    /// `route-if`/`route-if-not`.
    If {
        /// Which test.
        condition: Condition,
        /// The condition's text (`${VAR}` expanded per request); for two-operand
        /// conditions the part before the first `;`.
        left: String,
        /// The part after the first `;` (empty for one-operand conditions).
        right: String,
        /// `regexp`: `right` compiled.
        pattern: Option<Pattern>,
        /// `route-if-not`.
        negate: bool,
    },
}

/// Where `basicauth` finds the accepted credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// `user:password` in the rule itself.
    Inline(String),
    /// An htpasswd file, read on each check (as uWSGI).
    File(String),
}

/// What a rule does. Texts are templates: `$1..$9` and `${VAR}` are filled per request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `continue`, `last`: stop routing, go on to the app.
    Continue,
    /// `break`: stop the request; with a status, send a head with it first.
    Break(String),
    /// `return`, `break-with-status`: answer with the status and its reason as the body.
    Return(u16),
    /// `goto`: jump forward to a label; `target` is the index of the label's rule, set by
    /// [`resolve_gotos`] once the whole table is known.
    Goto {
        /// The label's name.
        label: String,
        /// Index of the `route-label` rule.
        target: usize,
    },
    /// `donotlog`: no request-log line for this request.
    DoNotLog,
    /// `log`: write the text to the log.
    Log(String),
    /// `logvar`: `key=value`, a request-log variable.
    LogVar(String, String),
    /// `redirect`/`redirect-302` and `redirect-permanent`/`redirect-301`.
    Redirect {
        /// 301 instead of 302.
        permanent: bool,
        /// The `Location` template.
        to: String,
    },
    /// `rewrite` (go on routing) and `rewrite-last` (stop routing): new `PATH_INFO`, and
    /// `QUERY_STRING` after a `?`.
    Rewrite {
        /// The new path (and `?query`) template.
        to: String,
        /// `rewrite-last`: stop routing after it.
        last: bool,
    },
    /// `addheader`: `Name: value` on the response.
    AddHeader(String),
    /// `delheader`, `remheader`: drop the app's header of that name.
    DelHeader(String),
    /// `addvar`: `KEY=value` in the environ.
    AddVar(String, String),
    /// `setpathinfo`: a new `PATH_INFO`.
    SetPathInfo(String),
    /// `basicauth` (401 on wrong credentials) and `basicauth-next` (go on instead).
    BasicAuth {
        /// The realm in `WWW-Authenticate`.
        realm: String,
        /// What is accepted.
        credentials: Credentials,
        /// `basicauth-next`: wrong credentials go on to the next rule instead of a 401.
        next: bool,
    },
    /// `static`: answer a GET/HEAD with this file (404 when missing); stops routing.
    Static(String),
    /// `send`, `send-crnl`: raw bytes to the client.
    Send {
        /// The bytes' template.
        data: String,
        /// `send-crnl`: followed by CR LF.
        crnl: bool,
    },
    /// `chunked`: accepted; app responses without a length are chunked anyway on HTTP/1.1.
    Chunked,
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// When it fires.
    pub matcher: Matcher,
    /// What it does (`Continue` for labels, never run).
    pub action: Action,
}

/// uWSGI actions ruwsgi refuses, with the reason; others are unknown.
const REFUSED: &[(&str, &str)] = &[
    ("file", "not implemented: use static:<path>"),
    ("signal", "there is no uWSGI signal framework"),
    ("alarm", "there are no alarms"),
    ("setapp", "apps are picked by mountpoint"),
    ("setmodifier1", "ruwsgi serves WSGI only"),
    ("setmodifier2", "ruwsgi serves WSGI only"),
    ("harakiri", "per-request harakiri is not supported"),
    ("chdir", "a worker thread must not change the process's directory"),
    ("setprocname", "ruwsgi does not rename its processes"),
    ("uwsgi", "there is no uwsgi upstream router"),
    ("http", "there is no HTTP upstream router"),
    ("proxyhttp", "there is no HTTP upstream router"),
    ("cache", "there is no cache subsystem"),
    ("cachestore", "there is no cache subsystem"),
    ("rpc", "there is no RPC subsystem"),
    ("xattr", "not supported"),
    ("gzip", "response transformations are not supported"),
    ("toupper", "response transformations are not supported"),
    ("template", "response transformations are not supported"),
    ("tofile", "response transformations are not supported"),
    ("fixcl", "response transformations are not supported"),
    ("forcecl", "response transformations are not supported"),
    ("flush", "response transformations are not supported"),
];

/// Parses one routing option (`route`, `route-host`, `route-if`, `route-run`,
/// `route-label`, ...; `option` is the uWSGI name) into a rule. `goto` targets are
/// resolved by [`resolve_gotos`] once every rule is parsed.
pub fn parse_route(option: &str, value: &str) -> Result<Route, String> {
    if let Some((chain, rest)) = Chain::of(option) {
        return parse_late_route(chain, rest, value);
    }
    let subject = match option {
        "route-label" => {
            return Ok(Route { matcher: Matcher::Label(value.trim().to_owned()), action: Action::Continue })
        }
        "route-run" => return Ok(Route { matcher: Matcher::Always, action: parse_action(value.trim())? }),
        "route-if" | "route-if-not" => None,
        "route" => Some(Subject::PathInfo),
        "route-uri" => Some(Subject::RequestUri),
        "route-qs" => Some(Subject::QueryString),
        "route-host" => Some(Subject::Host),
        "route-remote-addr" => Some(Subject::RemoteAddr),
        "route-user-agent" => Some(Subject::UserAgent),
        "route-referer" => Some(Subject::Referer),
        "route-remote-user" => Some(Subject::RemoteUser),
        other => return Err(format!("{other} is not a routing option")),
    };
    // uWSGI splits at the first space: the regexp can't contain one (use `\s` or `\x20`).
    let (first, action) =
        value.split_once(' ').ok_or("expected \"<regexp> <action>:<args>\" (a space between them)")?;
    let action = parse_action(action.trim_start())?;
    let matcher = if let Some(subject) = subject {
        Matcher::Regexp { subject, pattern: compile(first)? }
    } else {
        {
            let (name, args) = first
                .split_once(':')
                .ok_or("expected \"<condition>:<args> <action>:<args>\" (no ':' in the condition)")?;
            let condition = Condition::from_name(name).ok_or_else(|| format!("unknown route condition \"{name}\""))?;
            let (left, right) = args.split_once(';').unwrap_or((args, ""));
            let pattern = if condition == Condition::Regexp { Some(compile(right)?) } else { None };
            Matcher::If {
                condition,
                left: left.to_owned(),
                right: right.to_owned(),
                pattern,
                negate: option == "route-if-not",
            }
        }
    };
    Ok(Route { matcher, action })
}

/// The chains of rules uWSGI runs besides request routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// `final-route*`: after the response is sent, before the request-log line.
    Final,
    /// `error-route*`: when the app sets the response status (uWSGI: in
    /// `uwsgi_response_prepare_headers`, for every status).
    Error,
    /// `response-route*`: when the response head is complete, before it is sent.
    Response,
}

impl Chain {
    /// The chain an option belongs to and the option's `route*` name.
    #[must_use]
    pub fn of(option: &str) -> Option<(Self, &str)> {
        let (chain, rest) = if let Some(rest) = option.strip_prefix("final-") {
            (Self::Final, rest)
        } else if let Some(rest) = option.strip_prefix("error-") {
            (Self::Error, rest)
        } else {
            (Self::Response, option.strip_prefix("response-")?)
        };
        rest.starts_with("route").then_some((chain, rest))
    }

    fn prefix(self) -> &'static str {
        match self {
            Self::Final => "final-",
            Self::Error => "error-",
            Self::Response => "response-",
        }
    }
}

/// A `final-route*`, `error-route*` or `response-route*` rule (`option` without its
/// chain's prefix), checked against what can still happen when the chain runs: after the
/// response is sent only the log can change; on the response head, its headers too.
fn parse_late_route(chain: Chain, option: &str, value: &str) -> Result<Route, String> {
    let name = format!("{}{option}", chain.prefix());
    let route = if option == "route-status" {
        let (code, action) =
            value.split_once(' ').ok_or("expected \"<status> <action>:<args>\" (a space between them)")?;
        let code = code.parse().ok().filter(|c| (100..1000).contains(c)).ok_or_else(|| {
            // Differs from uWSGI: a status that is no number is an error (uWSGI matches 0).
            format!("{name}: \"{code}\" is not a status code")
        })?;
        Route { matcher: Matcher::Status(code), action: parse_action(action.trim_start())? }
    } else {
        parse_route(option, value).map_err(|e| e.replace(option, &name))?
    };
    let allowed = match route.action {
        Action::Continue | Action::Goto { .. } | Action::DoNotLog | Action::Log(_) | Action::LogVar(..) => true,
        Action::AddHeader(_) | Action::DelHeader(_) => chain != Chain::Final,
        _ => false,
    };
    if allowed {
        return Ok(route);
    }
    let action = value.rsplit_once(' ').map_or(value, |(_, a)| a).split(':').next().unwrap_or_default();
    Err(match chain {
        Chain::Final => format!(
            "action \"{action}\" cannot run in {name}: the response is already sent (final rules may use log, logvar, donotlog, goto, continue)"
        ),
        _ => format!(
            "action \"{action}\" is not supported in {name}: these rules may use addheader, delheader, log, logvar, donotlog, goto, continue"
        ),
    })
}

fn compile(re: &str) -> Result<Pattern, String> {
    Regex::new(re).map(Pattern).map_err(|e| format!("bad regexp \"{re}\": {}", one_line(&e.to_string())))
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn split_pair<'a>(args: &'a str, what: &str) -> Result<(&'a str, &'a str), String> {
    args.split_once('=').ok_or_else(|| format!("{what}: expected KEY=value"))
}

fn parse_action(text: &str) -> Result<Action, String> {
    // uWSGI: an action always has a ':', even without arguments (`donotlog:`).
    let (name, args) = text.split_once(':').ok_or_else(|| format!("action \"{text}\": expected <action>:<args>"))?;
    Ok(match name {
        "continue" | "last" => Action::Continue,
        "break" => Action::Break(args.to_owned()),
        "return" | "break-with-status" => Action::Return(
            args.trim()
                .parse()
                .ok()
                .filter(|s| (100..1000).contains(s))
                .ok_or_else(|| format!("{name}:{args}: expected a status code"))?,
        ),
        "goto" => {
            if args.is_empty() {
                return Err("goto: expected a label".to_owned());
            }
            Action::Goto { label: args.to_owned(), target: 0 }
        }
        "donotlog" => Action::DoNotLog,
        "log" => Action::Log(args.to_owned()),
        "logvar" => {
            let (k, v) = split_pair(args, "logvar")?;
            Action::LogVar(k.to_owned(), v.to_owned())
        }
        "redirect" | "redirect-302" => Action::Redirect { permanent: false, to: args.to_owned() },
        "redirect-permanent" | "redirect-301" => Action::Redirect { permanent: true, to: args.to_owned() },
        "rewrite" => Action::Rewrite { to: args.to_owned(), last: false },
        "rewrite-last" => Action::Rewrite { to: args.to_owned(), last: true },
        "addheader" => {
            if !args.contains(':') {
                return Err(format!("addheader:{args}: expected \"Name: value\""));
            }
            Action::AddHeader(args.to_owned())
        }
        "delheader" | "remheader" => Action::DelHeader(args.trim().to_owned()),
        "addvar" => {
            let (k, v) = split_pair(args, "addvar")?;
            Action::AddVar(k.to_owned(), v.to_owned())
        }
        "setpathinfo" => Action::SetPathInfo(args.to_owned()),
        "basicauth" | "basicauth-next" => {
            let (realm, creds) = args
                .split_once(',')
                .ok_or_else(|| format!("{name}:{args}: expected realm,user:password or realm,htpasswd-file"))?;
            let credentials = if creds.contains(':') {
                Credentials::Inline(creds.to_owned())
            } else {
                Credentials::File(creds.to_owned())
            };
            Action::BasicAuth { realm: realm.to_owned(), credentials, next: name == "basicauth-next" }
        }
        "static" => {
            if args.is_empty() {
                return Err("static: expected a file".to_owned());
            }
            Action::Static(args.to_owned())
        }
        "send" => Action::Send { data: args.to_owned(), crnl: false },
        "send-crnl" => Action::Send { data: args.to_owned(), crnl: true },
        "chunked" => Action::Chunked,
        other => {
            return Err(match REFUSED.iter().find(|(n, _)| *n == other) {
                Some((_, why)) => format!("routing action \"{other}\" is not supported: {why}"),
                None => format!("unknown routing action \"{other}\""),
            })
        }
    })
}

/// Resolves every `goto:label` to the index of the label's rule. uWSGI can only jump
/// forward, and checks that per request; here both are start-up errors.
/// `Err((index of the goto, message))`.
pub fn resolve_gotos(routes: &mut [Route]) -> Result<(), (usize, String)> {
    for i in 0..routes.len() {
        let Action::Goto { label, .. } = &routes[i].action else { continue };
        let found = routes.iter().position(|r| matches!(&r.matcher, Matcher::Label(l) if l == label));
        let label = label.clone();
        let target = found.ok_or_else(|| (i, format!("goto:{label}: there is no route-label = {label}")))?;
        if target <= i {
            return Err((i, format!("goto:{label}: a goto can only jump forward (the label comes before it)")));
        }
        routes[i].action = Action::Goto { label, target };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(option: &str, value: &str) -> Route {
        parse_route(option, value).unwrap_or_else(|e| panic!("{option} = {value}: {e}"))
    }

    #[test]
    fn parses_the_common_real_world_rules() {
        let table: &[(&str, &str, Action)] = &[
            ("route", "^/healthz$ donotlog:", Action::DoNotLog),
            ("route-run", "chunked:", Action::Chunked),
            (
                "route-host",
                "^old\\.example\\.com$ redirect-301:https://new.example.com${REQUEST_URI}",
                Action::Redirect { permanent: true, to: "https://new.example.com${REQUEST_URI}".into() },
            ),
            (
                "route",
                "^/api addheader:Access-Control-Allow-Origin: *",
                Action::AddHeader("Access-Control-Allow-Origin: *".into()),
            ),
            ("route", "^/x return:204", Action::Return(204)),
            ("route", "^/x break-with-status:404", Action::Return(404)),
            ("route", "^/x break:", Action::Break(String::new())),
            ("route", "^/x break:403 Forbidden", Action::Break("403 Forbidden".into())),
            ("route", "^/x last:", Action::Continue),
            ("route", "^/x continue:", Action::Continue),
            ("route", "^/x redirect:/y", Action::Redirect { permanent: false, to: "/y".into() }),
            ("route", "^/x redirect-302:/y", Action::Redirect { permanent: false, to: "/y".into() }),
            ("route", "^/x redirect-permanent:/y", Action::Redirect { permanent: true, to: "/y".into() }),
            ("route", "^/(.*) rewrite:/new/$1", Action::Rewrite { to: "/new/$1".into(), last: false }),
            ("route", "^/(.*) rewrite-last:/new/$1", Action::Rewrite { to: "/new/$1".into(), last: true }),
            ("route", "^/x delheader:Server", Action::DelHeader("Server".into())),
            ("route", "^/x remheader:Server", Action::DelHeader("Server".into())),
            ("route", "^/x addvar:A=b=c", Action::AddVar("A".into(), "b=c".into())),
            ("route", "^/x logvar:who=${REMOTE_ADDR}", Action::LogVar("who".into(), "${REMOTE_ADDR}".into())),
            ("route", "^/x log:hit $1", Action::Log("hit $1".into())),
            ("route", "^/x static:/srv/$1.html", Action::Static("/srv/$1.html".into())),
            ("route", "^/x send-crnl:hi", Action::Send { data: "hi".into(), crnl: true }),
            (
                "route",
                "^/admin basicauth:My Realm,admin:secret",
                Action::BasicAuth {
                    realm: "My Realm".into(),
                    credentials: Credentials::Inline("admin:secret".into()),
                    next: false,
                },
            ),
            (
                "route",
                "^/admin basicauth-next:R,/etc/htpasswd",
                Action::BasicAuth {
                    realm: "R".into(),
                    credentials: Credentials::File("/etc/htpasswd".into()),
                    next: true,
                },
            ),
        ];
        for (option, value, action) in table {
            assert_eq!(&parse(option, value).action, action, "{option} = {value}");
        }
    }

    #[test]
    fn picks_the_subject_from_the_option_name() {
        let table = [
            ("route", Subject::PathInfo),
            ("route-uri", Subject::RequestUri),
            ("route-qs", Subject::QueryString),
            ("route-host", Subject::Host),
            ("route-remote-addr", Subject::RemoteAddr),
            ("route-user-agent", Subject::UserAgent),
            ("route-referer", Subject::Referer),
            ("route-remote-user", Subject::RemoteUser),
        ];
        for (option, want) in table {
            let Matcher::Regexp { subject, .. } = parse(option, "^x donotlog:").matcher else { panic!("{option}") };
            assert_eq!(subject, want);
        }
    }

    #[test]
    fn parses_conditions_with_their_aliases() {
        let table = [
            ("equal:${PATH_INFO};/x", Condition::Equal, "${PATH_INFO}", "/x"),
            ("==:a;b", Condition::Equal, "a", "b"),
            ("startswith:${REQUEST_URI};/a;b", Condition::StartsWith, "${REQUEST_URI}", "/a;b"),
            ("contains:a;b", Condition::Contains, "a", "b"),
            ("isfile:/tmp/${PATH_INFO}", Condition::IsFile, "/tmp/${PATH_INFO}", ""),
            ("empty:${QUERY_STRING}", Condition::Empty, "${QUERY_STRING}", ""),
            ("re:${HTTP_HOST};^(.*)\\.example$", Condition::Regexp, "${HTTP_HOST}", "^(.*)\\.example$"),
            ("<=:1;2", Condition::LowerEqual, "1", "2"),
        ];
        for (text, want, l, r) in table {
            let route = parse("route-if-not", &format!("{text} break:"));
            let Matcher::If { condition, left, right, negate, pattern } = route.matcher else { panic!("{text}") };
            assert_eq!((condition, left.as_str(), right.as_str(), negate), (want, l, r, true), "{text}");
            assert_eq!(pattern.is_some(), want == Condition::Regexp);
        }
    }

    #[test]
    fn rejects_malformed_rules_with_a_reason() {
        let table = [
            ("route", "^/x", "a space between them"),
            ("route", "^/x donotlog", "expected <action>:<args>"),
            ("route", "^/x frobnicate:", "unknown routing action \"frobnicate\""),
            ("route", "^/x signal:15", "not supported: there is no uWSGI signal framework"),
            ("route", "^/(x donotlog:", "bad regexp"),
            ("route", "^/x return:abc", "expected a status code"),
            ("route", "^/x addvar:novalue", "expected KEY=value"),
            ("route", "^/x basicauth:realm-only", "expected realm,user:password"),
            ("route", "^/x addheader:NoColon", "expected \"Name: value\""),
            ("route-if", "nocolon donotlog:", "no ':' in the condition"),
            ("route-if", "sameas:a;b donotlog:", "unknown route condition \"sameas\""),
            ("route-if", "regexp:a;( donotlog:", "bad regexp"),
        ];
        for (option, value, want) in table {
            let err = parse_route(option, value).expect_err(value);
            assert!(err.contains(want), "{option} = {value}: {err}");
        }
    }

    #[test]
    fn late_routes_take_status_numbers_and_the_actions_their_chain_allows() {
        let r = parse("final-route-status", "404 log:missing ${REQUEST_URI}");
        assert_eq!((r.matcher, r.action), (Matcher::Status(404), Action::Log("missing ${REQUEST_URI}".into())));
        assert_eq!(parse("final-route", "^/healthz donotlog:").action, Action::DoNotLog);
        assert_eq!(parse("final-route-run", "logvar:x=1").matcher, Matcher::Always);
        assert!(matches!(
            parse("final-route-host", "^a continue:").matcher,
            Matcher::Regexp { subject: Subject::Host, .. }
        ));
        assert!(matches!(
            parse("final-route-if-not", "empty:${QUERY_STRING} log:q").matcher,
            Matcher::If { negate: true, .. }
        ));
        assert_eq!(parse("final-route-label", "end").matcher, Matcher::Label("end".into()));
        let r = parse("response-route-status", "404 addheader:X-Missing: yes");
        assert_eq!((r.matcher, r.action), (Matcher::Status(404), Action::AddHeader("X-Missing: yes".into())));
        assert_eq!(parse("error-route-run", "delheader:Server").action, Action::DelHeader("Server".into()));
        assert!(matches!(
            parse("response-route-qs", "^a= logvar:a=1").matcher,
            Matcher::Regexp { subject: Subject::QueryString, .. }
        ));
        assert_eq!(Chain::of("response-route-if-not").map(|c| c.0), Some(Chain::Response));
        assert_eq!(Chain::of("route-if"), None);
        let table = [
            ("final-route-status", "^404$ log:x", "is not a status code"),
            ("final-route-status", "404", "a space between them"),
            ("final-route", "^/x redirect:/y", "cannot run in final-route"),
            ("final-route-run", "addheader:A: b", "cannot run in final-route"),
            ("final-route", "^/x frob:", "unknown routing action"),
            ("response-route", "^/x return:404", "not supported in response-route"),
            ("error-route-status", "5xx log:x", "error-route-status: \"5xx\" is not a status code"),
        ];
        for (option, value, want) in table {
            let err = parse_route(option, value).expect_err(value);
            assert!(err.contains(want), "{option} = {value}: {err}");
        }
    }

    #[test]
    fn goto_resolves_forward_labels_only() {
        let mut routes = vec![
            parse("route", "^/a goto:there"),
            parse("route-run", "donotlog:"),
            parse("route-label", "there"),
            parse("route-run", "last:"),
        ];
        resolve_gotos(&mut routes).unwrap();
        assert_eq!(routes[0].action, Action::Goto { label: "there".into(), target: 2 });

        let mut backwards = vec![parse("route-label", "top"), parse("route", "^/a goto:top")];
        assert_eq!(resolve_gotos(&mut backwards).unwrap_err().0, 1);
        let mut missing = vec![parse("route", "^/a goto:nowhere")];
        assert!(resolve_gotos(&mut missing).unwrap_err().1.contains("no route-label = nowhere"));
    }
}
