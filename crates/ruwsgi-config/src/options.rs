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
    /// Will be supported; using it now is an error.
    Planned,
    /// Won't be supported, for the given reason; using it is an error.
    NotPlanned(&'static str),
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

/// A planned option.
const fn planned(name: &'static str, kind: Kind, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::Planned, help)
}

/// An option that won't be supported.
const fn never(name: &'static str, reason: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, Kind::Text, false, "", Status::NotPlanned(reason), help)
}

/// An option accepted and ignored with a notice.
const fn ignored(name: &'static str, kind: Kind, reason: &'static str, help: &'static str) -> OptionSpec {
    row(name, &[], None, kind, false, "", Status::IgnoredWithNotice(reason), help)
}

use Kind::{
    Action, Address, Bool, Bytes, ConfigFile, Logic, Mapping, Megabytes, Mode, Mount, Number, Pair, Path, RegexSeconds,
    Seconds, Signal, Text, TypeSeconds,
};
use Status::{IgnoredWithNotice, Planned, Supported, SupportedWithDifference};

const NO_ROUTER: &str = "ruwsgi has no separate router processes";
const NO_CHEAPER: &str = "ruwsgi keeps all `processes` workers running (no adaptive spawning)";
const NO_EMPEROR: &str = "ruwsgi runs one instance; use systemd or a container orchestrator";
const PYTHON_ONLY: &str = "ruwsgi serves WSGI apps only";
const NO_LOOP: &str = "ruwsgi runs threads, not async loop engines";
const BUILT_IN: &str = "ruwsgi has Python built in";
const ALWAYS: &str = "ruwsgi always behaves this way";
const NO_PROCNAME: &str = "ruwsgi does not rename its processes";

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
    never("xml", "XML configs are not supported; use ini, JSON or YAML", "read options from an XML file"),
    planned("inherit", ConfigFile, "use a config file as a template"),
    row("set-placeholder", &["set-ph"], None, Pair, true, "", Supported, "define a placeholder `name=value` for `%(name)`"),
    planned("declare-option", Text, "declare a custom option"),
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
    row("if-plugin", &["ifplugin"], None, Logic, true, "", Supported, "keep the lines up to `endif` if the plugin is built in (`python`, `python3`, `http`...)"),
    list("if-not-plugin", Logic, "keep the lines up to `endif` if the plugin is not built in"),
    row("endif", &["end-if"], None, Logic, false, "", Supported, "end an `if-*` block (`end` too)"),
    s("strict", Bool, "false", "unknown option names are errors even when used as placeholders"),
    // --- sockets
    row("http", &[], None, Address, true, "", SupportedWithDifference(
        "served by the workers themselves like `http-socket`; there is no separate HTTP router process"),
        "listen for HTTP on this address"),
    row("http-socket", &[], None, Address, true, "", Supported, "listen for HTTP on this address, served by the workers"),
    row("socket", &["uwsgi-socket"], Some('s'), Address, true, "", Supported, "listen for the uwsgi protocol on this address (nginx `uwsgi_pass`)"),
    never("https", "terminate TLS in a reverse proxy", "listen for HTTPS"),
    never("https-socket", "terminate TLS in a reverse proxy", "listen for HTTPS in the workers"),
    never("fastcgi-socket", "speak HTTP or uwsgi to ruwsgi", "listen for FastCGI"),
    never("scgi-socket", "speak HTTP or uwsgi to ruwsgi", "listen for SCGI"),
    planned("shared-socket", Address, "bind a socket in the master for later use"),
    planned("protocol", Text, "default protocol of `socket`"),
    planned("socket-protocol", Text, "protocol of `socket`"),
    row("listen", &[], Some('l'), Number, false, "100", Supported, "accept backlog of each socket"),
    row("chmod-socket", &[], Some('C'), Mode, false, "", Supported, "mode of unix sockets (bare = 666)"),
    s("chown-socket", Text, "", "`user[:group]` of unix sockets"),
    planned("umask", Text, "process umask"),
    planned("reuse-port", Bool, "SO_REUSEPORT on listeners"),
    s("so-keepalive", Bool, "false", "TCP keepalive probes (`SO_KEEPALIVE`) on accepted connections"),
    row("tcp-nodelay", &[], None, Bool, false, "false", SupportedWithDifference(
        "HTTP connections always have TCP_NODELAY; this adds it to uwsgi-protocol connections"),
        "TCP_NODELAY on accepted connections"),
    planned("freebind", Bool, "IP_FREEBIND on listeners"),
    planned("enable-proxy-protocol", Bool, "accept the PROXY protocol header"),
    ignored("close-on-exec", Bool, ALWAYS, "close sockets in exec'd children"),
    // --- the app
    s("chdir", Path, "", "directory to enter before loading the app"),
    s("chdir2", Path, "", "directory to enter after loading the app"),
    row("wsgi-file", &["file"], None, Path, false, "", Supported, "Python file defining the WSGI callable"),
    row("module", &["wsgi"], Some('w'), Text, false, "", Supported, "module (`pkg.mod` or `pkg.mod:callable`) defining the WSGI callable"),
    s("callable", Text, "application", "name of the WSGI callable"),
    row("pythonpath", &["python-path", "pp"], None, Path, true, "", Supported, "directory prepended to `sys.path`"),
    row("home", &["virtualenv", "venv", "pyhome"], Some('H'), Path, false, "", Supported, "virtualenv to use"),
    list("env", Pair, "set an environment variable before loading the app"),
    planned("unenv", Text, "unset an environment variable"),
    s("lazy-apps", Bool, "false", "load the app in each worker after fork"),
    planned("lazy", Bool, "load the app in each worker (legacy, use `lazy-apps`)"),
    s("need-app", Bool, "true", "exit with status 22 when the app fails to load (`false` is refused: no dynamic mode)"),
    row("mount", &[], None, Mount, true, "", SupportedWithDifference(
        "all apps share one interpreter (uWSGI gives each mount a sub-interpreter); a mount that fails to load stops start-up; a trailing `/` on the mountpoint is ignored; `pkg.mod` without `:callable` is accepted"),
        "mount an app at a URL prefix: `/prefix=file.py` (or `.wsgi`) or `/prefix=pkg.mod[:callable]`"),
    s("manage-script-name", Bool, "false", "take SCRIPT_NAME from the longest mountpoint PATH_INFO starts with; PATH_INFO keeps the rest"),
    s("no-default-app", Bool, "false", "answer 500 to requests no mountpoint matches, instead of passing them to app 0"),
    planned("import", Text, "import a Python module at start-up"),
    planned("shared-import", Text, "import a Python module in the master"),
    planned("pyargv", Text, "`sys.argv` for the app"),
    row("optimize", &[], Some('O'), Number, false, "0", Planned, "Python optimisation level"),
    s("wsgi-disable-file-wrapper", Bool, "false", "leave `wsgi.file_wrapper` out of the environ"),
    ignored("wsgi-env-behaviour", Text, ALWAYS, "environ dict lifetime policy"),
    ignored("py-call-osafterfork", Bool, "Python's at-fork hooks always run in ruwsgi", "run `os.register_at_fork` hooks in workers"),
    ignored("enable-threads", Bool, "Python threads are always enabled (as in uWSGI >= 2.0.27)", "allow app threads"),
    ignored("single-interpreter", Bool, "ruwsgi always uses one interpreter", "no sub-interpreters"),
    row("plugins", &["plugin", "need-plugin", "plugins-dir"], None, Text, true, "", IgnoredWithNotice(BUILT_IN),
        "load plugins (python and http are built in; other plugins are errors)"),
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
    row("processes", &["workers"], Some('p'), Number, false, "1", Supported, "number of worker processes"),
    s("threads", Number, "1", "threads per worker"),
    ignored("thunder-lock", Bool, "ruwsgi workers don't contend on accept() this way", "serialize accept()"),
    ignored("cheaper", Number, NO_CHEAPER, "adaptive worker count (minimum)"),
    ignored("cheaper-initial", Number, NO_CHEAPER, "workers started at first"),
    ignored("cheaper-step", Number, NO_CHEAPER, "workers added at a time"),
    ignored("cheaper-algo", Text, NO_CHEAPER, "adaptive worker algorithm"),
    ignored("cheaper-overload", Seconds, NO_CHEAPER, "busy time before adding workers"),
    planned("idle", Seconds, "cheap mode after this idle time"),
    planned("die-on-idle", Bool, "exit when idle"),
    row("die-on-term", &[], None, Bool, false, "false", SupportedWithDifference(
        "SIGTERM always shuts down gracefully in ruwsgi, as in uWSGI 2.1"), "shut down on SIGTERM"),
    ignored("hook-master-start", Text,
        "only `unix_signal:15 gracefully_kill_them_all`, which is how ruwsgi treats SIGTERM anyway",
        "actions when the master starts"),
    planned("hook-pre-app", Text, "actions before the app is loaded"),
    planned("hook-post-app", Text, "actions after the app is loaded"),
    planned("hook-accepting", Text, "actions when a worker starts accepting"),
    list("attach-daemon", Text, "run a command (`/bin/sh -c`) under the master: respawned when it dies, stopped on reload and shutdown"),
    list("smart-attach-daemon", Text, "`pidfile[,secs] command`: run a self-daemonizing command, watch the pid in its pidfile; it survives reload and shutdown"),
    row("smart-attach-daemon2", &[], None, Text, true, "", SupportedWithDifference(
        "the command stays a child of the master rather than being double-forked; ruwsgi writes its pidfile all the same"),
        "`pidfile[,secs] command`: like `smart-attach-daemon` for a foreground command; ruwsgi writes the pidfile"),
    row("attach-daemon2", &[], None, Text, true, "", SupportedWithDifference(
        "keys ns_pid, notifypid and legion are refused; cmd, pidfile, daemonize, freq, control, stopsignal, reloadsignal, stdin, uid, gid, chdir, max_throttle and touch work"),
        "`key=value,...` form of the daemon options (`cmd=...,pidfile=...`)"),
    planned("cron", Text, "run a command periodically"),
    planned("unique-cron", Text, "run a command periodically, one at a time"),
    planned("spooler", Path, "spooler directory"),
    planned("spooler-processes", Number, "spooler processes"),
    planned("spooler-import", Text, "module imported by the spooler"),
    planned("mule", Text, "add a mule process"),
    planned("mules", Number, "number of mule processes"),
    planned("mule-reload-mercy", Seconds, "seconds a mule may take to reload"),
    s("master-fifo", Path, "", "master control FIFO (one-letter commands: r R w c q Q s l)"),
    ignored("no-orphans", Bool, "ruwsgi workers always exit when the master dies", "kill workers when the master dies"),
    planned("reaper", Bool, "reap all children"),
    planned("exit-on-reload", Bool, "exit instead of reloading"),
    planned("honour-stdin", Bool, "keep stdin open"),
    ignored("offload-threads", Number,
        "static files and `wsgi.file_wrapper` bodies already go out from the worker's event loop, never holding a Python thread",
        "offload threads per worker"),
    // --- privileges and files
    s("uid", Text, "", "user to run as after binding"),
    s("gid", Text, "", "group to run as after binding"),
    s("pidfile", Path, "", "write the master pid here before dropping privileges"),
    s("pidfile2", Path, "", "write the master pid here after dropping privileges"),
    s("vacuum", Bool, "false", "remove unix sockets and pidfiles on exit"),
    planned("cap", Text, "Linux capabilities to keep"),
    planned("chroot", Path, "chroot before dropping privileges"),
    planned("unshare", Text, "Linux namespaces to unshare"),
    never("cgroup", NO_EMPEROR, "run in a cgroup"),
    never("namespace", NO_EMPEROR, "run in a namespace jail"),
    never("jail", NO_EMPEROR, "run in a FreeBSD jail"),
    never("ksm", "not useful for ruwsgi workers", "Linux KSM page merging"),
    // --- logging
    row("daemonize", &[], Some('d'), Path, false, "", Supported, "detach and log to this file"),
    s("daemonize2", Path, "", "detach after loading the app and log to this file"),
    s("logto", Path, "", "log to this file"),
    planned("logto2", Path, "log to this file after dropping privileges"),
    row("disable-logging", &[], Some('L'), Bool, false, "false", Supported, "no request log lines"),
    s("log-micros", Bool, "false", "request times in microseconds"),
    s("log-4xx", Bool, "false", "log requests answered 4xx even with `disable-logging`"),
    s("log-5xx", Bool, "false", "log requests answered 5xx even with `disable-logging`"),
    s("log-slow", Number, "0", "log requests that took at least this many ms even with `disable-logging` (0 = off)"),
    s("log-big", Bytes, "0", "log responses of at least this many body bytes even with `disable-logging` (0 = off)"),
    s("log-zero", Bool, "false", "log responses with an empty body even with `disable-logging`"),
    s("log-sendfile", Bool, "false", "log responses sent with sendfile even with `disable-logging`"),
    row("log-format", &["logformat"], None, Text, false, "", Planned, "request log line format"),
    row("memory-report", &[], Some('m'), Bool, false, "false", Supported, "the worker's address space and RSS before each request log line"),
    s("log-maxsize", Bytes, "0", "rotate the log file (`<file>.<epoch>`) when it grows past this size (0 = never)"),
    s("log-backupname", Path, "", "name the rotated log file gets instead of `<file>.<epoch>`"),
    row("log-reopen", &[], None, Bool, false, "false", SupportedWithDifference(
        "the log file is always reopened on reload and after a rotation"), "reopen the log file on reload"),
    row("logdate", &["log-date"], None, Text, false, "", Planned, "prefix log lines with the date"),
    planned("log-master", Bool, "log through the master"),
    planned("threaded-logger", Bool, "log through a thread"),
    planned("logger", Text, "log destination"),
    planned("req-logger", Text, "request log destination"),
    planned("log-route", Text, "route log lines by regexp"),
    planned("log-encoder", Text, "log line encoder"),
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
    s("harakiri-verbose", Bool, "false", "log details about harakiri"),
    row("py-tracebacker", &[], None, Text, false, "", SupportedWithDifference(
        "turns on `harakiri-verbose` (the stuck request's Python stack is logged); no tracebacker socket is created"),
        "log Python stacks of stuck requests"),
    s("harakiri-graceful-timeout", Seconds, "0", "graceful harakiri: SIGTERM first, SIGKILL after this many seconds (0 = SIGKILL at once)"),
    planned("harakiri-graceful-signal", Number, "graceful harakiri: first signal"),
    planned("harakiri-queue-threshold", Number, "harakiri when the listen queue is this full"),
    row("max-requests", &[], Some('R'), Number, false, "0", Supported, "recycle a worker after this many requests (0 = off)"),
    s("max-requests-delta", Number, "0", "per-worker jitter on `max-requests` (worker id x delta)"),
    s("min-worker-lifetime", Seconds, "10", "seconds a worker lives before it may be recycled"),
    s("max-worker-lifetime", Seconds, "0", "recycle a worker after this many seconds (0 = off)"),
    s("reload-on-rss", Megabytes, "0", "recycle a worker whose RSS exceeds this (0 = off)"),
    planned("reload-on-as", Megabytes, "recycle a worker whose address space exceeds this"),
    s("evil-reload-on-rss", Megabytes, "0", "the master kills a worker whose RSS exceeds this (0 = off)"),
    planned("limit-as", Megabytes, "address space limit"),
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
    s("max-fd", Number, "0", "max open connections per worker (0 = system limit)"),
    ignored("http-auto-chunked", Bool, "HTTP/1.1 responses without Content-Length are always chunked",
        "chunk responses without Content-Length"),
    planned("http-websockets", Bool, "WebSocket support"),
    never("http-processes", NO_ROUTER, "HTTP router processes"),
    never("http-to", NO_ROUTER, "HTTP router upstream"),
    planned("listen-queue-alarm", Text, "alarm on a full listen queue"),
    planned("alarm", Text, "define an alarm"),
    // --- reloading
    row("py-autoreload", &["py-auto-reload", "python-autoreload"], None, Seconds, false, "0", Supported,
        "reload when a loaded module changes, checked every N seconds (0 = off)"),
    row("py-autoreload-ignore", &["py-auto-reload-ignore"], None, Text, true, "", Supported, "module file not checked by `py-autoreload`"),
    list("touch-reload", Path, "reload gracefully when this file's mtime changes"),
    planned("touch-workers-reload", Path, "reload the workers when this file's mtime changes"),
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
    planned("route", Text, "internal routing rule on PATH_INFO"),
    planned("route-uri", Text, "internal routing rule on REQUEST_URI"),
    planned("route-host", Text, "internal routing rule on HTTP_HOST"),
    planned("route-if", Text, "internal routing rule on a condition"),
    // --- not planned: uWSGI subsystems outside ruwsgi's scope
    never("emperor", NO_EMPEROR, "run the Emperor"),
    never("emperor-tyrant", NO_EMPEROR, "Emperor tyrant mode"),
    never("emperor-broodlord", NO_EMPEROR, "Emperor broodlord mode"),
    never("vassals-include", NO_EMPEROR, "config added to vassals"),
    never("zerg", NO_ROUTER, "attach to a zerg server"),
    never("zerg-server", NO_ROUTER, "run a zerg server"),
    never("fastrouter", NO_ROUTER, "run the fastrouter"),
    never("rawrouter", NO_ROUTER, "run the rawrouter"),
    never("sslrouter", NO_ROUTER, "run the sslrouter"),
    never("subscription-server", NO_ROUTER, "subscription server"),
    never("subscribe-to", NO_ROUTER, "subscribe to a router"),
    never("legion", "use an external cluster manager", "Legion clustering"),
    never("cache2", "use Redis or memcached", "shared cache"),
    never("sharedarea", "use Redis or shared memory from Python", "shared memory area"),
    never("rpc", "use HTTP between services", "uWSGI RPC"),
    never("gevent", NO_LOOP, "gevent loop engine"),
    never("asyncio", NO_LOOP, "asyncio loop engine"),
    never("greenlet", NO_LOOP, "greenlet loop engine"),
    never("ugreen", NO_LOOP, "uGreen loop engine"),
    never("async", NO_LOOP, "async cores"),
];

