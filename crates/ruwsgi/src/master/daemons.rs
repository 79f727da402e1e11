//! Attached daemons (`attach-daemon`, `smart-attach-daemon`, `smart-attach-daemon2`,
//! `attach-daemon2`): external commands such as a celery worker that the master starts
//! once its workers are forked, respawns when they die, and on reload/shutdown either stops
//! (plain daemons) or leaves running (smart daemons, watched through their pidfile), as
//! uWSGI's "Managing external daemons/services" describes.
//!
//! Each command runs as `/bin/sh -c COMMAND` in its own session (so a stop signal reaches
//! everything it started through its process group), with stdin on `/dev/null` and the
//! master's stdout/stderr (the log). It is started with `std::process::Command`, which forks
//! and execs from the single-threaded master without creating a thread; it never goes
//! through Python. The master's reap loop hands every exited pid that isn't a worker's to
//! `Daemons::reaped`, and calls `supervise` on each loop turn while serving.
//!
//! The decisions (respawn throttling, what a pidfile says) are small pure functions tested
//! below; `Daemons` does the I/O around them.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;
use ruwsgi_config::AttachDaemon;
use serde_json::{json, Value};

use super::{Exit, Touched};

/// A daemon that dies sooner than this after its spawn counts as dying right away.
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// uWSGI's cap on the respawn delay when `max_throttle` isn't set.
const MAX_THROTTLE: u64 = 300;

/// Where one daemon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not running. Started at `at`; `None` while the master stops or reloads.
    Down { at: Option<Instant> },
    /// A plain daemon: our child and its process group's leader.
    Running { pid: Pid },
    /// A smart daemon's command was started; it has until `deadline` (spawn + `freq`) to
    /// name a live process in its pidfile.
    Starting { deadline: Instant },
    /// A smart daemon: its pidfile names this live process.
    Watched { pid: Pid },
    /// A plain daemon was sent its stop signal; its group gets SIGKILL at `kill_at` (`None`
    /// once sent). Over when no process is left in the group.
    Stopping { pid: Pid, kill_at: Option<Instant> },
}

/// One configured daemon and its bookkeeping.
struct Daemon {
    /// What to run and how.
    spec: AttachDaemon,
    /// Where it stands.
    state: State,
    /// Spawns so far (the stats' `respawns`, as uWSGI counts them).
    spawns: u64,
    /// Deaths in a row within `QUICK_DEATH` of their spawn (drives the throttle).
    quick_deaths: u32,
    /// When it was last spawned (or found running).
    spawned_at: Option<Instant>,
    /// The shell started for a smart daemon that daemonizes itself: it exits soon, and its
    /// exit is expected.
    launcher: Option<Pid>,
    /// `touch` files of `attach-daemon2`.
    touch: Vec<Touched>,
    /// It was stopped because a `touch` file changed: respawn it at once.
    touched: bool,
}

/// What a reaped pid meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// Not a daemon's.
    NotOurs,
    /// A daemon's; handled.
    Daemon,
    /// A `control` daemon died: the whole server must shut down.
    ControlDied,
}

/// All daemons of the instance.
pub struct Daemons {
    list: Vec<Daemon>,
    /// Time a stopping plain daemon gets before SIGKILL (`reload-mercy`, else 3 s as uWSGI).
    grace: Duration,
}

impl Daemons {
    /// The configured daemons, none started yet: the first `supervise` starts them.
    pub fn new(specs: &[AttachDaemon], grace: Duration, now: Instant) -> Self {
        let list = specs
            .iter()
            .map(|spec| Daemon {
                spec: spec.clone(),
                state: State::Down { at: Some(now) },
                spawns: 0,
                quick_deaths: 0,
                spawned_at: None,
                launcher: None,
                touch: spec.touch.iter().map(Touched::new).collect(),
                touched: false,
            })
            .collect();
        Self { list, grace }
    }

