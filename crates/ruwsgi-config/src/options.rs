//! The option table: every uWSGI option ruwsgi knows about, listed once, with its aliases,
//! value kind, whether it repeats, its uWSGI default and whether ruwsgi supports it.
//!
//! The argv, env and file readers look names up here, `--help` and `docs/options.md` are
//! rendered from here, and `resolve` maps the supported ones onto `Config` fields. No I/O.

use std::fmt::Write as _;

/// What an option's value looks like. Drives parsing, `--help` and the error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false`; a bare key or `--flag` means true. uWSGI: `false|off|no|0` are false,
    /// anything else is true.
    Bool,
    /// A whole number.
    Number,
    /// A whole number of seconds.
    Seconds,
    /// A whole number of bytes.
    Bytes,
    /// A whole number of MiB.
    Megabytes,
    /// Free text.
    Text,
    /// A filesystem path.
    Path,
    /// `[host]:port` or a unix socket path (`@name` = abstract).
    Address,
    /// `KEY=VALUE`.
    Pair,
    /// `chmod-socket`: empty/`1`/`true` = 666, else an octal mode.
    Mode,
    /// `static-map`: `/mount=dir`.
    Mapping,
    /// `mount`: `/prefix=app`, the app a file or a module.
    Mount,
    /// `static-expires-type`: `mime/type=seconds`.
    TypeSeconds,
    /// `static-expires`: `regexp seconds` (split at the last space).
    RegexSeconds,
    /// Another config file (`ini`, `include`, `json`, `yaml`), spliced in place.
    ConfigFile,
    /// `for`/`if-*`/`endif`... config logic, handled by the file reader.
    Logic,
    /// `--help`, `--version`, `--show-config`: print and exit.
    Action,
    /// `--stop PIDFILE`, `--reload PIDFILE`: signal the master named in a pidfile and exit.
    Signal,
}

impl Kind {
    /// How the kind is shown in `--help` and the docs.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Number => "number",
            Self::Seconds => "seconds",
            Self::Bytes => "bytes",
            Self::Megabytes => "MiB",
            Self::Text => "string",
            Self::Path => "path",
            Self::Address => "address",
            Self::Pair => "KEY=VALUE",
            Self::Mode => "octal mode",
            Self::Mapping => "/mount=dir",
            Self::Mount => "/prefix=app",
            Self::TypeSeconds => "type=seconds",
            Self::RegexSeconds => "regexp seconds",
            Self::ConfigFile => "file[:section]",
            Self::Logic => "logic",
            Self::Action => "-",
            Self::Signal => "pidfile",
        }
    }
}

/// Whether and how ruwsgi honours an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Behaves as in uWSGI.
    Supported,
    /// Supported, with the documented difference.
    SupportedWithDifference(&'static str),
    /// A uWSGI option ruwsgi doesn't implement: accepted with one start-up warning saying
    /// what is different (the text), and an error under `strict`.
    NotImplemented(&'static str),
    /// A uWSGI option whose absence would leave the server unsafe or silently wrong: always an
    /// error, the text saying why.
    Refused(&'static str),
    /// Accepted and ignored with a one-line notice at start-up, for the given reason.
    IgnoredWithNotice(&'static str),
}

impl Status {
    /// True when the option changes what ruwsgi does (`Supported*`).
    #[must_use]
    pub fn is_supported(self) -> bool {
        matches!(self, Self::Supported | Self::SupportedWithDifference(_))
    }
}

/// One row of the option table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// The uWSGI name, e.g. `processes`.
    pub name: &'static str,
    /// Other long names, e.g. `workers`.
    pub aliases: &'static [&'static str],
    /// The one-letter command-line alias, e.g. `p`.
    pub short: Option<char>,
    /// What the value looks like.
    pub kind: Kind,
    /// Repeats accumulate (true) or the last one wins (false).
    pub repeat: bool,
    /// uWSGI's default, as text (empty = unset).
    pub default: &'static str,
    /// Whether ruwsgi supports it.
    pub status: Status,
    /// One line for `--help` and the docs.
    pub help: &'static str,
}

#[allow(clippy::too_many_arguments)] // a table row; a builder would hide the columns
const fn row(
    name: &'static str,
    aliases: &'static [&'static str],
    short: Option<char>,
    kind: Kind,
    repeat: bool,
    default: &'static str,
    status: Status,
    help: &'static str,
) -> OptionSpec {
    OptionSpec { name, aliases, short, kind, repeat, default, status, help }
}

/// A supported scalar option without aliases.
const fn s(name: &'static str, kind: Kind, default: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, default, Status::Supported, help)
}

/// A supported repeatable option without aliases.
const fn list(name: &'static str, kind: Kind, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, true, "", Status::Supported, help)
}

/// What a not-implemented option's warning says when its row gives no more.
const IGNORED: &str = "it is ignored";

/// An option ruwsgi doesn't implement yet: a warning saying it is ignored.
const fn planned(name: &'static str, kind: Kind, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::NotImplemented(IGNORED), help)
}

/// A `hook-*` option (repeatable text, the action list of `HOOK_ACTIONS`).
const fn hook(name: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, true, "", Status::SupportedWithDifference(HOOK_ACTIONS), help)
}

/// A request routing option (`route*`): repeatable text, see `docs/routing.md`.
const fn route(name: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, true, "", Status::SupportedWithDifference(ROUTE_DIFF), help)
}

/// A `final-route*` option: after-response routing, see `docs/routing.md`.
const fn final_route(name: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, true, "", Status::SupportedWithDifference(FINAL_ROUTE_DIFF), help)
}

/// An `error-route*`/`response-route*` option: rules on the app's response head.
const fn head_route(name: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, true, "", Status::SupportedWithDifference(HEAD_ROUTE_DIFF), help)
}

/// An option ruwsgi doesn't implement yet, with what is different without it.
const fn missing(name: &'static str, kind: Kind, differs: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::NotImplemented(differs), help)
}

/// An option ruwsgi won't implement: a warning giving the reason.
const fn never(name: &'static str, reason: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, false, "", Status::NotImplemented(reason), help)
}

/// An option whose absence would leave the server unsafe or silently wrong: always an error.
const fn refused(name: &'static str, kind: Kind, why: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::Refused(why), help)
}

/// An option accepted and ignored with a notice.
const fn ignored(name: &'static str, kind: Kind, reason: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::IgnoredWithNotice(reason), help)
}

use Kind::{
    Action, Address, Bool, Bytes, ConfigFile, Logic, Mapping, Megabytes, Mode, Mount, Number, Pair, Path, RegexSeconds,
    Seconds, Signal, Text, TypeSeconds,
};
use Status::{IgnoredWithNotice, Supported, SupportedWithDifference};

const NO_ROUTER: &str = "ruwsgi has no separate router processes";
const NO_EMPEROR: &str = "ruwsgi runs one instance; use systemd or a container orchestrator";
const PYTHON_ONLY: &str = "ruwsgi serves WSGI apps only";
const NO_LOOP: &str = "ruwsgi runs threads, not async loop engines";
const BUILT_IN: &str = "ruwsgi has Python built in";
const ALWAYS: &str = "ruwsgi always behaves this way";
const HOOK_ACTIONS: &str = "`call*` (C functions of uWSGI or a plugin), `mount`, `umount`, `hostname`, `alarm`, `rpc`, `retryrpc`, `wait_for_socket` and `spinningfifo` are refused at start-up; a failing hook in a worker stops the whole instance";
const ROUTE_DIFF: &str = "regexps are Rust `regex` (no look-around or back-references); rules run before static files and the app; see docs/routing.md for the actions";
const FINAL_ROUTE_DIFF: &str = "regexps are Rust `regex`; only log, logvar, donotlog, goto and continue may run (others are a start-up error); `-status` takes a number";
const HEAD_ROUTE_DIFF: &str = "regexps are Rust `regex`; only addheader, delheader, log, logvar, donotlog, goto and continue may run (others are a start-up error); `-status` takes a number; they run on the app's responses and routed answers, not on static files; see docs/routing.md";
const SPOOLER_DIFF: &str = "a spooler finishes its current task on reload and shutdown (uWSGI kills it, and the task runs again); `priority` subdirectories are run without `spooler-ordered` too";
const NO_PROCNAME: &str = "ruwsgi does not rename its processes";
pub(crate) const NO_LISTENER: &str =
    "ruwsgi would not listen there: it serves HTTP, HTTPS and the uwsgi protocol only (terminate other protocols in a reverse proxy)";
const TLS_DIFF: &str = "TLS is rustls: TLS 1.2 and 1.3 only; the cipher list keeps the TLS 1.2 suites it names (OpenSSL keywords such as HIGH are not read); changed certificate files are re-read by the running workers; see docs/tls.md";
const HTTPS_ROUTER_DIFF: &str = "served by the workers themselves like `https-socket` (there is no separate HTTP router process); TLS is rustls: TLS 1.2 and 1.3 only, see docs/tls.md";
const ONLY_TLS12_13: &str = "rustls offers TLS 1.2 and 1.3 only";
pub(crate) const NO_ISOLATION: &str = "the processes would run without the isolation or privilege change it asks for";

