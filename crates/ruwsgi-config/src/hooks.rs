//! uWSGI's hooks (`hook-PHASE = action:args`) and `exec-PHASE = command` options: the phases
//! they run at and the parsed actions. Pure: the runtime (`ruwsgi::hooks`) runs them.
//!
//! uWSGI's action list is `uwsgi_register_base_hooks` in `core/hooks.c`. The common ones are
//! supported; the ones that need a uWSGI subsystem ruwsgi doesn't have (`call*` run C
//! functions of the uWSGI binary or its plugins, `rpc`, `alarm`, `mount`...) are refused
//! here, so a config that uses them stops at start-up with a line naming the action.

use std::path::PathBuf;

/// When a hook runs, in uWSGI's terms (the name after `hook-`/`exec-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPhase {
    /// `asap`: first thing after the config is read (master).
    Asap,
    /// `pre-jail`: before jailing; only at the first start, not after a reload (master).
    PreJail,
    /// `as-root`: before privileges drop; only when started as root (master).
    AsRoot,
    /// `as-user`: after privileges drop; only when started as root (master).
    AsUser,
    /// `as-user-atexit`: before the master exits or reloads (not fatal).
    AsUserAtexit,
    /// `pre-app`: before the app loads (master, or each worker with `lazy-apps`).
    PreApp,
    /// `post-app`: after the app loaded (master, or each worker with `lazy-apps`).
    PostApp,
    /// `post-fork`: in each worker right after its fork.
    PostFork,
    /// `accepting`: in each worker when it starts accepting.
    Accepting,
    /// `accepting1`: in worker 1 when it starts accepting.
    Accepting1,
    /// `accepting-once`: in each worker's first spawn by this master image.
    AcceptingOnce,
    /// `accepting1-once`: in worker 1's first spawn by this master image.
    Accepting1Once,
    /// `master-start`: when the master starts its loop (after forking the workers).
    MasterStart,
}

impl HookPhase {
    /// The phase of a `hook-*`/`exec-*` option name, and whether it is an `exec-*` one.
    #[must_use]
    pub fn from_option(name: &str) -> Option<(Self, bool)> {
        let (rest, exec) =
            if let Some(r) = name.strip_prefix("hook-") { (r, false) } else { (name.strip_prefix("exec-")?, true) };
        let phase = match rest {
            "asap" => Self::Asap,
            "pre-jail" => Self::PreJail,
            "as-root" => Self::AsRoot,
            "as-user" => Self::AsUser,
            "as-user-atexit" => Self::AsUserAtexit,
            "pre-app" => Self::PreApp,
            "post-app" => Self::PostApp,
            "post-fork" if !exec => Self::PostFork,
            "accepting" if !exec => Self::Accepting,
            "accepting1" if !exec => Self::Accepting1,
            "accepting-once" if !exec => Self::AcceptingOnce,
            "accepting1-once" if !exec => Self::Accepting1Once,
            "master-start" if !exec => Self::MasterStart,
            _ => return None,
        };
        Some((phase, exec))
    }

    /// The phase as uWSGI's log line names it: `running "..." (pre app)...`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Asap => "asap",
            Self::PreJail => "pre-jail",
            Self::AsRoot => "as root",
            Self::AsUser => "as user",
            Self::AsUserAtexit => "atexit",
            Self::PreApp => "pre app",
            Self::PostApp => "post app",
            Self::PostFork => "post-fork",
            Self::Accepting => "accepting",
            Self::Accepting1 => "accepting1",
            Self::AcceptingOnce => "accepting-once",
            Self::Accepting1Once => "accepting1-once",
            Self::MasterStart => "master-start",
        }
    }

    /// The option name of a hook of this phase: `hook-pre-app`, or `exec-pre-app`.
    #[must_use]
    pub fn option(self, exec: bool) -> String {
        let suffix = match self {
            Self::Asap => "asap",
            Self::PreJail => "pre-jail",
            Self::AsRoot => "as-root",
            Self::AsUser => "as-user",
            Self::AsUserAtexit => "as-user-atexit",
            Self::PreApp => "pre-app",
            Self::PostApp => "post-app",
            Self::PostFork => "post-fork",
            Self::Accepting => "accepting",
            Self::Accepting1 => "accepting1",
            Self::AcceptingOnce => "accepting-once",
            Self::Accepting1Once => "accepting1-once",
            Self::MasterStart => "master-start",
        };
        format!("{}-{suffix}", if exec { "exec" } else { "hook" })
    }

    /// A failure in this phase stops the instance (every phase but `as-user-atexit`).
    #[must_use]
    pub fn fatal(self) -> bool {
        self != Self::AsUserAtexit
    }
}