    /// While serving: starts what is due, follows smart daemons' pidfiles, restarts
    /// daemons whose `touch` files changed.
    pub fn supervise(&mut self, now: Instant) {
        for d in &mut self.list {
            d.check_touched();
            match d.state {
                State::Down { at: Some(at) } if at <= now => d.start(now),
                State::Starting { deadline } => match read_pidfile(d.pidfile()) {
                    Some(pid) => {
                        tracing::info!("[uwsgi-daemons] \"{}\" is running (pid: {pid})", d.spec.command);
                        d.state = State::Watched { pid };
                    }
                    None if now >= deadline => {
                        tracing::warn!(
                            "[uwsgi-daemons] \"{}\": {} names no live process after {} seconds",
                            d.spec.command,
                            d.pidfile().display(),
                            d.spec.freq
                        );
                        d.died(now);
                    }
                    None => {}
                },
                State::Watched { pid } => match read_pidfile(d.pidfile()) {
                    Some(now_pid) if now_pid != pid => {
                        tracing::info!(
                            "[uwsgi-daemons] found changed pid for \"{}\" (old_pid: {pid} new_pid: {now_pid})",
                            d.spec.command
                        );
                        d.state = State::Watched { pid: now_pid };
                    }
                    Some(_) => {}
                    None => {
                        tracing::warn!("[uwsgi-daemons] \"{}\" (pid: {pid}) is gone", d.spec.command);
                        d.died(now);
                    }
                },
                _ => {}
            }
        }
    }

    /// A child exited. Plain daemons (and `smart-attach-daemon2` ones, which stay our
    /// children) are respawned after the throttle when `running`.
    pub fn reaped(&mut self, pid: Pid, how: &Exit, running: bool) -> Reaped {
        let now = Instant::now();
        let Some(d) = self.list.iter_mut().find(|d| {
            d.launcher == Some(pid) || matches!(d.state, State::Running { pid: p } | State::Watched { pid: p } | State::Stopping { pid: p, .. } if p == pid)
        }) else {
            return Reaped::NotOurs;
        };
        if d.launcher == Some(pid) {
            d.launcher = None;
            if !matches!(how, Exit::Code(0)) {
                tracing::warn!("[uwsgi-daemons] \"{}\" (pid: {pid}) {}", d.spec.command, describe(how));
            }
            return Reaped::Daemon;
        }
        if matches!(d.state, State::Stopping { .. }) {
            // Over once the rest of its group is gone too (`stopped`).
            return Reaped::Daemon;
        }
        tracing::warn!("[uwsgi-daemons] \"{}\" (pid: {pid}) {}", d.spec.command, describe(how));
        if d.spec.control && running {
            tracing::error!("[uwsgi-daemons] control daemon \"{}\" died: shutting down", d.spec.command);
            d.state = State::Down { at: None };
            return Reaped::ControlDied;
        }
        if running {
            d.died(now);
        } else {
            d.state = State::Down { at: None };
        }
        Reaped::Daemon
    }

    /// Reload (`reloading`) or shutdown: plain daemons get their stop signal (the reload
    /// signal on reload, if set) and SIGKILL after the grace time; smart daemons are left
    /// running, as in uWSGI. Nothing is started until `resume`.
    pub fn stop(&mut self, reloading: bool, now: Instant) {
        for d in &mut self.list {
            match d.state {
                State::Running { pid } => {
                    let sig =
                        if reloading { d.spec.reload_signal.unwrap_or(d.spec.stop_signal) } else { d.spec.stop_signal };
                    tracing::info!("[uwsgi-daemons] stopping daemon (pid: {pid}): {}", d.spec.command);
                    if let Ok(sig) = Signal::try_from(sig) {
                        let _ = killpg(pid, sig);
                    }
                    d.state = State::Stopping { pid, kill_at: Some(now + self.grace) };
                }
                State::Down { .. } | State::Starting { .. } => d.state = State::Down { at: None },
                State::Watched { .. } | State::Stopping { .. } => {}
            }
        }
    }

