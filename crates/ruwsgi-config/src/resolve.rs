//! Turns the assembled `(name, value, origin)` list into the typed `Config`: expands
//! `%(name)` placeholders, checks every name against the option table, parses values as
//! uWSGI reads them, and records the notices for ignored options and the warnings for
//! unknown keys, not-implemented options and values uWSGI reads differently from what they
//! say (`harakiri = 30s` is 30). Pure: no I/O.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::background::{self, MuleCode};
use crate::config::{Config, Mount, MountedApp, SocketProtocol, SocketSpec, StaticMap};
use crate::cron;
use crate::daemon;
use crate::expand;
use crate::hooks::{self, HookPhase};
use crate::options::{self, Kind, OptionSpec, Status};
use crate::{ConfigError, Entry, Origin};

/// The result of resolution: the config plus what `--show-config` and the runtime log need.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub config: Config,
    /// One-line notices for accepted-and-ignored options, deduplicated, in order.
    pub notices: Vec<String>,
    /// One-line warnings, without the `WARNING: ` prefix: an unknown key nothing uses, a uWSGI
    /// option ruwsgi doesn't implement (what will be different), one per name; a value read
    /// the way uWSGI reads it, which is not what it says (`harakiri = 30s` is 30).
    pub warnings: Vec<String>,
    /// Supported options as set, canonical name and normalised value, in order.
    pub shown: Vec<(&'static OptionSpec, String)>,
    /// `show-config` set in a file or `UWSGI_SHOW_CONFIG`: log the resolved config at start-up.
    pub show_config: bool,
    /// `help` or `version` written in a config file: print it and exit, as uWSGI does.
    pub exit_action: Option<&'static str>,
}

/// Placeholder values: every key as written (with `_` as `-`) and every option under its
/// uWSGI name, plus `set-placeholder name=value` definitions. The first value of a name wins,
/// as uWSGI's lookup (`uwsgi_get_exported_opt`) returns the first one set.
fn placeholder_values(entries: &[Entry]) -> HashMap<String, String> {
    let mut values = HashMap::new();
    for e in entries {
        let spec = options::find(&e.key);
        if spec.is_some_and(|o| o.name == "set-placeholder") {
            if let Some((k, v)) = e.value.split_once('=') {
                values.entry(options::normalise(k.trim())).or_insert_with(|| v.trim().to_owned());
            }
            continue;
        }
        values.entry(options::normalise(&e.key)).or_insert_with(|| e.value.clone());
        if let Some(o) = spec {
            values.entry(o.name.to_owned()).or_insert_with(|| e.value.clone());
        }
    }
    values
}

pub(crate) fn resolve(entries: &[Entry]) -> Result<Resolved, ConfigError> {
    let values = placeholder_values(entries);
    let referenced: HashSet<String> =
        entries.iter().flat_map(|e| expand::placeholder_names(&e.value)).map(|n| options::normalise(&n)).collect();
    let strict = entries
        .iter()
        .rev()
        .find(|e| options::find(&e.key).is_some_and(|o| o.name == "strict"))
        .is_some_and(|e| parse_bool(&e.value));

    // `protocol`: what the `socket` listeners speak (not `uwsgi-socket`, which asks for uwsgi),
    // wherever it is set, as uWSGI applies it after reading everything.
    let socket_protocol = entries
        .iter()
        .rev()
        .find(|e| options::find(&e.key).is_some_and(|o| o.name == "protocol"))
        .map_or(Ok(SocketProtocol::Uwsgi), |e| {
            let value = expand::expand_placeholders(&e.value, &values, &mut Vec::new())
                .map_err(|err| crate::reader::expand_error(err, &e.key, &e.origin))?;
            parse_protocol(e, value.trim())
        })?;
    let mut out = Resolved {
        config: Config::default(),
        notices: Vec::new(),
        warnings: Vec::new(),
        shown: Vec::new(),
        show_config: false,
        exit_action: None,
    };
    // Names already warned about: one warning per option, at its first occurrence.
    let mut warned = HashSet::new();
    for e in entries {
        let mut unknown = Vec::new();
        let value = expand::expand_placeholders(&e.value, &values, &mut unknown)
            .map_err(|err| crate::reader::expand_error(err, &e.key, &e.origin))?;
        // `log-format`'s `%(addr)`, `%(status)`... are its variables, not placeholders.
        if options::find(&e.key).is_none_or(|o| o.name != "log-format") {
            out.warnings.extend(unknown.iter().map(|n| crate::reader::undefined_placeholder(&e.origin, &e.key, n)));
        }
        // uWSGI's exported options (`uwsgi.opt`): every key of a file or the command line,
        // custom ones too, as written.
        if !matches!(e.origin, Origin::Env { .. }) && options::find(&e.key).is_none_or(|o| o.kind != Kind::Logic) {
            out.config.exported.push((e.key.clone(), value.clone()));
        }
        let Some(spec) = options::find(&e.key) else {
            // As in uWSGI, a key that is no option is a custom placeholder. Unknown `UWSGI_*`
            // variables only provide placeholders (uWSGI itself sets some, e.g. `UWSGI_RELOADS`).
            if matches!(e.origin, Origin::Env { .. }) {
                continue;
            }
            let suggestion = options::suggest(&e.key).map(str::to_owned);
            // uWSGI's strict mode: every key must be an option; placeholders come from
            // `set-placeholder`.
            if strict {
                return Err(ConfigError::StrictUnknown { origin: e.origin.clone(), name: e.key.clone(), suggestion });
            }
            // Differs from uWSGI: a key nothing uses as `%(key)` is most likely a typo, so it
            // gets a warning (uWSGI is silent).
            if !referenced.contains(&options::normalise(&e.key)) && warned.insert(options::normalise(&e.key)) {
                let hint = suggestion.map(|s| format!(" (did you mean \"{s}\"?)")).unwrap_or_default();
                out.warnings.push(format!(
                    "{}: unknown option \"{}\"{hint}: kept only as a custom placeholder and in uwsgi.opt",
                    e.origin, e.key
                ));
            }
            continue;
        };
        if spec.kind == Kind::Action {
            // Only files and the environment get here: argv handles its own actions. As in
            // uWSGI, `show-config` is a boolean (log the config and start), `help`/`version`
            // print and exit whatever the value; from the environment only `show-config`.
            if spec.name == "show-config" {
                out.show_config = parse_bool(&value);
            } else if !matches!(e.origin, Origin::Env { .. }) && out.exit_action.is_none() {
                out.exit_action = Some(spec.name);
            }
            continue;
        }
        let status = spec.status;
        match status {
            Status::NotImplemented(_) | Status::Refused(_) => {
                let differs = match status {
                    Status::Refused(reason) => {
                        return Err(ConfigError::Refused { origin: e.origin.clone(), name: e.key.clone(), reason })
                    }
                    Status::NotImplemented(differs) => differs,
                    _ => unreachable!("matched above"),
                };
                if strict {
                    return Err(ConfigError::NotImplemented { origin: e.origin.clone(), name: e.key.clone(), differs });
                }
                if warned.insert(spec.name.to_owned()) {
                    out.warnings
                        .push(format!("{}: option \"{}\" is not implemented by ruwsgi: {differs}", e.origin, e.key));
                }
            }
            Status::IgnoredWithNotice(reason) => {
                // `plugins-dir` names a directory, not plugins.
                if spec.name == "plugins" && !options::normalise(&e.key).ends_with("-dir") {
                    check_plugins(e, &value)?;
                }
                let notice = format!("{} = {value} is accepted and ignored: {reason}", e.key);
                if !out.notices.contains(&notice) {
                    out.notices.push(notice);
                }
            }
            Status::Supported | Status::SupportedWithDifference(_) => match spec.kind {
                Kind::ConfigFile | Kind::Logic | Kind::Action | Kind::Signal => {
                    if matches!(e.origin, Origin::Env { .. }) {
                        continue;
                    }
                    return Err(ConfigError::Syntax {
                        origin: e.origin.clone(),
                        message: format!("\"{}\" is not valid here", e.key),
                    });
                }
                _ if spec.name == "set-placeholder" => {
                    if !value.contains('=') {
                        return Err(bad(e, &value, "expected name=value"));
                    }
                }
                _ if spec.name == "socket" && options::normalise(&e.key) != "uwsgi-socket" => {
                    let address = parse_address(&value).ok_or_else(|| bad(e, &value, "expected [host]:port"))?;
                    out.config.sockets.push(SocketSpec {
                        address: address.clone(),
                        protocol: socket_protocol,
                        tls: None,
                    });
                    out.shown.push((spec, address));
                }
                _ => {
                    let shown = apply(&mut out.config, spec, e, &value, &mut out.warnings)?;
                    out.shown.push((spec, shown));
                }
            },
        }
    }
    let c = &mut out.config;
    // uWSGI's start-up checks of the cheaper settings (`core/init.c`), against `processes`.
    match c.cheaper.check(u64::from(c.processes.max(1))) {
        Ok(warnings) => out.warnings.extend(warnings),
        Err(message) => {
            let origin = entries
                .iter()
                .rev()
                .find(|e| options::find(&e.key).is_some_and(|o| o.name.starts_with("cheaper")))
                .map(|e| e.origin.clone());
            if let Some(origin) = origin {
                return Err(ConfigError::Syntax { origin, message });
            }
        }
    }
    let chains = [
        ("route", &mut c.routes),
        ("final-route", &mut c.final_routes),
        ("error-route", &mut c.error_routes),
        ("response-route", &mut c.response_routes),
    ];
    for (prefix, chain) in chains {
        if let Err((i, message)) = crate::route::resolve_gotos(chain) {
            // The i-th entry of this chain is the goto at fault.
            let origin = entries
                .iter()
                .filter(|e| options::find(&e.key).is_some_and(|o| o.name.starts_with(prefix)))
                .nth(i)
                .map(|e| e.origin.clone());
            if let Some(origin) = origin {
                return Err(ConfigError::Syntax { origin, message });
            }
        }
    }
    Ok(out)
}

