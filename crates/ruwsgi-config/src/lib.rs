//! uWSGI-compatible configuration: the option table, the ini/JSON/YAML, argv and `UWSGI_*`
//! environment readers, and the typed `Config` the runtime reads.
//!
//! Every reader produces the same `(name, value, origin)` list (`Entry`), assembled lowest
//! precedence first: `UWSGI_*` environment variables, then config files in command-line order
//! (with their inclusions spliced in place), then command-line flags. `resolve` expands
//! placeholders over the whole list, checks every name against `options::OPTIONS` and fills
//! `Config`. No I/O beyond reading config files and the environment; never logs: start-up
//! notices are returned to the runtime.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod argv;
pub mod background;
pub mod cheaper;
mod config;
pub mod cron;
mod daemon;
mod error;
mod expand;
mod groups;
pub mod hooks;
pub mod options;
mod reader;
mod resolve;
pub mod route;
pub mod tls;
mod uwsgi_names;

use std::path::PathBuf;

pub use config::{CollectHeader, Config, Mount, MountedApp, SocketProtocol, SocketSpec, StaticMap, TlsOptions};
pub use daemon::AttachDaemon;
pub use error::{ConfigError, Origin};

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
// Built once at start-up and the runtime takes the Config by value: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Serve with this config. `notices` and `warnings` are one-line messages to log at
    /// start-up.
    Run {
        /// The resolved configuration.
        config: Config,
        /// Accepted-and-ignored options, where ruwsgi behaves that way anyway (e.g.
        /// `plugins = python3 is accepted and ignored: ruwsgi has Python built in`).
        notices: Vec<String>,
        /// One-line warnings, logged with a `WARNING: ` prefix: things that make ruwsgi behave
        /// differently from uWSGI with this config (unknown keys nothing uses, not-implemented
        /// options: `app.ini:12: option "cron" is not implemented by ruwsgi: the command does
        /// not run`), and values read the way uWSGI reads them, which is not what they say
        /// (`harakiri = 30s` is 30), an unset `$(VAR)` kept as written, an unbalanced `endif`.
        warnings: Vec<String>,
        /// `[ruwsgi] getting INI configuration from app.ini`, one line per config file read
        /// (inclusions too), to log first as uWSGI does.
        files_read: Vec<String>,
        /// `show-config = true` in a config file: the `--show-config` text, to log at start-up
        /// before serving (as uWSGI does).
        show_config: Option<String>,
    },
    /// Print this text to stdout and exit 0 (`--help`, `--version`, `--show-config` on the
    /// command line; `help`/`version` in a config file).
    Print(String),
    /// Signal the master whose pid is in `pidfile`, then exit (`--stop`, `--reload`).
    Signal {
        /// What to ask of it.
        control: Control,
        /// The running instance's `pidfile`.
        pidfile: PathBuf,
    },
}

/// What `--stop`/`--reload PIDFILE` ask of a running master (uWSGI's CLI helpers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `--stop`: SIGINT, the immediate shutdown uWSGI's `--stop` sends.
    Stop,
    /// `--reload`: SIGHUP, a graceful reload.
    Reload,
}

/// Set in the environment of a master re-executed by a reload: its config's `if-reload`
/// blocks hold (uWSGI counts reloads in `UWSGI_RELOADS` for the same purpose).
pub const RELOADED_ENV: &str = "RUWSGI_RELOADED";

/// What the readers may look at besides the config files: injected so tests don't depend on
/// the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Environment variables (`UWSGI_*` options, `$(VAR)`, `if-env`, `RELOADED_ENV`).
    pub vars: Vec<(String, String)>,
    /// Working directory: relative config paths resolve against it first.
    pub cwd: PathBuf,
    /// `%h`.
    pub hostname: String,
    /// `%k`.
    pub cpu_cores: usize,
}

impl Environment {
    /// The current process's environment, working directory, hostname and CPU count.
    #[must_use]
    pub fn from_process() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        Self {
            // Variables that aren't UTF-8 can't be uWSGI options or `$(VAR)` values we print.
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            hostname,
            cpu_cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        }
    }

    /// An environment variable's value.
    #[must_use]
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One option occurrence from any source, before placeholder expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The name as written (`workers`, `py_autoreload`, a custom key...).
    pub key: String,
    /// The value after magic variables, `$(VAR)` and `@(file)`; `true` for a bare key.
    pub value: String,
    /// Where it was written.
    pub origin: Origin,
}

/// `args` = argv without the program name. Reads the process environment for `UWSGI_*` vars.
pub fn load(args: &[String]) -> Result<Command, ConfigError> {
    load_with_env(args, &Environment::from_process())
}

