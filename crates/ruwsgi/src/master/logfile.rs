//! The log file (`daemonize`, `daemonize2`, `logto`): opening it onto stdout/stderr,
//! rotating it at `log-maxsize`, and reopening it after a rotation.
//!
//! The server and request logs are plain writes to fds 1/2, which every worker inherits.
//! The master rotates (rename to `<file>.<epoch>` or `log-backupname`, open a new file,
//! `dup2` it onto 1/2); each worker notices on its tick that the path now names another
//! file than its fd 2 and reopens it too, so nothing keeps writing into the rotated file
//! for longer than a tick.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Opens `path` for appending.
pub fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// Sends stdout and stderr to `path` (appending).
pub fn redirect(path: &Path) -> Result<()> {
    let file = open(path)?;
    nix::unistd::dup2_stdout(file.as_fd())?;
    nix::unistd::dup2_stderr(file.as_fd())?;
    Ok(())
}

/// Reopens `path` onto stdout/stderr if the path no longer names the file fd 2 writes to
/// (rotated or deleted by the master or by logrotate). Called on every worker tick.
pub fn follow(path: &Path) {
    let Ok(current) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else { return };
    match std::fs::metadata(path) {
        Ok(meta) if meta.ino() == current.st_ino && meta.dev() == current.st_dev => {}
        _ => {
            let _ = redirect(path);
        }
    }
}

/// `log-maxsize`: when the log file grew past `max` bytes, renames it and starts a new one.
/// Returns the name it was rotated to.
pub fn rotate_if_big(path: &Path, max: u64, backup: Option<&Path>) -> Option<PathBuf> {
    let size = std::fs::metadata(path).ok()?.len();
    if max == 0 || size < max {
        return None;
    }
    let target = match rotate_path(path, backup) {
        Ok(target) => target,
        Err(e) => {
            tracing::error!("cannot rotate the log file {}: {e}", path.display());
            return None;
        }
    };
    if let Err(e) = redirect(path) {
        tracing::error!("cannot reopen the log file after rotation: {e:#}");
        return None;
    }
    Some(target)
}

/// Renames `path` to `backup` or `<path>.<epoch>` (never over an earlier rotated file);
/// returns the new name. The caller reopens `path`.
pub fn rotate_path(path: &Path, backup: Option<&Path>) -> std::io::Result<PathBuf> {
    let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut target = backup.map_or_else(|| PathBuf::from(format!("{}.{epoch}", path.display())), Path::to_path_buf);
    // Two rotations within a second (or a fixed `log-backupname`) must not overwrite the
    // previous rotated file.
    let mut n = 1;
    while target.exists() {
        target = PathBuf::from(format!("{}.{epoch}.{n}", path.display()));
        n += 1;
    }
    std::fs::rename(path, &target)?;
    Ok(target)
}
