//! Where an option came from and what can go wrong while reading it. Pure data: every
//! message is one line naming the `file:line` (or argv position / env var) and the option.

use std::fmt;

/// The place an option value was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file, named as the user wrote it; `line` is 1-based (`None` for JSON/YAML,
    /// whose parsers don't keep positions).
    File {
        /// The file as named on the command line or in the including file.
        file: String,
        /// 1-based line number, when known.
        line: Option<usize>,
    },
    /// A command-line argument, 1-based position in argv without the program name.
    Arg {
        /// 1-based position.
        index: usize,
    },
    /// A `UWSGI_*` environment variable.
    Env {
        /// The variable's name, e.g. `UWSGI_PROCESSES`.
        var: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { file, line: Some(line) } => write!(f, "{file}:{line}"),
            Self::File { file, line: None } => write!(f, "{file}"),
            Self::Arg { index } => write!(f, "argument {index}"),
            Self::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

impl Origin {
    /// `app.ini:7: harakiri = "30s"`, `--http ":80x"` or `UWSGI_HARAKIRI="30s"`: the
    /// option and value in the syntax the user wrote them.
    #[must_use]
    pub fn subject(&self, name: &str, value: &str) -> String {
        match self {
            Self::File { .. } => format!("{self}: {name} = \"{value}\""),
            Self::Arg { .. } => format!("--{name} \"{value}\""),
            Self::Env { var } => format!("{var}=\"{value}\""),
        }
    }
}

/// A configuration mistake. Each stops start-up; `Display` is one line without a program
/// prefix (the runtime prints `ruwsgi: <error>` and exits 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A command-line flag that is not a uWSGI option (uWSGI's getopt refuses those too).
    #[error("{origin}: unknown option \"{name}\"{}", did_you_mean(.suggestion.as_deref()))]
    UnknownOption {
        /// Where it was written.
        origin: Origin,
        /// The name as written.
        name: String,
        /// The closest known option, if one is close enough.
        suggestion: Option<String>,
    },
    /// Under `strict`: a key that is not a uWSGI option (without `strict` it is a custom
    /// placeholder, with a warning if nothing uses it).
    #[error(
        "{origin}: unknown option \"{name}\"{}: strict mode allows only real options (define placeholders with set-placeholder)",
        did_you_mean(.suggestion.as_deref())
    )]
    StrictUnknown {
        /// Where it was written.
        origin: Origin,
        /// The name as written.
        name: String,
        /// The closest known option, if one is close enough.
        suggestion: Option<String>,
    },
    /// Under `strict`: a uWSGI option ruwsgi doesn't implement (without `strict`, a warning).
    #[error("{origin}: option \"{name}\" is not implemented by ruwsgi ({differs}): strict mode refuses it")]
    NotImplemented {
        /// Where it was written.
        origin: Origin,
        /// The option as written.
        name: String,
        /// What would be different without it.
        differs: &'static str,
    },
    /// A uWSGI option ruwsgi doesn't implement and can't safely ignore.
    #[error("{origin}: option \"{name}\" is not implemented by ruwsgi and can't be ignored: {reason}")]
    Refused {
        /// Where it was written.
        origin: Origin,
        /// The option as written.
        name: String,
        /// Why running without it would be unsafe or wrong.
        reason: &'static str,
    },
    /// The value doesn't parse as the option's kind.
    #[error("{}: {expected}", origin.subject(name, value))]
    BadValue {
        /// Where it was written.
        origin: Origin,
        /// The option as written.
        name: String,
        /// The offending value (after expansion).
        value: String,
        /// What was expected, e.g. `expected [host]:port`.
        expected: String,
    },
    /// A config file (`--ini`, `include =`, `@(file)`, ...) can't be read or parsed.
    #[error("{}: {reason}", origin.subject(name, path))]
    UnreadableFile {
        /// Where it was named.
        origin: Origin,
        /// The option naming it.
        name: String,
        /// The path as written.
        path: String,
        /// `file not found`, `permission denied`, a JSON syntax error, ...
        reason: String,
    },
    /// `include`/`ini` of a file that is already being read.
    #[error("{}: include cycle ({path} is already being read)", origin.subject(name, path))]
    IncludeCycle {
        /// Where the inclusion was written.
        origin: Origin,
        /// The including option.
        name: String,
        /// The path as written.
        path: String,
    },
    /// `%(name)` expands to a value that (eventually) uses `%(name)` again.
    #[error("{origin}: {name}: placeholder %({placeholder}) refers to itself")]
    PlaceholderCycle {
        /// Where it was used.
        origin: Origin,
        /// The option whose value uses it.
        name: String,
        /// The placeholder's name.
        placeholder: String,
    },
    /// Structure problems: a config that unrolls too far, a missing command-line value, two
    /// positional config files...
    #[error("{origin}: {message}")]
    Syntax {
        /// Where it was found.
        origin: Origin,
        /// What is wrong, one line.
        message: String,
    },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean \"{s}\"?)"))
}
