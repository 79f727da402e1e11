//! The Python side: the only module that uses pyo3. It owns interpreter set-up, app
//! loading, the one fork site, worker-thread attachment, and the WSGI call itself
//! (environ, `start_response`, `wsgi.input`, response iteration). Everything else calls
//! plain Rust functions from here and never touches the GIL.

mod asgi;
mod asgi_websocket;
mod environ;
mod input;
mod mount;
pub mod mules;
mod ops;
mod response;
pub mod spooler;
mod uwsgi_module;
mod uwsgi_websocket;

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::Path;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use ruwsgi_config::{Config, MountedApp};
use ruwsgi_proto::UwsgiPacket;

use crate::interface::{Application, BodyReader, Origin, Request, Served};
use mount::{MountTable, Route};

pub use input::FileWrapper;
pub use ops::{install_tracebacker, reexec_command, reexec_for_optimize, start_autoreloader};
pub use uwsgi_module::{
    enter_worker, install as install_uwsgi_module, run_atexit, run_background_handler, start_signal_thread,
};

/// What a thread keeps for the WSGI request it runs: the request as the `uwsgi` module's
/// and the WebSocket functions see it, and the objects kept for its next request. One
/// thread-local for all three: the extension is a `dlopen`ed library, so each thread-local
/// access is a `__tls_get_addr` call, and `response::handle` reaches it once per request
/// and hands it on (seven accesses per request before).
struct PerThread {
    /// `uwsgi_module`'s view of the request.
    uwsgi: RefCell<Option<uwsgi_module::CurrentRequest>>,
    /// `uwsgi_websocket`'s view of the request (its session once it shook hands).
    websocket: RefCell<Option<uwsgi_websocket::Current>>,
    /// `start_response` and `wsgi.input` kept from the last request.
    spare: RefCell<response::Spare>,
}

thread_local! {
    static PER_THREAD: PerThread = const {
        PerThread { uwsgi: RefCell::new(None), websocket: RefCell::new(None), spare: RefCell::new(response::Spare::EMPTY) }
    };
}

/// What a worker serves: WSGI callables or one ASGI app (`asgi`).
pub enum App {
    /// `module`, `wsgi-file`, `mount`.
    Wsgi(WsgiApp),
    /// `asgi`.
    Asgi(asgi::AsgiApp),
}

impl App {
    /// Loads the configured app (in the master, or in each worker with `lazy-apps`).
    pub fn load(cfg: &Config, processes: u32, threads: u32) -> Result<App, LoadError> {
        match &cfg.asgi {
            Some(spec) => asgi::AsgiApp::load(cfg, spec).map(App::Asgi),
            None => WsgiApp::load(cfg, processes, threads).map(App::Wsgi),
        }
    }

    /// Called in each worker before its connection threads start: an ASGI app gets its
    /// event loop and lifespan startup. `Err`: the worker can't serve.
    pub fn start_worker(&self) -> Result<(), String> {
        match self {
            App::Wsgi(_) => Ok(()),
            App::Asgi(app) => app.start(),
        }
    }

    /// Called in a worker after its connection threads finished: lifespan shutdown.
    pub fn stop_worker(&self) {
        if let App::Asgi(app) = self {
            app.stop();
        }
    }
}

impl Application for App {
    /// Calls the app for one request and sends its response.
    fn handle(&self, req: &Request<'_>, body: BodyReader) -> (Served, BodyReader) {
        match self {
            App::Wsgi(app) => Python::attach(|py| response::handle(py, app, req, body)),
            App::Asgi(app) => app.handle(req, body),
        }
    }

    /// ASGI requests park in the connection's loop; WSGI ones are answered here.
    fn start(&self, req: &Request<'_>, body: BodyReader) -> crate::interface::Started {
        match self {
            App::Wsgi(_) => {
                let (served, body) = self.handle(req, body);
                crate::interface::Started::Done(served, body)
            }
            App::Asgi(app) => app.begin(req, body),
        }
    }
}

/// The loaded WSGI applications plus the per-process constants their environ needs.
pub struct WsgiApp {
    /// The WSGI callables by app id: the `module`/`wsgi-file` app first, then the mounts.
    callables: Vec<Py<PyAny>>,
    /// Their mountpoints, and which one serves a request.
    mounts: MountTable,
    /// Environ entries that never change; copied for each request.
    template: Py<PyDict>,
    /// The same for HTTP requests, with room for the keys each of them sets.
    http_template: Py<PyDict>,
    /// `add-header`: appended to every response's headers.
    pub(crate) extra_headers: std::sync::Arc<[(String, String)]>,
    /// `collect-header` / `pull-header`.
    pub(crate) collect_headers: std::sync::Arc<[ruwsgi_config::CollectHeader]>,
    /// `websockets-*`, for `uwsgi.websocket_*`.
    websockets: asgi_websocket::Settings,
}

