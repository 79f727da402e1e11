//! The `uwsgi` Python module (uWSGI's `plugins/python/uwsgi_pymodule.c`), built here and put
//! in `sys.modules` by the master before any app code runs, so a module-level
//! `import uwsgi` works in the master (at app import), and the workers inherit it.
//!
//! What it offers follows uWSGI's names and values (bytes where uWSGI gives bytes). What
//! it doesn't offer raises `AttributeError` naming docs/python-api.md (module
//! `__getattr__`), never a silent no-op. The signal framework's shared parts are plain Rust
//! in `crate::signals`; this module registers handlers, sends requests to the master and
//! runs handlers on a worker's signal thread.
//!
//! Other parts of the API (spooler, mules) add their functions in `add_parts` and take
//! their names out of `NOT_PROVIDED`.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use pyo3::exceptions::{PyAttributeError, PyIOError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use ruwsgi_config::Config;

use crate::scoreboard::Scoreboard;
use crate::signals::{self, Request, Target};

/// Where the docs of this module live; every "not provided" error names it.
const DOCS: &str = "docs/python-api.md in ruwsgi's documentation";

/// The uWSGI API level ruwsgi follows (`uwsgi.version`, `uwsgi.version_info`).
const UWSGI_VERSION: (u8, u8, u8) = (2, 0, 31);

/// Names of uWSGI's module that ruwsgi doesn't provide: reading one raises
/// `AttributeError` with a pointer to the docs.
const NOT_PROVIDED: &[&str] = &[
    // the rest of uWSGI's module
    "request_id",
    "log_this_request",
    "alarm",
    "disconnect",
    "cl",
    "accepting",
    "listen_queue",
    "signal_wait",
    "signal_received",
    "route",
    "register_rpc",
    "rpc",
    "rpc_list",
    "call",
    "sendfile",
    "offload",
    "set_warning_message",
    "mem",
    "logsize",
    "i_am_the_lord",
    "lord_scroll",
    "scrolls",
    "async_sleep",
    "async_connect",
    "green_schedule",
    "suspend",
    "wait_fd_read",
    "wait_fd_write",
    "connect",
    "send",
    "recv",
    "close",
    "parsefile",
    "embedded_data",
    "extract",
    "chunked_read",
    "chunked_read_nb",
    "ready_fd",
    "add_var",
    "sockets",
    "magic_table",
    "start_response",
    "applications",
    "mode",
    "pidfile",
    "SymbolsImporter",
    "SymbolsZipImporter",
    "ZipImporter",
    "cache_get",
    "cache_set",
    "cache_update",
    "cache_del",
    "cache_exists",
    "cache_clear",
    "cache_inc",
    "cache_dec",
    "cache_mul",
    "cache_div",
    "cache_num",
    "cache_keys",
    "queue_get",
    "queue_set",
    "queue_last",
    "queue_push",
    "queue_pull",
    "queue_pop",
    "queue_slot",
    "queue_pull_slot",
    "metric_inc",
    "metric_dec",
    "metric_mul",
    "metric_div",
    "metric_get",
    "metric_set",
    "metric_set_max",
    "metric_set_min",
    "sharedarea_read",
    "sharedarea_write",
    "sharedarea_readbyte",
    "sharedarea_writebyte",
    "sharedarea_read8",
    "sharedarea_write8",
    "sharedarea_readlong",
    "sharedarea_writelong",
    "sharedarea_read64",
    "sharedarea_write64",
    "sharedarea_read32",
    "sharedarea_write32",
    "sharedarea_read16",
    "sharedarea_write16",
    "sharedarea_inclong",
    "sharedarea_inc64",
    "sharedarea_inc32",
    "sharedarea_dec64",
    "sharedarea_dec32",
    "sharedarea_rlock",
    "sharedarea_wlock",
    "sharedarea_unlock",
    "sharedarea_memoryview",
    "sharedarea_object",
    "snmp_set_counter32",
    "snmp_set_counter64",
    "snmp_set_gauge",
    "snmp_incr_counter32",
    "snmp_incr_counter64",
    "snmp_incr_gauge",
    "snmp_decr_counter32",
    "snmp_decr_counter64",
    "snmp_decr_gauge",
    "snmp_set_community",
    "erlang_register_process",
];