/// Same as [`load`] with an injected environment, for tests.
pub fn load_with_env(args: &[String], env: &Environment) -> Result<Command, ConfigError> {
    let parsed = argv::parse_args(args)?;
    match parsed.action {
        Some(argv::Action::Help) => return Ok(Command::Print(options::render_help())),
        Some(argv::Action::Version) => return Ok(Command::Print(version_text())),
        Some(argv::Action::Signal(control, pidfile)) => {
            return Ok(Command::Signal { control, pidfile: PathBuf::from(pidfile) });
        }
        _ => {}
    }
    let mut reader = reader::Reader::new(env);
    let env_entries = env_entries(env, &mut reader)?;
    let mut flags = Vec::new();
    for source in parsed.sources {
        match source {
            argv::Source::File { option, spec, format, origin } => reader.read(option, &spec, format, &origin, None)?,
            argv::Source::Flag(entry) => flags.push(entry),
        }
    }
    let files_read = std::mem::take(&mut reader.files_read);
    let mut entries = env_entries;
    entries.append(&mut reader.entries);
    entries.append(&mut flags);
    let mut resolved = resolve::resolve(&entries)?;
    resolved.warnings.splice(0..0, reader.warnings);
    if parsed.action == Some(argv::Action::ShowConfig) {
        return Ok(Command::Print(resolve::render_show_config(&resolved, true)));
    }
    match resolved.exit_action {
        Some("help") => return Ok(Command::Print(options::render_help())),
        Some(_) => return Ok(Command::Print(version_text())),
        None => {}
    }
    let show_config = resolved.show_config.then(|| resolve::render_show_config(&resolved, false));
    Ok(Command::Run {
        config: resolved.config,
        notices: resolved.notices,
        warnings: resolved.warnings,
        show_config,
        files_read,
    })
}

fn version_text() -> String {
    format!("ruwsgi {}\n", env!("CARGO_PKG_VERSION"))
}

/// Reads `text` as the `[uwsgi]` section of an ini file called `name` and resolves it, with
/// no I/O at all: an empty environment (no variables, working directory `/`, host
/// `localhost`, one core), and inclusions or `@(file)` are errors. For the fuzzer and for
/// tests; the runtime uses [`load`].
pub fn parse_ini_text(text: &str, name: &str) -> Result<Config, ConfigError> {
    let env = Environment { vars: Vec::new(), cwd: PathBuf::from("/"), hostname: "localhost".to_owned(), cpu_cores: 1 };
    let mut reader = reader::Reader::new(&env);
    reader.read_ini_text(text, name)?;
    Ok(resolve::resolve(&reader.entries)?.config)
}

/// `UWSGI_PROCESSES=4` → `processes = 4` (lowercase, `_` → `-`), sorted by name so the result
/// doesn't depend on the environment's order. `UWSGI_INI` and friends are read as files.
/// A variable can't repeat, so each gives one value.
fn env_entries(env: &Environment, reader: &mut reader::Reader<'_>) -> Result<Vec<Entry>, ConfigError> {
    let mut vars: Vec<&(String, String)> =
        env.vars.iter().filter(|(k, _)| k.starts_with("UWSGI_") && k.len() > 6).collect();
    vars.sort();
    let mut out = Vec::new();
    for (var, value) in vars {
        let key = var["UWSGI_".len()..].to_ascii_lowercase().replace('_', "-");
        let origin = Origin::Env { var: var.clone() };
        match options::find(&key) {
            Some(o) if o.kind == options::Kind::ConfigFile => {
                reader.read(o.name, value, None, &origin, None)?;
            }
            _ => out.push(Entry { key, value: value.clone(), origin }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ini_text_reads_without_files() {
        let config = parse_ini_text("[uwsgi]\nprocesses = 3\nbuffer-size = 16384\n", "t.ini").unwrap();
        assert_eq!((config.processes, config.buffer_size), (3, 16384));
        let include = parse_ini_text("[uwsgi]\ninclude = other.ini\n", "t.ini").unwrap_err();
        assert!(include.to_string().contains("not read here"), "{include}");
        let file = parse_ini_text("[uwsgi]\nchdir = @(x)\n", "t.ini").unwrap_err();
        assert!(file.to_string().contains("not read here"), "{file}");
        let cond = parse_ini_text("[uwsgi]\nif-exists = /\nprocesses = 9\nendif =\n", "t.ini").unwrap();
        assert_eq!(cond.processes, Config::default().processes);
    }

    /// Fuzzer finding (ini target): a bare CR inside a key was echoed into the error, which
    /// then wasn't one line.
    #[test]
    fn control_characters_in_ini_lines_are_an_error_not_echoed() {
        for text in ["[uwsgi]\nhar\rttp = :80\n", "[uwsgi]\nchdir = /srv\u{1b}[2J\n", "[uwsgi]\nx\0 = 1\n"] {
            let e = parse_ini_text(text, "t.ini").unwrap_err().to_string();
            assert!(!e.chars().any(char::is_control), "{e:?}");
            assert!(e.starts_with("t.ini:2: control character"), "{e:?}");
        }
        // Tabs are whitespace, and CRLF line ends are fine.
        let ok = parse_ini_text("[uwsgi]\r\nprocesses\t=\t2\r\n", "t.ini").unwrap();
        assert_eq!(ok.processes, 2);
    }

    #[test]
    fn runaway_for_blocks_are_an_error() {
        let mut text = String::from("[uwsgi]\n");
        for _ in 0..9 {
            text.push_str("for = a b c d e f g h i j\n");
        }
        for _ in 0..9 {
            text.push_str("endfor =\n");
        }
        let e = parse_ini_text(&text, "t.ini").unwrap_err();
        assert!(e.to_string().contains("more than 100000 lines"), "{e}");
    }
}