/// Runs `f` (the whole server) with the GIL released; `argv` is `sys.argv`.
#[pyfunction]
fn run(py: Python<'_>, argv: Vec<String>) -> i32 {
    let argv: Vec<String> = argv.into_iter().skip(1).collect();
    py.detach(|| crate::cli::main(&argv))
}

/// The extension module `ruwsgi._ruwsgi`. `gil_used = true` (the default since pyo3 0.28 is false):
/// ruwsgi has not been tested on a free-threaded Python, so there the GIL stays on
/// (docs/packaging.md says what testing it takes).
#[pymodule(gil_used = true)]
fn _ruwsgi(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_class::<FileWrapper>()?;
    Ok(())
}

/// Formats a Python exception with its traceback, as Python would print it.
pub(crate) fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py))))
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(lines) => lines.concat().trim_end().to_owned(),
        Err(_) => err.to_string(),
    }
}

/// Applies the interpreter-level options before any app code runs (and before `uid`):
/// `env`, `home`, `pythonpath`, the working directory on `sys.path`, and Python's own
/// signal handlers (reset so they never run inside the server).
pub fn prepare_interpreter(cfg: &Config) -> anyhow::Result<()> {
    Python::attach(|py| -> PyResult<()> {
        let os = py.import("os")?;
        let environ = os.getattr("environ")?;
        for (k, v) in &cfg.env {
            environ.set_item(k, v)?;
        }
        let sys = py.import("sys")?;
        // uWSGI's banner line, with the interpreter's full version string.
        tracing::info!("Python version: {}", sys.getattr("version")?.extract::<String>()?.replace('\n', " "));
        let path = sys.getattr("path")?.cast_into::<PyList>()?;
        if let Some(home) = &cfg.home {
            let version = sys.getattr("version_info")?;
            let (major, minor): (u8, u8) = (version.get_item(0)?.extract()?, version.get_item(1)?.extract()?);
            let site_dir = home.join(format!("lib/python{major}.{minor}/site-packages"));
            if !site_dir.is_dir() {
                return Err(PyRuntimeError::new_err(format!(
                    "home = {}: no {} in this virtualenv",
                    home.display(),
                    site_dir.display()
                )));
            }
            py.import("site")?.call_method1("addsitedir", (site_dir.to_string_lossy(),))?;
        }
        // sys.path entries must be str: the import system skips pathlib.Path objects.
        for (i, p) in cfg.pythonpath.iter().enumerate() {
            path.insert(i, p.to_string_lossy())?;
        }
        // uWSGI makes modules in the working directory (after `chdir`) importable.
        let cwd = std::env::current_dir().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        path.insert(0, cwd.to_string_lossy())?;
        for stream in ["stdout", "stderr"] {
            let s = sys.getattr(stream)?;
            if s.hasattr("reconfigure")? {
                let kwargs = PyDict::new(py);
                kwargs.set_item("line_buffering", true)?;
                // Also under PYTHONUNBUFFERED (common in containers): a `print` of several
                // pieces reaches fd 1 as one write per line, so a line is one log-master
                // message and threads' lines don't interleave mid-line.
                kwargs.set_item("write_through", false)?;
                s.call_method("reconfigure", (), Some(&kwargs))?;
            }
        }
        if cfg.uid.is_some() || cfg.gid.is_some() {
            // The standard modules ruwsgi itself uses, imported while still privileged: the
            // user `uid` switches to may be unable to read the interpreter's library.
            for module in ["traceback", "faulthandler", "importlib.util", "threading", "time"] {
                py.import(module)?;
            }
        }
        let signal = py.import("signal")?;
        for name in ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGCHLD"] {
            let num = signal.getattr(name)?;
            signal.call_method1("signal", (num, signal.getattr("SIG_DFL")?))?;
        }
        // uWSGI's sys.argv: its name, then the `pyargv` words (split at spaces and tabs). The
        // server's own command line stays in `sys.orig_argv` (a reload re-executes that).
        let argv = std::iter::once("uwsgi")
            .chain(cfg.pyargv.iter().flat_map(|a| a.split([' ', '\t'])))
            .filter(|w| !w.is_empty());
        sys.setattr("argv", PyList::new(py, argv)?)?;
        // As uWSGI: shared imports run once, in the master, before any app loads.
        import_all(py, "shared-import", &cfg.shared_import);
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// Forks through Python's `os.fork()`, so the interpreter's and libraries' at-fork hooks
/// run. The only fork site in ruwsgi. Returns 0 in the child, the child's pid in the parent.
pub fn fork() -> anyhow::Result<i32> {
    Python::attach(|py| -> PyResult<i32> { py.import("os")?.call_method0("fork")?.extract() })
        .map_err(|e| anyhow::anyhow!("os.fork() failed: {e}"))
}

/// Runs `f` on a thread that is attached to Python once, for its whole life: the thread
/// state (and so `threading.local` data) survives between requests; `f` itself runs with
/// the GIL released and re-attaches per request.
pub fn python_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    Python::attach(|py| py.detach(f))
}

/// Names of Python threads other than the main one (started by the app at import).
pub fn extra_threads() -> Vec<String> {
    Python::attach(|py| -> PyResult<Vec<String>> {
        let threading = py.import("threading")?;
        let main = threading.call_method0("main_thread")?;
        let mut names = Vec::new();
        for t in threading.call_method0("enumerate")?.try_iter()? {
            let t = t?;
            if !t.is(&main) {
                names.push(t.getattr("name")?.extract()?);
            }
        }
        Ok(names)
    })
    .unwrap_or_default()
}

/// Flushes Python's `sys.stdout`/`sys.stderr` (before a worker `_exit`s).
pub fn flush_std_streams() {
    Python::attach(|py| {
        if let Ok(sys) = py.import("sys") {
            for s in ["stdout", "stderr"] {
                if let Ok(stream) = sys.getattr(s) {
                    let _ = stream.call_method0("flush");
                }
            }
        }
    });
}

/// Why an app could not be loaded.
#[derive(Debug)]
pub struct LoadError(pub String);

impl WsgiApp {
    /// Loads the apps as uWSGI does, numbering them in load order: first the default app
    /// (`module`, or `wsgi-file` when there is no module or it failed to import, at
    /// mountpoint `''`), then each `mount` in order. Logs what it loads.
    ///
    /// Differs from uWSGI: a configured app that fails to load fails the whole load, so the
    /// server doesn't start without it. uWSGI does that only for a file `mount`; a module
    /// mount (or the default app next to mounts) that fails is logged and left out, and its
    /// requests then go to the default app.
    fn load(cfg: &Config, processes: u32, threads: u32) -> Result<WsgiApp, LoadError> {
        Python::attach(|py| {
            // uWSGI imports `import` modules right before the apps, wherever they load.
            import_all(py, "import", &cfg.import);
            let mut loaded = Loaded { callables: Vec::new(), mountpoints: Vec::new(), cfg };
            let mut errors = Vec::new();
            if let Err(e) = loaded.load_default(py) {
                errors.push(e);
            }
            for m in &cfg.mount {
                if let Err(e) = loaded.load_mount(py, &m.mountpoint, &m.app) {
                    errors.push(e);
                }
            }
            if !errors.is_empty() {
                return Err(LoadError(errors.join("; ")));
            }
            if loaded.callables.is_empty() {
                return Err(LoadError("no app configured: set module, wsgi-file or mount".to_owned()));
            }
            let template = environ::template(py, processes > 1, threads > 1, !cfg.wsgi_disable_file_wrapper)
                .map_err(|e| LoadError(format!("cannot build the environ: {e}")))?;
            let http_template =
                environ::http_template(&template).map_err(|e| LoadError(format!("cannot build the environ: {e}")))?;
            Ok(WsgiApp {
                http_template: http_template.unbind(),
                callables: loaded.callables.into_iter().map(Bound::unbind).collect(),
                mounts: MountTable::new(loaded.mountpoints, cfg.manage_script_name, cfg.no_default_app, cfg.vhost),
                template: template.unbind(),
                extra_headers: cfg.add_header.clone().into(),
                collect_headers: cfg.collect_header.clone().into(),
                websockets: asgi_websocket::Settings::new(cfg),
            })
        })
    }

    /// Which app serves `origin` (`None`: no app matches) and, with `manage-script-name`, its
    /// new `PATH_INFO`. Costs one branch when there is a single app.
    fn route<'r>(&self, origin: &'r Origin<'_>) -> Option<Selected<'r>> {
        if self.mounts.is_single_app() {
            return Some(Selected { id: 0, path_info: None });
        }
        let host = if self.mounts.is_vhost() { vhost_host(origin) } else { b"" };
        let (script_name, path_info): (&[u8], Cow<'r, [u8]>) = match origin {
            // HTTP requests carry no SCRIPT_NAME.
            Origin::Http { head, .. } if self.mounts.manages_script_name() => (b"", environ::http_path_info(head)),
            Origin::Http { .. } => (b"", Cow::Borrowed(b"")),
            // The last of repeated vars, as in the environ.
            Origin::Uwsgi { packet } => {
                (last_var(packet, b"SCRIPT_NAME"), Cow::Borrowed(last_var(packet, b"PATH_INFO")))
            }
        };
        let Route { app, split } = self.mounts.route(host, script_name, &path_info);
        let path_info = split.map(|n| match path_info {
            Cow::Borrowed(p) => Cow::Borrowed(&p[n..]),
            Cow::Owned(mut p) => {
                p.drain(..n);
                Cow::Owned(p)
            }
        });
        Some(Selected { id: app?, path_info })
    }
}

/// The last value of a uwsgi var (as in the environ), `""` when absent.
fn last_var<'a>(packet: &'a UwsgiPacket<'_>, name: &[u8]) -> &'a [u8] {
    packet.vars.iter().rev().find(|(n, _)| *n == name).map_or(&b""[..], |(_, v)| *v)
}

/// The host `vhost` routes by, as uWSGI takes it: `HTTP_HOST` (the `Host` header, port
/// included), else `SERVER_NAME`.
fn vhost_host<'r>(origin: &'r Origin<'_>) -> &'r [u8] {
    match origin {
        Origin::Http { head, server_name, .. } => head
            .headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map_or(server_name.as_bytes(), |(_, v)| &v[..]),
        Origin::Uwsgi { packet } => Some(last_var(packet, b"HTTP_HOST"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| last_var(packet, b"SERVER_NAME")),
    }
}

/// The app chosen for one request.
struct Selected<'r> {
    /// Its id (index in `App::callables`).
    id: usize,
    /// `manage-script-name` matched: the new `PATH_INFO`; `SCRIPT_NAME` becomes the app's
    /// mountpoint.
    path_info: Option<Cow<'r, [u8]>>,
}

/// The apps loaded so far, numbered as uWSGI does: by load order, failures taking no number.
struct Loaded<'py, 'c> {
    /// Callables by app id.
    callables: Vec<Bound<'py, PyAny>>,
    /// Mountpoints by app id.
    mountpoints: Vec<String>,
    /// The config (`callable`, `no-default-app`).
    cfg: &'c Config,
}

impl<'py> Loaded<'py, '_> {
    /// The default app: `module`, or `wsgi-file` if there is no module or it failed to import.
    /// `Err` (already logged) when one is configured and none loads.
    fn load_default(&mut self, py: Python<'py>) -> Result<(), String> {
        let cfg = self.cfg;
        let mut errors = Vec::new();
        if let Some(module) = &cfg.module {
            match load_module(py, module, &cfg.callable) {
                Ok(c) => {
                    self.add(c, String::new(), &module_label(module, &cfg.callable));
                    if cfg.wsgi_file.is_some() {
                        // uWSGI's words (two spaces: the mountpoint is empty) when a
                        // `wsgi-file` also asks for the default app.
                        tracing::info!("mountpoint  already configured. skip.");
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!("failed to load module {module}:\n{}", format_exception(py, &e));
                    errors.push(format!("module {module}: {e}"));
                }
            }
        }
        if let Some(file) = &cfg.wsgi_file {
            match load_file(py, file, &cfg.callable) {
                Ok(c) => {
                    self.add(c, String::new(), &format!("{}:{}", file.display(), cfg.callable));
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!("failed to load wsgi-file {}:\n{}", file.display(), format_exception(py, &e));
                    errors.push(format!("wsgi-file {}: {e}", file.display()));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// One `mount`. A mountpoint that is already taken is skipped, as in uWSGI.
    fn load_mount(&mut self, py: Python<'py>, mountpoint: &str, app: &MountedApp) -> Result<(), String> {
        let what = match app {
            MountedApp::File(file) => format!("{}:{}", file.display(), self.cfg.callable),
            MountedApp::Module(spec) => module_label(spec, &self.cfg.callable),
        };
        if self.mountpoints.iter().any(|m| m == mountpoint) {
            tracing::warn!("mountpoint '{mountpoint}' already configured. skip. (mount = {mountpoint}={what})");
            return Ok(());
        }
        tracing::info!("mounting {what} on '{mountpoint}'");
        if mountpoint.contains('|') && !self.cfg.vhost {
            tracing::warn!(
                "mountpoint '{mountpoint}' names a host but vhost is off: only a SCRIPT_NAME equal to it reaches it"
            );
        }
        let callable = match app {
            MountedApp::File(file) => load_file(py, file, &self.cfg.callable),
            MountedApp::Module(spec) => load_module(py, spec, &self.cfg.callable),
        };
        match callable {
            Ok(c) => {
                self.add(c, mountpoint.to_owned(), &what);
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    "unable to load app {} (mountpoint='{mountpoint}') from {what}:\n{}",
                    self.callables.len(),
                    format_exception(py, &e)
                );
                Err(format!("mount {mountpoint}={what}: {e}"))
            }
        }
    }

    /// Numbers a loaded app and logs uWSGI's "ready" line.
    fn add(&mut self, callable: Bound<'py, PyAny>, mountpoint: String, what: &str) {
        let id = self.callables.len();
        // The first app not mounted on a host is the default one (MountTable::new agrees).
        let first_default = mount::default_app(&self.mountpoints).is_none() && !mountpoint.contains('|');
        let default = if first_default && !self.cfg.no_default_app { " (default app)" } else { "" };
        tracing::info!("WSGI app {id} (mountpoint='{mountpoint}') ready: {what}{default}");
        self.callables.push(callable);
        self.mountpoints.push(mountpoint);
    }
}

/// `pkg.mod:callable` for the log, with the default callable when the spec names none.
fn module_label(spec: &str, default_callable: &str) -> String {
    if spec.contains(':') {
        spec.to_owned()
    } else {
        format!("{spec}:{default_callable}")
    }
}

/// Imports `spec` (`pkg.mod` or `pkg.mod:callable`) and returns the callable.
fn load_module<'py>(py: Python<'py>, spec: &str, default_callable: &str) -> PyResult<Bound<'py, PyAny>> {
    let (module, callable) = spec.split_once(':').unwrap_or((spec, default_callable));
    let module = py.import(module)?;
    // uWSGI's "quick callable": `pkg.mod:factory()` calls the factory with no arguments and
    // serves what it returns (e.g. `django.core.wsgi:get_wsgi_application()`).
    match callable.strip_suffix("()") {
        Some(factory) => module.getattr(factory)?.call0(),
        None => module.getattr(callable),
    }
}

/// Runs `file` as a module and returns its `callable`.
fn load_file<'py>(py: Python<'py>, file: &Path, callable: &str) -> PyResult<Bound<'py, PyAny>> {
    // uWSGI's module name for a wsgi-file: "uwsgi_file_" + the path with '/' and '.' as '_'.
    let name: String = format!("uwsgi_file_{}", file.display())
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    exec_file(py, file, &name)?.getattr(callable)
}