/// What the module's functions read: fixed for the life of the server image.
struct State {
    /// The resolved config (for `workers()`, which renders the stats).
    cfg: Config,
    /// Shared worker counters.
    board: Scoreboard,
}

static STATE: OnceLock<State> = OnceLock::new();
/// The master's pid, as a forked child saw it (`daemonize2` forks the master after the app
/// loads, so it is read again in each child); 0 in the master itself.
static MASTER_PID: AtomicI32 = AtomicI32::new(0);
/// This process's worker id (0 in the master and in other processes).
static WORKER_ID: AtomicUsize = AtomicUsize::new(0);
/// Signal handlers registered in this process (inherited by the workers forked after).
static HANDLERS: Mutex<BTreeMap<u8, Py<PyAny>>> = Mutex::new(BTreeMap::new());

/// `set_user_harakiri`: each thread's deadline (the signal thread enforces them).
static USER_HARAKIRI: Mutex<Vec<(std::thread::ThreadId, Instant)>> = Mutex::new(Vec::new());

/// The request a thread is running, for `connection_fd()` and `set_logvar()`.
/// It lives in the thread's `PerThread`.
pub(super) struct CurrentRequest {
    fd: i32,
    logvars: Vec<(String, String)>,
}

/// Builds the `uwsgi` module and registers it (and `uwsgidecorators`) in `sys.modules`.
/// Called by the master once, before any app code runs.
/// `reloaded`: this master image was started by a reload (`uwsgi.is_a_reload`).
pub fn install(cfg: &Config, board: Scoreboard, reloaded: bool) -> anyhow::Result<()> {
    let _ = STATE.set(State { cfg: cfg.clone(), board });
    Python::attach(|py| -> PyResult<()> {
        let m = PyModule::new(py, "uwsgi")?;
        add_values(py, &m, cfg)?;
        m.add("is_a_reload", reloaded)?;
        add_functions(&m)?;
        add_parts(&m)?;
        let sys_modules = py.import("sys")?.getattr("modules")?;
        sys_modules.set_item("uwsgi", &m)?;
        // Differs from uWSGI: uwsgidecorators ships inside the ruwsgi package (so it can't
        // clash with the uwsgidecorators.py a `pip install uwsgi` puts in the same venv)
        // and is registered here under its usual name, ahead of any other copy.
        let decorators = py.import("ruwsgi.uwsgidecorators")?;
        sys_modules.set_item("uwsgidecorators", decorators)?;
        Ok(())
    })
    .map_err(|e| anyhow::anyhow!("cannot set up the uwsgi Python module: {e}"))
}

/// The module's values (uWSGI's `init_uwsgi_embedded_module`).
fn add_values(py: Python<'_>, m: &Bound<'_, PyModule>, cfg: &Config) -> PyResult<()> {
    let (major, minor, rev) = UWSGI_VERSION;
    let custom = format!("ruwsgi-{}", env!("CARGO_PKG_VERSION"));
    m.add("version", PyBytes::new(py, format!("{major}.{minor}.{rev}-{custom}").as_bytes()))?;
    m.add("version_info", (major, minor, rev, 0, PyBytes::new(py, custom.as_bytes())))?;
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    m.add("hostname", PyBytes::new(py, hostname.as_bytes()))?;
    m.add("numproc", cfg.processes.max(1))?;
    m.add("cores", cfg.threads.max(1))?;
    m.add("has_threads", 1)?;
    m.add("buffer_size", cfg.buffer_size)?;
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    m.add("started_on", started)?;
    m.add("loop", py.None())?;
    m.add("unbit", py.None())?;
    m.add("SPOOL_RETRY", -1)?;
    m.add("SPOOL_OK", -2)?;
    m.add("SPOOL_IGNORE", 0)?;
    // uWSGI 2.0 on Python 3: every option as written, its value as bytes; a repeated one
    // keeps its last value (uWSGI's list-building compares str and bytes keys, so under
    // Python 3 it never builds a list).
    let opt = PyDict::new(py);
    for (key, value) in &cfg.exported {
        opt.set_item(key, PyBytes::new(py, value.as_bytes()))?;
    }
    m.add("opt", opt)?;
    Ok(())
}