/// Every option, once. Order = `--help`, `--show-config` and docs order.
pub static OPTIONS: &[OptionSpec] = &[
    // --- actions and config composition
    row("help", &[], Some('h'), Action, false, "", Supported, "print this help and exit"),
    row("version", &[], None, Action, false, "", Supported, "print the version and exit"),
    row("stop", &[], None, Signal, false, "", Supported, "stop the master named in this pidfile at once (SIGINT) and exit"),
    row("reload", &[], None, Signal, false, "", Supported, "gracefully reload the master named in this pidfile (SIGHUP) and exit"),
    row("show-config", &[], None, Action, false, "", SupportedWithDifference(
        "on the command line, prints the resolved options as `name = value` lines and exits (uWSGI logs them and starts); in a config file, logs them at start-up and serves, as uWSGI"),
        "print the resolved options and exit (in a file: log them at start-up)"),
    list("print", Text, "print the value to stdout at start-up"),
    row("iprint", &[], None, Text, true, "", SupportedWithDifference(
        "printed with the `print` values, after expansion (uWSGI prints it while reading the file, before `$(VAR)` and `%(name)`)"),
        "print the value to stdout (uWSGI: immediately)"),
    row("ini", &[], None, ConfigFile, true, "", Supported, "read options from an ini file (`file:section`, default section `uwsgi`)"),
    row("include", &[], None, ConfigFile, true, "", Supported, "splice another config file in place (format by extension)"),
    row("json", &["js"], Some('j'), ConfigFile, true, "", Supported, "read options from the `uwsgi` object of a JSON file"),
    row("yaml", &["yml"], Some('y'), ConfigFile, true, "", Supported, "read options from the `uwsgi` mapping of a YAML file"),
    refused("xml", ConfigFile, "the options in the XML file would not be read; use ini, JSON or YAML", "read options from an XML file"),
    refused("inherit", ConfigFile, "the options of the template would not be read", "use a config file as a template"),
    row("set-placeholder", &["set-ph"], None, Pair, true, "", Supported, "define a placeholder `name=value` for `%(name)`"),
    refused("declare-option", Text, "the custom option it declares would not expand to its options", "declare a custom option"),
    list("for", Logic, "repeat the lines up to `endfor` for each space-separated value, as `%(_)`"),
    list("for-glob", Logic, "repeat the lines up to `endfor` for each path matching the glob (directories end in `/`; the pattern itself when none match)"),
    list("for-readline", Logic, "repeat the lines up to `endfor` for each line of the file (skipped with a warning when unreadable)"),
    list("for-times", Logic, "repeat the lines up to `endfor` for 1 to N"),
    row("endfor", &["end-for"], None, Logic, false, "", Supported, "end a `for*` block (`end` too)"),
    row("if-env", &["ifenv"], None, Logic, true, "", Supported, "keep the lines up to `endif` if the environment variable is set (`VAR` or `VAR=value`); `%(_)` is its value"),
    list("if-not-env", Logic, "keep the lines up to `endif` if the environment variable is not set"),
    row("if-exists", &["ifexists"], None, Logic, true, "", Supported, "keep the lines up to `endif` if the path exists"),
    list("if-not-exists", Logic, "keep the lines up to `endif` if the path does not exist"),
    list("if-file", Logic, "keep the lines up to `endif` if the path is a file"),
    list("if-not-file", Logic, "keep the lines up to `endif` if the path is not a file"),
    row("if-dir", &["ifdir", "if-directory"], None, Logic, true, "", Supported, "keep the lines up to `endif` if the path is a directory"),
    list("if-not-dir", Logic, "keep the lines up to `endif` if the path is not a directory"),
    list("if-opt", Logic, "keep the lines up to `endif` if the option is set so far (`name` or `name=value`, its first value); `%(_)` is its value"),
    list("if-not-opt", Logic, "keep the lines up to `endif` if the option is not set so far"),
    list("if-reload", Logic, "keep the lines up to `endif` when the master was re-executed by a reload"),
    list("if-not-reload", Logic, "keep the lines up to `endif` on first start"),
    list("if-hostname", Logic, "keep the lines up to `endif` if the host name is this"),
    list("if-not-hostname", Logic, "keep the lines up to `endif` if the host name is not this"),
    row("if-hostname-match", &[], None, Logic, true, "", SupportedWithDifference(
        "an invalid regular expression is an error (uWSGI counts it as a match; the PyPI build, without PCRE, lacks the option)"),
        "keep the lines up to `endif` if the regular expression matches the host name"),
    row("if-not-hostname-match", &[], None, Logic, true, "", SupportedWithDifference(
        "an invalid regular expression is an error"),
        "keep the lines up to `endif` if the regular expression does not match the host name"),
    row("if-plugin", &["ifplugin"], None, Logic, true, "", Supported, "keep the lines up to `endif` if the plugin is built in (`python3`, `http`, `gevent`...)"),
    list("if-not-plugin", Logic, "keep the lines up to `endif` if the plugin is not built in"),
    row("endif", &["end-if"], None, Logic, false, "", Supported, "end an `if-*` block (`end` too)"),
    s("strict", Bool, "false", "keys that are not options (even used as placeholders) and not-implemented options are errors"),
    // --- sockets
    row("http", &[], None, Address, true, "", SupportedWithDifference(
        "served by the workers themselves like `http-socket`; there is no separate HTTP router process"),
        "listen for HTTP on this address"),
    // `http11-socket` is uWSGI's keep-alive variant; ruwsgi's HTTP sockets always keep alive.
    row("http-socket", &["http11-socket"], None, Address, true, "", Supported, "listen for HTTP on this address, served by the workers"),
    row("socket", &["uwsgi-socket"], Some('s'), Address, true, "", Supported, "listen for the uwsgi protocol on this address (nginx `uwsgi_pass`)"),
    row("https", &[], None, Text, true, "", SupportedWithDifference(HTTPS_ROUTER_DIFF),
        "listen for HTTPS, served by the workers: `addr,cert,key[,ciphers[,client_ca]]` (`!client_ca`: a client certificate is required)"),
    row("https-socket", &[], None, Text, true, "", SupportedWithDifference(TLS_DIFF),
        "listen for HTTPS in the workers: `addr,cert,key[,ciphers[,client_ca]]` (`!client_ca`: a client certificate is required)"),
    row("https2", &[], None, Text, true, "", SupportedWithDifference(HTTPS_ROUTER_DIFF),
        "listen for HTTPS: `addr=...,cert=...,key=...[,ciphers=...][,clientca=[!]...]`"),
    refused("http-to-https", Text,
        "ruwsgi has no HTTP router to listen there; redirect plain HTTP with `route-if-not = equal:${HTTPS};on redirect-permanent:https://${HTTP_HOST}${REQUEST_URI}` (docs/tls.md)",
        "listen for plain HTTP and redirect every request to HTTPS"),
    // --- TLS (rustls; docs/tls.md)
    s("https-export-cert", Bool, "false", "put the client certificate's PEM in `HTTPS_CC`"),
    row("sni", &[], None, Text, true, "", Supported, "serve another certificate to clients asking for this server name: `name cert,key[,ciphers[,client_ca]]`"),
    row("sni-regexp", &[], None, Text, true, "", SupportedWithDifference("the regexp is Rust `regex` syntax"),
        "as `sni`, the name a regular expression: `regexp cert,key[,ciphers[,client_ca]]`"),
    s("sni-dir", Path, "", "for a server name no `sni` names, load `<dir>/<name>.crt` and `.key` (and `.ca`, the client CA) on first use"),
    s("sni-dir-ciphers", Text, "", "the cipher list of the `sni-dir` certificates"),
    s("ssl-verbose", Bool, "false", "log failed TLS handshakes and certificate reloads at info level (else debug)"),
    missing("ssl-verify-depth", Number, "client certificate chains are checked up to rustls's own depth limit",
        "most CA certificates between a client certificate and its trusted root"),
    row("ssl-sessions-use-cache", &["ssl-session-use-cache"], None, Text, false, "", Status::NotImplemented(
        "TLS sessions resume through tickets whose keys every worker shares (made at start-up); the uWSGI cache is not used"),
        "keep TLS sessions in a uWSGI cache"),
    row("ssl-sessions-timeout", &["ssl-session-timeout"], None, Seconds, false, "300", Status::NotImplemented(
        "session tickets follow rustls's ticket-key rotation (every 6 hours; a ticket lives at most 12)"),
        "how long a TLS session can be resumed"),
    row("ssl-enable3", &["ssl-enable-sslv3"], None, Bool, false, "false", Status::NotImplemented(ONLY_TLS12_13), "enable SSLv3"),
    missing("ssl-enable-tlsv1", Bool, ONLY_TLS12_13, "enable TLS 1.0"),
    missing("ssl-option", Text, "raw OpenSSL options have no rustls equivalent", "set a raw OpenSSL option (a number)"),
    ignored("ssl-tmp-dir", Path, "a certificate, key or CA given as inline PEM is read from memory: no temporary file is written",
        "directory for the temporary files of inline PEM certificates"),
    ignored("https-session-context", Text, "rustls needs no session id context", "the TLS session id context of `https` sockets"),
    refused("fastcgi-socket", Address, NO_LISTENER, "listen for FastCGI"),
    refused("scgi-socket", Address, NO_LISTENER, "listen for SCGI"),
    planned("shared-socket", Address, "bind a socket in the master for later use"),
    row("protocol", &["socket-protocol"], None, Text, false, "uwsgi", SupportedWithDifference(
        "`uwsgi` or `http` (`http11`); the other protocols are refused, as ruwsgi would not serve them"),
        "protocol of the `socket` listeners (not `uwsgi-socket`)"),
    row("listen", &[], Some('l'), Number, false, "100", Supported, "accept backlog of each socket"),
    row("chmod-socket", &["chmod"], Some('C'), Mode, false, "", Supported, "mode of unix sockets (bare = 666)"),
    s("chown-socket", Text, "", "`user[:group]` of unix sockets"),
    s("umask", Text, "", "process umask (octal), set before sockets and files are created"),
    s("reuse-port", Bool, "false", "SO_REUSEPORT on TCP listeners: several instances bind the same port and the kernel spreads connections over them"),
    s("no-defer-accept", Bool, "false", "no TCP_DEFER_ACCEPT on TCP listeners: hand a connection to a worker at once, before its first bytes arrive"),
    s("so-keepalive", Bool, "false", "TCP keepalive probes (`SO_KEEPALIVE`) on accepted connections"),
    row("socket-sndbuf", &[], None, Bytes, false, "", SupportedWithDifference(
        "unset, TCP sockets bound to a loopback address get 262144 (uWSGI: never set)"),
        "`SO_SNDBUF` of the sockets ruwsgi binds, inherited by their connections (0 = the kernel's autotuning). The kernel doubles the value; at 32768 or less (a buffer no larger than one 64 KiB loopback packet) large responses over loopback stall on the client's delayed ACKs, ~2 req/s for 1 MiB, in uWSGI too"),
    row("tcp-nodelay", &[], None, Bool, false, "false", SupportedWithDifference(
        "always on: every TCP listener has TCP_NODELAY and its connections inherit it"),
        "TCP_NODELAY on accepted connections"),
    planned("freebind", Bool, "IP_FREEBIND on listeners"),
    row("sched-batch", &[], None, Bool, false, "true", SupportedWithDifference("ruwsgi only, not a uWSGI option"),
        "workers run as `SCHED_BATCH`: a worker woken by a request doesn't preempt the task running on its CPU (the proxy in front, another worker), which keeps going with its own batch; on a saturated machine each wake-up then finds more requests. `false`: the kernel's default policy, as uWSGI (either way, worker threads give their CPU back after each round of events, except in workers that serve HTTP/2: docs/operations.md)"),
    row("health-path", &[], None, Text, false, "", SupportedWithDifference("ruwsgi only, not a uWSGI option"),
        "answer this path (any query string) without entering Python: 200 while serving, 503 once a graceful stop began"),
    row("drain-delay", &[], None, Seconds, false, "0", SupportedWithDifference("ruwsgi only, not a uWSGI option"),
        "on a graceful stop (SIGTERM, master FIFO `q`), report unhealthy and keep serving this many seconds before closing the sockets"),
    row("http2-cleartext", &[], None, Bool, false, "false", SupportedWithDifference("ruwsgi only, not a uWSGI option"),
        "`http-socket` connections that open with the HTTP/2 preface speak HTTP/2 (h2c with prior knowledge; no `Upgrade: h2c`)"),
    row("enable-proxy-protocol", &["http-enable-proxy-protocol"], None, Bool, false, "false", SupportedWithDifference(
        "PROXY v2 is accepted besides v1, a malformed header gets a 400, and `http-enable-proxy-protocol` applies to every HTTP socket (there is no HTTP router)"),
        "take REMOTE_ADDR/REMOTE_PORT from a PROXY protocol (v1 or v2) header opening an HTTP connection"),
    ignored("close-on-exec", Bool, ALWAYS, "close sockets in exec'd children"),
    // --- the app
    s("chdir", Path, "", "directory to enter before loading the app"),
    s("chdir2", Path, "", "directory to enter after loading the app"),
    row("wsgi-file", &["file"], None, Path, false, "", Supported, "Python file defining the WSGI callable"),
    row("module", &["wsgi"], Some('w'), Text, false, "", Supported, "module (`pkg.mod` or `pkg.mod:callable`) defining the WSGI callable"),
    s("callable", Text, "application", "name of the WSGI callable"),
    s("asgi", Text, "", "module (`pkg.mod:app`) defining an ASGI 3 app, served instead of a WSGI one (docs/asgi.md)"),
    row("websockets-max-size", &["websocket-max-size"], None, Number, false, "1024", Supported, "largest WebSocket message in KiB (ASGI apps and `uwsgi.websocket_recv()`); a bigger one closes the socket with 1009"),
    row("websockets-ping-freq", &["websocket-ping-freq"], None, Seconds, false, "30", Supported, "seconds between pings on a quiet WebSocket"),
    row("websockets-pong-tolerance", &["websocket-pong-tolerance"], None, Seconds, false, "3", Supported, "seconds a pong may take before the WebSocket is closed"),
    row("pythonpath", &["python-path", "pp"], None, Path, true, "", Supported, "directory prepended to `sys.path`"),
    row("home", &["virtualenv", "venv", "pyhome"], Some('H'), Path, false, "", Supported, "virtualenv to use"),
    list("env", Pair, "set an environment variable before loading the app"),
    missing("unenv", Text, "the variable stays set", "unset an environment variable"),
    s("lazy-apps", Bool, "false", "load the app in each worker after fork"),
    s("lazy", Bool, "false", "`lazy-apps`, and a graceful reload replaces only the workers (legacy, use `lazy-apps`)"),
    s("need-app", Bool, "true", "exit with status 22 when the app fails to load (`false` is refused: no dynamic mode)"),
    row("mount", &[], None, Mount, true, "", SupportedWithDifference(
        "all apps share one interpreter (uWSGI gives each mount a sub-interpreter); a mount that fails to load stops start-up; a trailing `/` on the mountpoint is ignored; `pkg.mod` without `:callable` is accepted"),
        "mount an app at a URL prefix: `/prefix=file.py` (or `.wsgi`) or `/prefix=pkg.mod[:callable]`"),
    s("manage-script-name", Bool, "false", "take SCRIPT_NAME from the longest mountpoint PATH_INFO starts with; PATH_INFO keeps the rest"),
    row("vhost", &["vhost-host"], None, Bool, false, "false", Supported,
        "virtual hosting: a request goes to the app mounted at `host|SCRIPT_NAME` (host from HTTP_HOST, else SERVER_NAME), e.g. `mount = example.com|=site.py`"),
    s("no-default-app", Bool, "false", "answer 500 to requests no mountpoint matches, instead of passing them to app 0"),
    row("import", &["pyimport", "py-import", "python-import"], None, Text, true, "", Supported,
        "import a Python module (or a `.py` file) right before the apps load: in the master, or in each worker with `lazy-apps`"),
    row("shared-import", &["shared-pyimport", "shared-py-import", "shared-python-import"], None, Text, true, "", Supported,
        "import a Python module (or a `.py` file) in the master before any app loads, even with `lazy-apps`"),
    s("pyargv", Text, "", "`sys.argv` for the app: `[\"uwsgi\", *value.split()]`"),
    row("optimize", &[], Some('O'), Number, false, "0", SupportedWithDifference(
        "the interpreter is already running, so ruwsgi re-executes it once with `-O`/`-OO` at start-up"),
        "Python optimisation level (0, 1 or 2)"),
    s("wsgi-disable-file-wrapper", Bool, "false", "leave `wsgi.file_wrapper` out of the environ"),
    ignored("wsgi-env-behaviour", Text, ALWAYS, "environ dict lifetime policy"),
    ignored("py-call-osafterfork", Bool, "Python's at-fork hooks always run in ruwsgi", "run `os.register_at_fork` hooks in workers"),
    ignored("py-call-uwsgi-fork-hooks", Bool, "ruwsgi forks with `os.fork()`, which always runs CPython's before/after-fork hooks",
        "run CPython's fork hooks around every fork"),
    missing("gevent-early-monkey-patch", Bool, "gevent is out of scope (ruwsgi runs threads): gevent.monkey.patch_all() is not called",
        "call `gevent.monkey.patch_all()` before the apps load"),
    ignored("enable-threads", Bool, "Python threads are always enabled (as in uWSGI >= 2.0.27)", "allow app threads"),
    ignored("single-interpreter", Bool, "ruwsgi always uses one interpreter", "no sub-interpreters"),
    row("plugins", &["plugin", "need-plugin", "plugins-dir"], None, Text, true, "", IgnoredWithNotice(BUILT_IN),
        "load plugins (python and the plugins of uWSGI's PyPI build are built in; other plugins are errors)"),
    never("pyshell", "run the app and a shell separately", "interactive shell in the workers"),
    never("paste", PYTHON_ONLY, "load a Paste Deploy app"),
    never("pecan", PYTHON_ONLY, "load a Pecan app"),
    never("web3", PYTHON_ONLY, "load a web3 app"),
    never("pump", PYTHON_ONLY, "load a Pump app"),
    never("psgi", PYTHON_ONLY, "load a Perl app"),
    never("rack", PYTHON_ONLY, "load a Ruby app"),
    never("jvm-main-class", PYTHON_ONLY, "load a JVM app"),
    never("lua", PYTHON_ONLY, "load a Lua app"),
    never("mono-app", PYTHON_ONLY, "load a Mono app"),
    // --- processes
    row("master", &[], Some('M'), Bool, false, "false", SupportedWithDifference(
        "ruwsgi always runs a master process"), "run a master process"),
    row("processes", &["workers"], Some('p'), Number, false, "1", Supported, "number of worker processes (0: none, the master runs only mules, spoolers, daemons and crons)"),
    s("threads", Number, "1", "threads per worker"),
    ignored("thunder-lock", Bool, "ruwsgi workers don't contend on accept() this way", "serialize accept()"),
    s("cheaper", Number, "0", "adaptive process spawning: the fewest workers kept running (below `processes`; 0 = off)"),
    s("cheaper-initial", Number, "", "workers started at first in cheaper mode (default: `cheaper`)"),
    s("cheaper-step", Number, "1", "workers added at a time"),
    row("cheaper-algo", &[], None, Text, false, "spare", SupportedWithDifference(
        "`spare2` (with `cheaper-idle`) is uWSGI 2.1's; an unknown name is an error (uWSGI falls back to `spare`)"),
        "adaptive spawning algorithm: spare, spare2, backlog, busyness or manual"),
    s("cheaper-overload", Seconds, "3", "checks (seconds) of overload before adding workers; `backlog`: the queue length; `busyness`: the window"),
    s("cheaper-idle", Number, "10", "`spare2`: checks with more than `cheaper` idle workers before removing one"),
    row("cheaper-rss-limit-soft", &[], None, Bytes, false, "", SupportedWithDifference(
        "works without `memory-report` (ruwsgi's workers always report their RSS)"),
        "add no workers while the workers' total RSS is at least this"),
    s("cheaper-rss-limit-hard", Bytes, "", "remove a worker while the workers' total RSS is at least this (needs `cheaper-rss-limit-soft`)"),
    s("cheaper-busyness-max", Number, "50", "`busyness`: average busyness (%) above which workers are added"),
    s("cheaper-busyness-min", Number, "25", "`busyness`: average busyness (%) below which a worker is removed"),
    s("cheaper-busyness-multiplier", Number, "10", "`busyness`: a worker is removed after `cheaper-overload` x this many idle seconds"),
    s("cheaper-busyness-penalty", Number, "2", "`busyness`: added to the multiplier when workers come back too soon"),
    s("cheaper-busyness-verbose", Bool, "false", "`busyness`: log every check"),
    s("cheaper-busyness-backlog-alert", Number, "33", "`busyness`: spawn emergency workers when the listen queue is longer"),
    s("cheaper-busyness-backlog-multiplier", Number, "3", "`busyness`: the multiplier while emergency workers run"),
    s("cheaper-busyness-backlog-step", Number, "1", "`busyness`: emergency workers spawned at a time"),
    s("cheaper-busyness-backlog-nonzero", Seconds, "60", "`busyness`: spawn emergency workers when the listen queue stays non-empty this long"),
    s("idle", Seconds, "0", "stop every worker after this many seconds without a request; the next connection starts them again"),
    s("die-on-idle", Bool, "false", "with `idle`: shut down instead"),
    s("cheap", Bool, "false", "start without workers: spawn them at the first connection"),
    row("die-on-term", &[], None, Bool, false, "false", SupportedWithDifference(
        "SIGTERM always shuts down gracefully in ruwsgi, as in uWSGI 2.1"), "shut down on SIGTERM"),
    hook("hook-asap", "run a hook action (`action:args`, e.g. `exec:cmd`, `mkdir:dir`) as soon as the config is read"),
    hook("hook-pre-jail", "run a hook action at the first start only (not after a reload)"),
    hook("hook-as-root", "run a hook action before privileges drop (only when started as root)"),
    hook("hook-as-user", "run a hook action after privileges drop (only when started as root)"),
    hook("hook-as-user-atexit", "run a hook action before the master exits or reloads (failures only logged)"),
    hook("hook-pre-app", "run a hook action before the app loads (in each worker with `lazy-apps`)"),
    hook("hook-post-app", "run a hook action after the app loaded (in each worker with `lazy-apps`)"),
    hook("hook-post-fork", "run a hook action in each worker right after its fork"),
    hook("hook-accepting", "run a hook action in each worker when it starts accepting"),
    hook("hook-accepting1", "run a hook action in worker 1 when it starts accepting"),
    hook("hook-accepting-once", "run a hook action in each worker when it first starts accepting (not on respawns)"),
    hook("hook-accepting1-once", "run a hook action in worker 1 when it first starts accepting (not on respawns)"),
    hook("hook-master-start", "run a hook action when the master starts (`unix_signal:N function` maps a signal)"),
    list("exec-asap", Text, "run a command (`/bin/sh -c`) as soon as the config is read; failure stops start-up"),
    list("exec-pre-jail", Text, "run a command at the first start only (not after a reload); failure stops start-up"),
    list("exec-as-root", Text, "run a command before privileges drop (only when started as root); failure stops start-up"),
    list("exec-as-user", Text, "run a command after privileges drop (only when started as root); failure stops start-up"),
    list("exec-as-user-atexit", Text, "run a command before the master exits or reloads"),
    list("exec-pre-app", Text, "run a command before the app loads (e.g. migrations); failure stops start-up"),
    list("exec-post-app", Text, "run a command after the app loaded; failure stops start-up"),
    list("attach-daemon", Text, "run a command (`/bin/sh -c`) under the master: respawned when it dies, stopped on reload and shutdown"),
    list("smart-attach-daemon", Text, "`pidfile[,secs] command`: run a self-daemonizing command, watch the pid in its pidfile; it survives reload and shutdown"),
    row("smart-attach-daemon2", &[], None, Text, true, "", SupportedWithDifference(
        "the command stays a child of the master rather than being double-forked; ruwsgi writes its pidfile all the same"),
        "`pidfile[,secs] command`: like `smart-attach-daemon` for a foreground command; ruwsgi writes the pidfile"),
    row("attach-daemon2", &[], None, Text, true, "", SupportedWithDifference(
        "keys ns_pid, notifypid and legion are refused; cmd, pidfile, daemonize, freq, control, stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle and touch work"),
        "`key=value,...` form of the daemon options (`cmd=...,pidfile=...`)"),
    list("cron", Text, "`min hour day month weekday command`: the master runs the command on this schedule (-1 = any, -N = every N)"),
    list("cron2", Text, "`[minute=..,hour=..,day=..,month=..,week=..,unique=1,harakiri=S] command`: key=value form of `cron`"),
    list("unique-cron", Text, "like `cron`, but not started again while the previous run lives"),
    s("locks", Number, "0", "user locks 1..N for `uwsgi.lock(N)` besides lock 0 (at most 64)"),
    s("cron-harakiri", Seconds, "0", "kill a cron command's process group after this many seconds (0 = never)"),
    row("spooler", &[], Some('Q'), Path, true, "", SupportedWithDifference(SPOOLER_DIFF),
        "run a spooler on this queue directory (created if missing); repeat for more queues"),
    never("spooler-external", "ruwsgi spools only to the queues its own spoolers drain", "queue directory drained by another instance"),
    s("spooler-processes", Number, "1", "spooler processes per queue directory"),
    row("spooler-import", &["spooler-pyimport", "spooler-py-import", "spooler-python-import"], None, Text, true, "",
        Supported, "module (or `.py` file) imported in the spooler processes"),
    row("spooler-frequency", &["spooler-freq"], None, Seconds, false, "30", Supported,
        "seconds a spooler sleeps between scans of its queue"),
    s("spooler-max-tasks", Number, "0", "recycle a spooler process after this many tasks (0 = never)"),
    s("spooler-harakiri", Seconds, "0", "kill a spooler whose task runs longer than this (0 = never); the task runs again"),
    s("spooler-ordered", Bool, "false", "run the tasks in name order: `priority` subdirectories by number first"),
    s("spooler-chdir", Path, "", "directory a spooler moves to before each task (default: the queue directory)"),
    s("spooler-quiet", Bool, "false", "no log line per spooled and per run task"),
    list("touch-spoolers-reload", Path, "gracefully restart the spoolers when this file's mtime changes"),
    row("mule", &[], None, Text, true, "", Supported,
        "add a mule: `file.py` (run as `__main__`), `module:function` (called), or empty (messages and signals only)"),
    row("mules", &[], None, Number, true, "", Supported, "add this many mules that wait for messages and signals"),
    row("farm", &[], None, Text, true, "", Supported, "`name:1,2`: a farm of mules sharing a message queue"),
    row("mule-harakiri", &[], None, Seconds, false, "0", SupportedWithDifference(
        "it also covers the `mule_msg_hook` handling a message, not only signal handlers"),
        "kill a mule whose message or signal handler runs longer than this (0 = never)"),
    s("mule-reload-mercy", Seconds, "60", "seconds a mule may take to exit on reload and shutdown"),
    s("mule-msg-size", Bytes, "0", "socket buffer size of the mule message queues (0 = system default)"),
    list("touch-mules-reload", Path, "restart the mules when this file's mtime changes"),
    s("master-fifo", Path, "", "master control FIFO (one-letter commands: r R w c q Q s l)"),
    ignored("no-orphans", Bool, "ruwsgi workers always exit when the master dies", "kill workers when the master dies"),
    planned("reaper", Bool, "reap all children"),
    s("exit-on-reload", Bool, "false", "exit (status 0) when a reload is requested, once the workers are gone"),
    s("honour-stdin", Bool, "false", "keep stdin instead of replacing it with /dev/null"),
    ignored("offload-threads", Number,
        "static files and `wsgi.file_wrapper` bodies already go out from the worker's event loop, never holding a Python thread",
        "offload threads per worker"),
    // --- privileges and files
    s("uid", Text, "", "user to run as after binding"),
    s("gid", Text, "", "group to run as after binding"),
    s("pidfile", Path, "", "write the master pid here before dropping privileges"),
    s("pidfile2", Path, "", "write the master pid here after dropping privileges"),
    s("vacuum", Bool, "false", "remove unix sockets and pidfiles on exit"),
    refused("cap", Text, NO_ISOLATION, "Linux capabilities to keep"),
    refused("chroot", Path, NO_ISOLATION, "chroot before dropping privileges"),
    refused("unshare", Text, NO_ISOLATION, "Linux namespaces to unshare"),
    refused("cgroup", Text, NO_ISOLATION, "run in a cgroup"),
    refused("namespace", Text, NO_ISOLATION, "run in a namespace jail"),
    refused("jail", Text, NO_ISOLATION, "run in a FreeBSD jail"),
    never("ksm", "not useful for ruwsgi workers", "Linux KSM page merging"),
    // --- logging
    row("daemonize", &[], Some('d'), Path, false, "", Supported, "detach and log to this file"),
    s("daemonize2", Path, "", "detach after loading the app and log to this file"),
    s("logto", Path, "", "log to this file"),
    s("logto2", Path, "", "log to this file (opened after the app is loaded)"),
    row("disable-logging", &[], Some('L'), Bool, false, "false", Supported, "no request log lines"),
    s("log-micros", Bool, "false", "request times in microseconds"),
    s("log-4xx", Bool, "false", "log requests answered 4xx even with `disable-logging`"),
    s("log-5xx", Bool, "false", "log requests answered 5xx even with `disable-logging`"),
    s("log-slow", Number, "0", "log requests that took at least this many ms even with `disable-logging` (0 = off)"),
    s("log-big", Bytes, "0", "log responses of at least this many body bytes even with `disable-logging` (0 = off)"),
    s("log-zero", Bool, "false", "log responses with an empty body even with `disable-logging`"),
    s("log-sendfile", Bool, "false", "log responses sent with sendfile even with `disable-logging`"),
    row("log-format", &["logformat"], None, Text, false, "", Supported, "request log line format with `%(var)` fields (see docs/logging.md)"),
    row("logformat-strftime", &["log-format-strftime"], None, Bool, false, "false", Supported,
        "`%(ftime)` uses the `log-date` strftime format"),
    row("memory-report", &[], Some('m'), Bool, false, "false", Supported, "the worker's address space and RSS before each request log line"),
    s("log-maxsize", Bytes, "0", "rotate the log file (`<file>.<epoch>`) when it grows past this size (0 = never)"),
    s("log-backupname", Path, "", "name the rotated log file gets instead of `<file>.<epoch>`"),
    row("log-reopen", &[], None, Bool, false, "false", SupportedWithDifference(
        "the log file is always reopened on reload and after a rotation"), "reopen the log file on reload"),
    row("logdate", &["log-date"], None, Text, false, "", Supported,
        "prefix server messages with the date (`ctime()` form, or this strftime format)"),
    s("log-master", Bool, "false", "workers' output and log lines go through the master, which writes them"),
    row("threaded-logger", &[], None, Bool, false, "false", SupportedWithDifference(
        "implies `log-master`; the master writes the log itself in its poll loop, with no thread"),
        "offload log writing to a thread"),
    row("logger", &[], None, Text, true, "", Supported,
        "log destination `[name ]file:PATH|stdio|fd:N|syslog[:ident[,facility]]|rsyslog:ADDR|socket:ADDR|systemd` (implies `log-master`)"),
    row("req-logger", &[], None, Text, true, "", Supported, "request log destination, as `logger` (implies `log-master`)"),
    list("log-route", Text, "`NAME REGEXP`: log lines matching REGEXP go to the logger named NAME only"),
    list("log-req-route", Text, "`NAME REGEXP`: request log lines matching REGEXP go to the request logger named NAME only"),
    list("log-encoder", Text, "add an encoder (`prefix`, `suffix`, `nl`, `format`, `json`, `gzip`) to the log chain"),
    list("log-req-encoder", Text, "add an encoder to the request log chain"),
    list("log-drain", Text, "drop server log lines matching this regexp (implies `log-master`)"),
    list("log-filter", Text, "show only server log lines matching one of these regexps (implies `log-master`)"),
    row("log-master-bufsize", &[], None, Bytes, false, "65536", SupportedWithDifference(
        "default 64 KiB (uWSGI: 8 KiB)"), "longest log message the master reads; longer ones are cut"),
    s("log-json", Bool, "false",
        "ruwsgi only: the request log and the server's messages as JSON lines, with the request's fields"),
    s("log-x-forwarded-for", Bool, "false", "log the X-Forwarded-For header as the client address"),
    ignored("ignore-sigpipe", Bool, "ruwsgi never dies on SIGPIPE", "don't report SIGPIPE"),
    ignored("ignore-write-errors", Bool, "client disconnects are logged at debug level", "don't log write errors"),
    ignored("disable-write-exception", Bool, "client disconnects are logged at debug level", "no exception on write errors"),
    ignored("auto-procname", Bool, NO_PROCNAME, "meaningful process names"),
    ignored("procname", Text, NO_PROCNAME, "process name"),
    ignored("procname-prefix", Text, NO_PROCNAME, "process name prefix"),
    ignored("procname-prefix-spaced", Text, NO_PROCNAME, "process name prefix with a space"),
    ignored("procname-append", Text, NO_PROCNAME, "process name suffix"),
    ignored("procname-master", Text, NO_PROCNAME, "master process name"),
    // --- recycling and limits
    row("harakiri", &[], Some('t'), Seconds, false, "0", Supported, "kill a worker whose request runs longer (0 = off)"),
    s("harakiri-verbose", Bool, "false", "log the stuck worker's /proc syscall and wchan on harakiri"),
    row("py-tracebacker", &[], None, Text, false, "", SupportedWithDifference(
        "the stuck request's Python stack is logged on every harakiri anyway; turns on `harakiri-verbose`; no tracebacker socket is created"),
        "log Python stacks of stuck requests"),
    s("harakiri-graceful-timeout", Seconds, "0", "graceful harakiri: SIGTERM first, SIGKILL after this many seconds (0 = SIGKILL at once)"),
    s("harakiri-graceful-signal", Number, "15", "graceful harakiri: the signal sent first (with `harakiri-graceful-timeout`)"),
    planned("harakiri-queue-threshold", Number, "harakiri when the listen queue is this full"),
    row("max-requests", &[], Some('R'), Number, false, "0", Supported, "recycle a worker after this many requests (0 = off)"),
    s("max-requests-delta", Number, "0", "per-worker jitter on `max-requests` (worker id x delta)"),
    s("min-worker-lifetime", Seconds, "10", "seconds a worker lives before it may be recycled"),
    s("max-worker-lifetime", Seconds, "0", "recycle a worker after this many seconds (0 = off)"),
    s("reload-on-rss", Megabytes, "0", "recycle a worker whose RSS exceeds this (0 = off)"),
    s("reload-on-as", Megabytes, "0", "recycle a worker whose address space exceeds this (0 = off)"),
    s("evil-reload-on-rss", Megabytes, "0", "the master kills a worker whose RSS exceeds this (0 = off)"),
    row("limit-as", &[], None, Megabytes, false, "0", SupportedWithDifference(
        "set in each worker after the fork, so the master isn't limited"),
        "limit each worker's address space (RLIMIT_AS) to this many MiB (0 = no limit)"),
    s("worker-reload-mercy", Seconds, "60", "seconds a worker may take to finish on reload"),
    s("reload-mercy", Seconds, "", "seconds the whole stack may take on reload/shutdown (unset: workers get `worker-reload-mercy`, attached daemons 3)"),
    row("buffer-size", &[], Some('b'), Bytes, false, "4096", Supported, "max size of a request's header block / uwsgi vars"),
    row("limit-post", &[], None, Bytes, false, "0", SupportedWithDifference(
        "larger bodies get a 413 response (uWSGI drops the request)"), "max request body size (0 = unlimited)"),
    s("post-buffering", Bytes, "0", "read bodies up to this size before calling the app"),
    planned("post-buffering-bufsize", Bytes, "post-buffering read chunk size"),
    row("socket-timeout", &[], Some('z'), Seconds, false, "4", Supported, "socket inactivity timeout"),
    s("http-timeout", Seconds, "60", "seconds an HTTP connection may be idle or slow"),
    row("http-keepalive", &[], None, Number, false, "0", SupportedWithDifference(
        "max keep-alive connections per worker (uWSGI: an on/off switch for the router)"), "keep-alive connections per worker (0 = no limit besides `max-fd`)"),
    s("max-fd", Number, "0", "max open connections per worker; above the hard RLIMIT_NOFILE it raises that (root) (0 = no cap)"),
    ignored("http-auto-chunked", Bool, "HTTP/1.1 responses without Content-Length are always chunked",
        "chunk responses without Content-Length"),
    row("http-websockets", &[], None, Bool, false, "false", SupportedWithDifference(
        "always on: there is no HTTP router, and the workers pass `Upgrade` requests to the app"),
        "let WebSocket `Upgrade` requests through to the app (`uwsgi.websocket_handshake()`)"),
    never("http-processes", NO_ROUTER, "HTTP router processes"),
    never("http-to", NO_ROUTER, "HTTP router upstream"),
    missing("listen-queue-alarm", Text, "no alarm is raised", "alarm on a full listen queue"),
    missing("alarm", Text, "no alarm is raised", "define an alarm"),
    // --- reloading
    row("py-autoreload", &["py-auto-reload", "python-autoreload"], None, Seconds, false, "0", Supported,
        "reload when a loaded module changes, checked every N seconds (0 = off)"),
    row("py-autoreload-ignore", &["py-auto-reload-ignore"], None, Text, true, "", Supported, "module file not checked by `py-autoreload`"),
    list("touch-reload", Path, "reload gracefully when this file's mtime changes"),
    list("touch-workers-reload", Path, "reload the workers only (gracefully) when this file's mtime changes"),
    row("signal-timer", &["timer"], None, Text, true, "", Supported, "`SIGNAL SECONDS`: the master raises the uWSGI signal every SECONDS (docs/python-api.md)"),
    row("signal-rbtimer", &["rbtimer"], None, Text, true, "", Supported, "`SIGNAL SECONDS`: as `signal-timer`"),
    list("fs-signal", Text, "`PATH SIGNAL`: raise the uWSGI signal when the file or directory changes (inotify)"),
    list("touch-signal", Text, "`PATH SIGNAL`: raise the uWSGI signal when the file's mtime changes"),
    list("touch-chain-reload", Path, "chain-reload when this file's mtime changes"),
    // --- stats
    row("stats", &["stats-server"], None, Address, false, "", Supported, "address of the JSON stats server"),
    s("stats-http", Bool, "false", "prefix the stats JSON with HTTP headers"),
    s("stats-minified", Bool, "false", "stats JSON without whitespace"),
    row("metrics", &["stats-prometheus"], None, Address, false, "", SupportedWithDifference(
        "ruwsgi only, not a uWSGI option"), "serve the stats server's figures in Prometheus text format over HTTP on this address"),
    planned("stats-push", Text, "push stats to a collector"),
    never("carbon", "use the stats server with an exporter", "push metrics to carbon"),
    never("snmp", "use the stats server with an exporter", "SNMP server"),
    never("enable-metrics", "use the stats server with an exporter", "metrics subsystem"),
    // --- static files
    row("static-map", &[], None, Mapping, true, "", Supported, "serve files under the mount from the directory"),
    row("static-map2", &[], None, Mapping, true, "", Supported, "like `static-map`, keeping the mount in the file path"),
    list("check-static", Path, "document root tried before the app"),
    list("static-index", Text, "file name tried for directory requests"),
    list("static-expires-type", TypeSeconds, "Expires for a MIME type"),
    list("static-expires", RegexSeconds, "Expires for files matching the regexp"),
    list("static-expires-uri", RegexSeconds, "Expires for URIs matching the regexp"),
    s("static-gzip-all", Bool, "false", "serve `X.gz` when the client accepts gzip"),
    list("static-gzip-dir", Path, "directory whose files have gzip variants"),
    list("static-skip-ext", Text, "extension never served statically"),
    list("static-safe", Path, "extra root symlinks may point into"),
    list("mimefile", Path, "extra `mime.types` file"),
    ignored("honour-range", Bool, "Range requests on static files are always honoured", "honour Range on static files"),
    row("add-header", &[], None, Text, true, "", SupportedWithDifference(
        "added to the app's responses and to static files, not to ruwsgi's own error replies"),
        "add a header (`Name: value`) to every response"),
    row("collect-header", &["response-header-collect"], None, Text, true, "", SupportedWithDifference(
        "the value is seen by `log-format`'s `%(var.VAR)`; routing's `${VAR}` doesn't see it"),
        "`Header-Name VAR`: keep the app's response header in the request variable VAR"),
    row("pull-header", &[], None, Text, true, "", SupportedWithDifference(
        "the value is seen by `log-format`'s `%(var.VAR)`; routing's `${VAR}` doesn't see it"),
        "`Header-Name VAR`: like `collect-header`, and drop the header from the response"),
    route("route", "routing rule: `<regexp on PATH_INFO> <action>:<args>`"),
    route("route-uri", "routing rule on REQUEST_URI"),
    route("route-qs", "routing rule on QUERY_STRING"),
    route("route-host", "routing rule on HTTP_HOST"),
    route("route-remote-addr", "routing rule on REMOTE_ADDR"),
    route("route-user-agent", "routing rule on HTTP_USER_AGENT"),
    route("route-referer", "routing rule on HTTP_REFERER"),
    route("route-remote-user", "routing rule on REMOTE_USER"),
    route("route-if", "routing rule on a condition: `<cond>:<args> <action>:<args>`"),
    route("route-if-not", "routing rule on a negated condition"),
    route("route-run", "routing action run on every request: `<action>:<args>`"),
    route("route-label", "a label for the `goto` routing action"),
    final_route("final-route", "routing rule run after the request"),
    final_route("final-route-status", "after-request routing rule on the status"),
    final_route("final-route-host", "after-request routing rule on HTTP_HOST"),
    final_route("final-route-uri", "after-request routing rule on REQUEST_URI"),
    final_route("final-route-qs", "after-request routing rule on QUERY_STRING"),
    final_route("final-route-if", "after-request routing rule on a condition"),
    final_route("final-route-if-not", "after-request routing rule on a negated condition"),
    final_route("final-route-run", "after-request routing action"),
    final_route("final-route-remote-addr", "after-request routing rule on REMOTE_ADDR"),
    final_route("final-route-user-agent", "after-request routing rule on HTTP_USER_AGENT"),
    final_route("final-route-remote-user", "after-request routing rule on REMOTE_USER"),
    final_route("final-route-referer", "after-request routing rule on HTTP_REFERER"),
    final_route("final-route-label", "label for after-request routing"),
    head_route("error-route", "routing rule run on an app error"),
    head_route("error-route-status", "error routing rule on the status"),
    head_route("error-route-host", "error routing rule on HTTP_HOST"),
    head_route("error-route-uri", "error routing rule on REQUEST_URI"),
    head_route("error-route-qs", "error routing rule on QUERY_STRING"),
    head_route("error-route-if", "error routing rule on a condition"),
    head_route("error-route-if-not", "error routing rule on a negated condition"),
    head_route("error-route-run", "error routing action"),
    head_route("error-route-remote-addr", "error routing rule on REMOTE_ADDR"),
    head_route("error-route-user-agent", "error routing rule on HTTP_USER_AGENT"),
    head_route("error-route-remote-user", "error routing rule on REMOTE_USER"),
    head_route("error-route-referer", "error routing rule on HTTP_REFERER"),
    head_route("error-route-label", "label for error routing"),
    head_route("response-route", "routing rule run on the app's response head"),
    head_route("response-route-status", "response routing rule on the status"),
    head_route("response-route-host", "response routing rule on HTTP_HOST"),
    head_route("response-route-uri", "response routing rule on REQUEST_URI"),
    head_route("response-route-qs", "response routing rule on QUERY_STRING"),
    head_route("response-route-if", "response routing rule on a condition"),
    head_route("response-route-if-not", "response routing rule on a negated condition"),
    head_route("response-route-run", "response routing action"),
    head_route("response-route-remote-addr", "response routing rule on REMOTE_ADDR"),
    head_route("response-route-user-agent", "response routing rule on HTTP_USER_AGENT"),
    head_route("response-route-remote-user", "response routing rule on REMOTE_USER"),
    head_route("response-route-referer", "response routing rule on HTTP_REFERER"),
    head_route("response-route-label", "label for response routing"),
    // --- uWSGI subsystems outside ruwsgi's scope
    never("emperor", NO_EMPEROR, "run the Emperor"),
    never("emperor-tyrant", NO_EMPEROR, "Emperor tyrant mode"),
    never("emperor-broodlord", NO_EMPEROR, "Emperor broodlord mode"),
    never("vassals-include", NO_EMPEROR, "config added to vassals"),
    refused("zerg", Address, NO_LISTENER, "attach to a zerg server"),
    refused("zerg-server", Address, NO_LISTENER, "run a zerg server"),
    refused("fastrouter", Address, NO_LISTENER, "run the fastrouter"),
    refused("rawrouter", Address, NO_LISTENER, "run the rawrouter"),
    refused("sslrouter", Address, NO_LISTENER, "run the sslrouter"),
    never("subscribe-to", NO_ROUTER, "subscribe to a router"),
    never("legion", "use an external cluster manager", "Legion clustering"),
    never("cache2", "use Redis or memcached", "shared cache"),
    never("sharedarea", "use Redis or shared memory from Python", "shared memory area"),
    never("gevent", NO_LOOP, "gevent loop engine"),
    never("asyncio", NO_LOOP, "asyncio loop engine"),
    never("greenlet", NO_LOOP, "greenlet loop engine"),
    never("ugreen", NO_LOOP, "uGreen loop engine"),
    never("async", NO_LOOP, "async cores"),
];

