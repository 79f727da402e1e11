//! Python-side helpers for the master's operations: the command line a graceful reload
//! re-executes, the stack dump harakiri asks for (`faulthandler` on SIGUSR2), and the
//! `py-autoreload` scanner thread started in worker 1. The master and workers call these
//! plain functions; the GIL never leaves this module.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The command that starts this same server again: `sys.executable` followed by the
/// interpreter's original arguments (`sys.orig_argv[1:]`: the console script path and the
/// server's options, or `-m ruwsgi ...`). Using `orig_argv` rather than `sys.argv` keeps
/// interpreter flags such as `-X` and the `-m` form working across a reload.
pub fn reexec_command() -> anyhow::Result<Vec<CString>> {
    let words = Python::attach(|py| -> PyResult<Vec<String>> {
        let sys = py.import("sys")?;
        let exe: String = sys.getattr("executable")?.extract()?;
        // `orig_argv` exists since Python 3.10, the oldest ruwsgi supports.
        let orig: Vec<String> = sys.getattr("orig_argv")?.extract()?;
        Ok(std::iter::once(exe).chain(orig.into_iter().skip(1)).collect())
    })
    .map_err(|e| anyhow::anyhow!("cannot read sys.executable/sys.orig_argv: {e}"))?;
    if words.first().is_none_or(String::is_empty) {
        anyhow::bail!("sys.executable is empty: cannot re-execute the server");
    }
    words.into_iter().map(|w| CString::new(w).map_err(|e| anyhow::anyhow!("argument with a NUL byte: {e}"))).collect()
}

/// Set across the `optimize` re-exec, so a second one can't loop.
const OPTIMIZE_MARKER: &str = "RUWSGI_OPTIMIZE_REEXEC";

/// `optimize = N` (`-O`). uWSGI sets the level before it starts its embedded interpreter;
/// ruwsgi runs inside one that is already up, whose level (`sys.flags.optimize`, what
/// `assert` and `__debug__` follow) is fixed. So when it is below N, ruwsgi re-executes the
/// interpreter once, right after reading the config, with `-O` N times in front of the
/// original arguments (reloads keep them: they re-execute `sys.orig_argv`). Returns when the
/// level is already N or more.
pub fn reexec_for_optimize(level: u8) -> anyhow::Result<()> {
    let again = std::env::var_os(OPTIMIZE_MARKER).is_some();
    std::env::remove_var(OPTIMIZE_MARKER);
    let current: u8 =
        Python::attach(|py| -> PyResult<u8> { py.import("sys")?.getattr("flags")?.getattr("optimize")?.extract() })
            .map_err(|e| anyhow::anyhow!("cannot read sys.flags.optimize: {e}"))?;
    if current >= level {
        return Ok(());
    }
    if again {
        anyhow::bail!("optimize = {level}: the re-executed interpreter still runs at level {current}");
    }
    let mut command = reexec_command()?;
    let flags = std::iter::repeat_n(c"-O".to_owned(), usize::from(level));
    command.splice(1..1, flags);
    tracing::info!("optimize = {level}: re-executing the interpreter with -{}", "O".repeat(usize::from(level)));
    std::env::set_var(OPTIMIZE_MARKER, "1");
    let err = nix::unistd::execv(&command[0], &command).unwrap_err();
    std::env::remove_var(OPTIMIZE_MARKER);
    anyhow::bail!("optimize = {level}: cannot re-execute {:?}: {err}", command[0])
}

/// Makes this process print every Python thread's stack to stderr (fd 2) when it gets
/// SIGUSR2 (the master sends it on harakiri). `faulthandler` dumps from its C signal
/// handler, so it works while the stuck thread holds the GIL or sleeps in a system call.
pub fn install_tracebacker() {
    let done = Python::attach(|py| -> PyResult<()> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("file", 2)?;
        kwargs.set_item("all_threads", true)?;
        py.import("faulthandler")?.call_method("register", (libc::SIGUSR2,), Some(&kwargs))?;
        Ok(())
    });
    if let Err(e) = done {
        tracing::warn!("cannot install the harakiri tracebacker (faulthandler): {e}");
    }
}

/// Source of the `py-autoreload` scanner. Like uWSGI's autoreloader thread it walks
/// `sys.modules` every `interval` seconds and signals the master (SIGHUP, a graceful
/// reload) when a module's file changed. A file first seen with an mtime after
/// `started` (the server image's start) counts as changed too, so an edit made between
/// the app's import and the first scan is not missed; future mtimes never count.
const AUTORELOADER: &str = r#"
import os, signal, sys, threading, time

def _source(path):
    if path.endswith((".pyc", ".pyo")):
        return path[:-1]
    return path

def _scan(interval, ignore, master, started):
    seen = {}
    while True:
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or name in ignore:
                continue
            path = _source(path)
            if path in ignore:
                continue
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            if path not in seen:
                seen[path] = mtime
                # The clock is read after the stat: an edit made while this scan runs
                # isn't taken for a future mtime (and then missed for good).
                if not (started < mtime <= time.time()):
                    continue
            elif mtime == seen[path]:
                continue
            os.write(2, b"[uWSGI Python autoreloader] module %s modified\n" % name.encode())
            os.kill(master, signal.SIGHUP)
            return
        time.sleep(interval)

def start(interval, ignore, master, started):
    t = threading.Thread(target=_scan, args=(interval, frozenset(ignore), master, started),
                         name="uWSGIAutoReloader", daemon=True)
    t.start()
"#;

/// Starts the `py-autoreload` scanner thread (a Python daemon thread) in this worker.
/// `ignore` holds module names or file paths (`py-autoreload-ignore`); `master` gets the
/// SIGHUP; `started` is the server image's start, seconds since the epoch.
pub fn start_autoreloader(interval: u64, ignore: &[String], master: i32, started: f64) {
    let done = Python::attach(|py| -> PyResult<()> {
        let code = CString::new(AUTORELOADER).expect("the source has no NUL byte");
        let module = PyModule::from_code(py, &code, c"<ruwsgi-autoreload>", c"_ruwsgi_autoreload")?;
        module.call_method1("start", (interval.max(1), ignore.to_vec(), master, started))?;
        Ok(())
    });
    match done {
        Ok(()) => tracing::info!("Python auto-reloader enabled (every {interval} s)"),
        Err(e) => tracing::error!("cannot start the Python auto-reloader: {e}"),
    }
}
