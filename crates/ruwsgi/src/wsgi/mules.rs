//! The mules' Python side: the `uwsgi` module's `mule_*`/`farm_*` functions, running a
//! mule's code (`mule = file.py` as `__main__`, `mule = module:function` called), and
//! handing messages to `uwsgi.mule_msg_hook`. Queues and processes are `crate::mule`'s.

use std::path::Path;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::mule::{self, Received, Target};

/// Adds the mule functions to the `uwsgi` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mule_id, m)?)?;
    m.add_function(wrap_pyfunction!(mule_msg, m)?)?;
    m.add_function(wrap_pyfunction!(mule_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_msg, m)?)?;
    m.add_function(wrap_pyfunction!(farm_get_msg, m)?)?;
    m.add_function(wrap_pyfunction!(in_farm, m)?)?;
    Ok(())
}

/// `uwsgi.mule_id()`: this mule's id, 0 outside mules.
#[pyfunction]
fn mule_id() -> usize {
    mule::id()
}

/// A message: bytes, or str sent as UTF-8 (uWSGI's `s#` takes both).
fn message_bytes(message: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = message.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    Ok(message.cast::<PyString>()?.to_str()?.as_bytes().to_vec())
}

/// `uwsgi.mule_msg(message[, mule])`: queues a message for any mule, mule N (0 = any) or
/// the farm named. True when queued, False when the queue is full.
#[pyfunction]
#[pyo3(signature = (message, mule = None))]
fn mule_msg(py: Python<'_>, message: &Bound<'_, PyAny>, mule: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let msg = message_bytes(message)?;
    if mule::count() == 0 {
        return Err(PyValueError::new_err("no mule configured"));
    }
    let farm: String;
    let target = match mule {
        None => Target::Any,
        // A farm's name: bytes in uWSGI on Python 3; str is accepted too.
        Some(m) if m.is_instance_of::<PyString>() || m.is_instance_of::<PyBytes>() => {
            farm = String::from_utf8_lossy(&message_bytes(m)?).into_owned();
            Target::Farm(&farm)
        }
        Some(m) => match m.extract::<i64>() {
            Ok(id) if id >= 0 && usize::try_from(id).is_ok_and(|id| id <= mule::count()) => {
                Target::Mule(usize::try_from(id).unwrap_or(0))
            }
            Ok(_) => return Err(PyValueError::new_err("invalid mule number")),
            Err(_) => return Err(PyValueError::new_err("invalid mule")),
        },
    };
    py.detach(|| mule::send(target, &msg)).map_err(|e| PyValueError::new_err(e.0))
}

/// `uwsgi.farm_msg(farm, message)`: queues a message for the farm named (None returned).
#[pyfunction]
fn farm_msg(py: Python<'_>, farm: &str, message: &Bound<'_, PyAny>) -> PyResult<()> {
    let msg = message_bytes(message)?;
    // As uWSGI: an unknown farm is silently ignored.
    let _ = py.detach(|| mule::send(Target::Farm(farm), &msg));
    Ok(())
}

/// `uwsgi.mule_get_msg(signals=True, farms=True, buffer_size=65536, timeout=-1)` in a
/// mule: the next message (bytes), or None when `timeout` seconds pass or a signal came
/// (its handler has run then, as uWSGI).
#[pyfunction]
#[pyo3(signature = (signals = None, farms = None, buffer_size = mule::MSG_BUFFER, timeout = -1))]
fn mule_get_msg(
    py: Python<'_>,
    signals: Option<&Bound<'_, PyAny>>,
    farms: Option<&Bound<'_, PyAny>>,
    buffer_size: usize,
    timeout: i64,
) -> PyResult<Option<Py<PyBytes>>> {
    // As uWSGI: both are on unless given as None or False.
    let on = |flag: Option<&Bound<'_, PyAny>>| {
        flag.is_none_or(|f| !(f.is_none() || f.is(pyo3::types::PyBool::new(py, false))))
    };
    let (signals, farms) = (on(signals), on(farms));
    let timeout = u64::try_from(timeout).ok().map(std::time::Duration::from_secs);
    let got = py
        .detach(|| mule::receive(signals, farms, timeout, buffer_size))
        .map_err(|_| PyValueError::new_err("you can receive mule messages only in a mule !!!"))?;
    Ok(match got {
        Received::Message(msg) => Some(PyBytes::new(py, &msg).unbind()),
        Received::Signal(signal) => {
            py.detach(|| mule::run_signal(signal));
            None
        }
        Received::Nothing => None,
    })
}

/// `uwsgi.farm_get_msg()` in a mule: the next message of one of its farms.
#[pyfunction]
fn farm_get_msg(py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
    let got = py
        .detach(mule::receive_farm)
        .map_err(|_| PyValueError::new_err("you can receive farm messages only in a mule !!!"))?;
    Ok(got.map(|msg| PyBytes::new(py, &msg).unbind()))
}

/// `uwsgi.in_farm([name])`: True in a mule of that farm (of any farm), else None.
#[pyfunction]
#[pyo3(signature = (name = None))]
fn in_farm(name: Option<&str>) -> Option<bool> {
    mule::in_farm(name).then_some(true)
}

/// In a freshly forked mule: runs the post-fork hook.
pub fn enter_mule() {
    super::uwsgi_module::enter_background();
}

/// `mule = path.py`: runs the file as `__main__`. Returns when it ends (an exception is
/// logged).
pub fn run_file(path: &Path) {
    Python::attach(|py| {
        let kwargs = PyDict::new(py);
        let ran = kwargs
            .set_item("run_name", "__main__")
            .and_then(|()| py.import("runpy"))
            .and_then(|runpy| runpy.call_method("run_path", (path.as_os_str(),), Some(&kwargs)));
        if let Err(e) = ran {
            tracing::error!("mule {} ({}):\n{}", mule::id(), path.display(), super::format_exception(py, &e));
        }
    });
}

/// `mule = module:function`: imports the module and calls the function with no arguments.
pub fn run_function(spec: &str) {
    Python::attach(|py| {
        if let Err(e) = super::load_module(py, spec, "application").and_then(|f| f.call0()) {
            tracing::error!("mule {} ({spec}):\n{}", mule::id(), super::format_exception(py, &e));
        }
    });
}

/// Hands one message to `uwsgi.mule_msg_hook`. False when no hook is set.
pub fn dispatch(msg: &[u8]) -> bool {
    Python::attach(|py| {
        let Ok(hook) = py.import("uwsgi").and_then(|m| m.getattr("mule_msg_hook")) else { return false };
        if let Err(e) = hook.call1((PyBytes::new(py, msg),)) {
            tracing::error!("{}", super::format_exception(py, &e));
        }
        true
    })
}