/// The row for a long name or alias: from `OPTIONS`, else the row of any other uWSGI 2.0
/// option (see `groups`), so every real uWSGI name is found. `_` is the same as `-` (as in
/// `UWSGI_*` variables; real uWSGI ini keys don't do this, accepting it is a harmless superset).
#[must_use]
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    // As in uWSGI, names are exact: `python_path` in an ini is no option (only `UWSGI_*`
    // variables map `_` to `-`, which their reader does), so it gets the unknown-key warning
    // with `python-path` as the suggestion.
    OPTIONS.iter().find(|o| o.name == name || o.aliases.contains(&name)).or_else(|| crate::groups::find(name))
}

/// On the command line, as with uWSGI's `getopt_long`, a long option may be shortened to any
/// prefix that names only one option (`--wsgi-fil` is `--wsgi-file`). `Ok(None)`: no name
/// starts with `prefix`; `Err`: the names it could be.
pub fn find_abbreviated(prefix: &str) -> Result<Option<&'static OptionSpec>, Vec<&'static str>> {
    if let Some(spec) = find(prefix) {
        return Ok(Some(spec));
    }
    let names: std::collections::BTreeSet<&'static str> = OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
        .chain(crate::uwsgi_names::UWSGI_NAMES.iter().map(|(n, ..)| *n))
        .filter(|n| !prefix.is_empty() && n.starts_with(prefix))
        .collect();
    match names.len() {
        0 => Ok(None),
        1 => Ok(names.first().and_then(|n| find(n))),
        _ => Err(names.into_iter().collect()),
    }
}