/// `umask = 022`: an octal mask, as uWSGI reads it.
/// `signal-timer = SIGNAL SECONDS` (uWSGI's order).
fn parse_signal_seconds(value: &str) -> Option<(u8, u64)> {
    let mut words = value.split_whitespace();
    let signal = words.next()?.parse().ok()?;
    let secs = words.next()?.parse().ok().filter(|&s| s > 0)?;
    words.next().is_none().then_some((signal, secs))
}

/// `fs-signal = PATH SIGNAL`: the signal is the last word (the path may hold spaces).
fn parse_path_signal(value: &str) -> Option<(PathBuf, u8)> {
    let (path, signal) = value.trim().rsplit_once(char::is_whitespace)?;
    let path = path.trim_end();
    (!path.is_empty()).then(|| Some((PathBuf::from(path), signal.parse().ok()?)))?
}

fn parse_umask(value: &str) -> Option<u32> {
    let v = value.trim();
    (!v.is_empty() && v.len() <= 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b)))
        .then(|| u32::from_str_radix(v, 8).ok())
        .flatten()
}

/// Distro-packaged configs always say `plugins = python3` (or `python`, `python312`, `http`);
/// those are built in, and so is every plugin `pip install uwsgi` builds (`gevent`, `cache`...):
/// naming one loads nothing new, and the options they bring are known. Any other plugin
/// (`php`, `psgi`...) would bring behaviour ruwsgi doesn't have, so it's an error.
fn check_plugins(e: &Entry, value: &str) -> Result<(), ConfigError> {
    for plugin in value.split([',', ' ']).filter(|p| !p.is_empty()) {
        if !is_builtin_plugin(plugin) {
            return Err(bad(
                e,
                value,
                &format!(
                    "plugin \"{plugin}\" is not available: ruwsgi has python and the plugins of uWSGI's PyPI build built in"
                ),
            ));
        }
    }
    Ok(())
}

/// The plugins built in, by the names configs load them with (`plugins`, `if-plugin`).
pub(crate) fn is_builtin_plugin(plugin: &str) -> bool {
    let python = plugin.strip_prefix("python").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit()));
    python || plugin == "0:python" || crate::uwsgi_names::EMBEDDED_PLUGINS.contains(&plugin)
}

/// `protocol = uwsgi|http|http11`: ruwsgi's HTTP sockets keep connections alive, so `http11`
/// is `http`. uWSGI's other protocols would leave the socket unserved.
fn parse_protocol(e: &Entry, value: &str) -> Result<SocketProtocol, ConfigError> {
    match value {
        "uwsgi" => Ok(SocketProtocol::Uwsgi),
        "http" | "http11" => Ok(SocketProtocol::Http),
        _ => Err(bad(e, value, "ruwsgi serves only the uwsgi and http protocols")),
    }
}

