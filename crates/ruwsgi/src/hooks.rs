//! Runs the `hook-*` and `exec-*` actions of one phase (parsed by `ruwsgi_config::hooks`),
//! in the process that reaches the phase: the master for the start-up phases, `master-start`
//! and `as-user-atexit`, each worker for `post-fork`, `accepting*` and (with `lazy-apps`)
//! `pre-app`/`post-app`.
//!
//! As uWSGI (core/hooks.c): a phase runs its `hook-*` entries, then its `exec-*` ones, each
//! in config order, logging `running "..." (phase)...` before each. A failure in a fatal
//! phase (all but `as-user-atexit`) stops there and is returned to the caller, which stops
//! the instance; in `as-user-atexit` it is only logged. Commands run as `/bin/sh -c` and are
//! waited for; that forks a child without creating a thread, so the master stays
//! single-threaded. This module never touches Python.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use ruwsgi_config::hooks::{Hook, HookAction, HookPhase, WaitFor, WriteMode, WAIT_FOR_FS};

/// Runs every hook of `phase`. `Err` names the hook that failed in a fatal phase.
pub fn run_phase(hooks: &[Hook], phase: HookPhase) -> Result<()> {
    let (plain, exec): (Vec<&Hook>, Vec<&Hook>) =
        hooks.iter().filter(|h| h.phase == phase).partition(|h| !h.exec_option);
    for hook in plain.into_iter().chain(exec) {
        if hook.private {
            tracing::info!("running --- PRIVATE HOOK --- ({})...", phase.label());
        } else if hook.exec_option && phase == HookPhase::AsUser {
            tracing::info!(
                "running \"{}\" (as uid: {} gid: {}) ...",
                hook.text,
                nix::unistd::getuid(),
                nix::unistd::getgid()
            );
        } else {
            tracing::info!("running \"{}\" ({})...", hook.text, phase.label());
        }
        let Err(why) = run_action(&hook.action) else { continue };
        tracing::error!("{why}");
        if phase.fatal() {
            if !hook.exec_option {
                tracing::error!("FATAL hook failed, destroying instance");
            }
            let shown = if hook.private { "(private hook)" } else { hook.text.as_str() };
            let option = phase.option(hook.exec_option);
            if matches!(hook.action, HookAction::Exec(_)) {
                // `why` (logged just above) is uWSGI's line with the exit code.
                anyhow::bail!("{option} = \"{shown}\" failed");
            }
            anyhow::bail!("{option} = \"{shown}\" failed: {why}");
        }
    }
    Ok(())
}

/// Does one action; `Err` is the log line saying why it failed.
fn run_action(action: &HookAction) -> Result<(), String> {
    let io = |what: &str, path: &Path, e: std::io::Error| format!("{what} {}: {e}", path.display());
    match action {
        HookAction::Exec(cmd) => wait_for_command(cmd),
        HookAction::SafeExec(cmd) => {
            if let Err(why) = wait_for_command(cmd) {
                tracing::warn!("{why}");
            }
            Ok(())
        }
        HookAction::Chdir(dir) => std::env::set_current_dir(dir).map_err(|e| io("chdir()", dir, e)),
        HookAction::Mkdir(dir) => std::fs::DirBuilder::new().mode(0o777).create(dir).map_err(|e| io("mkdir()", dir, e)),
        // Hooks run in a single-threaded process (the master, or a worker before its
        // threads start), so changing the environment is safe.
        HookAction::Putenv(key, value) => {
            std::env::set_var(key, value);
            Ok(())
        }
        HookAction::Create(path) => open_write(path, false).map(drop).map_err(|e| io("open()", path, e)),
        HookAction::Write { path, text, mode } => {
            let append = matches!(mode, WriteMode::Append | WriteMode::AppendLine);
            let mut bytes = text.clone().into_bytes();
            if matches!(mode, WriteMode::TruncateLine | WriteMode::AppendLine) {
                bytes.push(b'\n');
            }
            // One write, as uWSGI: appended lines from several workers don't interleave.
            open_write(path, append).and_then(|mut f| f.write_all(&bytes)).map_err(|e| io("write()", path, e))
        }
        HookAction::WriteFifo { path, text } => {
            let opened = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path);
            match opened {
                Ok(mut f) => f.write_all(text.as_bytes()).map_err(|e| io("write()", path, e)),
                // No reader (or no FIFO driver): uWSGI treats it as done.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => Ok(()),
                Err(e) => Err(io("open()", path, e)),
            }
        }
        HookAction::Unlink(path) => std::fs::remove_file(path).map_err(|e| io("unlink()", path, e)),
        HookAction::Print(text) => {
            tracing::info!("{text}");
            Ok(())
        }
        HookAction::Exit(code) => {
            crate::wsgi::flush_std_streams();
            std::process::exit(*code)
        }
        HookAction::Chmod { path, mode } => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode)).map_err(|e| io("chmod()", path, e))
        }
        HookAction::Sticky(path) => std::fs::metadata(path)
            .and_then(|m| {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(m.permissions().mode() | 0o1000))
            })
            .map_err(|e| io("chmod()", path, e)),
        HookAction::Chown { path, user, group } => chown(path, user, group),
        HookAction::WaitFor(path, kind) => wait_for_path(path, *kind),
        // Installed by the master before the `master-start` phase runs (it owns the signalfd).
        HookAction::UnixSignal(..) => Ok(()),
    }
}

