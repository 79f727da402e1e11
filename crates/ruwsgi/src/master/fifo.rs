//! `master-fifo = PATH`: a named pipe the master reads one-letter commands from, as in
//! uWSGI (`echo r > /run/app.fifo`). Supported: `r` graceful reload, `R` brutal reload,
//! `w` reload the workers only, `c` chain reload, `q` graceful shutdown, `Q` immediate
//! shutdown, `s` stats to the log, `l` reopen the log file, `+`/`-` one worker more/less
//! (cheaper mode), `C` cheap mode. Others are logged and ignored.
//!
//! The FIFO is opened read-write and non-blocking so it never reports end-of-file when a
//! writer closes (the master would otherwise spin on POLLHUP).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A command read from the FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoCommand {
    /// `r`.
    Reload,
    /// `R`.
    BrutalReload,
    /// `w`.
    ReloadWorkers,
    /// `c`.
    ChainReload,
    /// `q`.
    Shutdown,
    /// `Q`.
    ShutdownNow,
    /// `s`.
    Stats,
    /// `l`.
    ReopenLog,
    /// `+`: one more worker (cheaper mode).
    AddWorker,
    /// `-`: one worker less (cheaper mode).
    RemoveWorker,
    /// `C`: stop every worker until a connection arrives (cheap mode).
    GoCheap,
}

/// The open FIFO.
pub struct MasterFifo {
    file: File,
    path: PathBuf,
}

impl MasterFifo {
    /// Creates (if needed) and opens the FIFO at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_fifo() => {}
            Ok(_) => {
                std::fs::remove_file(path)
                    .with_context(|| format!("master-fifo: cannot replace {}", path.display()))?;
                make_fifo(path)?;
            }
            Err(_) => make_fifo(path)?,
        }
        let file = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("master-fifo: cannot open {}", path.display()))?;
        tracing::info!("master fifo {} enabled", path.display());
        Ok(Self { file, path: path.to_path_buf() })
    }

    /// For the master's poll set.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Closes the master's copy in a freshly forked worker.
    pub fn close_in_child(&self) {
        let _ = nix::unistd::close(self.file.as_raw_fd());
    }

    /// Reads what is waiting and maps it to commands (unknown letters are logged).
    pub fn read_commands(&mut self) -> Vec<FifoCommand> {
        let mut buf = [0u8; 256];
        let mut out = Vec::new();
        while let Ok(n) = self.file.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend(buf[..n].iter().filter_map(|&b| parse_command(b)));
        }
        out
    }

    /// Removes the FIFO (`vacuum`).
    pub fn vacuum(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn make_fifo(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("master-fifo: cannot create {}", path.display()))
}

/// One byte of FIFO input → a command; whitespace is skipped silently.
fn parse_command(byte: u8) -> Option<FifoCommand> {
    Some(match byte {
        b'r' => FifoCommand::Reload,
        b'R' => FifoCommand::BrutalReload,
        b'w' | b'W' => FifoCommand::ReloadWorkers,
        b'c' => FifoCommand::ChainReload,
        b'q' => FifoCommand::Shutdown,
        b'Q' => FifoCommand::ShutdownNow,
        b's' => FifoCommand::Stats,
        b'l' => FifoCommand::ReopenLog,
        b'+' => FifoCommand::AddWorker,
        b'-' => FifoCommand::RemoveWorker,
        b'C' => FifoCommand::GoCheap,
        b if b.is_ascii_whitespace() => return None,
        other => {
            tracing::info!("master-fifo: unsupported command {:?}", other as char);
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_uwsgi_letters() {
        assert_eq!(parse_command(b'r'), Some(FifoCommand::Reload));
        assert_eq!(parse_command(b'c'), Some(FifoCommand::ChainReload));
        assert_eq!(parse_command(b'Q'), Some(FifoCommand::ShutdownNow));
        assert_eq!(parse_command(b'\n'), None);
        assert_eq!(parse_command(b'+'), Some(FifoCommand::AddWorker));
        assert_eq!(parse_command(b'-'), Some(FifoCommand::RemoveWorker));
        assert_eq!(parse_command(b'C'), Some(FifoCommand::GoCheap));
    }
}
