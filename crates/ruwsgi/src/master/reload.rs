//! The last step of a graceful reload (SIGHUP, `touch-reload`, master-fifo `r`): once the
//! workers are gone, the master re-executes itself, keeping its pid. The listening sockets
//! survive the exec (`FD_CLOEXEC` cleared, numbers passed in `RUWSGI_LISTEN_FDS`), so
//! connections arriving meanwhile wait in the kernel's accept queue and are served by the
//! new image's workers: no client sees a refused connection. The new image re-reads its
//! config and re-loads the app from scratch.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use crate::net::listener::{self, Listener, INHERIT_ENV};
use crate::wsgi;

// Set in the environment of a re-executed master: it must not daemonize again (its
// stdout/stderr already point at the log), it logs that it is a reload, and its config's
// `if-reload` blocks hold (the config crate reads it, hence defined there).
use ruwsgi_config::RELOADED_ENV;

/// True (once) in a master image started by a reload; clears the marker so workers and
/// the app's children don't see it.
pub fn take_reloaded_marker() -> bool {
    let reloaded = std::env::var_os(RELOADED_ENV).is_some();
    std::env::remove_var(RELOADED_ENV);
    reloaded
}

/// Re-executes the server in this process. Returns only on failure, with the listening
/// sockets still open and usable by the caller.
pub fn exec_self(listeners: &[Listener], start_cwd: &Path) -> anyhow::Error {
    match prepare_and_exec(listeners, start_cwd) {
        Ok(never) => match never {},
        Err(e) => {
            // The sockets must not leak into children spawned after a failed attempt.
            for l in listeners {
                let _ = fcntl(l.fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
            }
            std::env::remove_var(INHERIT_ENV);
            std::env::remove_var(RELOADED_ENV);
            e
        }
    }
}

fn prepare_and_exec(listeners: &[Listener], start_cwd: &Path) -> Result<std::convert::Infallible> {
    tracing::info!("binary reloading uWSGI...");
    let argv: Vec<CString> = wsgi::reexec_command()?;
    // Relative paths on the command line (`--ini app.ini`, `./venv/bin/ruwsgi`) were relative
    // to the directory the server was started in, not to `chdir`.
    std::env::set_current_dir(start_cwd).with_context(|| format!("chdir() to {}", start_cwd.display()))?;
    tracing::info!("chdir() to {}", start_cwd.display());
    for (i, l) in listeners.iter().enumerate() {
        fcntl(l.socket.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
            .context("cannot clear FD_CLOEXEC on a listening socket")?;
        tracing::info!("found fd {} mapped to socket {i} ({})", l.raw_fd(), listener::describe(l));
    }
    // The master is single-threaded, so changing the environment is safe here.
    std::env::set_var(INHERIT_ENV, listener::inherit_value(listeners));
    std::env::set_var(RELOADED_ENV, "1");
    tracing::info!("running {}", argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "));
    wsgi::flush_std_streams();
    // Blocked signals and pending ones survive execve: a SIGTERM sent during the reload is
    // read by the new image's signalfd instead of killing it half-started.
    match nix::unistd::execv(&argv[0], &argv) {
        Ok(never) => match never {},
        Err(err) => Err(anyhow::anyhow!("execv({}) failed: {err}", argv[0].to_string_lossy())),
    }
}
