//! The spooler: queue directories of task files (uWSGI's format, `ruwsgi_proto::spool`)
//! written by `uwsgi.spool()` in any process and run by spooler processes the master forks
//! (`master::spooler` supervises them).
//!
//! A spooler process scans its directory every `spooler-frequency` seconds, or at once when
//! woken (SIGUSR1, sent by `spool` to the spoolers of that directory). For each task file
//! it takes an exclusive `fcntl` lock (so several spoolers of one directory, ruwsgi's or
//! uWSGI's, never run a task twice), hands the task to Python (`wsgi::spooler`, which calls
//! `uwsgi.spooler`), and deletes the file once the task says `SPOOL_OK`. The file stays on
//! disk until then, so a task whose spooler is killed runs again in the next one.
//!
//! Signals: SIGTERM/SIGHUP stop the spooler after its current task; SIGINT/SIGQUIT stop it
//! at once (the task then runs again later); SIGUSR1 wakes it. No Python here.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use ruwsgi_config::background::SpoolerConfig;
use ruwsgi_proto::{
    compare_spool_names, encode_spool_file, encode_spool_name, is_priority_name, is_spool_file_name, parse_spool_file,
    spool_routing, SpoolName, SpoolTask,
};

use crate::scoreboard::{BackgroundSlot, Scoreboard, MAX_SPOOLERS};
use crate::wsgi;

/// What every process knows about the spoolers: set by the master before the first fork.
struct Queues {
    /// The queue directories, absolute and resolved (as `uwsgi.spool()` returns them).
    dirs: Vec<PathBuf>,
    /// Spooler slot N drains `dirs[slots[N]]`.
    slots: Vec<usize>,
    /// The settings.
    cfg: SpoolerConfig,
    /// The host name in task file names.
    hostname: String,
    /// uWSGI signals for the spoolers (target `spooler`): whichever reads first runs it.
    signals: crate::mule::Queue,
}

static QUEUES: OnceLock<Queues> = OnceLock::new();

/// The shared slots (pids, running flags), set once the master made them.
static BOARD: OnceLock<Scoreboard> = OnceLock::new();

/// Tasks this process spooled (part of each file name, as uWSGI's counter).
static SPOOLED: AtomicU64 = AtomicU64::new(0);

/// In the master, before the app loads: creates the queue directories that don't exist
/// (mode 0750, as uWSGI) and resolves them. Relative directories are taken from the
/// directory the server started in, as uWSGI (which reads them before `chdir`).
pub fn configure(cfg: &SpoolerConfig, start_cwd: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if cfg.dirs.is_empty() {
        return Ok(());
    }
    let mut dirs = Vec::new();
    for dir in &cfg.dirs {
        let full = start_cwd.join(dir);
        if !full.is_dir() {
            std::fs::DirBuilder::new()
                .mode(0o750)
                .create(&full)
                .map_err(|e| anyhow::anyhow!("spooler = {}: cannot create the directory: {e}", dir.display()))?;
        }
        let real = full
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("spooler = {}: cannot resolve the directory: {e}", dir.display()))?;
        dirs.push(real);
    }
    let per_dir = cfg.processes.max(1) as usize;
    let slots: Vec<usize> = (0..dirs.len()).flat_map(|d| std::iter::repeat_n(d, per_dir)).collect();
    if slots.len() > MAX_SPOOLERS {
        anyhow::bail!(
            "spooler: {} directories x spooler-processes {per_dir} = {} spoolers; at most {MAX_SPOOLERS}",
            dirs.len(),
            slots.len()
        );
    }
    let hostname = crate::log::hostname();
    let signals = crate::mule::Queue::new(0)?;
    let _ = QUEUES.set(Queues { dirs, slots, cfg: cfg.clone(), hostname, signals });
    Ok(())
}

/// In the master, once the scoreboard exists (before the first fork).
pub fn attach_board(board: Scoreboard) {
    let _ = BOARD.set(board);
}

/// The spooler slots of the scoreboard (empty before `attach_board`).
fn board_slots() -> &'static [BackgroundSlot] {
    BOARD.get().map_or(&[], |b| &b.board().spoolers[..])
}

/// The spooler processes to run: the directory of each, in slot order.
pub fn slots() -> Vec<PathBuf> {
    QUEUES.get().map(|q| q.slots.iter().map(|&d| q.dirs[d].clone()).collect()).unwrap_or_default()
}

/// The queue directories (empty without `spooler`).
pub fn dirs() -> &'static [PathBuf] {
    QUEUES.get().map_or(&[], |q| &q.dirs)
}