/// The row for a one-letter command-line alias.
#[must_use]
pub fn find_short(c: char) -> Option<&'static OptionSpec> {
    // uWSGI's letters for options whose main-table row gives none (`-Q` is `spooler`) too.
    OPTIONS.iter().find(|o| o.short == Some(c)).or_else(|| {
        let (name, ..) = crate::uwsgi_names::UWSGI_NAMES.iter().find(|(_, _, _, short, _)| *short == Some(c))?;
        find(name)
    })
}

/// `Log_Format` → `log-format`? No: keys are case-sensitive in uWSGI; only `_` → `-`.
#[must_use]
pub fn normalise(name: &str) -> String {
    name.replace('_', "-")
}

/// The known name closest to `name`, when the distance is small enough to be a typo. The
/// main table's options are tried first, since they are the ones configs use; then every other
/// uWSGI option.
#[must_use]
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = normalise(name);
    // A third of the length, at least 1, at most 3: `proccesses` → `processes` (1) but not
    // every 4-letter word → `http`.
    let limit = (name.chars().count() / 3).clamp(1, 3);
    let closest = |rows: &'static [OptionSpec]| {
        rows.iter()
            .flat_map(|o| std::iter::once(&o.name).chain(o.aliases.iter()).map(move |n| (o.name, *n)))
            // Two-letter aliases (`pp`, `ns`, `st`) are no one's typo target: `app` isn't `pp`.
            .filter(|(_, n)| n.len() > 2)
            .map(|(canonical, n)| (levenshtein(&name, n), canonical))
            .filter(|(d, _)| *d <= limit)
            .min_by_key(|(d, _)| *d)
            .map(|(_, canonical)| canonical)
    };
    closest(OPTIONS).or_else(|| closest(crate::groups::rows()))
}

