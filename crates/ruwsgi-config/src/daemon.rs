//! The values of `attach-daemon`, `smart-attach-daemon`, `smart-attach-daemon2` and
//! `attach-daemon2`: external commands the master runs and watches. Pure parsing, no I/O;
//! the runtime side is `master/daemons.rs` in the `ruwsgi` crate.

use std::path::PathBuf;

/// uWSGI's default for how long a smart daemon's pidfile may stay invalid after a spawn.
pub const DEFAULT_FREQ: u64 = 10;
/// SIGTERM: what a daemon gets on stop unless `stopsignal` says otherwise.
pub const DEFAULT_STOP_SIGNAL: i32 = 15;

/// One external command run by the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachDaemon {
    /// The command line, run with `/bin/sh -c`.
    pub command: String,
    /// Smart mode (`smart-attach-daemon*`, `pidfile` key): the process named in this pidfile
    /// is watched; it survives reloads and shutdowns of the master, and is started again
    /// only when the pidfile names no live process.
    pub pidfile: Option<PathBuf>,
    /// `smart-attach-daemon2`, `daemonize` key: the command stays in the foreground and
    /// ruwsgi writes its pid to `pidfile`.
    pub daemonize: bool,
    /// Seconds a freshly started smart daemon gets to name a live process in its pidfile
    /// before it is started again (`PIDFILE,N`, `freq` key). Default 10.
    pub freq: u64,
    /// `control` key: when it dies, the whole server shuts down instead of respawning it.
    pub control: bool,
    /// `stopsignal` key: signal number sent to its process group on stop. Default SIGTERM.
    pub stop_signal: i32,
    /// `reloadsignal` key: signal number sent instead of `stop_signal` on reload.
    pub reload_signal: Option<i32>,
    /// `stdin` key: inherit the master's stdin instead of `/dev/null`.
    pub stdin: bool,
    /// `uid` key: numeric user id to run as (the master must be root).
    pub uid: Option<u32>,
    /// `gid` key: numeric group id to run as (the master must be root).
    pub gid: Option<u32>,
    /// `chdir` key: directory to run in (default: the master's working directory).
    pub chdir: Option<PathBuf>,
    /// `max_throttle` key: the longest respawn delay, in seconds, for a daemon that keeps
    /// dying right after it starts. Default 300.
    pub max_throttle: Option<u64>,
    /// `touch` key (`;`-separated): files whose mtime change restarts the daemon.
    pub touch: Vec<PathBuf>,
}

impl AttachDaemon {
    /// A plain daemon running `command`, with uWSGI's defaults.
    #[must_use]
    pub fn new(command: &str) -> Self {
        Self {
            command: command.to_owned(),
            pidfile: None,
            daemonize: false,
            freq: DEFAULT_FREQ,
            control: false,
            stop_signal: DEFAULT_STOP_SIGNAL,
            reload_signal: None,
            stdin: false,
            uid: None,
            gid: None,
            chdir: None,
            max_throttle: None,
            touch: Vec::new(),
        }
    }
}

/// `attach-daemon = COMMAND`.
pub(crate) fn parse_attach(value: &str) -> Result<AttachDaemon, &'static str> {
    let command = value.trim();
    if command.is_empty() {
        return Err("expected a command");
    }
    Ok(AttachDaemon::new(command))
}

/// `smart-attach-daemon[2] = PIDFILE[,FREQ] COMMAND` (split at the first space, as uWSGI).
pub(crate) fn parse_smart(value: &str, daemonize: bool) -> Result<AttachDaemon, &'static str> {
    const EXPECTED: &str = "expected <pidfile>[,<seconds>] <command>";
    let (head, command) = value.trim().split_once(' ').ok_or(EXPECTED)?;
    let command = command.trim();
    let (pidfile, freq) = match head.split_once(',') {
        Some((pidfile, freq)) => (pidfile, Some(parse_number(freq).ok_or(EXPECTED)?)),
        None => (head, None),
    };
    if pidfile.is_empty() || command.is_empty() {
        return Err(EXPECTED);
    }
    let mut d = AttachDaemon::new(command);
    d.pidfile = Some(PathBuf::from(pidfile));
    d.daemonize = daemonize;
    d.freq = freq.unwrap_or(DEFAULT_FREQ);
    Ok(d)
}