/// The pids of the spooler processes, in slot order (0 for one not running).
pub fn pids() -> Vec<i32> {
    let slots = board_slots();
    QUEUES
        .get()
        .map(|q| (0..q.slots.len()).map(|i| slots.get(i).map_or(0, |s| s.pid.load(Relaxed))).collect())
        .unwrap_or_default()
}

/// `uwsgi.set_spooler_frequency()`: every spooler's seconds between scans from now on.
pub fn set_frequency(seconds: u64) {
    if let Some(board) = BOARD.get() {
        board.board().spooler_frequency.store(seconds, Relaxed);
    }
}

/// In the master: routes uWSGI signal `signal` to the spoolers (target `spooler`).
pub fn deliver_signal(signal: u8) -> Result<(), String> {
    let q = QUEUES.get().ok_or("no spooler runs")?;
    q.signals.send_signal(signal).map_err(|e| e.to_string())
}

/// Why a task could not be spooled (the message is logged and raised to Python).
#[derive(Debug)]
pub struct SpoolFailed(pub String);

/// `uwsgi.spool()`: writes one task file and wakes the idle spoolers of its directory.
/// Returns the file's path.
pub fn spool(vars: &[(&[u8], &[u8])], body: &[u8]) -> Result<PathBuf, SpoolFailed> {
    let fail = |why: String| {
        tracing::error!("[uwsgi-spooler] {why}");
        SpoolFailed(why)
    };
    let Some(q) = QUEUES.get() else {
        return Err(fail("no spooler available".to_owned()));
    };
    let routing = spool_routing(vars);
    let index = match routing.spooler {
        None => 0,
        Some(name) => q
            .dirs
            .iter()
            .position(|d| d.as_os_str().as_encoded_bytes() == name)
            .ok_or_else(|| fail(format!("unable to find spooler \"{}\"", String::from_utf8_lossy(name))))?,
    };
    let contents = encode_spool_file(vars, body).map_err(|e| fail(e.to_string()))?;
    let mut dir = q.dirs[index].clone();
    if let Some(priority) = routing.priority {
        // Differs from uWSGI: a priority that isn't a number is refused (uWSGI writes the
        // file in a subdirectory of that name, which no spooler ever reads).
        if !is_priority_name(priority) {
            return Err(fail(format!("priority {:?} is not a number", String::from_utf8_lossy(priority))));
        }
        dir.push(String::from_utf8_lossy(priority).as_ref());
        let _ = std::fs::create_dir(&dir);
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let name = encode_spool_name(&SpoolName {
        hostname: &q.hostname,
        pid: std::process::id(),
        counter: SPOOLED.fetch_add(1, Relaxed) + 1,
        random: random_u31(),
        sec: now.as_secs(),
        usec: now.subsec_micros(),
    });
    let path = dir.join(name);
    write_task(&path, &contents, routing.at).map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    if !q.cfg.quiet {
        tracing::info!("[spooler] written {} bytes to file {}", contents.len(), path.display());
    }
    // Differs from uWSGI: a busy spooler is woken too (uWSGI wakes only idle ones), so it
    // scans again right after its task instead of a `spooler-frequency` later.
    for (&d, s) in q.slots.iter().zip(board_slots()) {
        let pid = s.pid.load(Relaxed);
        if d == index && pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGUSR1);
        }
    }
    Ok(path)
}

/// Creates the task file, locked while it is written so no spooler reads half of it, with
/// the `at` time as its mtime (a spooler skips files from the future).
fn write_task(path: &Path, contents: &[u8], at: Option<u64>) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    let written =
        lock(&file, true).map_err(std::io::Error::from).and_then(|()| file.write_all(contents)).and_then(|()| {
            if let Some(at) = at {
                let t = nix::sys::time::TimeSpec::new(i64::try_from(at).unwrap_or(i64::MAX), 0);
                nix::sys::stat::futimens(file.as_fd(), &t, &t)?;
            }
            Ok(())
        });
    if written.is_err() {
        let _ = std::fs::remove_file(path);
    }
    written
}

/// An exclusive `fcntl` lock on the whole file (uWSGI's kind, so ruwsgi and uWSGI spoolers
/// exclude each other). `wait`: block until it is free; else fail at once when held.
fn lock(file: &File, wait: bool) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(file, if wait { FcntlArg::F_SETLKW(&fl) } else { FcntlArg::F_SETLK(&fl) }).map(drop)
}

/// A random number for task names. Hand-written from std's randomly keyed hasher: the value
/// only has to differ between processes, which a crate would not do better.
fn random_u31() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SPOOLED.load(Relaxed));
    (h.finish() & 0x7fff_ffff) as u32
}