fn add_functions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(module_getattr, m)?)?;
    // `__getattr__` by its dunder name (PEP 562).
    m.add("__getattr__", m.getattr("module_getattr")?)?;
    m.delattr("module_getattr")?;
    m.add_function(wrap_pyfunction!(worker_id, m)?)?;
    m.add_function(wrap_pyfunction!(masterpid, m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, m)?)?;
    m.add_function(wrap_pyfunction!(workers, m)?)?;
    m.add_function(wrap_pyfunction!(reload, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(setprocname, m)?)?;
    m.add_function(wrap_pyfunction!(log, m)?)?;
    m.add_function(wrap_pyfunction!(set_logvar, m)?)?;
    m.add_function(wrap_pyfunction!(get_logvar, m)?)?;
    m.add_function(wrap_pyfunction!(connection_fd, m)?)?;
    m.add_function(wrap_pyfunction!(is_connected, m)?)?;
    m.add_function(wrap_pyfunction!(ready, m)?)?;
    m.add_function(wrap_pyfunction!(micros, m)?)?;
    m.add_function(wrap_pyfunction!(register_signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal, m)?)?;
    m.add_function(wrap_pyfunction!(signal_registered, m)?)?;
    m.add_function(wrap_pyfunction!(add_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_rb_timer, m)?)?;
    m.add_function(wrap_pyfunction!(add_cron, m)?)?;
    m.add_function(wrap_pyfunction!(add_file_monitor, m)?)?;
    m.add_function(wrap_pyfunction!(lock, m)?)?;
    m.add_function(wrap_pyfunction!(unlock, m)?)?;
    m.add_function(wrap_pyfunction!(is_locked, m)?)?;
    m.add_function(wrap_pyfunction!(set_user_harakiri, m)?)?;
    Ok(())
}

/// The other parts of the API add their functions here, one line each.
fn add_parts(m: &Bound<'_, PyModule>) -> PyResult<()> {
    super::spooler::register(m)?;
    super::mules::register(m)?;
    super::uwsgi_websocket::add(m)?;
    Ok(())
}

fn state() -> PyResult<&'static State> {
    STATE.get().ok_or_else(|| PyValueError::new_err("the uwsgi module is not set up"))
}

fn hub() -> PyResult<&'static signals::Hub> {
    signals::hub().ok_or_else(|| PyValueError::new_err("the uwsgi signal framework is not set up"))
}

/// Module `__getattr__`: the names ruwsgi leaves out say so.
#[pyfunction]
fn module_getattr(name: &str) -> PyResult<Py<PyAny>> {
    if NOT_PROVIDED.contains(&name) {
        Err(PyAttributeError::new_err(format!(
            "uwsgi.{name} is not provided by ruwsgi (see {DOCS} for what the uwsgi module offers)"
        )))
    } else {
        Err(PyAttributeError::new_err(format!("module 'uwsgi' has no attribute '{name}'")))
    }
}

/// Marks this process as worker `id` (called first thing after the fork) and runs
/// `uwsgi.post_fork_hook` (what `@postfork` registers) as uWSGI does in every worker.
pub fn enter_worker(id: usize) {
    WORKER_ID.store(id, Relaxed);
    MASTER_PID.store(nix::unistd::getppid().as_raw(), Relaxed);
    call_hook("post_fork_hook");
}

/// In a freshly forked spooler or mule: runs `uwsgi.post_fork_hook`, as uWSGI does after
/// every fork.
pub fn enter_background() {
    MASTER_PID.store(nix::unistd::getppid().as_raw(), Relaxed);
    call_hook("post_fork_hook");
}

/// Runs `uwsgi.atexit` if the app set it (a worker or the master about to exit).
pub fn run_atexit() {
    call_hook("atexit");
}