/// `attach-daemon2 = cmd=...,pidfile=...,...`: uWSGI's key=value form. A `,` inside a value
/// is written `\,`. Keys that change nothing ruwsgi can do (`ns_pid`, `notifypid`,
/// `legion`) are refused rather than ignored.
pub(crate) fn parse_keyval(value: &str) -> Result<AttachDaemon, String> {
    let mut d = AttachDaemon::new("");
    for item in split_escaped(value) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (key, val) = item.split_once('=').ok_or_else(|| format!("expected key=value, got \"{item}\""))?;
        let val = val.trim();
        let number = || parse_number(val).ok_or_else(|| format!("{key}: expected a whole number"));
        let signal = || {
            number()
                .ok()
                .and_then(|n| i32::try_from(n).ok())
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| format!("{key}: expected a signal number"))
        };
        let id = || number().and_then(|n| u32::try_from(n).map_err(|_| format!("{key}: expected a numeric id")));
        match key.trim() {
            "command" | "cmd" | "exec" => val.clone_into(&mut d.command),
            "pidfile" => d.pidfile = Some(PathBuf::from(val)),
            "daemonize" | "daemon" => d.daemonize = flag(val),
            "freq" => d.freq = number()?,
            "control" => d.control = flag(val),
            "stopsignal" | "stop_signal" => d.stop_signal = signal()?,
            "reloadsignal" | "reload_signal" => d.reload_signal = Some(signal()?),
            "stdin" => d.stdin = flag(val),
            "uid" => d.uid = Some(id()?),
            "gid" => d.gid = Some(id()?),
            "chdir" => d.chdir = Some(PathBuf::from(val)),
            "max_throttle" => d.max_throttle = Some(number()?),
            "touch" => d.touch = val.split(';').filter(|p| !p.is_empty()).map(PathBuf::from).collect(),
            "ns_pid" | "notifypid" | "legion" => return Err(format!("key \"{}\" is not supported", key.trim())),
            other => return Err(format!("unknown key \"{other}\"")),
        }
    }
    if d.command.is_empty() {
        return Err("a cmd key is required".to_owned());
    }
    if d.daemonize && d.pidfile.is_none() {
        return Err("daemonize needs a pidfile key".to_owned());
    }
    Ok(d)
}

/// Splits at `,` not preceded by `\`, and drops the escapes.
fn split_escaped(value: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(',') => items.last_mut().expect("never empty").push(','),
                Some(other) => items.last_mut().expect("never empty").extend(['\\', other]),
                None => items.last_mut().expect("never empty").push('\\'),
            },
            ',' => items.push(String::new()),
            c => items.last_mut().expect("never empty").push(c),
        }
    }
    items
}

/// Keys given without a meaningful value (`control=1`, `stdin=true`) are on; uWSGI only
/// checks that the key is present, so anything but an explicit false counts.
fn flag(value: &str) -> bool {
    !matches!(value.to_ascii_lowercase().as_str(), "false" | "off" | "no" | "0")
}

fn parse_number(value: &str) -> Option<u64> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_daemon_is_the_whole_command() {
        let d = parse_attach("  celery -A proj worker --loglevel=info ").unwrap();
        assert_eq!(d.command, "celery -A proj worker --loglevel=info");
        assert_eq!(d.pidfile, None);
        assert!(parse_attach("  ").is_err());
    }

    #[test]
    fn smart_attach_daemon_splits_at_the_first_space() {
        let d = parse_smart("/tmp/memcached.pid memcached -p 11311 -d -P /tmp/memcached.pid", false).unwrap();
        assert_eq!(d.pidfile.as_deref(), Some(std::path::Path::new("/tmp/memcached.pid")));
        assert_eq!(d.command, "memcached -p 11311 -d -P /tmp/memcached.pid");
        assert_eq!(d.freq, DEFAULT_FREQ);
        assert!(!d.daemonize);
        assert!(parse_smart("x.pid cmd", true).unwrap().daemonize);
    }

    #[test]
    fn smart_attach_daemon_takes_a_freq_after_the_pidfile() {
        let d = parse_smart("run/celery.pid,30 celery -A tasks worker", false).unwrap();
        assert_eq!(d.pidfile.as_deref(), Some(std::path::Path::new("run/celery.pid")));
        assert_eq!(d.freq, 30);
        for bad in ["celery.pid", "celery.pid ", ",3 cmd", "p.pid,x cmd", ""] {
            assert!(parse_smart(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attach_daemon2_reads_uwsgi_keys() {
        let d = parse_keyval("cmd=my_daemon.sh,pidfile=/tmp/my.pid,uid=33,gid=33,stopsignal=3").unwrap();
        assert_eq!(d.command, "my_daemon.sh");
        assert_eq!(d.pidfile.as_deref(), Some(std::path::Path::new("/tmp/my.pid")));
        assert_eq!((d.uid, d.gid, d.stop_signal), (Some(33), Some(33), 3));
        let d =
            parse_keyval("exec=a\\,b,control=1,reloadsignal=1,touch=x.txt;y.txt,freq=5,daemonize=1,pidfile=p").unwrap();
        assert_eq!(d.command, "a,b");
        assert!(d.control && d.daemonize);
        assert_eq!(d.reload_signal, Some(1));
        assert_eq!(d.touch, [PathBuf::from("x.txt"), PathBuf::from("y.txt")]);
        assert_eq!(d.freq, 5);
    }

    #[test]
    fn attach_daemon2_refuses_what_it_cannot_do() {
        assert_eq!(parse_keyval("pidfile=x").unwrap_err(), "a cmd key is required");
        assert_eq!(parse_keyval("cmd=a,daemonize=1").unwrap_err(), "daemonize needs a pidfile key");
        assert_eq!(parse_keyval("cmd=a,ns_pid=1").unwrap_err(), "key \"ns_pid\" is not supported");
        assert_eq!(parse_keyval("cmd=a,colour=red").unwrap_err(), "unknown key \"colour\"");
        assert_eq!(parse_keyval("cmd=a,stopsignal=TERM").unwrap_err(), "stopsignal: expected a signal number");
        assert!(parse_keyval("cmd=a,justakey").is_err());
    }
}