/// How `write`-like actions open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// `write`: truncate, then the text.
    Truncate,
    /// `writen`: truncate, then the text and a newline.
    TruncateLine,
    /// `append`: the text at the end.
    Append,
    /// `appendn`: the text and a newline at the end.
    AppendLine,
}

/// What a master signal handler installed by `unix_signal:` does (uWSGI's function names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterAction {
    /// `gracefully_kill_them_all`: graceful shutdown.
    GracefulShutdown,
    /// `kill_them_all`: immediate shutdown.
    Shutdown,
    /// `grace_them_all`: graceful reload.
    GracefulReload,
}

/// What a `wait_for_*` action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// `wait_for_fs`: the path exists.
    Any,
    /// `wait_for_file`: a regular file.
    File,
    /// `wait_for_dir`: a directory.
    Dir,
}

/// One hook action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// `exec:CMD` (and every `exec-*` option): `/bin/sh -c CMD`, waited for; non-zero fails.
    Exec(String),
    /// `safeexec:CMD`: like `exec` but its exit code is only logged.
    SafeExec(String),
    /// `chdir:DIR`, `cd:DIR`.
    Chdir(PathBuf),
    /// `mkdir:DIR` (one level, mode 0777 before the umask).
    Mkdir(PathBuf),
    /// `putenv:KEY=VALUE`.
    Putenv(String, String),
    /// `create:FILE`, `creat:FILE`: create or truncate.
    Create(PathBuf),
    /// `write`, `writen`, `append`, `appendn`: `FILE TEXT`.
    Write {
        /// The file.
        path: PathBuf,
        /// What to write.
        text: String,
        /// How.
        mode: WriteMode,
    },
    /// `writefifo:FIFO TEXT`: write to a FIFO if a reader has it open (else nothing).
    WriteFifo {
        /// The FIFO.
        path: PathBuf,
        /// What to write.
        text: String,
    },
    /// `unlink:FILE`.
    Unlink(PathBuf),
    /// `print:TEXT`, `log:TEXT`: a log line.
    Print(String),
    /// `exit:[CODE]`: exit the process running the hook.
    Exit(i32),
    /// `chmod:FILE MODE` (octal).
    Chmod {
        /// The file.
        path: PathBuf,
        /// The mode.
        mode: u32,
    },
    /// `sticky:FILE`: add the sticky bit.
    Sticky(PathBuf),
    /// `chown:FILE USER GROUP` (names) or `chown2:FILE UID GID` (numbers).
    Chown {
        /// The file.
        path: PathBuf,
        /// User name or number.
        user: String,
        /// Group name or number.
        group: String,
    },
    /// `wait_for_fs`/`wait_for_file`/`wait_for_dir:PATH`: wait (up to `WAIT_FOR_FS`) for it.
    WaitFor(PathBuf, WaitFor),
    /// `unix_signal:SIGNUM FUNCTION`: what the master does on that signal (`hook-master-start`).
    UnixSignal(i32, MasterAction),
}

/// One configured hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// When it runs.
    pub phase: HookPhase,
    /// What it does.
    pub action: HookAction,
    /// The value as written, for the `running "..." (phase)...` log line.
    pub text: String,
    /// A `!action:` private hook: the log line doesn't show it (it may hold secrets).
    pub private: bool,
    /// From an `exec-*` option (logged without the `exec:` prefix, run after the phase's
    /// `hook-*` ones, as uWSGI does).
    pub exec_option: bool,
}

/// Seconds `wait_for_*` waits before failing (uWSGI's `wait-for-fs-timeout` default).
pub const WAIT_FOR_FS: u64 = 60;

/// Parses `exec-PHASE = COMMAND`.
pub fn parse_exec(phase: HookPhase, value: &str) -> Result<Hook, String> {
    if value.trim().is_empty() {
        return Err("expected a command".to_owned());
    }
    Ok(Hook {
        phase,
        action: HookAction::Exec(value.to_owned()),
        text: value.to_owned(),
        private: false,
        exec_option: true,
    })
}

/// Parses `hook-PHASE = [!]action:args`.
pub fn parse_hook(phase: HookPhase, value: &str) -> Result<Hook, String> {
    let (name, args) = value.split_once(':').ok_or("expected action:arguments (e.g. exec:/usr/bin/true)")?;
    let (name, private) = match name.strip_prefix('!') {
        Some(n) => (n, true),
        None => (name, false),
    };
    let action = parse_action(name, args)?;
    if matches!(action, HookAction::UnixSignal(..)) && phase != HookPhase::MasterStart {
        return Err("unix_signal is supported in hook-master-start only".to_owned());
    }
    Ok(Hook { phase, action, text: value.to_owned(), private, exec_option: false })
}