/// The row for a long name or alias. `_` is the same as `-` (as in `UWSGI_*` variables;
/// real uWSGI ini keys don't do this, accepting it is a harmless superset).
#[must_use]
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    let name = normalise(name);
    OPTIONS.iter().find(|o| o.name == name || o.aliases.contains(&name.as_str()))
}

/// The row for a one-letter command-line alias.
#[must_use]
pub fn find_short(c: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.short == Some(c))
}

/// `Log_Format` → `log-format`? No: keys are case-sensitive in uWSGI; only `_` → `-`.
#[must_use]
pub fn normalise(name: &str) -> String {
    name.replace('_', "-")
}

/// The known name closest to `name`, when the distance is small enough to be a typo.
#[must_use]
pub fn suggest(name: &str) -> Option<&'static str> {
    let name = normalise(name);
    // A third of the length, at least 1, at most 3: `proccesses` → `processes` (1) but not
    // every 4-letter word → `http`.
    let limit = (name.chars().count() / 3).clamp(1, 3);
    OPTIONS
        .iter()
        .flat_map(|o| std::iter::once(&o.name).chain(o.aliases.iter()).map(move |n| (o.name, *n)))
        .map(|(canonical, n)| (levenshtein(&name, n), canonical))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, canonical)| canonical)
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
    out.push_str("\nuWSGI options that are ignored, planned or not planned are listed in docs/options.md.\n");
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
         a one-line notice is logged at start-up); **planned** and **not planned** (using the option\n\
         is an error naming it). Unknown names are errors, with a suggestion when one is close.\n\n\
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
            Status::Planned => "planned".to_owned(),
            Status::NotPlanned(r) => format!("not planned: {r}"),
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
    out
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
    fn finds_aliases_and_underscores() {
        assert_eq!(find("workers").map(|o| o.name), Some("processes"));
        assert_eq!(find("py_auto_reload").map(|o| o.name), Some("py-autoreload"));
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
    fn levenshtein_counts_edits() {
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("same", "same"), 0);
    }
}