/// Edit distance (insert/delete/substitute). Hand-written: the table is ~250 short names and
/// this runs once per error, so the textbook two-row DP is plenty and saves a dependency.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn names(o: &OptionSpec) -> String {
    let mut out = format!("--{}", o.name);
    for a in o.aliases {
        let _ = write!(out, ", --{a}");
    }
    if let Some(c) = o.short {
        let _ = write!(out, ", -{c}");
    }
    out
}

/// The `--help` text: the supported options, then a pointer to the docs for the rest.
#[must_use]
pub fn render_help() -> String {
    let mut out = String::from(
        "Usage: ruwsgi [OPTIONS] [CONFIG.ini|.json|.yaml]\n\n\
         uWSGI-compatible WSGI server. Options come from UWSGI_* environment variables, then\n\
         config files, then command-line flags (later sources win).\n\nOptions:\n",
    );
    for o in OPTIONS.iter().filter(|o| o.status.is_supported()) {
        let value = match o.kind {
            Kind::Bool | Kind::Action | Kind::Logic => String::new(),
            k => format!(" <{}>", k.label()),
        };
        let _ = writeln!(out, "  {}{value}", names(o));
        let mut help = o.help.to_owned();
        if !o.default.is_empty() && o.kind != Kind::Bool {
            let _ = write!(help, " [default: {}]", o.default);
        }
        if o.repeat {
            help.push_str(" (repeatable)");
        }
        let _ = writeln!(out, "      {help}");
    }
    out.push_str("\nEvery other uWSGI option is listed with its status in docs/options.md.\n");
    out
}