    /// While stopping: SIGKILLs groups past their grace time. True when no plain daemon
    /// has a process left.
    pub fn stopped(&mut self, now: Instant) -> bool {
        for d in &mut self.list {
            let State::Stopping { pid, kill_at } = d.state else { continue };
            // EPERM: nothing left we could signal or wait for.
            if matches!(killpg(pid, None), Err(Errno::ESRCH | Errno::EPERM)) {
                tracing::info!("daemon \"{}\" (pid: {pid}) annihilated", d.spec.command);
                d.state = State::Down { at: None };
            } else if kill_at.is_some_and(|t| now >= t) {
                tracing::warn!("[uwsgi-daemons] daemon did not die in time, killing (pid: {pid}): {}", d.spec.command);
                let _ = killpg(pid, Signal::SIGKILL);
                d.state = State::Stopping { pid, kill_at: None };
            }
        }
        !self.list.iter().any(|d| matches!(d.state, State::Stopping { .. }))
    }

    /// A reload failed and the master carries on: start the stopped daemons again.
    pub fn resume(&mut self, now: Instant) {
        for d in &mut self.list {
            if d.state == (State::Down { at: None }) {
                d.state = State::Down { at: Some(now) };
            }
        }
    }

    /// The earliest instant something is due (a start, a pidfile deadline, a SIGKILL).
    pub fn next_due(&self) -> Option<Instant> {
        self.list
            .iter()
            .filter_map(|d| match d.state {
                State::Down { at } => at,
                State::Starting { deadline } => Some(deadline),
                State::Stopping { kill_at, .. } => kill_at,
                State::Running { .. } | State::Watched { .. } => None,
            })
            .min()
    }

    /// The stats server's `daemons` list, shaped as uWSGI's.
    pub fn stats(&self) -> Value {
        self.list
            .iter()
            .map(|d| {
                let pid = match d.state {
                    State::Running { pid } | State::Watched { pid } | State::Stopping { pid, .. } => pid.as_raw(),
                    State::Down { .. } | State::Starting { .. } => 0,
                };
                json!({ "cmd": d.spec.command, "pid": pid, "respawns": d.spawns })
            })
            .collect()
    }

    /// True when no daemon is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

impl Daemon {
    fn pidfile(&self) -> &Path {
        self.spec.pidfile.as_deref().unwrap_or(Path::new(""))
    }

    /// Starts it now (a smart daemon whose pidfile names a live process is only watched).
    fn start(&mut self, now: Instant) {
        if self.spec.pidfile.is_some() {
            if let Some(pid) = read_pidfile(self.pidfile()) {
                tracing::info!("[uwsgi-daemons] found valid/active pidfile for \"{}\" (pid: {pid})", self.spec.command);
                self.state = State::Watched { pid };
                self.spawned_at = Some(now);
                return;
            }
        }
        let pid = match spawn(&self.spec) {
            Ok(pid) => pid,
            Err(e) => {
                tracing::error!("[uwsgi-daemons] unable to spawn \"{}\": {e}", self.spec.command);
                self.died(now);
                return;
            }
        };
        let uid = self.spec.uid.unwrap_or_else(|| nix::unistd::getuid().as_raw());
        let gid = self.spec.gid.unwrap_or_else(|| nix::unistd::getgid().as_raw());
        tracing::info!(
            "[uwsgi-daemons] {}spawning \"{}\" (pid: {pid} uid: {uid} gid: {gid})",
            if self.spawns > 0 { "re" } else { "" },
            self.spec.command
        );
        self.spawns += 1;
        self.spawned_at = Some(now);
        self.state = match (&self.spec.pidfile, self.spec.daemonize) {
            (None, _) => State::Running { pid },
            // `smart-attach-daemon2`: the command stays in the foreground; we write its pidfile.
            (Some(path), true) => {
                if let Err(e) = std::fs::write(path, format!("{pid}\n")) {
                    tracing::error!("[uwsgi-daemons] cannot write {}: {e}", path.display());
                }
                State::Watched { pid }
            }
            (Some(_), false) => {
                self.launcher = Some(pid);
                State::Starting { deadline: now + Duration::from_secs(self.spec.freq) }
            }
        };
    }