/// Calls the module attribute `name` if the app set it; a raise is logged.
fn call_hook(name: &str) {
    Python::attach(|py| {
        let Ok(m) = py.import("uwsgi") else { return };
        let Ok(Some(hook)) = m.dict().get_item(name) else { return };
        if let Err(e) = hook.call0() {
            tracing::error!("uwsgi.{name} raised:\n{}", super::format_exception(py, &e));
        }
    });
}

/// Starts tracking a request on this thread (`connection_fd`, `set_logvar`); `logvars` are
/// the ones routing already set.
pub(super) fn begin_request(thread: &super::PerThread, fd: i32, logvars: Vec<(String, String)>) {
    *thread.uwsgi.borrow_mut() = Some(CurrentRequest { fd, logvars });
}

/// Ends it; returns the request's log variables for the log line.
pub(super) fn end_request(thread: &super::PerThread) -> Vec<(String, String)> {
    thread.uwsgi.borrow_mut().take().map(|r| r.logvars).unwrap_or_default()
}

#[pyfunction]
fn worker_id() -> usize {
    WORKER_ID.load(Relaxed)
}

#[pyfunction]
fn masterpid() -> i32 {
    master_pid()
}

/// The master's pid: this process's in the master, the parent's (read at the fork) in a child.
fn master_pid() -> i32 {
    match MASTER_PID.load(Relaxed) {
        0 => std::process::id() as i32,
        pid => pid,
    }
}

#[pyfunction]
fn total_requests() -> PyResult<u64> {
    Ok(state()?.board.board().total_requests.load(Relaxed))
}

/// A tuple of one dict per worker: the stats server's figures (uWSGI's keys, and the
/// stats JSON's extra ones), text as bytes as in uWSGI.
#[pyfunction]
fn workers(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let st = state()?;
    let views: Vec<crate::master::stats::WorkerView> = (1..=st.cfg.processes.max(1) as usize)
        .map(|id| {
            let pid = st.board.worker(id).pid.load(Relaxed);
            crate::master::stats::WorkerView { id, pid: (pid > 0).then_some(pid) }
        })
        .collect();
    let mut doc = crate::master::stats::render(&st.cfg, &[], st.board, &views, "");
    if let Some(hub) = signals::hub() {
        for w in doc["workers"].as_array_mut().into_iter().flatten() {
            let id = w["id"].as_u64().unwrap_or(0) as usize;
            w["signals"] = hub.delivered(id).into();
        }
    }
    json_to_py(py, &doc["workers"])
}