/// `docs/options.md`: every option with its status. Checked by a test against the file.
#[must_use]
pub fn render_markdown() -> String {
    let mut out = String::from(
        "# ruwsgi options\n\n\
         Generated from `crates/ruwsgi-config/src/options.rs` by the `options_md_is_current` test\n\
         (`UPDATE_GOLDEN=1 cargo test -p ruwsgi-config` rewrites it). Do not edit by hand.\n\n\
         Statuses: **supported**; **supported\\*** (with the difference noted); **ignored** (accepted,\n\
         a one-line notice is logged at start-up because ruwsgi already behaves that way or the option\n\
         doesn't apply); **not implemented** (accepted: the server starts and logs one `WARNING:` line\n\
         naming the option, its file and line, and what is different); **refused** (start-up stops with\n\
         one line naming it: see [Refused options](#refused-options)). `--show-config` prints the\n\
         notices and warnings as `#` comments.\n\n\
         A key that is not a uWSGI option at all is accepted as a custom placeholder, as in uWSGI\n\
         (`%(key)` expands to its value); if nothing uses it, one warning names it with the closest\n\
         real option: `WARNING: app.ini:7: unknown option \"vaccum\" (did you mean \"vacuum\"?): kept only as a\n\
         custom placeholder and in uwsgi.opt` (the Python API's view of the config).\n\
         Differs from uWSGI: uWSGI ignores such keys silently. Under `strict = true` an unknown key\n\
         is an error (uWSGI: `[strict-mode] unknown config directive`), and so is every not-implemented\n\
         option. On the command line an unknown `--flag` is always an error, as in uWSGI.\n\n\
         Sources, lowest precedence first: `UWSGI_<OPTION>` environment variables (`UWSGI_PROCESSES=4`;\n\
         `_` becomes `-`, case-insensitive), config files in command-line order (`--ini`, `--json`,\n\
         `--yaml`, or one positional file), then command-line flags. Repeatable options accumulate in that\n\
         order; for the others the last value wins. Differs from uWSGI: uWSGI applies command-line\n\
         arguments strictly in order, so an `--ini` after a flag overrides the flag; in ruwsgi flags always win.\n\n\
         How values are read (numbers, booleans, comments), expansion and config logic: [config.md](config.md).\n\n\
         | option | aliases | value | repeat | default | status | description |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for o in OPTIONS {
        let mut aliases: Vec<String> = o.aliases.iter().map(|a| format!("`{a}`")).collect();
        if let Some(c) = o.short {
            aliases.push(format!("`-{c}`"));
        }
        let status = match o.status {
            Status::Supported => "supported".to_owned(),
            Status::SupportedWithDifference(d) => format!("supported\\*: {d}"),
            Status::NotImplemented(r) => format!("not implemented: {r}"),
            Status::Refused(r) => format!("**refused**: {r}"),
            Status::IgnoredWithNotice(r) => format!("ignored: {r}"),
        };
        let default = if o.default.is_empty() { String::new() } else { format!("`{}`", o.default) };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {default} | {status} | {} |",
            o.name,
            aliases.join(" "),
            o.kind.label().replace('|', "\\|"),
            if o.repeat { "yes" } else { "" },
            o.help.replace('|', "\\|"),
        );
    }
    render_refused(&mut out);
    render_other_options(&mut out);
    out
}