/// `FILE TEXT` split at the first space (the text may hold spaces).
fn file_and_text<'a>(name: &str, args: &'a str) -> Result<(PathBuf, &'a str), String> {
    let (path, text) = args.split_once(' ').ok_or_else(|| format!("{name}: expected <file> <text>"))?;
    Ok((PathBuf::from(path), text))
}

fn non_empty<'a>(name: &str, args: &'a str) -> Result<&'a str, String> {
    if args.is_empty() {
        Err(format!("{name}: expected an argument"))
    } else {
        Ok(args)
    }
}

fn parse_action(name: &str, args: &str) -> Result<HookAction, String> {
    let path = || non_empty(name, args).map(PathBuf::from);
    let write = |mode| -> Result<HookAction, String> {
        let (path, text) = file_and_text(name, args)?;
        Ok(HookAction::Write { path, text: text.to_owned(), mode })
    };
    Ok(match name {
        "exec" => HookAction::Exec(non_empty(name, args)?.to_owned()),
        "safeexec" => HookAction::SafeExec(non_empty(name, args)?.to_owned()),
        "chdir" | "cd" => HookAction::Chdir(path()?),
        "mkdir" => HookAction::Mkdir(path()?),
        "putenv" => {
            let (k, v) = args.split_once('=').filter(|(k, _)| !k.is_empty()).ok_or("putenv: expected KEY=VALUE")?;
            HookAction::Putenv(k.to_owned(), v.to_owned())
        }
        "create" | "creat" => HookAction::Create(path()?),
        "write" => write(WriteMode::Truncate)?,
        "writen" => write(WriteMode::TruncateLine)?,
        "append" => write(WriteMode::Append)?,
        // As uWSGI: `appendn:FILE` alone appends an empty line.
        "appendn" => match args.split_once(' ') {
            Some((p, text)) => {
                HookAction::Write { path: PathBuf::from(p), text: text.to_owned(), mode: WriteMode::AppendLine }
            }
            None => HookAction::Write { path: path()?, text: String::new(), mode: WriteMode::AppendLine },
        },
        "writefifo" => {
            let (path, text) = file_and_text(name, args)?;
            HookAction::WriteFifo { path, text: text.to_owned() }
        }
        "unlink" => HookAction::Unlink(path()?),
        "print" | "log" => HookAction::Print(args.to_owned()),
        // Differs from uWSGI: there `exit:3` exits with 0 (only codes of two or more digits
        // are read); here any number is the exit code.
        "exit" => HookAction::Exit(if args.trim().is_empty() {
            0
        } else {
            args.trim().parse().map_err(|_| "exit: expected an exit code")?
        }),
        "chmod" => {
            let (path, mode) = args.split_once(' ').ok_or("chmod: expected <file> <mode>")?;
            let mode = u32::from_str_radix(mode.trim(), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or("chmod: expected an octal mode like 0644")?;
            HookAction::Chmod { path: PathBuf::from(path), mode }
        }
        "sticky" => HookAction::Sticky(path()?),
        "chown" | "chown2" => {
            let mut parts = args.splitn(3, ' ');
            let (Some(path), Some(user), Some(group)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("{name}: expected <file> <uid> <gid>"));
            };
            if name == "chown2" && !(user.parse::<u32>().is_ok() && group.parse::<u32>().is_ok()) {
                return Err("chown2: uid and gid must be numbers".to_owned());
            }
            HookAction::Chown { path: PathBuf::from(path), user: user.to_owned(), group: group.to_owned() }
        }
        "wait_for_fs" => HookAction::WaitFor(path()?, WaitFor::Any),
        "wait_for_file" => HookAction::WaitFor(path()?, WaitFor::File),
        "wait_for_dir" => HookAction::WaitFor(path()?, WaitFor::Dir),
        "unix_signal" => {
            let (signum, func) = args.split_once(' ').ok_or("unix_signal: expected <signum> <function>")?;
            let signum: i32 = signum.trim().parse().map_err(|_| "unix_signal: expected a signal number")?;
            // SIGKILL, SIGSTOP can't be caught; SIGCHLD is how the master reaps.
            if !(1..=31).contains(&signum) || [9, 17, 19].contains(&signum) {
                return Err(format!("unix_signal: signal {signum} cannot be handled"));
            }
            let action = match func.trim() {
                "gracefully_kill_them_all" => MasterAction::GracefulShutdown,
                "kill_them_all" => MasterAction::Shutdown,
                "grace_them_all" => MasterAction::GracefulReload,
                other => {
                    return Err(format!(
                        "unix_signal: function \"{other}\" is not available (gracefully_kill_them_all, kill_them_all, grace_them_all are)"
                    ))
                }
            };
            HookAction::UnixSignal(signum, action)
        }
        // Differs from uWSGI: these call C functions of the uWSGI binary or its plugins
        // (dlsym), which ruwsgi doesn't have.
        "call" | "callret" | "callint" | "callintret" => {
            return Err(format!(
                "hook action \"{name}\" calls a C function of uWSGI or a plugin, which ruwsgi doesn't have: use exec: instead"
            ))
        }
        "mount" | "umount" | "hostname" | "alarm" | "rpc" | "retryrpc" | "wait_for_socket" | "spinningfifo" => {
            return Err(format!("hook action \"{name}\" is not supported by ruwsgi"))
        }
        other => return Err(format!("hook action \"{other}\" does not exist")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(value: &str) -> Result<HookAction, String> {
        parse_hook(HookPhase::PreApp, value).map(|h| h.action)
    }

    #[test]
    fn parses_the_common_actions() {
        assert_eq!(action("exec:python manage.py migrate"), Ok(HookAction::Exec("python manage.py migrate".into())));
        assert_eq!(action("cd:/srv"), Ok(HookAction::Chdir("/srv".into())));
        assert_eq!(action("putenv:A=b=c"), Ok(HookAction::Putenv("A".into(), "b=c".into())));
        assert_eq!(
            action("write:/tmp/x hello world"),
            Ok(HookAction::Write { path: "/tmp/x".into(), text: "hello world".into(), mode: WriteMode::Truncate })
        );
        assert_eq!(
            action("appendn:/tmp/x"),
            Ok(HookAction::Write { path: "/tmp/x".into(), text: String::new(), mode: WriteMode::AppendLine })
        );
        assert_eq!(action("print:hello: there"), Ok(HookAction::Print("hello: there".into())));
        assert_eq!(action("exit:"), Ok(HookAction::Exit(0)));
        assert_eq!(action("exit:3"), Ok(HookAction::Exit(3)));
        assert_eq!(action("chmod:/run/x 660"), Ok(HookAction::Chmod { path: "/run/x".into(), mode: 0o660 }));
        assert_eq!(
            action("chown2:/run/x 33 33"),
            Ok(HookAction::Chown { path: "/run/x".into(), user: "33".into(), group: "33".into() })
        );
    }

    #[test]
    fn private_hooks_are_marked() {
        let h = parse_hook(HookPhase::AsRoot, "!putenv:SECRET=x").unwrap();
        assert!(h.private);
        assert_eq!(h.action, HookAction::Putenv("SECRET".into(), "x".into()));
    }

    #[test]
    fn refuses_unknown_and_unsupported_actions() {
        assert!(action("frobnicate:x").unwrap_err().contains("\"frobnicate\" does not exist"));
        assert!(action("call:uwsgi_foo").unwrap_err().contains("use exec:"));
        assert!(action("mount:proc none /proc").unwrap_err().contains("\"mount\" is not supported"));
        assert!(action("exec").unwrap_err().contains("expected action:arguments"));
        assert!(action("write:/tmp/x").unwrap_err().contains("<file> <text>"));
        assert!(action("chown2:/x www www").unwrap_err().contains("numbers"));
    }

    #[test]
    fn unix_signal_maps_uwsgi_functions_in_master_start_only() {
        let h = parse_hook(HookPhase::MasterStart, "unix_signal:15 gracefully_kill_them_all").unwrap();
        assert_eq!(h.action, HookAction::UnixSignal(15, MasterAction::GracefulShutdown));
        let h = parse_hook(HookPhase::MasterStart, "unix_signal:1 kill_them_all").unwrap();
        assert_eq!(h.action, HookAction::UnixSignal(1, MasterAction::Shutdown));
        assert!(parse_hook(HookPhase::MasterStart, "unix_signal:9 kill_them_all").is_err());
        assert!(parse_hook(HookPhase::MasterStart, "unix_signal:15 my_func").is_err());
        assert!(parse_hook(HookPhase::PreApp, "unix_signal:15 gracefully_kill_them_all").is_err());
    }

    #[test]
    fn option_names_give_phases() {
        assert_eq!(HookPhase::from_option("hook-accepting1-once"), Some((HookPhase::Accepting1Once, false)));
        assert_eq!(HookPhase::from_option("exec-pre-app"), Some((HookPhase::PreApp, true)));
        assert_eq!(HookPhase::from_option("exec-as-user-atexit"), Some((HookPhase::AsUserAtexit, true)));
        assert_eq!(HookPhase::from_option("exec-accepting"), None);
        assert_eq!(HookPhase::from_option("harakiri"), None);
        assert_eq!(HookPhase::Accepting1Once.option(false), "hook-accepting1-once");
        assert_eq!(HookPhase::AsUserAtexit.option(true), "exec-as-user-atexit");
    }
}
