//! The spooler's Python side: the `uwsgi` module's `spool*` functions and constants, and
//! the call of `uwsgi.spooler` for each task in a spooler process. The file and process
//! work is `crate::spooler`'s; this module only converts between it and Python.
//!
//! As uWSGI 2.0 on Python 3, the callable gets a dict whose keys are the task's var names as
//! bytes, with bytes values, plus `'spooler_task_name'` (the file name, bytes) and `'body'`
//! (bytes, when the task has one) under str keys; it returns `uwsgi.SPOOL_OK` (-2, the file
//! is deleted), `uwsgi.SPOOL_RETRY` (-1, run it again on the next scan) or
//! `uwsgi.SPOOL_IGNORE` (0). Anything else, or an exception, means retry.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use ruwsgi_proto::{parse_spool_file, SpoolTask};

use crate::spooler::{self, TaskOutcome};

/// `uwsgi.SPOOL_OK`: the task is done.
const SPOOL_OK: i64 = -2;
/// `uwsgi.SPOOL_IGNORE`: not for this callable.
const SPOOL_IGNORE: i64 = 0;

/// Adds the spooler functions and constants to the `uwsgi` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // uwsgi_module adds `SPOOL_OK` (-2), `SPOOL_RETRY` (-1) and `SPOOL_IGNORE` (0).
    let spool = wrap_pyfunction!(spool, m)?;
    m.add("send_to_spooler", &spool)?;
    m.add_function(spool)?;
    m.add_function(wrap_pyfunction!(spooler_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pid, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_pids, m)?)?;
    m.add_function(wrap_pyfunction!(set_spooler_frequency, m)?)?;
    m.add_function(wrap_pyfunction!(spooler_get_task, m)?)?;
    m.add_function(wrap_pyfunction!(i_am_the_spooler, m)?)?;
    Ok(())
}

/// Bytes of a key or value: bytes as they are, str as UTF-8.
// Differs from uWSGI: str keys and values are accepted (UTF-8); uWSGI on Python 3 takes
// bytes only.
fn to_bytes(value: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = value.cast::<PyBytes>() {
        return Some(b.as_bytes().to_vec());
    }
    value.cast::<PyString>().ok()?.to_str().ok().map(|s| s.as_bytes().to_vec())
}

/// `uwsgi.spool(dict)` / `uwsgi.spool(key=value, ...)` (also `send_to_spooler`): writes a
/// task file and returns its path (bytes). The `body` item becomes the task's body.
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn spool(
    py: Python<'_>,
    args: &Bound<'_, pyo3::types::PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyBytes>> {
    let dict = match args.get_item(0) {
        Ok(first) => first
            .cast_into::<PyDict>()
            .map_err(|_| PyValueError::new_err("The argument of spooler callable must be a dictionary"))?,
        Err(_) => kwargs
            .cloned()
            .ok_or_else(|| PyValueError::new_err("The argument of spooler callable must be a dictionary"))?,
    };
    let only_bytes = || PyValueError::new_err("spooler callable dictionary must contain only bytes (or str)");
    let mut vars = Vec::with_capacity(dict.len());
    let mut body = Vec::new();
    for (key, value) in dict.iter() {
        let key = to_bytes(&key).ok_or_else(only_bytes)?;
        let value = to_bytes(&value).ok_or_else(only_bytes)?;
        if key == b"body" {
            body = value;
        } else {
            vars.push((key, value));
        }
    }
    let refs: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    let path = py
        .detach(|| spooler::spool(&refs, &body))
        .map_err(|e| PyValueError::new_err(format!("unable to spool job: {}", e.0)))?;
    Ok(PyBytes::new(py, path.as_os_str().as_encoded_bytes()).unbind())
}

/// `uwsgi.spooler_jobs()`: paths (bytes) of the tasks waiting in the first queue.
#[pyfunction]
fn spooler_jobs(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let jobs = py.detach(spooler::jobs);
    PyList::new(py, jobs.iter().map(|p| PyBytes::new(py, p.as_os_str().as_encoded_bytes())))
}

/// `uwsgi.spooler_pid()`: the first spooler's pid, 0 without one.
#[pyfunction]
fn spooler_pid() -> i32 {
    spooler::pids().first().copied().unwrap_or(0)
}

/// `uwsgi.spooler_pids()`: every spooler's pid.
#[pyfunction]
fn spooler_pids() -> Vec<i32> {
    spooler::pids()
}

/// `uwsgi.set_spooler_frequency(seconds)`: how long the spoolers wait between scans.
#[pyfunction]
fn set_spooler_frequency(seconds: u64) -> bool {
    spooler::set_frequency(seconds);
    true
}

/// `uwsgi.i_am_the_spooler()`: True in a spooler process, else None.
#[pyfunction]
fn i_am_the_spooler() -> Option<bool> {
    IN_SPOOLER.get().map(|()| true)
}

/// Set in a spooler process.
static IN_SPOOLER: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// `uwsgi.spooler_get_task(path)`: the task in that file as the spooler callable would get
/// it (`spooler_task_name` = the path given), or None when it can't be read.
#[pyfunction]
fn spooler_get_task<'py>(py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Ok(contents) = py.detach(|| std::fs::read(path)) else { return Ok(None) };
    let Ok(Some(task)) = parse_spool_file(&contents) else { return Ok(None) };
    task_dict(py, path.as_bytes(), &task).map(Some)
}

/// The dict a spooler callable gets, with uWSGI's mix of key types.
fn task_dict<'py>(py: Python<'py>, name: &[u8], task: &SpoolTask<'_>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("spooler_task_name", PyBytes::new(py, name))?;
    for (key, value) in &task.vars {
        dict.set_item(PyBytes::new(py, key), PyBytes::new(py, value))?;
    }
    if !task.body.is_empty() {
        dict.set_item("body", PyBytes::new(py, task.body))?;
    }
    Ok(dict)
}

/// In a freshly forked spooler process: runs the `spooler-import` imports and the
/// `uwsgi.post_fork_hook` (uWSGI runs the plugins' post-fork in spoolers too).
pub fn enter_spooler(imports: &[String]) {
    let _ = IN_SPOOLER.set(());
    Python::attach(|py| {
        super::import_all(py, "spooler-import", imports);
    });
    super::uwsgi_module::enter_background();
}

/// Hands one task to `uwsgi.spooler` in this spooler process.
pub fn run_task(name: &[u8], task: &SpoolTask<'_>) -> TaskOutcome {
    Python::attach(|py| {
        let callable = py.import("uwsgi").and_then(|m| m.getattr("spooler"));
        let Ok(callable) = callable else { return TaskOutcome::Ignored };
        let result = task_dict(py, name, task).and_then(|d| callable.call1((d,)));
        match result {
            Ok(ret) => match ret.extract::<i64>() {
                Ok(SPOOL_OK) => TaskOutcome::Done,
                Ok(SPOOL_IGNORE) => TaskOutcome::Ignored,
                _ => TaskOutcome::Retry,
            },
            Err(e) => {
                tracing::error!("{}", super::format_exception(py, &e));
                TaskOutcome::Retry
            }
        }
    })
}