fn bad(e: &Entry, value: &str, expected: &str) -> ConfigError {
    ConfigError::BadValue {
        origin: e.origin.clone(),
        name: e.key.clone(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// uWSGI's rule: `false`, `off`, `no` and `0` (any case) are false, anything else is true.
fn parse_bool(value: &str) -> bool {
    !is_false_word(value.trim())
}

fn is_false_word(word: &str) -> bool {
    matches!(word.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0")
}

/// A number option's value as uWSGI reads it (`atoi`/`strtoul`): an optional `+`, the leading
/// digits, and the rest ignored; no digits at all read as 0 (so `true` is 0). Returns the
/// number and the ignored rest.
/// Differs from uWSGI: a negative number or one past 64 bits is an error (C wraps, saturates
/// or, for most options, exits with "must be > 0").
fn parse_number(value: &str) -> Option<(u64, &str)> {
    let v = value.trim();
    let unsigned = v.strip_prefix('+').unwrap_or(v);
    if unsigned.starts_with('-') {
        return None;
    }
    let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Some((0, v));
    }
    Some((unsigned[..digits].parse().ok()?, &unsigned[digits..]))
}

/// Digits only, for numbers inside structured values (`static-expires`'s seconds).
fn parse_digits(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

/// What follows a value that uWSGI ignores without a warning from us: nothing, or a comment
/// (`; ...` or `# ...` after whitespace). uWSGI's ini has no inline comments, but `atoi` and
/// the port parser stop before them, so `harakiri = 60 ; seconds` works there.
fn is_comment(rest: &str) -> bool {
    rest.is_empty() || (rest.starts_with([' ', '\t']) && rest.trim_start().starts_with([';', '#']))
}

fn number_expectation(kind: Kind) -> &'static str {
    match kind {
        Kind::Seconds => "expected a whole number of seconds",
        Kind::Bytes => "expected a whole number of bytes",
        Kind::Megabytes => "expected a whole number of MiB",
        _ => "expected a whole number",
    }
}

/// `:8080`, `127.0.0.1:8080`, `[::1]:8080`, `localhost:80`, or a unix socket: a path with a
/// `/`, a name without `:` (uWSGI binds it as a relative unix path) or `@abstract`. A TCP
/// address may be followed by a comment (`:8000 ; public`): uWSGI reads the port with
/// `atoi`, which stops before it.
pub(crate) fn parse_address(value: &str) -> Option<String> {
    parse_exact_address(value).or_else(|| {
        let trimmed = value.trim();
        let address = trimmed.split([' ', '\t']).next()?;
        let rest = &trimmed[address.len()..];
        (address.contains(':') && is_comment(rest)).then(|| parse_exact_address(address)).flatten()
    })
}

fn parse_exact_address(value: &str) -> Option<String> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    if v.contains('/') || v.starts_with('@') || !v.contains(':') {
        return (v != "@").then(|| v.to_owned());
    }
    let (host, port) = v.rsplit_once(':')?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.'))
    } else {
        host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
    };
    let port_ok = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    (host_ok && port_ok).then(|| v.to_owned())
}

const MOUNT_EXPECTATION: &str = "expected /prefix=app, the app a .py or .wsgi file or pkg.module[:callable]";

/// `mount = /prefix=app`. As uWSGI, an app ending in `.py` or `.wsgi` is a file and anything
/// else a module. The prefix must be empty or start with `/`, optionally after a host name
/// and `|` (`example.com|/blog`, for `vhost`). Trailing `/`s are dropped, so `/` is `""`.
fn parse_mount(value: &str) -> Option<Mount> {
    let (mountpoint, app) = value.split_once('=')?;
    let (mountpoint, app) = (mountpoint.trim(), app.trim());
    let path = mountpoint.split_once('|').map_or(mountpoint, |(host, path)| if host.is_empty() { "x" } else { path });
    if app.is_empty() || !(path.is_empty() || path.starts_with('/')) {
        return None;
    }
    // Case-sensitive, as uWSGI's strcmp.
    let app = if std::path::Path::new(app).extension().is_some_and(|e| e == "py" || e == "wsgi") {
        MountedApp::File(PathBuf::from(app))
    } else {
        MountedApp::Module(app.to_owned())
    };
    Some(Mount { mountpoint: mountpoint.trim_end_matches('/').to_owned(), app })
}

/// Sets the field(s) for one supported option; returns the value as `--show-config` prints it.
/// Values uWSGI reads differently from what they say add a line to `warnings`.
fn apply(
    c: &mut Config,
    spec: &OptionSpec,
    e: &Entry,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let err = |expected: &str| bad(e, value, expected);
    let num = || parse_number(value).map(|(n, _)| n).ok_or_else(|| err(number_expectation(spec.kind)));
    let small = || num().and_then(|n| u32::try_from(n).map_err(|_| err(number_expectation(spec.kind))));
    let size = || num().and_then(|n| usize::try_from(n).map_err(|_| err(number_expectation(spec.kind))));
    let path = || {
        if value.is_empty() {
            Err(err("expected a path"))
        } else {
            Ok(PathBuf::from(value))
        }
    };
    let text = || {
        if value.is_empty() {
            Err(err("expected a value"))
        } else {
            Ok(value.to_owned())
        }
    };
    let flag = parse_bool(value);
    let seconds_pair = |(left, right): (&str, &str)| -> Option<(String, u64)> {
        let left = left.trim();
        (!left.is_empty()).then_some(())?;
        Some((left.to_owned(), parse_digits(right)?))
    };
    let socket = |protocol| -> Result<SocketSpec, ConfigError> {
        let address = parse_address(value).ok_or_else(|| err("expected [host]:port"))?;
        Ok(SocketSpec { address, protocol, tls: None })
    };
    // The text `--show-config` prints; numbers and booleans in canonical form.
    let mut shown = value.to_owned();
    match spec.name {
        "strict" => c.strict = flag,
        "http" | "http-socket" => c.sockets.push(socket(SocketProtocol::Http)?),
        "https" | "https-socket" | "https2" => {
            let (parsed, expected) = if spec.name == "https2" {
                (
                    crate::tls::parse_https2(value),
                    "expected addr=[host]:port,cert=FILE,key=FILE[,ciphers=LIST][,clientca=[!]FILE]",
                )
            } else {
                (crate::tls::parse_https_socket(value), "expected [host]:port,cert,key[,ciphers[,client_ca]]")
            };
            let (address, tls) = parsed.ok_or_else(|| err(expected))?;
            let address = parse_address(&address).ok_or_else(|| err("expected [host]:port before the first comma"))?;
            c.sockets.push(SocketSpec { address, protocol: SocketProtocol::Http, tls: Some(tls) });
        }
        "sni" | "sni-regexp" => {
            let sni = crate::tls::parse_sni(value, spec.name == "sni-regexp")
                .ok_or_else(|| err("expected <name> <cert>,<key>[,ciphers[,client_ca]]"))?;
            c.tls.sni.push(sni);
        }
        "sni-dir" => c.tls.sni_dir = Some(path()?),
        "sni-dir-ciphers" => c.tls.sni_dir_ciphers = Some(text()?),
        "https-export-cert" => c.tls.export_cert = flag,
        "ssl-verbose" => c.tls.verbose = flag,
        "umask" => {
            let mask = parse_umask(value).ok_or_else(|| err("expected an octal mask like 022"))?;
            c.umask = Some(mask);
            shown = format!("{mask:03o}");
        }
        "enable-proxy-protocol" => c.enable_proxy_protocol = flag,
        "http2-cleartext" => c.http2_cleartext = flag,
        "vhost" => c.vhost = flag,
        "import" => c.import.push(text()?),
        "shared-import" => c.shared_import.push(text()?),
        "pyargv" => c.pyargv = Some(value.to_owned()),
        "optimize" => {
            c.optimize = num()
                .ok()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|n| *n <= 2)
                .ok_or_else(|| err("expected 0, 1 or 2"))?;
        }
        "honour-stdin" => c.honour_stdin = flag,
        "lazy" => {
            c.lazy = flag;
            c.lazy_apps |= flag;
        }
        "socket" => c.sockets.push(socket(SocketProtocol::Uwsgi)?),
        // Applied to `socket` while resolving (see `socket_protocol`).
        "protocol" => {}
        "listen" => c.listen = small()?,
        "chmod-socket" => {
            // Bare option (read as `true`) or `1`: 666 "for lazy and brave users".
            let mode = if value.is_empty() || value == "1" || value.eq_ignore_ascii_case("true") {
                0o666
            } else if (3..=4).contains(&value.len()) && value.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                u32::from_str_radix(value, 8).map_err(|_| err("expected an octal mode like 660"))?
            } else {
                return Err(err("expected an octal mode like 660"));
            };
            c.chmod_socket = Some(mode);
            shown = format!("{mode:o}");
        }
        "chown-socket" => c.chown_socket = Some(text()?),
        "chdir" => c.chdir = Some(path()?),
        "chdir2" => c.chdir2 = Some(path()?),
        "wsgi-file" => c.wsgi_file = Some(path()?),
        // Without `:callable` the runtime uses `callable` (default `application`).
        "module" => c.module = Some(text()?),
        "callable" => c.callable = text()?,
        "asgi" => c.asgi = Some(text()?),
        "websockets-max-size" => c.websockets_max_size = num()?,
        "websockets-ping-freq" => c.websockets_ping_freq = num()?,
        "websockets-pong-tolerance" => c.websockets_pong_tolerance = num()?,
        "mount" => c.mount.push(parse_mount(value).ok_or_else(|| err(MOUNT_EXPECTATION))?),
        "manage-script-name" => c.manage_script_name = flag,
        "no-default-app" => c.no_default_app = flag,
        "pythonpath" => c.pythonpath.push(path()?),
        "home" => c.home = Some(path()?),
        "env" => {
            let (k, v) =
                value.split_once('=').filter(|(k, _)| !k.is_empty()).ok_or_else(|| err("expected KEY=VALUE"))?;
            c.env.push((k.to_owned(), v.to_owned()));
        }
        "lazy-apps" => c.lazy_apps = flag,
        // Differs from uWSGI: there is no "full dynamic mode" serving 500s without an app, so
        // `need-app = false` is refused rather than silently behaving like `true`.
        "need-app" if !flag => return Err(err("false is not supported: ruwsgi always needs the app to load")),
        "need-app" => c.need_app = true,
        "master" => c.master = flag,
        "processes" => c.processes = small()?,
        // uWSGI runs one thread per worker for any value below 2, 0 included.
        "threads" => c.threads = small()?.max(1),
        "die-on-term" => c.die_on_term = flag,
        "uid" => c.uid = Some(text()?),
        "gid" => c.gid = Some(text()?),
        "pidfile" => c.pidfile = Some(path()?),
        "pidfile2" => c.pidfile2 = Some(path()?),
        "vacuum" => c.vacuum = flag,
        "daemonize" => c.daemonize = Some(path()?),
        "daemonize2" => c.daemonize2 = Some(path()?),
        "logto" => c.logto = Some(path()?),
        "logto2" => c.logto2 = Some(path()?),
        "disable-logging" => c.disable_logging = flag,
        "log-micros" => c.log_micros = flag,
        "log-4xx" => c.log_4xx = flag,
        "log-5xx" => c.log_5xx = flag,
        "log-slow" => c.log_slow = num()?,
        "log-big" => c.log_big = num()?,
        "log-zero" => c.log_zero = flag,
        "log-sendfile" => c.log_sendfile = flag,
        "memory-report" => c.memory_report = flag,
        "log-x-forwarded-for" => c.log_x_forwarded_for = flag,
        "log-format" => c.log_format = Some(text()?),
        "logformat-strftime" => c.logformat_strftime = flag,
        // A bare `log-date` (read as `true`), `1`, `on`, `yes`: the `ctime()` form, as uWSGI.
        "logdate" => {
            let plain = ["true", "1", "on", "yes"].iter().any(|t| value.eq_ignore_ascii_case(t));
            c.log_date =
                if !plain && !flag { None } else { Some(if plain { String::new() } else { value.to_owned() }) };
        }
        "log-master" => c.log_master |= flag,
        "threaded-logger" => {
            c.threaded_logger = flag;
            c.log_master |= flag;
        }
        "logger" => {
            c.logger.push(text()?);
            c.log_master = true;
        }
        "req-logger" => {
            c.req_logger.push(text()?);
            c.log_master = true;
        }
        "log-route" | "log-req-route" => {
            let (name, re) = value.split_once(' ').ok_or_else(|| err("expected NAME REGEXP"))?;
            let route = (name.to_owned(), re.trim_start().to_owned());
            if spec.name == "log-route" {
                c.log_route.push(route);
            } else {
                c.log_req_route.push(route);
            }
            c.log_master = true;
        }
        "log-encoder" => {
            c.log_encoder.push(text()?);
            c.log_master = true;
        }
        "log-req-encoder" => {
            c.log_req_encoder.push(text()?);
            c.log_master = true;
        }
        "log-json" => c.log_json = flag,
        "log-drain" => {
            c.log_drain.push(text()?);
            c.log_master = true;
        }
        "log-filter" => {
            c.log_filter.push(text()?);
            c.log_master = true;
        }
        "log-master-bufsize" => c.log_master_bufsize = size()?.max(1),
        "so-keepalive" => c.so_keepalive = flag,
        "reuse-port" => c.reuse_port = flag,
        "no-defer-accept" => c.no_defer_accept = flag,
        "socket-sndbuf" => c.socket_sndbuf = Some(size()?),
        "sched-batch" => c.sched_batch = flag,
        // `healthz` means `/healthz`: request paths always start with a slash.
        "health-path" => c.health_path = Some(format!("/{}", text()?.trim_start_matches('/'))),
        "drain-delay" => c.drain_delay = num()?,
        "tcp-nodelay" => c.tcp_nodelay = flag,
        "wsgi-disable-file-wrapper" => c.wsgi_disable_file_wrapper = flag,
        "harakiri" => c.harakiri = num()?,
        "harakiri-verbose" => c.harakiri_verbose = flag,
        "harakiri-graceful-timeout" => c.harakiri_graceful_timeout = num()?,
        "harakiri-graceful-signal" => {
            c.harakiri_graceful_signal =
                num().ok().filter(|n| (1..=31).contains(n)).ok_or_else(|| err("expected a signal number"))? as i32;
        }
        name if name.starts_with("hook-") || name.starts_with("exec-") => {
            let (phase, exec) = HookPhase::from_option(name).ok_or_else(|| err("unknown hook phase"))?;
            let hook = if exec { hooks::parse_exec(phase, value) } else { hooks::parse_hook(phase, value) };
            c.hooks.push(hook.map_err(|m| err(&m))?);
        }
        "cron" | "unique-cron" => {
            c.crons.push(cron::parse_cron(value, spec.name == "unique-cron").map_err(|m| err(&m))?);
        }
        name if name.starts_with("route") => {
            c.routes.push(crate::route::parse_route(name, value).map_err(|m| err(&m))?);
        }
        name if crate::route::Chain::of(name).is_some() => {
            let route = crate::route::parse_route(name, value).map_err(|m| err(&m))?;
            match crate::route::Chain::of(name).map(|c| c.0) {
                Some(crate::route::Chain::Final) => c.final_routes.push(route),
                Some(crate::route::Chain::Error) => c.error_routes.push(route),
                _ => c.response_routes.push(route),
            }
        }
        "cron2" => c.crons.push(cron::parse_cron2(value).map_err(|m| err(&m))?),
        "cron-harakiri" => c.cron_harakiri = num()?,
        "spooler" => c.spooler.dirs.push(path()?),
        "spooler-processes" => c.spooler.processes = small()?.max(1),
        "spooler-import" => c.spooler.import.push(text()?),
        "spooler-frequency" => c.spooler.frequency = num()?,
        "spooler-max-tasks" => c.spooler.max_tasks = num()?,
        "spooler-harakiri" => c.spooler.harakiri = num()?,
        "spooler-ordered" => c.spooler.ordered = flag,
        "spooler-chdir" => c.spooler.chdir = Some(path()?),
        "spooler-quiet" => c.spooler.quiet = flag,
        "touch-spoolers-reload" => c.spooler.touch_reload.push(path()?),
        "mule" => c.mules.mules.push(MuleCode::parse(value)),
        "mules" => c.mules.mules.extend(std::iter::repeat_n(MuleCode::Loop, size()?)),
        "farm" => c.mules.farms.push(background::parse_farm(value).map_err(err)?),
        "mule-harakiri" => c.mules.harakiri = num()?,
        "mule-reload-mercy" => c.mules.reload_mercy = num()?,
        "mule-msg-size" => c.mules.msg_size = size()?,
        "touch-mules-reload" => c.mules.touch_reload.push(path()?),
        "locks" => {
            c.locks = small()?;
            if c.locks > crate::config::MAX_LOCKS {
                return Err(err("expected at most 64 locks"));
            }
        }
        "exit-on-reload" => c.exit_on_reload = flag,
        "touch-workers-reload" => c.touch_workers_reload.push(path()?),
        "signal-timer" => c.signal_timer.push(
            parse_signal_seconds(value)
                .ok_or_else(|| err("expected SIGNAL SECONDS (signal 0-255, seconds at least 1)"))?,
        ),
        "signal-rbtimer" => c.signal_rbtimer.push(
            parse_signal_seconds(value)
                .ok_or_else(|| err("expected SIGNAL SECONDS (signal 0-255, seconds at least 1)"))?,
        ),
        "fs-signal" => {
            c.fs_signal.push(parse_path_signal(value).ok_or_else(|| err("expected PATH SIGNAL (signal 0-255)"))?);
        }
        "touch-signal" => {
            c.touch_signal.push(parse_path_signal(value).ok_or_else(|| err("expected PATH SIGNAL (signal 0-255)"))?);
        }
        "log-maxsize" => c.log_maxsize = num()?,
        "log-backupname" => c.log_backupname = Some(path()?),
        "log-reopen" => c.log_reopen = flag,
        "master-fifo" => c.master_fifo = Some(path()?),
        "stats-minified" => c.stats_minified = flag,
        "metrics" => {
            c.metrics = Some(parse_address(value).ok_or_else(|| err("expected [host]:port"))?);
        }
        // Differs from uWSGI: the value (a tracebacker socket path) is accepted but no socket
        // is created; the stuck request's stack goes to the log on every harakiri anyway.
        "py-tracebacker" => c.harakiri_verbose = true,
        "max-requests" => c.max_requests = num()?,
        "max-requests-delta" => c.max_requests_delta = num()?,
        "min-worker-lifetime" => c.min_worker_lifetime = num()?,
        "max-worker-lifetime" => c.max_worker_lifetime = num()?,
        "reload-on-rss" => c.reload_on_rss = num()?,
        "reload-on-as" => c.reload_on_as = num()?,
        "limit-as" => c.limit_as = num()?,
        "evil-reload-on-rss" => c.evil_reload_on_rss = num()?,
        "worker-reload-mercy" => c.worker_reload_mercy = num()?,
        "reload-mercy" => c.reload_mercy = Some(num()?),
        // uWSGI stores it in 16 bits and caps larger values (`uwsgi_opt_set_16bit`).
        "buffer-size" => c.buffer_size = size()?.min(MAX_BUFFER_SIZE),
        "limit-post" => c.limit_post = num()?,
        "post-buffering" => c.post_buffering = size()?,
        "socket-timeout" => c.socket_timeout = num()?,
        "http-timeout" => c.http_timeout = num()?,
        "http-keepalive" => c.http_keepalive = num()?,
        // Always on: Upgrade requests reach the app (`uwsgi.websocket_handshake()`).
        "http-websockets" => {}
        "max-fd" => c.max_fd = num()?,
        "py-autoreload" => c.py_autoreload = num()?,
        "py-autoreload-ignore" => c.py_autoreload_ignore.push(text()?),
        "touch-reload" => c.touch_reload.push(path()?),
        "touch-chain-reload" => c.touch_chain_reload.push(path()?),
        "attach-daemon" => c.attach_daemon.push(daemon::parse_attach(value).map_err(err)?),
        "smart-attach-daemon" | "smart-attach-daemon2" => {
            c.attach_daemon.push(daemon::parse_smart(value, spec.name == "smart-attach-daemon2").map_err(err)?);
        }
        "attach-daemon2" => c.attach_daemon.push(daemon::parse_keyval(value).map_err(|e| err(&e))?),
        "stats" => c.stats = Some(parse_address(value).ok_or_else(|| err("expected [host]:port"))?),
        "stats-http" => c.stats_http = flag,
        "static-map" | "static-map2" => {
            let (mount, dir) = value
                .split_once('=')
                .filter(|(m, d)| !m.trim().is_empty() && !d.trim().is_empty())
                .ok_or_else(|| err("expected /mount=directory"))?;
            c.static_map.push(StaticMap {
                mount: mount.trim().to_owned(),
                dir: PathBuf::from(dir.trim()),
                keep_mount: spec.name == "static-map2",
            });
        }
        "check-static" => c.check_static.push(path()?),
        "static-index" => c.static_index.push(text()?),
        "static-expires-type" => c
            .static_expires_type
            .push(value.rsplit_once('=').and_then(seconds_pair).ok_or_else(|| err("expected mime/type=seconds"))?),
        // uWSGI splits at the last space: the regexp may contain spaces.
        "static-expires" => c
            .static_expires
            .push(value.rsplit_once(' ').and_then(seconds_pair).ok_or_else(|| err("expected <regexp> <seconds>"))?),
        "static-expires-uri" => c
            .static_expires_uri
            .push(value.rsplit_once(' ').and_then(seconds_pair).ok_or_else(|| err("expected <regexp> <seconds>"))?),
        "static-gzip-all" => c.static_gzip_all = flag,
        "static-gzip-dir" => c.static_gzip_dir.push(path()?),
        "static-skip-ext" => c.static_skip_ext.push(text()?),
        "add-header" => {
            let (name, value) = value
                .split_once(':')
                .map(|(n, v)| (n.trim(), v.trim()))
                .filter(|(n, v)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()) && !v.contains(['\r', '\n']))
                .ok_or_else(|| err("expected \"Name: value\""))?;
            c.add_header.push((name.to_owned(), value.to_owned()));
        }
        // uWSGI splits at the first space: `X-Sendfile X_SENDFILE`.
        "collect-header" | "pull-header" => {
            let (header, var) = value
                .split_once(' ')
                .map(|(h, v)| (h.trim(), v.trim()))
                .filter(|(h, v)| !h.is_empty() && !v.is_empty())
                .ok_or_else(|| err("expected \"Header-Name VAR\""))?;
            c.collect_header.push(crate::config::CollectHeader {
                header: header.to_owned(),
                var: var.to_owned(),
                pull: spec.name == "pull-header",
            });
        }
        "static-safe" => c.static_safe.push(path()?),
        "mimefile" => c.mimefile.push(path()?),
        // Differs from uWSGI: `iprint` prints with the other `print`s, after every value is
        // expanded (uWSGI prints it while reading the file, before `$(VAR)` and `%(name)`).
        "print" | "iprint" => c.print.push(value.to_owned()),
        "cheaper" => c.cheaper.count = num()?,
        "cheaper-initial" => c.cheaper.initial = num()?,
        "cheaper-step" => c.cheaper.step = num()?,
        "cheaper-overload" => c.cheaper.overload = num()?,
        "cheaper-idle" => c.cheaper.cheaper_idle = num()?,
        "cheaper-algo" => {
            c.cheaper.algo = crate::cheaper::CheaperAlgo::parse(value.trim())
                .ok_or_else(|| err("expected spare, spare2, backlog, busyness or manual"))?;
        }
        "cheaper-rss-limit-soft" => c.cheaper.rss_limit_soft = num()?,
        "cheaper-rss-limit-hard" => c.cheaper.rss_limit_hard = num()?,
        "cheaper-busyness-max" => c.cheaper.busyness.max = num()?,
        "cheaper-busyness-min" => c.cheaper.busyness.min = num()?,
        "cheaper-busyness-multiplier" => c.cheaper.busyness.multiplier = num()?,
        "cheaper-busyness-penalty" => c.cheaper.busyness.penalty = num()?,
        "cheaper-busyness-verbose" => c.cheaper.busyness.verbose = flag,
        "cheaper-busyness-backlog-alert" => c.cheaper.busyness.backlog_alert = num()?,
        "cheaper-busyness-backlog-multiplier" => c.cheaper.busyness.backlog_multiplier = num()?,
        "cheaper-busyness-backlog-step" => c.cheaper.busyness.backlog_step = num()?,
        "cheaper-busyness-backlog-nonzero" => c.cheaper.busyness.backlog_nonzero = num()?,
        "idle" => c.cheaper.idle = num()?,
        "die-on-idle" => c.cheaper.die_on_idle = flag,
        "cheap" => c.cheaper.cheap = flag,
        other => unreachable!("supported option {other} has no Config mapping"),
    }
    let subject = || e.origin.subject(&e.key, value);
    if spec.kind == Kind::Address {
        // Without a trailing comment.
        shown = parse_address(value).unwrap_or(shown);
    } else if spec.kind == Kind::Bool {
        shown = flag.to_string();
        // `vacuum = false ; off` is true in uWSGI: only the exact words are false.
        let first = value.trim().split([' ', '\t', ';', '#']).next().unwrap_or_default();
        if flag && is_false_word(first) {
            warnings.push(format!(
                "{}: read as true (uWSGI takes only the exact words false, off, no and 0 as false)",
                subject()
            ));
        }
    } else if let (true, Some((n, rest))) =
        (matches!(spec.kind, Kind::Number | Kind::Seconds | Kind::Bytes | Kind::Megabytes), parse_number(value))
    {
        let read = if spec.name == "buffer-size" { n.min(MAX_BUFFER_SIZE as u64) } else { n };
        shown = read.to_string();
        if rest == value.trim() || !is_comment(rest) {
            warnings.push(format!("{}: read as {n} (uWSGI reads the leading digits and ignores the rest)", subject()));
        }
        if read != n {
            warnings.push(format!("{}: read as {read}, uWSGI's largest buffer-size", subject()));
        }
    }
    Ok(shown)
}