/// `uwsgi.spooler_jobs()`: the task files waiting in the first queue directory (not its
/// priority subdirectories, as uWSGI).
pub fn jobs() -> Vec<PathBuf> {
    let Some(dir) = dirs().first() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| is_spool_file_name(e.file_name().as_encoded_bytes()))
        .filter(|e| std::fs::symlink_metadata(e.path()).is_ok_and(|m| m.is_file()))
        .map(|e| e.path())
        .collect()
}

/// What Python made of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOutcome {
    /// `SPOOL_OK`: done, delete the file.
    Done,
    /// `SPOOL_RETRY`, another number, not a number, or an exception: keep it for the next scan.
    Retry,
    /// `SPOOL_IGNORE`, or no `uwsgi.spooler` callable: keep it, not counted as run.
    Ignored,
}

/// Runs spooler process `slot` in the freshly forked child. Never returns.
pub fn run(slot: usize) -> ! {
    let code = match (QUEUES.get(), BOARD.get()) {
        (Some(q), Some(board)) => serve(q, *board, slot),
        _ => 1,
    };
    wsgi::flush_std_streams();
    std::process::exit(code)
}

/// How the spooler's signals reach its loop.
struct SpoolerSignals {
    /// SIGTERM/SIGHUP: finish the current task, then exit.
    stop: Arc<AtomicBool>,
    /// Written on each handled signal: wakes the wait between scans.
    wake: OwnedFd,
}

impl SpoolerSignals {
    fn install() -> std::io::Result<Self> {
        use signal_hook::consts::{SIGHUP, SIGTERM, SIGUSR1};
        let (wake, wake_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGHUP] {
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        for signal in [SIGTERM, SIGHUP, SIGUSR1] {
            signal_hook::low_level::pipe::register(signal, wake_write.try_clone()?)?;
        }
        // SIGINT and SIGQUIT keep their default action: the process ends at once.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        Ok(Self { stop, wake })
    }

    /// Waits up to `timeout` for a Unix signal or a uWSGI signal (whose handler it runs);
    /// returns at once if one came since the last wait.
    fn wait(&self, timeout: Duration, uwsgi_signals: &crate::mule::Queue) {
        let mut fds = [
            PollFd::new(self.wake.as_fd(), PollFlags::POLLIN),
            PollFd::new(uwsgi_signals.recv_fd(), PollFlags::POLLIN),
        ];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let _ = poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX));
        while nix::unistd::read(&self.wake, &mut [0u8; 64]).is_ok_and(|n| n > 0) {}
        while let Some(signal) = uwsgi_signals.take_signal() {
            wsgi::run_background_handler(signal);
        }
    }
}

/// One spooler process at work.
struct Spooler<'q> {
    /// Everything shared.
    q: &'q Queues,
    /// Its directory.
    dir: &'q Path,
    /// Its shared slot.
    slot: &'q BackgroundSlot,
    /// Its signals.
    signals: SpoolerSignals,
    /// Tasks run so far (for `spooler-max-tasks`).
    tasks: u64,
}

/// Why the spooler loop ends.
enum End {
    /// Told to stop.
    Stop,
    /// `spooler-max-tasks` reached.
    Recycle,
}

fn serve(q: &Queues, board: Scoreboard, slot: usize) -> i32 {
    let pid = std::process::id();
    let dir = &q.dirs[q.slots[slot]];
    let signals = match SpoolerSignals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("spooler {} (pid: {pid}): cannot install signal handlers: {e}", dir.display());
            return 1;
        }
    };
    // As uWSGI: if the master dies, so does the spooler (its task runs again later).
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let board_slot = &board.board().spoolers[slot];
    board_slot.tasks.store(0, Relaxed);
    board_slot.running.store(0, Relaxed);
    board_slot.harakiri_at.store(0, Relaxed);
    wsgi::spooler::enter_spooler(&q.cfg.import);
    let mut spooler = Spooler { q, dir, slot: board_slot, signals, tasks: 0 };
    wsgi::python_thread(|| loop {
        if spooler.signals.stop.load(Relaxed) {
            return 0;
        }
        match spooler.scan(dir) {
            Some(End::Stop) => return 0,
            Some(End::Recycle) => {
                tracing::info!(
                    "[spooler {} pid: {pid}] maximum number of tasks reached ({}) recycling ...",
                    dir.display(),
                    q.cfg.max_tasks
                );
                return 0;
            }
            None => {}
        }
        let frequency = match board.board().spooler_frequency.load(Relaxed) {
            0 => q.cfg.frequency,
            f => f,
        };
        spooler.signals.wait(Duration::from_secs(frequency.max(1)), &q.signals);
    })
}

