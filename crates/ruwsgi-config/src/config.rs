//! The typed configuration the runtime reads. Built from the resolved option list by
//! `Config::from_options`; the runtime never sees raw option strings.
//!
//! Field names are the uWSGI option names in snake case.

use std::path::PathBuf;

use crate::cron::Cron;
use crate::daemon::AttachDaemon;
use crate::hooks::Hook;
use crate::tls::{SniSpec, TlsSpec};

/// Where a listening socket's address points and which protocol it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// `[host]:port` (host empty = all interfaces, as uWSGI's `:8080`), or a unix path.
    pub address: String,
    /// Protocol spoken by the workers on this socket.
    pub protocol: SocketProtocol,
    /// `https`/`https-socket`: the connections speak TLS first, with this context.
    pub tls: Option<TlsSpec>,
}

/// Protocol of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketProtocol {
    /// HTTP/1.1 (`http`, `http-socket`). Differs from uWSGI: `http` is served by the workers
    /// themselves, there is no separate router process.
    Http,
    /// The uwsgi binary protocol (`socket`, `uwsgi-socket`), as spoken by nginx `uwsgi_pass`.
    Uwsgi,
}

/// The TLS settings shared by every `https` socket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `sni`, `sni-regexp`: contexts chosen by the server name the client asks for.
    pub sni: Vec<SniSpec>,
    /// `sni-dir`: `<dir>/<name>.crt`, `.key` (and optional `.ca`) answer for `<name>`.
    pub sni_dir: Option<PathBuf>,
    /// `sni-dir-ciphers`: the cipher list of the `sni-dir` contexts.
    pub sni_dir_ciphers: Option<String>,
    /// `https-export-cert`: the client certificate's PEM in `HTTPS_CC`.
    pub export_cert: bool,
    /// `ssl-verbose`: failed handshakes and certificate reloads are logged at info level.
    pub verbose: bool,
}

/// One `static-map`/`static-map2` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// URL prefix, e.g. `/static`.
    pub mount: String,
    /// Directory (or file) it maps to.
    pub dir: PathBuf,
    /// `static-map2`: the mount prefix is kept in the file path.
    pub keep_mount: bool,
}

/// What a `mount` entry loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountedApp {
    /// A `.py` or `.wsgi` file, loaded like `wsgi-file`.
    File(PathBuf),
    /// `pkg.mod` or `pkg.mod:callable`, loaded like `module`.
    Module(String),
}

/// One `mount` entry: an app served under a URL prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The URL prefix, e.g. `/blog`, without a trailing `/` (so `mount = /=app.py` gives `""`).
    pub mountpoint: String,
    /// The app to load there.
    pub app: MountedApp,
}

