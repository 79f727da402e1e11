//! Command-line reader: `--name value`, `--name=value`, bare `--flag` for booleans, short
//! aliases (`-p 4`, `-p4`, `-M`), `--ini file[:section]` and friends, and one positional
//! config file. Produces the same `Entry` list as the file reader. No I/O: config files are
//! returned as `Source::File` for `lib` to read in order.

use crate::options::{self, Kind, OptionSpec};
use crate::reader::Format;
use crate::{ConfigError, Control, Entry, Origin};

/// Print-and-exit requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Help,
    Version,
    ShowConfig,
    /// `--stop`/`--reload PIDFILE`.
    Signal(Control, String),
}

/// One thing the command line asks for, in order.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A config file to read: (option name, `file[:section]`, format, origin).
    File { option: &'static str, spec: String, format: Option<Format>, origin: Origin },
    /// Any other option.
    Flag(Entry),
}

/// The parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Args {
    /// The first action asked for, if any (`--help` beats the others).
    pub action: Option<Action>,
    /// Files and flags in command-line order.
    pub sources: Vec<Source>,
}

pub(crate) fn parse_args(args: &[String]) -> Result<Args, ConfigError> {
    let mut out = Args::default();
    let mut positional_seen = false;
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let origin = Origin::Arg { index: i + 1 };
        i += 1;
        let (spec, written, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = long.split_once('=').map_or((long, None), |(n, v)| (n, Some(v.to_owned())));
            let spec = match options::find_abbreviated(name) {
                Ok(Some(spec)) => spec,
                Ok(None) => {
                    return Err(ConfigError::UnknownOption {
                        origin,
                        name: name.to_owned(),
                        suggestion: options::suggest(name).map(str::to_owned),
                    })
                }
                Err(names) => {
                    let names: Vec<String> = names.iter().map(|n| format!("--{n}")).collect();
                    return Err(ConfigError::Syntax {
                        origin,
                        message: format!("--{name} is ambiguous: it could be {}", names.join(", ")),
                    });
                }
            };
            // An abbreviation stands for the full name (the one later messages use).
            let written = if options::find(name).is_some() { name } else { spec.name };
            (spec, written.to_owned(), inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or_default(); // non-empty: filtered above
            let rest: String = chars.collect();
            let spec = options::find_short(c).ok_or_else(|| ConfigError::UnknownOption {
                origin: origin.clone(),
                name: format!("-{c}"),
                suggestion: None,
            })?;
            (spec, spec.name.to_owned(), (!rest.is_empty()).then_some(rest))
        } else {
            if positional_seen {
                return Err(ConfigError::Syntax {
                    origin,
                    message: format!("unexpected argument \"{arg}\" (only one config file may be given without --ini)"),
                });
            }
            positional_seen = true;
            let file = arg.rsplit_once(':').map_or(arg.as_str(), |(f, s)| if s.contains('/') { arg } else { f });
            let format = Format::from_path(file).ok_or_else(|| ConfigError::Syntax {
                origin: origin.clone(),
                message: format!("\"{arg}\": expected a .ini, .json, .yaml or .yml config file"),
            })?;
            let option = match format {
                Format::Ini => "ini",
                Format::Json => "json",
                Format::Yaml => "yaml",
            };
            out.sources.push(Source::File { option, spec: arg.clone(), format: Some(format), origin });
            continue;
        };
        let value = match (inline, spec.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool | Kind::Action) => "true".to_owned(),
            // uWSGI's `--log-date` takes its strftime format only inline (`--log-date=%Y`).
            (None, _) if spec.name == "logdate" => "true".to_owned(),
            // So does `--mule` its code (`--mule=file.py`): alone, it adds a mule without code.
            // Differs from uWSGI: a following `file.py` or `module:function` (never a config
            // file: those are `.ini`, `.json`, `.yaml`) is taken as its code too.
            (None, _) if spec.name == "mule" => match args.get(i) {
                Some(next) if is_mule_code(next) => {
                    i += 1;
                    next.clone()
                }
                _ => String::new(),
            },
            // `--chmod-socket` alone means 666; it takes the next argument only if it's a mode.
            (None, Kind::Mode) => match args.get(i) {
                Some(next) if !next.is_empty() && next.bytes().all(|b| b.is_ascii_digit()) => {
                    i += 1;
                    next.clone()
                }
                _ => "true".to_owned(),
            },
            (None, _) => {
                let v = args.get(i).cloned().ok_or_else(|| ConfigError::Syntax {
                    origin: origin.clone(),
                    message: format!("{arg}: missing value"),
                })?;
                i += 1;
                v
            }
        };
        push(&mut out, spec, written, value, origin)?;
    }
    Ok(out)
}

/// A command-line word that reads as a mule's code: `path.py` or `module:function`.
fn is_mule_code(word: &str) -> bool {
    let config_file = |w: &str| Format::from_path(w.rsplit_once(':').map_or(w, |(f, _)| f)).is_some();
    !word.starts_with('-')
        && (std::path::Path::new(word).extension().is_some_and(|e| e == "py") || word.contains(':'))
        && !config_file(word)
}

