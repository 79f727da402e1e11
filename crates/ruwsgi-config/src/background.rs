//! The settings of the master's background processes: spoolers (`spooler*`) and mules
//! (`mule`, `mules`, `farm`, `mule-*`). Typed here from the option table's rows; the
//! runtime's `master::spooler` and `master::mules` use them. No I/O.

use std::path::PathBuf;

/// `spooler*`: queue directories drained by spooler processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolerConfig {
    /// `spooler` (`-Q`): the queue directories, as given (relative ones are resolved
    /// against the directory the server starts in, before `chdir`, as uWSGI does).
    pub dirs: Vec<PathBuf>,
    /// `spooler-processes`: processes per directory (0 counts as 1).
    pub processes: u32,
    /// `spooler-import`: modules or `.py` files imported in each spooler process.
    pub import: Vec<String>,
    /// `spooler-frequency`: seconds between two scans of an idle queue (default 30).
    pub frequency: u64,
    /// `spooler-max-tasks`: a spooler exits after this many tasks and is respawned; 0 = never.
    pub max_tasks: u64,
    /// `spooler-harakiri`: seconds a task may run before its spooler is killed; 0 = never.
    pub harakiri: u64,
    /// `spooler-ordered`: run the tasks in name order (`priority` subdirectories first).
    pub ordered: bool,
    /// `spooler-chdir`: directory entered before each task (else the queue directory).
    pub chdir: Option<PathBuf>,
    /// `spooler-quiet`: no log lines for each task written and run.
    pub quiet: bool,
    /// `touch-spoolers-reload`: files whose mtime change restarts the spoolers.
    pub touch_reload: Vec<PathBuf>,
}

impl Default for SpoolerConfig {
    fn default() -> Self {
        Self {
            dirs: Vec::new(),
            processes: 1,
            import: Vec::new(),
            frequency: 30,
            max_tasks: 0,
            harakiri: 0,
            ordered: false,
            chdir: None,
            quiet: false,
            touch_reload: Vec::new(),
        }
    }
}

/// What one mule runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuleCode {
    /// `mule =` (empty) or `mules = N`: a loop handing messages to `uwsgi.mule_msg_hook`
    /// and running signal handlers.
    Loop,
    /// `mule = path.py`: the file, run as `__main__`.
    File(PathBuf),
    /// `mule = module:function`: the function, called with no arguments.
    Function(String),
}

impl MuleCode {
    /// Reads a `mule` value as uWSGI's Python plugin does: a name ending in `.py` is a file,
    /// one with a `:` a function, an empty one the message loop. Anything else is no code the
    /// Python plugin runs: uWSGI then runs the message loop too.
    #[must_use]
    pub fn parse(value: &str) -> Self {
        let value = value.trim();
        // Case-sensitive, as uWSGI's `uwsgi_endswith`.
        if std::path::Path::new(value).extension().is_some_and(|e| e == "py") {
            Self::File(PathBuf::from(value))
        } else if value.contains(':') {
            Self::Function(value.to_owned())
        } else {
            Self::Loop
        }
    }
}

/// `farm = name:1,2`: mules sharing a message queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farm {
    /// The name `uwsgi.mule_msg(msg, "name")` sends to.
    pub name: String,
    /// Its mules' ids (1-based), as given.
    pub mules: Vec<usize>,
}

/// Parses a `farm` value: `name:1,2,3`. The mule ids are checked against the mules at
/// start-up (a `mule` line may follow the `farm` line).
pub fn parse_farm(value: &str) -> Result<Farm, &'static str> {
    let expected = "expected name:mule[,mule...]";
    let (name, list) = value.split_once(':').ok_or(expected)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(expected);
    }
    let mules = list
        .split(',')
        .map(|id| id.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or("expected mule ids (1, 2...) after the name")?;
    Ok(Farm { name: name.to_owned(), mules })
}

/// `mule*` and `farm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MuleConfig {
    /// One entry per mule, in option order: mule id N runs `mules[N - 1]`.
    pub mules: Vec<MuleCode>,
    /// `farm`.
    pub farms: Vec<Farm>,
    /// `mule-harakiri`: seconds a mule's message or signal handler may run; 0 = no limit.
    pub harakiri: u64,
    /// `mule-reload-mercy`: seconds a mule may take to exit on reload/shutdown (default 60).
    pub reload_mercy: u64,
    /// `mule-msg-size`: socket buffer bytes of each message queue; 0 = the system's default.
    pub msg_size: usize,
    /// `touch-mules-reload`: files whose mtime change restarts the mules.
    pub touch_reload: Vec<PathBuf>,
}

impl Default for MuleConfig {
    fn default() -> Self {
        Self {
            mules: Vec::new(),
            farms: Vec::new(),
            harakiri: 0,
            reload_mercy: 60,
            msg_size: 0,
            touch_reload: Vec::new(),
        }
    }
}

impl MuleConfig {
    /// The farms that name a mule that doesn't exist: `(farm, mule id)` of the first.
    #[must_use]
    pub fn unknown_farm_mule(&self) -> Option<(&str, usize)> {
        self.farms
            .iter()
            .find_map(|f| f.mules.iter().find(|&&id| id > self.mules.len()).map(|&id| (f.name.as_str(), id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mule_values_as_uwsgi() {
        assert_eq!(MuleCode::parse("worker.py"), MuleCode::File(PathBuf::from("worker.py")));
        assert_eq!(MuleCode::parse("app.tasks:consume"), MuleCode::Function("app.tasks:consume".to_owned()));
        assert_eq!(MuleCode::parse(""), MuleCode::Loop);
        assert_eq!(MuleCode::parse("something"), MuleCode::Loop);
    }

    #[test]
    fn reads_farms() {
        assert_eq!(parse_farm("mail:1,2").unwrap(), Farm { name: "mail".to_owned(), mules: vec![1, 2] });
        assert_eq!(parse_farm(" f : 3 ").unwrap(), Farm { name: "f".to_owned(), mules: vec![3] });
        for bad in ["mail", ":1", "mail:", "mail:0", "mail:1,x"] {
            assert!(parse_farm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_farms_naming_missing_mules() {
        let mut c = MuleConfig { mules: vec![MuleCode::Loop; 2], ..MuleConfig::default() };
        c.farms.push(parse_farm("a:1,2").unwrap());
        assert_eq!(c.unknown_farm_mule(), None);
        c.farms.push(parse_farm("b:2,3").unwrap());
        assert_eq!(c.unknown_farm_mule(), Some(("b", 3)));
    }
}