/// uWSGI's largest `buffer-size` (a 16-bit field).
const MAX_BUFFER_SIZE: usize = 65535;

/// `--show-config`: `name = value` lines in option-table order; repeatable options print every
/// value, the others the last one, skipping values equal to uWSGI's default. With
/// `comments`, notices and warnings follow as `#` comments (the start-up log has them
/// already).
pub(crate) fn render_show_config(resolved: &Resolved, comments: bool) -> String {
    let mut out = String::new();
    for spec in options::OPTIONS {
        let values: Vec<&String> = resolved.shown.iter().filter(|(s, _)| s.name == spec.name).map(|(_, v)| v).collect();
        let values = if spec.repeat { values } else { values.last().copied().into_iter().collect() };
        for v in values {
            let default = if spec.kind == Kind::Bool && spec.default.is_empty() { "false" } else { spec.default };
            if !spec.repeat && v == default {
                continue;
            }
            let _ = writeln!(out, "{} = {v}", spec.name);
        }
    }
    if comments {
        for n in &resolved.notices {
            let _ = writeln!(out, "# {n}");
        }
        for w in &resolved.warnings {
            let _ = writeln!(out, "# WARNING: {w}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Entry {
        Entry { key: key.into(), value: value.into(), origin: Origin::File { file: "t.ini".into(), line: Some(1) } }
    }

    fn resolve_one(key: &str, value: &str) -> Result<Config, ConfigError> {
        resolve(&[entry(key, value)]).map(|r| r.config)
    }

    #[test]
    fn accepts_socket_address_forms() {
        for ok in [
            ":8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "0.0.0.0:80",
            "localhost:0",
            "/tmp/a.sock",
            "app.sock",
            "@abstract",
        ] {
            assert_eq!(parse_address(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in [":80x", "", ":", "1.2.3.4:", ":99999", "[::1:80", "a b:80", "@"] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_follow_uwsgi() {
        for f in ["false", "OFF", "no", "0"] {
            assert!(!parse_bool(f));
        }
        for t in ["true", "1", "yes", "on", "whatever"] {
            assert!(parse_bool(t));
        }
    }

    /// uWSGI reads number options with `atoi`/`strtoul`: the leading digits, the rest
    /// ignored. A comment after whitespace is read silently, anything else with a warning.
    #[test]
    fn numbers_are_read_as_uwsgi_reads_them() {
        for (value, read, warns) in [
            ("60", 60, false),
            ("60 ; seconds", 60, false),
            ("1000  # restart workers", 1000, false),
            ("60\t; tab", 60, false),
            ("+5", 5, false),
            ("30s", 30, true),
            ("60;seconds", 60, true),
            ("1.5", 1, true),
            ("60 seconds", 60, true),
            ("true", 0, true),
            ("false", 0, true),
            ("", 0, true),
        ] {
            let r = resolve(&[entry("harakiri", value)]).unwrap();
            assert_eq!(r.config.harakiri, read, "{value:?}");
            assert_eq!(r.warnings.len(), usize::from(warns), "{value:?}: {:?}", r.warnings);
            assert_eq!(r.shown, [(options::find("harakiri").unwrap(), read.to_string())], "{value:?}");
        }
        let r = resolve(&[entry("harakiri", "30s")]).unwrap();
        assert_eq!(
            r.warnings,
            ["t.ini:1: harakiri = \"30s\": read as 30 (uWSGI reads the leading digits and ignores the rest)"]
        );
    }

    /// Differs from uWSGI (documented): C wraps or saturates these; here they are errors.
    #[test]
    fn negative_and_overflowing_numbers_are_errors() {
        let e = resolve_one("harakiri", "-1").unwrap_err();
        assert_eq!(e.to_string(), "t.ini:1: harakiri = \"-1\": expected a whole number of seconds");
        assert!(resolve_one("max-requests", "+-3").is_err());
        assert!(resolve_one("max-requests", "99999999999999999999999").is_err());
        assert!(resolve_one("processes", "99999999999").is_err());
    }

    #[test]
    fn threads_without_a_number_run_one_thread_as_in_uwsgi() {
        let r = resolve(&[entry("threads", "lots")]).unwrap();
        assert_eq!(r.config.threads, 1);
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn post_buffering_true_is_zero_as_in_uwsgi() {
        let r = resolve(&[entry("post-buffering", "true")]).unwrap();
        assert_eq!(r.config.post_buffering, 0);
        assert_eq!(r.warnings.len(), 1);
    }

    #[test]
    fn buffer_size_is_capped_at_uwsgis_16_bits() {
        let r = resolve(&[entry("buffer-size", "100000")]).unwrap();
        assert_eq!(r.config.buffer_size, 65535);
        assert_eq!(r.warnings, ["t.ini:1: buffer-size = \"100000\": read as 65535, uWSGI's largest buffer-size"]);
        assert_eq!(resolve_one("buffer-size", "65535 # max").unwrap().buffer_size, 65535);
    }

    #[test]
    fn booleans_with_trailing_text_are_true_as_in_uwsgi() {
        for (value, read, warns) in [
            ("false", false, false),
            ("OFF", false, false),
            ("true # on", true, false),
            ("false ; no", true, true),
            ("no#x", true, true),
            ("0 # off", true, true),
        ] {
            let r = resolve(&[entry("vacuum", value)]).unwrap();
            assert_eq!(r.config.vacuum, read, "{value:?}");
            assert_eq!(r.warnings.len(), usize::from(warns), "{value:?}: {:?}", r.warnings);
        }
    }

    #[test]
    fn tcp_addresses_may_carry_a_comment() {
        let c = resolve_one("http-socket", "127.0.0.1:9871 # public").unwrap();
        assert_eq!(c.sockets[0].address, "127.0.0.1:9871");
        assert_eq!(parse_address(":8000\t; x").as_deref(), Some(":8000"));
        assert_eq!(parse_address(":8000;x"), None);
        assert_eq!(parse_address(":8000 x"), None);
    }

    #[test]
    fn placeholders_take_the_first_value_as_in_uwsgi() {
        let r = resolve(&[entry("processes", "2"), entry("processes", "4"), entry("threads", "%(processes)")]).unwrap();
        assert_eq!((r.config.processes, r.config.threads), (4, 2));
    }

    #[test]
    fn actions_in_files_act_as_in_uwsgi() {
        let r = resolve(&[entry("show-config", "true"), entry("print", "hello %(x)"), entry("x", "1")]).unwrap();
        assert!(r.show_config);
        assert_eq!(r.config.print, ["hello 1"]);
        assert!(!resolve(&[entry("show-config", "false")]).unwrap().show_config);
        assert_eq!(resolve(&[entry("version", "")]).unwrap().exit_action, Some("version"));
        let env =
            Entry { key: "version".into(), value: "1".into(), origin: Origin::Env { var: "UWSGI_VERSION".into() } };
        assert_eq!(resolve(&[env]).unwrap().exit_action, None, "UWSGI_VERSION is often a placeholder");
    }

    #[test]
    fn chmod_socket_bare_means_666() {
        assert_eq!(resolve_one("chmod-socket", "true").unwrap().chmod_socket, Some(0o666));
        assert_eq!(resolve_one("chmod-socket", "1").unwrap().chmod_socket, Some(0o666));
        assert_eq!(resolve_one("chmod-socket", "660").unwrap().chmod_socket, Some(0o660));
        assert!(resolve_one("chmod-socket", "999").is_err());
    }

    #[test]
    fn static_expires_splits_at_the_last_space() {
        let c = resolve_one("static-expires", "/x y/.*\\.css 3600").unwrap();
        assert_eq!(c.static_expires, vec![("/x y/.*\\.css".to_owned(), 3600)]);
        let c = resolve_one("static-expires-type", "text/css=60").unwrap();
        assert_eq!(c.static_expires_type, vec![("text/css".to_owned(), 60)]);
        assert!(resolve_one("static-expires", "/x 1h").is_err());
    }

    #[test]
    fn static_map2_keeps_the_mount() {
        let c = resolve_one("static-map2", "/static=/srv/s").unwrap();
        assert_eq!(c.static_map, vec![StaticMap { mount: "/static".into(), dir: "/srv/s".into(), keep_mount: true }]);
        assert!(resolve_one("static-map", "/static").is_err());
    }

    #[test]
    fn mount_tells_files_from_modules() {
        let c = resolve(&[
            entry("mount", "/blog=blog/wsgi.py"),
            entry("mount", " /shop/ = shop.wsgi:application "),
            entry("mount", "/legacy=old.wsgi"),
            entry("mount", "/=root"),
        ])
        .unwrap()
        .config;
        assert_eq!(
            c.mount,
            vec![
                Mount { mountpoint: "/blog".into(), app: MountedApp::File("blog/wsgi.py".into()) },
                Mount { mountpoint: "/shop".into(), app: MountedApp::Module("shop.wsgi:application".into()) },
                Mount { mountpoint: "/legacy".into(), app: MountedApp::File("old.wsgi".into()) },
                Mount { mountpoint: String::new(), app: MountedApp::Module("root".into()) },
            ]
        );
    }

    #[test]
    fn mount_without_equals_names_the_option() {
        let e = resolve_one("mount", "blog/wsgi.py").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:1: mount = \"blog/wsgi.py\": expected /prefix=app, the app a .py or .wsgi file or pkg.module[:callable]"
        );
        assert!(resolve_one("mount", "/blog=").is_err());
        assert!(resolve_one("mount", "blog=app.py").is_err());
    }

    #[test]
    fn umask_is_octal() {
        assert_eq!(resolve_one("umask", "022").unwrap().umask, Some(0o22));
        assert_eq!(resolve_one("umask", "0077").unwrap().umask, Some(0o77));
        assert!(resolve_one("umask", "999").is_err());
        assert!(resolve_one("umask", "").is_err());
    }

    #[test]
    fn python_startup_options() {
        let c = resolve(&[
            entry("import", "a.b"),
            entry("pyimport", "c.py"),
            entry("shared-python-import", "d"),
            entry("pyargv", "--x 1"),
            entry("optimize", "2"),
            entry("lazy", "true"),
        ])
        .unwrap()
        .config;
        assert_eq!(c.import, ["a.b", "c.py"]);
        assert_eq!(c.shared_import, ["d"]);
        assert_eq!(c.pyargv.as_deref(), Some("--x 1"));
        assert_eq!(c.optimize, 2);
        assert!(c.lazy && c.lazy_apps);
        assert!(resolve_one("optimize", "3").is_err());
    }

    #[test]
    fn mount_accepts_host_mountpoints() {
        let c = resolve(&[entry("mount", "example.com|=site.py"), entry("mount", "b.test:8080|/x/=m")]).unwrap().config;
        assert_eq!(c.mount[0].mountpoint, "example.com|");
        assert_eq!(c.mount[1].mountpoint, "b.test:8080|/x");
        assert!(resolve_one("mount", "|/x=m").is_err());
        assert!(resolve_one("mount", "h|x=m").is_err());
    }

    #[test]
    fn env_splits_at_the_first_equals() {
        let c = resolve_one("env", "A=b=c").unwrap();
        assert_eq!(c.env, vec![("A".to_owned(), "b=c".to_owned())]);
        assert!(resolve_one("env", "A").is_err());
    }

    #[test]
    fn unknown_key_is_a_placeholder_with_a_warning_when_unused() {
        let r = resolve(&[entry("base", "/srv"), entry("chdir", "%(base)/app")]).unwrap();
        assert_eq!(r.config.chdir, Some(PathBuf::from("/srv/app")));
        assert_eq!(r.warnings, Vec::<String>::new(), "a used placeholder is no typo");
        let r = resolve(&[entry("vaccum", "true"), entry("base_dir", "/srv"), entry("vaccum", "1")]).unwrap();
        assert_eq!(
            r.warnings,
            [
                "t.ini:1: unknown option \"vaccum\" (did you mean \"vacuum\"?): kept only as a custom placeholder and in uwsgi.opt",
                "t.ini:1: unknown option \"base_dir\": kept only as a custom placeholder and in uwsgi.opt",
            ],
            "one warning per name"
        );
        assert!(!r.config.vacuum);
    }

    #[test]
    fn strict_refuses_unknown_keys_even_as_placeholders() {
        let e = resolve(&[entry("strict", "true"), entry("base", "/srv"), entry("chdir", "%(base)")]).unwrap_err();
        assert!(matches!(e, ConfigError::StrictUnknown { .. }));
        let e = resolve(&[entry("strict", "1"), entry("vaccum", "true")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:1: unknown option \"vaccum\" (did you mean \"vacuum\"?): strict mode allows only real options \
             (define placeholders with set-placeholder)"
        );
        let r = resolve(&[entry("strict", "true"), entry("set-ph", "base=/srv"), entry("chdir", "%(base)")]).unwrap();
        assert_eq!(r.config.chdir, Some(PathBuf::from("/srv")));
        // `strict = false` is not strict.
        assert!(resolve(&[entry("strict", "false"), entry("vaccum", "true")]).is_ok());
    }

    #[test]
    fn not_implemented_options_warn_and_strict_refuses_them() {
        let r = resolve(&[
            entry("spooler-external", "/tmp/s"),
            entry("freebind", "true"),
            entry("spooler-external", "/tmp/t"),
        ])
        .unwrap();
        assert_eq!(
            r.warnings,
            [
                "t.ini:1: option \"spooler-external\" is not implemented by ruwsgi: ruwsgi spools only to the queues its own spoolers drain",
                "t.ini:1: option \"freebind\" is not implemented by ruwsgi: it is ignored",
            ]
        );
        // A name only the generated list knows gets its group's text.
        let r = resolve(&[entry("emperor-wrapper", "x")]).unwrap();
        assert_eq!(
            r.warnings,
            ["t.ini:1: option \"emperor-wrapper\" is not implemented by ruwsgi: ruwsgi runs one instance, not an Emperor with vassals (use systemd or a container orchestrator)"]
        );
        let e = resolve(&[entry("strict", "true"), entry("freebind", "true")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:1: option \"freebind\" is not implemented by ruwsgi (it is ignored): strict mode refuses it"
        );
        assert!(resolve(&[entry("strict", "true"), entry("reaper", "true")]).is_err());
    }

    #[test]
    fn refused_options_are_errors_without_strict() {
        for name in ["chroot", "fastcgi-socket", "ssl-socket", "unshare2", "xml", "raw-socket"] {
            let e = resolve_one(name, "x").unwrap_err();
            assert!(matches!(e, ConfigError::Refused { .. }), "{name}: {e}");
            assert!(
                e.to_string().starts_with(&format!(
                    "t.ini:1: option \"{name}\" is not implemented by ruwsgi and can't be ignored: "
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn other_uwsgi_names_of_listed_options_behave_as_them() {
        assert_eq!(resolve_one("chmod", "660").unwrap().chmod_socket, Some(0o660));
        let r = resolve(&[entry("plugins-dir", "/usr/lib/uwsgi/plugins"), entry("plugin-dir", "/x")]).unwrap();
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        assert!(resolve_one("plugins", "php").is_err());
        assert!(resolve_one("plugins", "python3,gevent,http").is_ok(), "the PyPI build has gevent built in");
    }

    #[test]
    fn protocol_sets_what_socket_speaks() {
        let c =
            resolve(&[entry("socket", ":1"), entry("uwsgi-socket", ":2"), entry("protocol", "http")]).unwrap().config;
        assert_eq!(
            c.sockets,
            [
                SocketSpec { address: ":1".into(), protocol: SocketProtocol::Http, tls: None },
                SocketSpec { address: ":2".into(), protocol: SocketProtocol::Uwsgi, tls: None },
            ]
        );
        assert_eq!(
            resolve(&[entry("socket-protocol", "uwsgi"), entry("socket", ":1")]).unwrap().config.sockets[0].protocol,
            SocketProtocol::Uwsgi
        );
        let e = resolve(&[entry("socket", ":1"), entry("protocol", "fastcgi")]).unwrap_err();
        assert_eq!(e.to_string(), "t.ini:1: protocol = \"fastcgi\": ruwsgi serves only the uwsgi and http protocols");
    }

    #[test]
    fn show_config_lists_warnings_as_comments() {
        let r =
            resolve(&[entry("processes", "2"), entry("vaccum", "true"), entry("spooler-external", "/tmp/s")]).unwrap();
        assert_eq!(
            render_show_config(&r, true),
            "processes = 2\n\
             # WARNING: t.ini:1: unknown option \"vaccum\" (did you mean \"vacuum\"?): kept only as a custom placeholder and in uwsgi.opt\n\
             # WARNING: t.ini:1: option \"spooler-external\" is not implemented by ruwsgi: ruwsgi spools only to the queues its own spoolers drain\n"
        );
    }

    #[test]
    fn daemon_options_accumulate_in_order() {
        let r = resolve(&[
            entry("attach-daemon", "celery -A proj worker"),
            entry("smart-attach-daemon", "m.pid memcached -d -P m.pid"),
            entry("smart-attach-daemon2", "r.pid,3 redis-server"),
            entry("attach-daemon2", "cmd=beat,control=1"),
        ])
        .unwrap();
        let got: Vec<(&str, Option<&str>, bool)> = r
            .config
            .attach_daemon
            .iter()
            .map(|d| (d.command.as_str(), d.pidfile.as_deref().and_then(|p| p.to_str()), d.daemonize))
            .collect();
        assert_eq!(
            got,
            [
                ("celery -A proj worker", None, false),
                ("memcached -d -P m.pid", Some("m.pid"), false),
                ("redis-server", Some("r.pid"), true),
                ("beat", None, false),
            ]
        );
        assert_eq!(r.config.attach_daemon[2].freq, 3);
        assert!(r.config.attach_daemon[3].control);
        let e = resolve_one("smart-attach-daemon", "only.pid").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.ini:1: smart-attach-daemon = \"only.pid\": expected <pidfile>[,<seconds>] <command>"
        );
    }

    #[test]
    fn signal_timers_and_file_signals_take_uwsgi_word_order() {
        let c = resolve(&[
            entry("timer", "17 30"),
            entry("signal-rbtimer", " 3   5 "),
            entry("fs-signal", "/srv/my dir 18"),
            entry("touch-signal", "/tmp/x 255"),
            entry("locks", "4"),
        ])
        .unwrap()
        .config;
        assert_eq!(c.signal_timer, [(17, 30)]);
        assert_eq!(c.signal_rbtimer, [(3, 5)]);
        assert_eq!(c.fs_signal, [(PathBuf::from("/srv/my dir"), 18)]);
        assert_eq!(c.touch_signal, [(PathBuf::from("/tmp/x"), 255)]);
        assert_eq!(c.locks, 4);
        for (key, bad) in [
            ("timer", "30"),
            ("timer", "256 1"),
            ("timer", "1 0"),
            ("timer", "1 2 3"),
            ("fs-signal", "/tmp"),
            ("fs-signal", "/tmp x"),
            ("locks", "65"),
        ] {
            assert!(resolve_one(key, bad).is_err(), "{key} = {bad}");
        }
        assert_eq!(
            resolve_one("timer", "30").unwrap_err().to_string(),
            "t.ini:1: timer = \"30\": expected SIGNAL SECONDS (signal 0-255, seconds at least 1)"
        );
    }

    #[test]
    fn exported_options_keep_the_keys_as_written_with_expanded_values() {
        let r =
            resolve(&[entry("workers", "2"), entry("my-key", "%(workers)x"), entry("env", "A=1"), entry("env", "B=2")])
                .unwrap();
        assert_eq!(
            r.config.exported,
            [("workers", "2"), ("my-key", "2x"), ("env", "A=1"), ("env", "B=2")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn every_supported_option_maps_to_config() {
        for spec in options::OPTIONS.iter().filter(|o| o.status.is_supported()) {
            if matches!(spec.kind, Kind::ConfigFile | Kind::Logic | Kind::Action | Kind::Signal)
                || spec.name == "set-placeholder"
            {
                continue;
            }
            let value = match spec.kind {
                Kind::Address => ":1",
                Kind::Pair | Kind::Mapping | Kind::Mount => "/a=b",
                Kind::TypeSeconds => "a/b=1",
                Kind::RegexSeconds => "a 1",
                Kind::Mode => "660",
                _ if spec.name == "add-header" => "X-A: 1",
                _ if spec.name.ends_with("-header") => "X-A A",
                _ => "1",
            };
            let value = match spec.name {
                "https" | "https-socket" => ":1,c.pem,k.pem",
                "https2" => "addr=:1,cert=c.pem,key=k.pem",
                "sni" | "sni-regexp" => "a c.pem,k.pem",
                "smart-attach-daemon" | "smart-attach-daemon2" => "p.pid cmd",
                "attach-daemon2" => "cmd=1",
                "cron" | "unique-cron" => "-1 -1 -1 -1 -1 cmd",
                name if name.starts_with("hook-") => "print:1",
                "route-run" => "donotlog:",
                "route-if" | "route-if-not" => "empty:x donotlog:",
                name if name.starts_with("route") => "^/ donotlog:",
                name if name.ends_with("-route-run") => "donotlog:",
                name if name.ends_with("-route-status") => "404 donotlog:",
                name if name.ends_with("-route-if") || name.ends_with("-route-if-not") => "empty:x donotlog:",
                name if name.ends_with("-route-label") => "x",
                name if name.contains("-route") => "^/ donotlog:",
                "protocol" => "http",
                "farm" => "f:1",
                "log-route" | "log-req-route" => "name ^x",
                "cheaper-algo" => "busyness",
                // Alone, with the default `processes = 1`, any other count is refused.
                "cheaper" | "cheaper-rss-limit-hard" => "0",
                "signal-timer" | "signal-rbtimer" => "17 30",
                "fs-signal" | "touch-signal" => "/tmp 17",
                _ => value,
            };
            resolve_one(spec.name, value).unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        }
    }
}