/// `import`/`shared-import`, in the order given. As in uWSGI, an entry with a `/` or ending in
/// `.py` is a file run as a module (named after its path, `.` and `/` as `_`, without the
/// `.py`), anything else a module name; a failure is logged with its traceback and start-up
/// goes on.
fn import_all(py: Python<'_>, option: &str, entries: &[String]) {
    for entry in entries {
        // Case-sensitive, as uWSGI's check.
        let done = if entry.contains('/') || Path::new(entry).extension().is_some_and(|e| e == "py") {
            let stem = entry.strip_suffix(".py").unwrap_or(entry);
            let name: String = stem.chars().map(|c| if c == '.' || c == '/' { '_' } else { c }).collect();
            exec_file(py, Path::new(entry), &name).map(drop)
        } else {
            py.import(entry.as_str()).map(drop)
        };
        match done {
            Ok(()) => tracing::info!("{option}: imported {entry} (pid: {})", std::process::id()),
            Err(e) => tracing::error!("{option} = {entry}: import failed:\n{}", format_exception(py, &e)),
        }
    }
}

/// Runs `file` as the module `name` (registered in `sys.modules`) and returns it.
fn exec_file<'py>(py: Python<'py>, file: &Path, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let util = py.import("importlib.util")?;
    // A str path: a `Path` would convert to pathlib.Path, importing pathlib for nothing.
    let spec = util.call_method1("spec_from_file_location", (&name, file.as_os_str()))?;
    if spec.is_none() {
        return Err(PyRuntimeError::new_err(format!("cannot load {}", file.display())));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?.getattr("modules")?.set_item(name, &module)?;
    spec.getattr("loader")?.call_method1("exec_module", (&module,))?;
    Ok(module)
}