/// JSON → Python as uWSGI's module builds it: arrays are tuples, strings are bytes.
fn json_to_py(py: Python<'_>, v: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
        Value::Number(n) => match n.as_u64() {
            Some(u) => u.into_pyobject(py)?.into_any().unbind(),
            None => n.as_f64().unwrap_or(0.0).into_pyobject(py)?.into_any().unbind(),
        },
        Value::String(s) => PyBytes::new(py, s.as_bytes()).into_any().unbind(),
        Value::Array(items) => {
            let items = items.iter().map(|i| json_to_py(py, i)).collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, v) in map {
                d.set_item(k, json_to_py(py, v)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// Sends the master `sig`; uWSGI returns True, or None when the signal can't be sent.
fn signal_master(py: Python<'_>, sig: Signal) -> PyResult<Py<PyAny>> {
    let pid = master_pid();
    Ok(match kill(Pid::from_raw(pid), sig) {
        Ok(()) => true.into_pyobject(py)?.to_owned().into_any().unbind(),
        Err(e) => {
            tracing::error!("kill({pid}, {sig}): {e}");
            py.None()
        }
    })
}

/// Graceful reload of the whole instance (SIGHUP to the master).
#[pyfunction]
fn reload(py: Python<'_>) -> PyResult<Py<PyAny>> {
    signal_master(py, Signal::SIGHUP)
}

/// Stops the instance (SIGQUIT to the master: an immediate shutdown, as in uWSGI 2.0).
#[pyfunction]
fn stop(py: Python<'_>) -> PyResult<Py<PyAny>> {
    signal_master(py, Signal::SIGQUIT)
}

/// Differs from uWSGI: sets the kernel's name of the calling process (what `ps -o comm`,
/// `top` and `/proc/PID/comm` show, at most 15 bytes); uWSGI rewrites the whole command line.
#[pyfunction]
fn setprocname(name: &str) -> PyResult<()> {
    // The process's name is its main thread's: `/proc/self/comm` renames it from any thread
    // (`PR_SET_NAME` would rename only the calling request thread). The kernel keeps 15 bytes.
    let bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    std::fs::write("/proc/self/comm", bytes).map_err(|e| PyIOError::new_err(format!("setprocname({name:?}): {e}")))
}

/// A line in the server log.
#[pyfunction]
fn log(line: &str) -> bool {
    tracing::info!("{line}");
    true
}

/// Sets a request-log variable (`%(NAME)` in a `log-format`) for the current request.
#[pyfunction]
fn set_logvar(key: &str, value: &str) {
    super::PER_THREAD.with(|t| {
        if let Some(r) = t.uwsgi.borrow_mut().as_mut() {
            r.logvars.retain(|(k, _)| k != key);
            r.logvars.push((key.to_owned(), value.to_owned()));
        }
    });
}

/// A request-log variable of the current request (bytes), or None.
#[pyfunction]
fn get_logvar(py: Python<'_>, key: &str) -> Py<PyAny> {
    let value = super::PER_THREAD.with(|t| {
        t.uwsgi.borrow().as_ref().and_then(|r| r.logvars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    });
    value.map_or_else(|| py.None(), |v| PyBytes::new(py, v.as_bytes()).into_any().unbind())
}

/// The current request's socket.
#[pyfunction]
fn connection_fd() -> PyResult<i32> {
    super::PER_THREAD
        .with(|t| t.uwsgi.borrow().as_ref().map(|r| r.fd))
        .ok_or_else(|| PyIOError::new_err("connection_fd(): no request is running on this thread"))
}

/// True when the peer of socket `fd` has not hung up.
#[pyfunction]
fn is_connected(fd: i32) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    if fd < 0 {
        return false;
    }
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(borrow_fd(fd), PollFlags::POLLIN | rdhup)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => true,
        Ok(_) => {
            let r = fds[0].revents().unwrap_or(PollFlags::empty());
            !r.intersects(PollFlags::POLLHUP | rdhup | PollFlags::POLLERR | PollFlags::POLLNVAL)
        }
        Err(_) => false,
    }
}

/// True once the workers accept requests (uWSGI: None before).
#[pyfunction]
fn ready(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let st = state()?;
    let any = (1..=st.cfg.processes.max(1) as usize).any(|id| st.board.worker(id).accepting.load(Relaxed) == 1);
    Ok(if any { true.into_pyobject(py)?.to_owned().into_any().unbind() } else { py.None() })
}

/// Microseconds since the epoch.
#[pyfunction]
fn micros() -> u64 {
    crate::scoreboard::now_micros()
}

/// `register_signal(num, target, handler)`: `handler(num)` runs where the target says.
#[pyfunction]
fn register_signal(num: u8, target: &str, handler: Py<PyAny>) -> PyResult<()> {
    let hub = hub()?;
    let Some(parsed) = Target::parse(target) else {
        return Err(PyValueError::new_err(format!(
            "unable to register signal {num}: unsupported target {target:?} (worker, workers, workerN, active-workers, spooler, mules, muleN)"
        )));
    };
    let wid = WORKER_ID.load(Relaxed);
    let mut handlers = HANDLERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if wid == 0 && crate::mule::id() == 0 && handlers.contains_key(&num) {
        tracing::info!("[uwsgi-signal] you cannot re-register a signal as the master !!!");
        return Err(PyValueError::new_err("unable to register signal"));
    }
    handlers.insert(num, handler);
    hub.register(num, parsed, wid);
    // uWSGI's line shows the target as written.
    let shown = if target.is_empty() { "default, any worker" } else { target };
    tracing::info!("[uwsgi-signal] signum {num} registered (wid: {wid} modifier1: 0 target: {shown})");
    Ok(())
}

/// True when this process has a handler for `num` (uWSGI: None otherwise).
#[pyfunction]
fn signal_registered(py: Python<'_>, num: u8) -> PyResult<Py<PyAny>> {
    let registered = HANDLERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).contains_key(&num);
    Ok(if registered { true.into_pyobject(py)?.to_owned().into_any().unbind() } else { py.None() })
}

fn send(req: &Request, what: &str) -> PyResult<()> {
    hub()?.send(req).map_err(|e| PyValueError::new_err(format!("unable to {what}: {e}")))
}

/// Raises signal `num`: the master routes it to its target.
#[pyfunction]
#[pyo3(signature = (num, remote=None))]
fn signal(num: u8, remote: Option<&str>) -> PyResult<()> {
    if let Some(node) = remote {
        return Err(PyValueError::new_err(format!(
            "uwsgi.signal({num}, {node:?}): remote signals are not provided by ruwsgi (see {DOCS})"
        )));
    }
    send(&Request::Raise(num), "deliver signal")
}

/// Raises `num` every `secs` seconds (the master's timer).
#[pyfunction]
fn add_timer(num: u8, secs: u64) -> PyResult<()> {
    if secs == 0 {
        return Err(PyValueError::new_err("unable to add timer: secs must be at least 1"));
    }
    send(&Request::Timer { signal: num, secs }, "add timer")
}

/// Raises `num` every `secs` seconds, `iterations` times (0 = forever).
#[pyfunction]
#[pyo3(signature = (num, secs, iterations=0))]
fn add_rb_timer(num: u8, secs: u64, iterations: u64) -> PyResult<()> {
    if secs == 0 {
        return Err(PyValueError::new_err("unable to add rb_timer: secs must be at least 1"));
    }
    send(&Request::RbTimer { signal: num, secs, iterations }, "add rb_timer")
}

/// Raises `num` on a cron schedule (-1 = any, -N = every N).
#[pyfunction]
fn add_cron(num: u8, minute: i32, hour: i32, day: i32, month: i32, weekday: i32) -> PyResult<()> {
    send(&Request::Cron { signal: num, fields: [minute, hour, day, month, weekday] }, "add cron")
}

/// Raises `num` when the file or directory changes (inotify, in the master).
#[pyfunction]
fn add_file_monitor(num: u8, path: &str) -> PyResult<()> {
    if path.is_empty() || path.len() > 254 {
        return Err(PyValueError::new_err("unable to add file monitor: invalid filename length"));
    }
    send(&Request::FileMonitor { signal: num, path: path.to_owned() }, "add file monitor")
}

fn lock_number(n: i64) -> PyResult<usize> {
    let hub = hub()?;
    usize::try_from(n).ok().filter(|&n| n <= hub.locks).ok_or_else(|| PyValueError::new_err("Invalid lock number"))
}

/// Takes user lock `n` (0, or 1..=`locks`), shared by every process of the instance.
#[pyfunction]
#[pyo3(signature = (n=0))]
fn lock(py: Python<'_>, n: i64) -> PyResult<()> {
    let n = lock_number(n)?;
    let hub = hub()?;
    let pid = std::process::id() as i32;
    py.detach(|| {
        // A short sleep between tries: user locks guard rare, slow sections.
        while !hub.try_lock(n, pid) {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    Ok(())
}

/// Releases user lock `n`.
#[pyfunction]
#[pyo3(signature = (n=0))]
fn unlock(n: i64) -> PyResult<()> {
    let n = lock_number(n)?;
    hub()?.unlock(n);
    Ok(())
}

/// True while some process holds user lock `n`.
#[pyfunction]
#[pyo3(signature = (n=0))]
fn is_locked(n: i64) -> PyResult<bool> {
    let n = lock_number(n)?;
    Ok(hub()?.lock_holder(n) != 0)
}

/// `set_user_harakiri(secs)`: if the calling thread is still running in `secs` seconds,
/// the worker is killed (as `harakiri`, but set by the app for one piece of work); 0 clears.
// Differs from uWSGI: enforced by the worker's signal thread rather than the master, and
// outside a request too; a stuck worker is killed all the same, and the master respawns it.
#[pyfunction]
fn set_user_harakiri(secs: u64) {
    let me = std::thread::current().id();
    let mut deadlines = USER_HARAKIRI.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    deadlines.retain(|(t, _)| *t != me);
    if secs > 0 {
        deadlines.push((me, Instant::now() + Duration::from_secs(secs)));
        // Wake the signal thread (an empty datagram on this worker's own signal socket) so
        // it starts checking.
        let id = WORKER_ID.load(Relaxed);
        if let Some(pair) = signals::hub().and_then(|h| h.workers.get(id.wrapping_sub(1))) {
            let _ = nix::unistd::write(&pair.master, &[]);
        }
    }
}

/// Kills this worker if a `set_user_harakiri` deadline passed. Returns whether any is set.
fn check_user_harakiri(id: usize) -> bool {
    let deadlines = USER_HARAKIRI.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if deadlines.iter().any(|(_, at)| Instant::now() >= *at) {
        let pid = std::process::id();
        tracing::error!("*** HARAKIRI ON WORKER {id} (pid: {pid}, try: 1) *** (set_user_harakiri)");
        if let Some(st) = STATE.get() {
            st.board.worker(id).harakiri_count.fetch_add(1, Relaxed);
        }
        super::flush_std_streams();
        let _ = kill(Pid::this(), Signal::SIGKILL);
    }
    !deadlines.is_empty()
}

/// Starts worker `id`'s signal thread: it waits on the worker's signal sockets and runs
/// the handler of each signal the master delivers, holding the GIL only while it runs.
pub fn start_signal_thread(id: usize) {
    let Some(hub) = signals::hub() else { return };
    let Some(own) = hub.workers.get(id - 1) else { return };
    let spawned = std::thread::Builder::new().name("ruwsgi-signals".to_owned()).spawn(move || {
        super::python_thread(|| loop {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let mut fds = [
                PollFd::new(hub.any_worker.peer.as_fd(), PollFlags::POLLIN),
                PollFd::new(own.peer.as_fd(), PollFlags::POLLIN),
            ];
            // Once a second while a user harakiri is set, else only when a signal comes.
            let timeout = if check_user_harakiri(id) { PollTimeout::from(1000u16) } else { PollTimeout::NONE };
            if poll(&mut fds, timeout).is_err() {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            for fd in [&hub.any_worker.peer, &own.peer] {
                let mut byte = [0u8; 1];
                if let Ok(1) = nix::unistd::read(fd, &mut byte) {
                    hub.count_delivered(id);
                    run_handler(id, byte[0]);
                }
            }
        });
    });
    if let Err(e) = spawned {
        tracing::error!("worker {id}: cannot start the signal thread: {e}");
    }
}

/// Runs this process's handler for signal `num` in a spooler or mule (uWSGI's targets
/// `spooler`, `mules`, `muleN`).
pub fn run_background_handler(num: u8) {
    run_handler(0, num);
}

/// Runs this process's handler for signal `num`.
fn run_handler(id: usize, num: u8) {
    Python::attach(|py| {
        let handler =
            HANDLERS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&num).map(|h| h.clone_ref(py));
        let Some(handler) = handler else {
            // As uWSGI: the handler lives in the memory of the process that registered it.
            let by = signals::hub().and_then(|h| h.registration(num)).map_or(0, |(_, wid)| wid);
            tracing::error!(
                "[uwsgi-signal] you have registered this signal in worker {by} memory area, only that process will be able to run it"
            );
            tracing::error!("error managing signal {num} on worker {id}");
            return;
        };
        if let Err(e) = handler.call1(py, (num,)) {
            tracing::error!("signal {num} handler raised:\n{}", super::format_exception(py, &e));
        }
    });
}

/// A number the app names as a file descriptor, borrowed for one `poll`.
fn borrow_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: the fd is only polled; if the number is not open (or was closed meanwhile)
    // poll reports POLLNVAL, which `is_connected` reads as "not connected".
    #[allow(unsafe_code)]
    unsafe {
        std::os::fd::BorrowedFd::borrow_raw(fd)
    }
}