impl Spooler<'_> {
    /// Runs every task that is due in `dir` (and its priority subdirectories).
    fn scan(&mut self, dir: &Path) -> Option<End> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::error!("[spooler {}] cannot read {}", self.dir.display(), dir.display());
            return None;
        };
        let mut names: Vec<std::ffi::OsString> = entries.filter_map(Result::ok).map(|e| e.file_name()).collect();
        if self.q.cfg.ordered {
            names.sort_by(|a, b| compare_spool_names(a.as_encoded_bytes(), b.as_encoded_bytes()));
        }
        for name in names {
            if self.signals.stop.load(Relaxed) {
                return Some(End::Stop);
            }
            let bytes = name.as_encoded_bytes();
            let path = dir.join(&name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
            // A task for later (`at`): its mtime is in the future.
            if meta.mtime() > now_secs() {
                continue;
            }
            if meta.is_dir() && is_priority_name(bytes) && dir == self.dir {
                if let Some(end) = self.scan(&path) {
                    return Some(end);
                }
                continue;
            }
            if meta.is_file() && is_spool_file_name(bytes) && self.manage(&path, bytes) {
                self.tasks += 1;
                if self.q.cfg.max_tasks > 0 && self.tasks >= self.q.cfg.max_tasks {
                    return Some(End::Recycle);
                }
            }
        }
        None
    }

    /// Runs one task file if it is free and complete. True when a task ran (not ignored).
    fn manage(&self, path: &Path, name: &[u8]) -> bool {
        let Ok(mut file) = std::fs::OpenOptions::new().read(true).write(true).open(path) else { return false };
        // Held by another spooler (or still being written): not ours now.
        if lock(&file, false).is_err() {
            return false;
        }
        // Deleted (done) by another spooler between our open and our lock?
        let same = match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        let mut contents = Vec::new();
        if !same || file.read_to_end(&mut contents).is_err() {
            return false;
        }
        let shown = String::from_utf8_lossy(name);
        let task = match parse_spool_file(&contents) {
            Ok(Some(task)) => task,
            Ok(None) => return false,
            Err(e) => {
                // As uWSGI: a broken task file is deleted.
                tracing::error!("[spooler {}] {shown}: {e}: removed", self.dir.display());
                self.remove(path);
                return false;
            }
        };
        self.slot.running.store(1, Relaxed);
        let outcome = self.run_task(path, name, &task);
        self.slot.running.store(0, Relaxed);
        match outcome {
            TaskOutcome::Done => {
                // Counted before the file goes, so whoever sees it gone sees the count.
                self.slot.tasks.fetch_add(1, Relaxed);
                self.remove(path);
                true
            }
            TaskOutcome::Retry => {
                self.slot.tasks.fetch_add(1, Relaxed);
                true
            }
            TaskOutcome::Ignored => {
                tracing::warn!("unable to find the spooler function, have you loaded it into the spooler process ?");
                false
            }
        }
        // `file` closes here, which releases the lock (after the delete, so no other
        // spooler can take a finished task).
    }

    fn run_task(&self, path: &Path, name: &[u8], task: &SpoolTask<'_>) -> TaskOutcome {
        let pid = std::process::id();
        let shown = String::from_utf8_lossy(name);
        if !self.q.cfg.quiet {
            tracing::info!("[spooler {} pid: {pid}] managing request {shown} ...", self.dir.display());
        }
        // As uWSGI: the task runs in the queue directory (the one holding the file), or in
        // `spooler-chdir`.
        let cwd = self.q.cfg.chdir.as_deref().or_else(|| path.parent());
        if let Some(cwd) = cwd {
            if let Err(e) = std::env::set_current_dir(cwd) {
                tracing::error!("[spooler {}] chdir({}): {e}", self.dir.display(), cwd.display());
            }
        }
        let started = now_secs();
        if self.q.cfg.harakiri > 0 {
            self.slot.harakiri_at.store(started.unsigned_abs() + self.q.cfg.harakiri, Relaxed);
        }
        let outcome = wsgi::spooler::run_task(name, task);
        self.slot.harakiri_at.store(0, Relaxed);
        if outcome == TaskOutcome::Done && !self.q.cfg.quiet {
            tracing::info!(
                "[spooler {} pid: {pid}] done with task {shown} after {} seconds",
                self.dir.display(),
                now_secs() - started
            );
        }
        outcome
    }

    fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path) {
            // uWSGI's spooler exits here ("something horrible happened"); the master
            // respawns it. Logging and going on does the same without the respawn.
            tracing::error!("[spooler {}] cannot remove {}: {e}", self.dir.display(), path.display());
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