fn open_write(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).mode(0o666);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    options.open(path)
}

fn chown(path: &Path, user: &str, group: &str) -> Result<(), String> {
    use nix::unistd::{Gid, Group, Uid, User};
    let uid = match user.parse::<u32>() {
        Ok(n) => Uid::from_raw(n),
        Err(_) => User::from_name(user).ok().flatten().ok_or(format!("unable to find uid {user}"))?.uid,
    };
    let gid = match group.parse::<u32>() {
        Ok(n) => Gid::from_raw(n),
        Err(_) => Group::from_name(group).ok().flatten().ok_or(format!("unable to find gid {group}"))?.gid,
    };
    nix::unistd::chown(path, Some(uid), Some(gid)).map_err(|e| format!("chown() {}: {e}", path.display()))
}

/// `wait_for_fs`/`_file`/`_dir`: checks once a second, up to `WAIT_FOR_FS` seconds.
fn wait_for_path(path: &Path, kind: WaitFor) -> Result<(), String> {
    for left in (0..=WAIT_FOR_FS).rev() {
        let found = match kind {
            WaitFor::Any => path.exists(),
            WaitFor::File => path.is_file(),
            WaitFor::Dir => path.is_dir(),
        };
        if found {
            tracing::info!("{} found", path.display());
            return Ok(());
        }
        if left > 0 {
            tracing::info!("waiting for {} ({left} seconds left)", path.display());
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    Err(format!("{} did not appear in {WAIT_FOR_FS} seconds", path.display()))
}

/// Runs `/bin/sh -c CMD` and waits; `Err` is uWSGI's log line for a failure.
fn wait_for_command(cmd: &str) -> Result<(), String> {
    let status = shell(cmd).status().map_err(|e| format!("cannot run /bin/sh -c \"{cmd}\": {e}"))?;
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(format!("command \"{cmd}\" exited with non-zero code: {code}")),
        // Differs from uWSGI: a command killed by a signal counts as failed (uWSGI reads
        // its exit status as 0).
        (None, sig) => Err(format!("command \"{cmd}\" was killed by signal {}", sig.unwrap_or(0))),
    }
}

/// `/bin/sh -c CMD` with the signal set-up of a fresh process: the master blocks the
/// signals its signalfd reads and Python ignores SIGPIPE/SIGXFSZ, and an exec keeps both.
/// stdin, stdout and stderr are inherited (the log), as uWSGI does.
pub fn shell(cmd: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(cmd);
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child, between fork and exec. It makes only
    // async-signal-safe system calls (sigprocmask, signal), allocates nothing and touches
    // no shared state.
    unsafe {
        command.pre_exec(|| {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl)?;
            nix::sys::signal::signal(Signal::SIGXFSZ, SigHandler::SigDfl)?;
            Ok(())
        });
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruwsgi_config::hooks::parse_hook;

    fn hook(value: &str) -> Hook {
        parse_hook(HookPhase::PreApp, value).expect("valid hook")
    }

    #[test]
    fn write_actions_create_truncate_and_append() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-hooks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let f = dir.join("f");
        let hooks = [
            hook(&format!("mkdir:{}", dir.display())),
            hook(&format!("write:{} a b", f.display())),
            hook(&format!("appendn:{} c", f.display())),
            hook(&format!("appendn:{}", f.display())),
        ];
        run_phase(&hooks, HookPhase::PreApp).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "a bc\n\n");
        run_phase(&[hook(&format!("writen:{} x", f.display()))], HookPhase::PreApp).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x\n");
        run_phase(&[hook(&format!("unlink:{}", f.display()))], HookPhase::PreApp).unwrap();
        assert!(!f.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failing_command_fails_a_fatal_phase_only() {
        let err = run_phase(&[hook("exec:exit 3")], HookPhase::PreApp).unwrap_err();
        assert_eq!(err.to_string(), "hook-pre-app = \"exec:exit 3\" failed");
        let err = run_phase(&[hook("mkdir:/nonexistent/x/y")], HookPhase::PreApp).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("hook-pre-app = \"mkdir:/nonexistent/x/y\" failed: mkdir() /nonexistent/x/y: "));
        let atexit = parse_hook(HookPhase::AsUserAtexit, "exec:exit 3").unwrap();
        assert!(run_phase(&[atexit], HookPhase::AsUserAtexit).is_ok());
        assert!(run_phase(&[hook("safeexec:exit 3")], HookPhase::PreApp).is_ok());
    }

    #[test]
    fn only_the_asked_phase_runs() {
        assert!(run_phase(&[hook("exec:exit 1")], HookPhase::PostApp).is_ok());
    }
}