/// Everything the runtime needs, typed. Defaults are uWSGI's.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::struct_excessive_bools)] // one bool per uWSGI boolean option
pub struct Config {
    /// Listening sockets in the order given (`http`, `http-socket`, `socket`, ...).
    pub sockets: Vec<SocketSpec>,
    /// `chdir`: directory to enter before loading the app.
    pub chdir: Option<PathBuf>,
    /// `chdir2`: directory to enter after loading the app.
    pub chdir2: Option<PathBuf>,
    /// `wsgi-file` (`file`): a Python file defining the callable.
    pub wsgi_file: Option<PathBuf>,
    /// `module` (`wsgi`, `-w`): `pkg.mod` or `pkg.mod:callable`.
    pub module: Option<String>,
    /// `asgi` (ruwsgi only): `pkg.mod:app`, an ASGI 3 app served instead of a WSGI one.
    pub asgi: Option<String>,
    /// `websockets-max-size`: largest WebSocket message, KiB.
    pub websockets_max_size: u64,
    /// `websockets-ping-freq`: seconds between pings on a quiet WebSocket.
    pub websockets_ping_freq: u64,
    /// `websockets-pong-tolerance`: seconds a pong may take.
    pub websockets_pong_tolerance: u64,
    /// `callable`: default `application`.
    pub callable: String,
    /// `mount`: apps under URL prefixes, loaded after `module`/`wsgi-file`, in order.
    pub mount: Vec<Mount>,
    /// `manage-script-name`: split `SCRIPT_NAME`/`PATH_INFO` at the longest mountpoint.
    pub manage_script_name: bool,
    /// `no-default-app`: a request no mountpoint matches gets a 500 instead of app 0.
    pub no_default_app: bool,
    /// `vhost` (`vhost-host`): apps are chosen by `host|SCRIPT_NAME`.
    pub vhost: bool,
    /// `import` (`pyimport`, ...): modules or `.py` files imported right before the apps load.
    pub import: Vec<String>,
    /// `shared-import` (`shared-pyimport`, ...): imported in the master before any app.
    pub shared_import: Vec<String>,
    /// `pyargv`: `sys.argv[1:]` for the app, split at spaces and tabs.
    pub pyargv: Option<String>,
    /// `optimize` (`-O`): Python optimisation level, 0 to 2.
    pub optimize: u8,
    /// `honour-stdin`: keep stdin instead of `/dev/null`.
    pub honour_stdin: bool,
    /// `umask`: the process umask, set at start-up.
    pub umask: Option<u32>,
    /// `enable-proxy-protocol` (`http-enable-proxy-protocol`): HTTP connections may open
    /// with a PROXY protocol header.
    pub enable_proxy_protocol: bool,
    /// `http2-cleartext` (ruwsgi only): HTTP/2 with prior knowledge on `http-socket`s.
    pub http2_cleartext: bool,
    /// `pythonpath` (`python-path`, `pp`): prepended to `sys.path`, in order.
    pub pythonpath: Vec<PathBuf>,
    /// The TLS settings shared by every `https` socket (`sni*`, `ssl-*`, `https-export-cert`).
    pub tls: TlsOptions,
    /// `home` (`virtualenv`, `venv`, `pyhome`, `-H`).
    pub home: Option<PathBuf>,
    /// `env`: `KEY=VALUE` pairs set before loading the app.
    pub env: Vec<(String, String)>,
    /// `processes` (`workers`, `-p`): default 1.
    pub processes: u32,
    /// `threads`: Python threads per worker, default 1.
    pub threads: u32,
    /// `master` (`-M`). ruwsgi always runs a master; kept for `--show-config`.
    pub master: bool,
    /// `lazy-apps`: load the app in each worker after fork.
    pub lazy_apps: bool,
    /// `lazy`: `lazy-apps`, and SIGHUP reloads only the workers.
    pub lazy: bool,
    /// `need-app`: exit non-zero when the app fails to load. Default true.
    pub need_app: bool,
    /// `vacuum`: remove unix sockets and pidfiles on exit.
    pub vacuum: bool,
    /// `pidfile`: master pid, written before privileges are dropped.
    pub pidfile: Option<PathBuf>,
    /// `pidfile2`: master pid, written after privileges are dropped.
    pub pidfile2: Option<PathBuf>,
    /// `buffer-size` (`-b`): max request header block / uwsgi vars packet, default 4096.
    pub buffer_size: usize,
    /// `listen` (`-l`): accept backlog, default 100.
    pub listen: u32,
    /// `chmod-socket`: mode for unix sockets (bare option = 0o666).
    pub chmod_socket: Option<u32>,
    /// `chown-socket`: `user[:group]` for unix sockets.
    pub chown_socket: Option<String>,
    /// `disable-logging` (`-L`): no request log lines.
    pub disable_logging: bool,
    /// `log-micros`: request times in microseconds.
    pub log_micros: bool,
    /// `log-4xx`: log 4xx answers even with `disable-logging`.
    pub log_4xx: bool,
    /// `log-5xx`: log 5xx answers even with `disable-logging`.
    pub log_5xx: bool,
    /// `log-slow`: log requests of at least this many ms even with `disable-logging`; 0 = off.
    pub log_slow: u64,
    /// `log-big`: log bodies of at least this many bytes even with `disable-logging`; 0 = off.
    pub log_big: u64,
    /// `log-zero`: log empty bodies even with `disable-logging`.
    pub log_zero: bool,
    /// `log-sendfile`: log sendfile bodies even with `disable-logging`.
    pub log_sendfile: bool,
    /// `memory-report`: address space and RSS before each request log line.
    pub memory_report: bool,
    /// `log-x-forwarded-for`: the request log shows X-Forwarded-For as the address.
    pub log_x_forwarded_for: bool,
    /// `log-format` (`logformat`): the request log line with `%(var)` fields; `None` = uWSGI's
    /// default line.
    pub log_format: Option<String>,
    /// `logformat-strftime`: `%(ftime)` uses the `log-date` strftime format.
    pub logformat_strftime: bool,
    /// `log-date` (`logdate`): prefix server messages with the date. `Some("")`: `ctime()`
    /// form; `Some(fmt)`: this strftime format.
    pub log_date: Option<String>,
    /// `log-master` (or implied by `logger`, `req-logger`, `log-encoder`, ...): workers'
    /// stdout/stderr and log lines go through the master.
    pub log_master: bool,
    /// `threaded-logger`: accepted; implies `log-master` (the master has no threads).
    pub threaded_logger: bool,
    /// `logger`: `[name ]plugin[:args]` destinations of the server log, in order.
    pub logger: Vec<String>,
    /// `req-logger`: destinations of the request log, in order.
    pub req_logger: Vec<String>,
    /// `log-route`: `(logger name, regexp)`.
    pub log_route: Vec<(String, String)>,
    /// `log-req-route`: `(request logger name, regexp)`.
    pub log_req_route: Vec<(String, String)>,
    /// `log-encoder`: `name[:logger] [args]`, chained in order.
    pub log_encoder: Vec<String>,
    /// `log-req-encoder`: the request log's encoder chain.
    pub log_req_encoder: Vec<String>,
    /// `log-json` (ruwsgi only): request lines and server messages as JSON objects.
    pub log_json: bool,
    /// `log-drain`: server log lines matching one of these regexps are dropped.
    pub log_drain: Vec<String>,
    /// `log-filter`: when set, only server log lines matching one of these are kept.
    pub log_filter: Vec<String>,
    /// `log-master-bufsize`: longest message the master reads (default 64 KiB).
    pub log_master_bufsize: usize,
    /// `so-keepalive`: `SO_KEEPALIVE` on accepted connections.
    pub so_keepalive: bool,
    /// `reuse-port`: `SO_REUSEPORT` on TCP listeners.
    pub reuse_port: bool,
    /// `no-defer-accept`: no `TCP_DEFER_ACCEPT` on TCP listeners.
    pub no_defer_accept: bool,
    /// `socket-sndbuf`: `SO_SNDBUF` of the bound sockets (0: not set, the kernel tunes
    /// it). Not given: ruwsgi's default, which depends on the address bound.
    pub socket_sndbuf: Option<usize>,
    /// `sched-batch` (ruwsgi only, default on): workers run as `SCHED_BATCH`.
    pub sched_batch: bool,
    /// `health-path` (ruwsgi only): the path answered 200/503 without entering Python.
    pub health_path: Option<String>,
    /// `drain-delay` (ruwsgi only): seconds a graceful stop keeps serving, unhealthy, before
    /// the sockets close.
    pub drain_delay: u64,
    /// `tcp-nodelay`: accepted; every TCP connection has `TCP_NODELAY` anyway (from its listener).
    pub tcp_nodelay: bool,
    /// `wsgi-disable-file-wrapper`: no `wsgi.file_wrapper` in the environ.
    pub wsgi_disable_file_wrapper: bool,
    /// `logto`: append all logs to this file.
    pub logto: Option<PathBuf>,
    /// `logto2`: like `logto`, opened after the app is loaded.
    pub logto2: Option<PathBuf>,
    /// `log-maxsize`: rotate the log file when it grows past this many bytes; 0 = never.
    pub log_maxsize: u64,
    /// `log-backupname`: name of the rotated log file (default `<file>.<epoch>`).
    pub log_backupname: Option<PathBuf>,
    /// `log-reopen`: reopen the log file on reload (ruwsgi always does).
    pub log_reopen: bool,
    /// `master-fifo`: path of the master's control FIFO.
    pub master_fifo: Option<PathBuf>,
    /// `daemonize`: detach and log to this file.
    pub daemonize: Option<PathBuf>,
    /// `daemonize2`: like `daemonize` but detaches after the app is loaded.
    pub daemonize2: Option<PathBuf>,
    /// `harakiri` (`-t`): seconds a request may run before its worker is killed; 0 = off.
    pub harakiri: u64,
    /// `harakiri-verbose`, `py-tracebacker`: also log the stuck worker's /proc syscall and wchan.
    pub harakiri_verbose: bool,
    /// `harakiri-graceful-timeout`: on harakiri send SIGTERM and SIGKILL after this many
    /// seconds; 0 = SIGKILL at once.
    pub harakiri_graceful_timeout: u64,
    /// `harakiri-graceful-signal`: the signal of a graceful harakiri, default SIGTERM (15).
    pub harakiri_graceful_signal: i32,
    /// `max-requests` (`-R`): recycle a worker after this many requests; 0 = off.
    pub max_requests: u64,
    /// `max-requests-delta`: per-worker jitter added to `max-requests` (worker id × delta).
    pub max_requests_delta: u64,
    /// `min-worker-lifetime`: seconds before any recycle, default 10.
    pub min_worker_lifetime: u64,
    /// `max-worker-lifetime`: seconds after which a worker is recycled; 0 = off.
    pub max_worker_lifetime: u64,
    /// `reload-on-rss`: MiB of RSS after which a worker recycles itself; 0 = off.
    pub reload_on_rss: u64,
    /// `evil-reload-on-rss`: MiB of RSS after which the master kills a worker; 0 = off.
    pub evil_reload_on_rss: u64,
    /// `reload-on-as`: MiB of address space after which a worker recycles itself; 0 = off.
    pub reload_on_as: u64,
    /// `limit-as`: each worker's address-space limit (`RLIMIT_AS`) in MiB; 0 = none.
    pub limit_as: u64,
    /// `worker-reload-mercy`: seconds a worker may take to finish on reload, default 60.
    pub worker_reload_mercy: u64,
    /// `reload-mercy`: seconds for the whole stack on reload/shutdown. Unset (as in uWSGI):
    /// workers get `worker-reload-mercy`, attached daemons 3 s before SIGKILL.
    pub reload_mercy: Option<u64>,
    /// `py-autoreload`: seconds between module mtime checks; 0 = off.
    pub py_autoreload: u64,
    /// `py-autoreload-ignore`: module file paths not checked.
    pub py_autoreload_ignore: Vec<String>,
    /// `touch-reload`: files whose mtime change triggers a graceful reload.
    pub touch_reload: Vec<PathBuf>,
    /// `touch-chain-reload`: files whose mtime change triggers a chain reload.
    pub touch_chain_reload: Vec<PathBuf>,
    /// `touch-workers-reload`: files whose mtime change gracefully reloads the workers only.
    pub touch_workers_reload: Vec<PathBuf>,
    /// `exit-on-reload`: a reload request makes the master exit (status 0) instead.
    pub exit_on_reload: bool,
    /// `die-on-term`: accepted; SIGTERM always shuts down gracefully in ruwsgi.
    pub die_on_term: bool,
    /// `attach-daemon`, `smart-attach-daemon`, `smart-attach-daemon2`, `attach-daemon2`:
    /// external commands run and watched by the master, in the order given.
    pub attach_daemon: Vec<AttachDaemon>,
    /// `hook-*` and `exec-*`: actions run at a phase of the start-up or of a worker's life,
    /// in the order given.
    pub hooks: Vec<Hook>,
    /// `cron`, `cron2`, `unique-cron`: commands the master runs on a schedule.
    pub crons: Vec<Cron>,
    /// `cron-harakiri`: seconds a cron command may run before its process group is killed;
    /// 0 = no limit.
    pub cron_harakiri: u64,
    /// `spooler*`: queue directories and their spooler processes.
    pub spooler: crate::background::SpoolerConfig,
    /// `mule*`, `farm`: mule processes and their message queues.
    pub mules: crate::background::MuleConfig,
    /// `stats` (`stats-server`): address of the JSON stats server.
    pub stats: Option<String>,
    /// `stats-http`: prefix the stats JSON with HTTP response headers.
    pub stats_http: bool,
    /// `stats-minified`: stats JSON without whitespace.
    pub stats_minified: bool,
    /// `metrics` (`stats-prometheus`, ruwsgi only): address serving the stats in Prometheus
    /// text format.
    pub metrics: Option<String>,
    /// `uid`: user to run as after binding.
    pub uid: Option<String>,
    /// `gid`: group to run as after binding.
    pub gid: Option<String>,
    /// `limit-post`: max request body bytes; 0 = unlimited. Larger bodies get 413.
    pub limit_post: u64,
    /// `post-buffering`: bodies up to this size are read before the app is called.
    pub post_buffering: usize,
    /// `socket-timeout` (`-z`): seconds of socket inactivity tolerated, default 4.
    pub socket_timeout: u64,
    /// `http-timeout`: seconds an HTTP connection may be idle or slow, default 60.
    pub http_timeout: u64,
    /// `http-keepalive`: max keep-alive connections per worker; 0 = no limit besides `max-fd`.
    pub http_keepalive: u64,
    /// `max-fd`: max open connections per worker.
    pub max_fd: u64,
    /// `static-map` / `static-map2`, in the order given.
    pub static_map: Vec<StaticMap>,
    /// `check-static`: docroots tried before the app.
    pub check_static: Vec<PathBuf>,
    /// `static-index`: file names tried for directory requests.
    pub static_index: Vec<String>,
    /// `static-expires-type`: `(mime type, seconds)`.
    pub static_expires_type: Vec<(String, u64)>,
    /// `static-expires`: `(regexp on the file path, seconds)`.
    pub static_expires: Vec<(String, u64)>,
    /// `static-expires-uri`: `(regexp on the request URI, seconds)`.
    pub static_expires_uri: Vec<(String, u64)>,
    /// `static-gzip-all`: serve `X.gz` for any static file when the client accepts gzip.
    pub static_gzip_all: bool,
    /// `static-gzip-dir`: directories whose files have gzip variants.
    pub static_gzip_dir: Vec<PathBuf>,
    /// `static-skip-ext`: extensions never served statically.
    pub static_skip_ext: Vec<String>,
    /// `route*`: the request routing table, in config order, gotos resolved.
    pub routes: Vec<crate::route::Route>,
    /// `final-route*`: rules run after the response is sent, before the request log line.
    pub final_routes: Vec<crate::route::Route>,
    /// `error-route*`: rules run when the app sets the response status.
    pub error_routes: Vec<crate::route::Route>,
    /// `response-route*`: rules run on the app's response head before it is sent.
    pub response_routes: Vec<crate::route::Route>,
    /// `add-header`: (name, value) added to every response.
    pub add_header: Vec<(String, String)>,
    /// `collect-header` / `pull-header`: the app's response header kept in a request
    /// variable, in order.
    pub collect_header: Vec<CollectHeader>,
    /// `static-safe`: extra roots that symlinks may point into.
    pub static_safe: Vec<PathBuf>,
    /// `mimefile`: extra `mime.types` files.
    pub mimefile: Vec<PathBuf>,
    /// `strict`: keys that are not uWSGI options, and uWSGI options ruwsgi doesn't implement,
    /// are errors instead of warnings (applied while resolving; kept for `--show-config`).
    pub strict: bool,
    /// `print`, `iprint`: lines written to stdout at start-up, in order.
    pub print: Vec<String>,
    /// Adaptive process spawning: `cheaper` (its `count`), `cheaper-*`, `idle`,
    /// `die-on-idle`, `cheap`.
    pub cheaper: crate::cheaper::Cheaper,
    /// `locks`: user locks beyond lock 0 (`uwsgi.lock(0..=locks)`).
    pub locks: u32,
    /// Every option as written (key as written, value expanded), in order: `uwsgi.opt`.
    pub exported: Vec<(String, String)>,
    /// `signal-timer` (`timer`): the master raises the signal every so many seconds.
    pub signal_timer: Vec<(u8, u64)>,
    /// `signal-rbtimer` (`rbtimer`): the same (uWSGI's red-black-tree timers).
    pub signal_rbtimer: Vec<(u8, u64)>,
    /// `fs-signal`: raise the signal when the file or directory changes (inotify).
    pub fs_signal: Vec<(PathBuf, u8)>,
    /// `touch-signal`: raise the signal when the file's mtime changes.
    pub touch_signal: Vec<(PathBuf, u8)>,
}