/// The refusal list: every refused option and group, by reason.
fn render_refused(out: &mut String) {
    out.push_str(
        "\n## Refused options\n\n\
         Ignoring these would leave the server unsafe or silently wrong, so start-up stops with one\n\
         line naming the option, even without `strict`:\n\n",
    );
    let mut by_reason: Vec<(&str, Vec<String>)> = Vec::new();
    let mut add = |why: &'static str, what: String| match by_reason.iter_mut().find(|(r, _)| *r == why) {
        Some((_, list)) => list.push(what),
        None => by_reason.push((why, vec![what])),
    };
    for o in OPTIONS {
        if let Status::Refused(why) = o.status {
            add(why, format!("`{}`", o.name));
        }
    }
    for g in crate::groups::GROUPS {
        if let Status::Refused(why) = g.status {
            add(why, format!("the [{}](#{}) group below ({})", g.name, g.name, g.about));
        }
    }
    for (why, what) in by_reason {
        let _ = writeln!(out, "- {}: {why}.", what.join(", "));
    }
    out.push_str(
        "- `need-app = false`: uWSGI would serve without an app (\"full dynamic mode\"), which ruwsgi\n  \
         doesn't have; starting anyway would answer every request with an error.\n\
         - `plugins` naming a plugin that is neither python nor one of the plugins built into uWSGI's PyPI\n  \
         package (`plugins = python3,http,gevent` is accepted; `php`, `psgi`... are not): the plugin's\n  \
         behaviour would be missing.\n\
\n\
         A routing rule whose action only logs (`donotlog`, `log`, `logvar`), adds a response header\n\
         (`addheader`), jumps (`continue`, `last`, `goto`) or sets the process name, and `route-label`,\n\
         is accepted with a warning instead (`route-if = equal:${PATH_INFO};/health donotlog:`).\n",
    );
}