fn push(
    out: &mut Args,
    spec: &'static OptionSpec,
    written: String,
    value: String,
    origin: Origin,
) -> Result<(), ConfigError> {
    match spec.kind {
        Kind::Action => {
            let action = match spec.name {
                "help" => Action::Help,
                "version" => Action::Version,
                _ => Action::ShowConfig,
            };
            if out.action.is_none() || action == Action::Help {
                out.action = Some(action);
            }
        }
        Kind::Signal => {
            let control = if spec.name == "stop" { Control::Stop } else { Control::Reload };
            if out.action.is_none() {
                out.action = Some(Action::Signal(control, value));
            }
        }
        Kind::ConfigFile => out.sources.push(Source::File { option: spec.name, spec: value, format: None, origin }),
        Kind::Logic => {
            return Err(ConfigError::Syntax { origin, message: format!("--{written} is only valid in config files") });
        }
        _ => out.sources.push(Source::Flag(Entry { key: written, value, origin })),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    fn flags(a: &[&str]) -> Vec<(String, String)> {
        parse_args(&args(a))
            .unwrap()
            .sources
            .into_iter()
            .map(|s| match s {
                Source::Flag(e) => (e.key, e.value),
                Source::File { option, spec, .. } => (format!("file:{option}"), spec),
            })
            .collect()
    }

    #[test]
    fn reads_long_short_inline_and_bare_forms() {
        assert_eq!(
            flags(&[
                "--processes",
                "4",
                "--threads=2",
                "-M",
                "-p8",
                "--vacuum",
                "-s",
                ":1",
                "--chmod-socket",
                "--master"
            ]),
            vec![
                ("processes".into(), "4".into()),
                ("threads".into(), "2".into()),
                ("master".into(), "true".into()),
                ("processes".into(), "8".into()),
                ("vacuum".into(), "true".into()),
                ("socket".into(), ":1".into()),
                ("chmod-socket".into(), "true".into()),
                ("master".into(), "true".into()),
            ]
        );
    }

    #[test]
    fn positional_and_ini_flags_become_files() {
        assert_eq!(
            flags(&["app.ini", "--ini", "b.ini:prod", "--yaml", "c.yml"]),
            vec![
                ("file:ini".into(), "app.ini".into()),
                ("file:ini".into(), "b.ini:prod".into()),
                ("file:yaml".into(), "c.yml".into()),
            ]
        );
    }

    #[test]
    fn long_options_may_be_abbreviated_as_with_getopt() {
        assert_eq!(
            flags(&["--wsgi-fil", "app.py", "--proces=2", "--http-socket", ":80"]),
            vec![
                ("wsgi-file".into(), "app.py".into()),
                ("processes".into(), "2".into()),
                ("http-socket".into(), ":80".into())
            ]
        );
        assert_eq!(parse_args(&args(&["--show-confi"])).unwrap().action, Some(Action::ShowConfig));
    }

    #[test]
    fn log_date_takes_its_format_only_inline() {
        assert_eq!(
            flags(&["--log-date", "--logdate=%Y"]),
            vec![("log-date".into(), "true".into()), ("logdate".into(), "%Y".into())]
        );
    }

    #[test]
    fn mule_takes_its_code_only_inline() {
        assert_eq!(
            flags(&["--mule", "--mule=w.py", "--mules", "2"]),
            vec![("mule".into(), String::new()), ("mule".into(), "w.py".into()), ("mules".into(), "2".into())]
        );
        // A following file.py or module:function is its code; a config file is not.
        assert_eq!(
            flags(&["--mule", "w.py", "--mule", "jobs:run", "--mule", "app.ini:prod"]),
            vec![
                ("mule".into(), "w.py".into()),
                ("mule".into(), "jobs:run".into()),
                ("mule".into(), String::new()),
                ("file:ini".into(), "app.ini:prod".into()),
            ]
        );
    }

    #[test]
    fn help_wins_over_other_actions() {
        assert_eq!(parse_args(&args(&["--show-config", "--help"])).unwrap().action, Some(Action::Help));
        assert_eq!(parse_args(&args(&["--version"])).unwrap().action, Some(Action::Version));
    }

    #[test]
    fn stop_and_reload_take_a_pidfile() {
        let stop = parse_args(&args(&["--stop", "/run/app.pid"])).unwrap().action;
        assert_eq!(stop, Some(Action::Signal(Control::Stop, "/run/app.pid".into())));
        let reload = parse_args(&args(&["--reload=app.pid"])).unwrap().action;
        assert_eq!(reload, Some(Action::Signal(Control::Reload, "app.pid".into())));
        assert!(parse_args(&args(&["--stop"])).is_err(), "the pidfile is required");
    }

    #[test]
    fn errors_name_the_argument() {
        let e = |a: &[&str]| parse_args(&args(a)).unwrap_err().to_string();
        assert_eq!(
            e(&["--proccesses", "4"]),
            "argument 1: unknown option \"proccesses\" (did you mean \"processes\"?)"
        );
        assert_eq!(e(&["--http"]), "argument 1: --http: missing value");
        assert_eq!(
            e(&["--http-socke", ":80"]),
            "argument 1: --http-socke is ambiguous: it could be --http-socket, --http-socket-modifier1, --http-socket-modifier2"
        );
        assert_eq!(
            e(&["a.ini", "b.ini"]),
            "argument 2: unexpected argument \"b.ini\" (only one config file may be given without --ini)"
        );
        assert_eq!(e(&["app.conf"]), "argument 1: \"app.conf\": expected a .ini, .json, .yaml or .yml config file");
        assert_eq!(e(&["-Z"]), "argument 1: unknown option \"-Z\"");
        assert_eq!(e(&["-Q"]), "argument 1: -Q: missing value", "uWSGI's -Q is --spooler");
    }
}