    /// It died (or never came up) while the master serves: respawn after the throttle.
    fn died(&mut self, now: Instant) {
        let lived = self.spawned_at.map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.quick_deaths = if lived < QUICK_DEATH && !self.touched { self.quick_deaths.saturating_add(1) } else { 0 };
        self.touched = false;
        let delay = respawn_delay(self.quick_deaths, self.spec.max_throttle.unwrap_or(MAX_THROTTLE));
        if !delay.is_zero() {
            tracing::warn!("[uwsgi-daemons] throttling \"{}\" for {} seconds", self.spec.command, delay.as_secs());
        }
        self.state = State::Down { at: Some(now + delay) };
    }

    /// `touch`: a changed file restarts the running daemon (it is respawned when it exits).
    fn check_touched(&mut self) {
        if !self.touch.iter_mut().fold(false, |any, t| t.changed() | any) {
            return;
        }
        let (State::Running { pid } | State::Watched { pid }) = self.state else { return };
        tracing::info!("[uwsgi-daemons] \"{}\" (pid: {pid}) touched: restarting", self.spec.command);
        self.touched = true;
        if let Ok(sig) = Signal::try_from(self.spec.stop_signal) {
            signal_daemon(pid, sig);
        }
    }
}

/// The respawn delay after the `quick_deaths`-th death in a row that came right after a
/// spawn: none after a normal run, then one more second each time, at most `max` seconds.
/// uWSGI grows its throttle the same way (capped at 300 s or `max_throttle`).
fn respawn_delay(quick_deaths: u32, max: u64) -> Duration {
    Duration::from_secs(u64::from(quick_deaths).min(max))
}

/// The pid a pidfile holds: digits, optionally surrounded by whitespace.
fn parse_pidfile(text: &str) -> Option<Pid> {
    let pid: i32 = text.trim().parse().ok()?;
    (pid > 0).then(|| Pid::from_raw(pid))
}

/// The live process a pidfile names, if any (as uWSGI: `kill(pid, 0)` succeeds).
fn read_pidfile(path: &Path) -> Option<Pid> {
    let pid = parse_pidfile(&std::fs::read_to_string(path).ok()?)?;
    kill(pid, None).is_ok().then_some(pid)
}

/// Signals a daemon's process group, or the process alone when it leads none (a
/// self-daemonized smart daemon usually doesn't).
fn signal_daemon(pid: Pid, sig: Signal) {
    if killpg(pid, sig) == Err(Errno::ESRCH) {
        let _ = kill(pid, sig);
    }
}

/// How a daemon ended, for the log.
fn describe(how: &Exit) -> String {
    match how {
        Exit::Code(code) => format!("exited with code {code}"),
        Exit::Signal(sig) => format!("was killed by signal {}", *sig as i32),
    }
}

/// Starts `/bin/sh -c COMMAND` in a new session. Plain daemons get SIGKILL if the master
/// dies (uWSGI's `PR_SET_PDEATHSIG`), so a crashed master leaves no second celery behind.
fn spawn(spec: &AttachDaemon) -> std::io::Result<Pid> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(&spec.command);
    if !spec.stdin {
        cmd.stdin(Stdio::null());
    }
    if let Some(dir) = &spec.chdir {
        cmd.current_dir(dir);
    }
    if let Some(gid) = spec.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = spec.uid {
        cmd.uid(uid);
    }
    let master = nix::unistd::getpid();
    let dies_with_master = spec.pidfile.is_none();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child of a single-threaded process, between
    // fork and exec. It makes only async-signal-safe system calls (sigprocmask, signal,
    // setsid, prctl, getppid), allocates nothing and touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            // The master blocks the signals its signalfd reads, and an exec keeps the mask
            // (std's Command doesn't reset it): unblocked, SIGTERM can stop the daemon.
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            // Python ignores SIGPIPE and SIGXFSZ; an exec would keep that too.
            nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl)?;
            nix::sys::signal::signal(Signal::SIGXFSZ, SigHandler::SigDfl)?;
            nix::unistd::setsid()?;
            if dies_with_master {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The master may have died before the prctl.
                if nix::unistd::getppid() != master {
                    return Err(std::io::Error::from(Errno::ESRCH));
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The `Child` handle only holds the pid: the master's reap loop collects the exit.
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_grows_with_quick_deaths_up_to_the_cap() {
        assert_eq!(respawn_delay(0, MAX_THROTTLE), Duration::ZERO);
        assert_eq!(respawn_delay(1, MAX_THROTTLE), Duration::from_secs(1));
        assert_eq!(respawn_delay(7, MAX_THROTTLE), Duration::from_secs(7));
        assert_eq!(respawn_delay(1000, MAX_THROTTLE), Duration::from_mins(5));
        assert_eq!(respawn_delay(9, 5), Duration::from_secs(5));
    }

    #[test]
    fn pidfile_holds_one_positive_pid() {
        assert_eq!(parse_pidfile("1234\n"), Some(Pid::from_raw(1234)));
        assert_eq!(parse_pidfile("  42  "), Some(Pid::from_raw(42)));
        for bad in ["", "0", "-5", "12 34", "abc", "1234x"] {
            assert_eq!(parse_pidfile(bad), None, "{bad:?}");
        }
    }

    fn daemons(specs: &[AttachDaemon]) -> Daemons {
        Daemons::new(specs, Duration::from_secs(3), Instant::now())
    }

    #[test]
    fn a_quick_death_is_throttled_and_a_long_run_is_not() {
        let now = Instant::now();
        let mut ds = daemons(&[AttachDaemon::new("x")]);
        let d = &mut ds.list[0];
        d.spawned_at = Some(now);
        d.state = State::Running { pid: Pid::from_raw(1) };
        d.died(now + Duration::from_millis(100));
        assert_eq!(d.state, State::Down { at: Some(now + Duration::from_millis(1100)) });
        d.spawned_at = Some(now);
        d.died(now + Duration::from_secs(1));
        assert_eq!(d.state, State::Down { at: Some(now + Duration::from_secs(3)) });
        d.spawned_at = Some(now);
        d.died(now + Duration::from_mins(1));
        assert_eq!(d.state, State::Down { at: Some(now + Duration::from_mins(1)) });
    }

    #[test]
    fn stop_leaves_smart_daemons_alone_and_holds_the_others() {
        let now = Instant::now();
        let mut smart = AttachDaemon::new("memcached");
        smart.pidfile = Some("m.pid".into());
        let mut ds = daemons(&[AttachDaemon::new("celery"), smart]);
        ds.list[1].state = State::Watched { pid: Pid::from_raw(4242) };
        ds.stop(true, now);
        assert_eq!(ds.list[0].state, State::Down { at: None });
        assert_eq!(ds.list[1].state, State::Watched { pid: Pid::from_raw(4242) });
        assert_eq!(ds.next_due(), None);
        ds.resume(now);
        assert_eq!(ds.list[0].state, State::Down { at: Some(now) });
        assert_eq!(ds.next_due(), Some(now));
    }

    #[test]
    fn reaped_tells_daemons_from_other_children() {
        let mut ds = daemons(&[AttachDaemon::new("celery")]);
        ds.list[0].state = State::Running { pid: Pid::from_raw(77) };
        assert_eq!(ds.reaped(Pid::from_raw(78), &Exit::Code(0), true), Reaped::NotOurs);
        assert_eq!(ds.reaped(Pid::from_raw(77), &Exit::Signal(Signal::SIGKILL), true), Reaped::Daemon);
        assert!(matches!(ds.list[0].state, State::Down { at: Some(_) }));
        ds.list[0].spec.control = true;
        ds.list[0].state = State::Running { pid: Pid::from_raw(79) };
        assert_eq!(ds.reaped(Pid::from_raw(79), &Exit::Code(1), true), Reaped::ControlDied);
    }
}