/// Every other uWSGI 2.0 option name, by group, with the group's status.
fn render_other_options(out: &mut String) {
    out.push_str(
        "\n## Every other uWSGI option\n\n\
         The names of uWSGI 2.0 (core and the plugins built into the PyPI package) that the table above\n\
         doesn't list, generated from uWSGI's sources by `scripts/gen-uwsgi-names`. These are other names\n\
         of options in the table, and behave as them:\n\n",
    );
    let other_names: Vec<String> = crate::uwsgi_names::UWSGI_NAMES
        .iter()
        .filter(|(name, ..)| OPTIONS.iter().all(|o| o.name != *name && !o.aliases.contains(name)))
        .filter_map(|(name, ..)| {
            let main = crate::groups::find(name).filter(|o| OPTIONS.iter().any(|m| std::ptr::eq(m, *o)))?;
            Some(format!("`{name}` (`{}`)", main.name))
        })
        .collect();
    let _ = writeln!(out, "{}.", other_names.join(", "));
    out.push_str("\nThe others are in groups, each with one status.\n");
    for g in crate::groups::GROUPS {
        let names: Vec<String> = crate::groups::rows()
            .iter()
            .filter(|o| crate::groups::group_of(o.name).is_some_and(|og| og.name == g.name))
            .map(|o| format!("`{}`", o.name))
            .collect();
        if names.is_empty() {
            continue;
        }
        let status = match g.status {
            Status::Refused(r) => format!("**refused**: {r}"),
            Status::NotImplemented(r) => format!("not implemented: {r}"),
            Status::IgnoredWithNotice(r) => format!("ignored: {r}"),
            _ => String::new(),
        };
        let _ = write!(out, "\n### {}\n\n{}. Status: {status}.\n\n{}\n", g.name, capitalise(g.about), names.join(", "));
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_and_alias_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            for n in std::iter::once(&o.name).chain(o.aliases) {
                assert!(seen.insert(*n), "{n} listed twice");
            }
        }
        let mut shorts = std::collections::HashSet::new();
        for c in OPTIONS.iter().filter_map(|o| o.short) {
            assert!(shorts.insert(c), "-{c} listed twice");
        }
    }

    #[test]
    fn finds_aliases_and_exact_names_only() {
        assert_eq!(find("workers").map(|o| o.name), Some("processes"));
        // uWSGI's ini keys are exact: `_` is not `-` (only `UWSGI_*` variables map it).
        assert!(find("python_path").is_none());
        assert_eq!(suggest("python_path"), Some("pythonpath"));
        assert_eq!(find("venv").map(|o| o.name), Some("home"));
        assert_eq!(find_short('p').map(|o| o.name), Some("processes"));
        assert_eq!(find_short('H').map(|o| o.name), Some("home"));
        assert!(find("nope").is_none());
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(suggest("proccesses"), Some("processes"));
        assert_eq!(suggest("harakri"), Some("harakiri"));
        assert_eq!(suggest("wokers"), Some("processes"));
        assert_eq!(suggest("zzzzzzzzzz"), None);
    }

    #[test]
    fn every_real_uwsgi_name_is_found() {
        for name in [
            "hook-accepting1",
            "exec-asap",
            "cron2",
            "http11-socket",
            "http-enable-proxy-protocol",
            "collect-header",
            "vhost",
            "cheaper-busyness-max",
            "alarm",
            "logformat-strftime",
            "route-run",
            "py-call-uwsgi-fork-hooks",
            "gevent-early-monkey-patch",
            "honour-stdin",
        ] {
            assert!(find(name).is_some(), "{name} is a uWSGI 2.0 option");
        }
        for (name, _, _, _, alias_of) in crate::uwsgi_names::UWSGI_NAMES {
            let spec = find(name).unwrap_or_else(|| panic!("{name} not found"));
            // `pivot_root` is found as `pivot-root`, a name of its own in uWSGI too; `chmod`
            // as `chmod-socket`, the option it is another name of.
            let same = |n: &str| normalise(n) == normalise(name) || Some(n) == *alias_of;
            assert!(same(spec.name) || spec.aliases.iter().any(|a| same(a)), "{name} found as {}", spec.name);
        }
        assert_eq!(find("chmod").map(|o| o.name), Some("chmod-socket"));
        assert_eq!(find("httprouter").map(|o| o.name), Some("http"));
        assert_eq!(find("final-route").map(|o| o.name), Some("final-route"), "not `route`: another chain");
        assert_eq!(find_short('Q').map(|o| o.name), Some("spooler"));
        assert_eq!(
            find("final-route-referer").map(|o| o.status),
            Some(Status::SupportedWithDifference(FINAL_ROUTE_DIFF))
        );
        assert_eq!(
            find("error-route-status").map(|o| o.status),
            Some(Status::SupportedWithDifference(HEAD_ROUTE_DIFF))
        );
    }

    /// Names in the main table that are not options of uWSGI's `pip install uwsgi` build
    /// (`cheaper-idle` is uWSGI 2.1's).
    const RUWSGI_ONLY: &[&str] = &[
        "metrics",
        "stats-prometheus",
        "py-autoreload-ignore",
        "log-json",
        "health-path",
        "sched-batch",
        "http2-cleartext",
        "drain-delay",
        "asgi",
        "cheaper-idle",
    ];
    /// Options of uWSGI 2.0 plugins that `pip install uwsgi` doesn't build (so not in the generated
    /// list), listed to say ruwsgi serves only WSGI.
    const OTHER_PLUGINS: &[&str] = &["asyncio", "greenlet", "psgi", "rack", "jvm-main-class", "lua", "mono-app"];

    #[test]
    fn every_main_table_name_is_a_uwsgi_option_or_marked() {
        let real = |n: &str| crate::uwsgi_names::UWSGI_NAMES.iter().any(|(r, ..)| *r == n);
        for o in OPTIONS {
            for n in std::iter::once(&o.name).chain(o.aliases) {
                assert!(
                    real(n) || RUWSGI_ONLY.contains(n) || OTHER_PLUGINS.contains(n),
                    "{n} is not a uWSGI 2.0 option"
                );
            }
        }
        for n in RUWSGI_ONLY {
            let o = find(n).unwrap();
            assert!(o.status.is_supported() && !real(n), "{n}");
        }
    }

    #[test]
    fn suggests_from_every_uwsgi_name_after_the_main_table() {
        assert_eq!(suggest("vaccum"), Some("vacuum"));
        assert_eq!(suggest("process"), Some("processes"));
        assert_eq!(suggest("honor-stdin"), Some("honour-stdin"));
        assert_eq!(suggest("app"), None);
    }

    #[test]
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