/// Most user locks `locks` may ask for (ruwsgi's limit; lock 0 always exists).
pub const MAX_LOCKS: u32 = 64;

impl Default for Config {
    fn default() -> Self {
        Self {
            sockets: Vec::new(),
            chdir: None,
            chdir2: None,
            wsgi_file: None,
            module: None,
            asgi: None,
            websockets_max_size: 1024,
            websockets_ping_freq: 30,
            websockets_pong_tolerance: 3,
            callable: "application".to_owned(),
            mount: Vec::new(),
            manage_script_name: false,
            no_default_app: false,
            vhost: false,
            import: Vec::new(),
            shared_import: Vec::new(),
            pyargv: None,
            optimize: 0,
            honour_stdin: false,
            umask: None,
            enable_proxy_protocol: false,
            http2_cleartext: false,
            pythonpath: Vec::new(),
            tls: TlsOptions::default(),
            home: None,
            env: Vec::new(),
            processes: 1,
            threads: 1,
            master: false,
            lazy_apps: false,
            lazy: false,
            need_app: true,
            vacuum: false,
            pidfile: None,
            pidfile2: None,
            buffer_size: 4096,
            listen: 100,
            chmod_socket: None,
            chown_socket: None,
            disable_logging: false,
            log_micros: false,
            log_4xx: false,
            log_5xx: false,
            log_slow: 0,
            log_big: 0,
            log_zero: false,
            log_sendfile: false,
            memory_report: false,
            log_x_forwarded_for: false,
            log_format: None,
            logformat_strftime: false,
            log_date: None,
            log_master: false,
            threaded_logger: false,
            logger: Vec::new(),
            req_logger: Vec::new(),
            log_route: Vec::new(),
            log_req_route: Vec::new(),
            log_encoder: Vec::new(),
            log_req_encoder: Vec::new(),
            log_json: false,
            log_drain: Vec::new(),
            log_filter: Vec::new(),
            log_master_bufsize: 65536,
            so_keepalive: false,
            reuse_port: false,
            no_defer_accept: false,
            socket_sndbuf: None,
            sched_batch: true,
            health_path: None,
            drain_delay: 0,
            tcp_nodelay: false,
            wsgi_disable_file_wrapper: false,
            logto: None,
            logto2: None,
            log_maxsize: 0,
            log_backupname: None,
            log_reopen: false,
            master_fifo: None,
            daemonize: None,
            daemonize2: None,
            harakiri: 0,
            harakiri_verbose: false,
            harakiri_graceful_timeout: 0,
            harakiri_graceful_signal: 15,
            max_requests: 0,
            max_requests_delta: 0,
            min_worker_lifetime: 10,
            max_worker_lifetime: 0,
            reload_on_rss: 0,
            evil_reload_on_rss: 0,
            reload_on_as: 0,
            limit_as: 0,
            worker_reload_mercy: 60,
            reload_mercy: None,
            py_autoreload: 0,
            py_autoreload_ignore: Vec::new(),
            touch_reload: Vec::new(),
            touch_chain_reload: Vec::new(),
            touch_workers_reload: Vec::new(),
            exit_on_reload: false,
            die_on_term: false,
            attach_daemon: Vec::new(),
            hooks: Vec::new(),
            crons: Vec::new(),
            cron_harakiri: 0,
            spooler: crate::background::SpoolerConfig::default(),
            mules: crate::background::MuleConfig::default(),
            stats: None,
            stats_http: false,
            stats_minified: false,
            metrics: None,
            uid: None,
            gid: None,
            limit_post: 0,
            post_buffering: 0,
            socket_timeout: 4,
            http_timeout: 60,
            http_keepalive: 0,
            max_fd: 0,
            static_map: Vec::new(),
            check_static: Vec::new(),
            static_index: Vec::new(),
            static_expires_type: Vec::new(),
            static_expires: Vec::new(),
            static_expires_uri: Vec::new(),
            static_gzip_all: false,
            static_gzip_dir: Vec::new(),
            static_skip_ext: Vec::new(),
            routes: Vec::new(),
            final_routes: Vec::new(),
            error_routes: Vec::new(),
            response_routes: Vec::new(),
            add_header: Vec::new(),
            collect_header: Vec::new(),
            static_safe: Vec::new(),
            mimefile: Vec::new(),
            strict: false,
            print: Vec::new(),
            cheaper: crate::cheaper::Cheaper::default(),
            locks: 0,
            exported: Vec::new(),
            signal_timer: Vec::new(),
            signal_rbtimer: Vec::new(),
            fs_signal: Vec::new(),
            touch_signal: Vec::new(),
        }
    }
}

/// One `collect-header` (or `pull-header`) rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectHeader {
    /// The response header's name (matched case-insensitively).
    pub header: String,
    /// The request variable it is kept in.
    pub var: String,
    /// `pull-header`: the header is also dropped from the response.
    pub pull: bool,
}
