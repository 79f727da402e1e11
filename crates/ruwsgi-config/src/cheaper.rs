//! The settings of uWSGI's adaptive process spawning (`cheaper*`, `idle`, `die-on-idle`,
//! `cheap`), typed, with uWSGI's defaults and its start-up checks (`core/init.c`). The
//! runtime's `master/cheaper.rs` runs the algorithms. Pure: no I/O.

/// `cheaper-algo`: how the master decides to add or remove workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheaperAlgo {
    /// uWSGI's default: add `cheaper-step` workers when every worker has been busy for more
    /// than `cheaper-overload` checks, remove one every `cheaper-overload` idle checks.
    #[default]
    Spare,
    /// uWSGI 2.1's `spare2`: keep `cheaper` idle workers, remove one after `cheaper-idle`
    /// checks with more.
    Spare2,
    /// Add workers while the listen queue is longer than `cheaper-overload`, remove one per
    /// check while it is shorter.
    Backlog,
    /// The `cheaper_busyness` plugin: the share of time the workers spent in requests over
    /// each `cheaper-overload` window, against `cheaper-busyness-min`/`-max`.
    Busyness,
    /// Only the master FIFO's `+`/`-` change the worker count.
    Manual,
}

impl CheaperAlgo {
    /// The algorithm named `name` (uWSGI's names).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "spare" => Self::Spare,
            "spare2" => Self::Spare2,
            "backlog" => Self::Backlog,
            "busyness" => Self::Busyness,
            "manual" => Self::Manual,
            _ => return None,
        })
    }

    /// uWSGI's name of the algorithm.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Spare => "spare",
            Self::Spare2 => "spare2",
            Self::Backlog => "backlog",
            Self::Busyness => "busyness",
            Self::Manual => "manual",
        }
    }
}

/// The `cheaper-busyness-*` options (defaults of uWSGI's `cheaper_busyness` plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_field_names)] // the uWSGI option names
pub struct Busyness {
    /// `cheaper-busyness-max`: average busyness (%) above which workers are added.
    pub max: u64,
    /// `cheaper-busyness-min`: average busyness (%) below which a worker is removed.
    pub min: u64,
    /// `cheaper-busyness-multiplier`: a worker is removed after `cheaper-overload` ×
    /// multiplier seconds below `min`.
    pub multiplier: u64,
    /// `cheaper-busyness-penalty`: added to the multiplier when workers come back too soon
    /// after one was removed.
    pub penalty: u64,
    /// `cheaper-busyness-verbose`: log every check.
    pub verbose: bool,
    /// `cheaper-busyness-backlog-alert`: a listen queue longer than this spawns emergency
    /// workers at once.
    pub backlog_alert: u64,
    /// `cheaper-busyness-backlog-multiplier`: the multiplier while emergency workers run.
    pub backlog_multiplier: u64,
    /// `cheaper-busyness-backlog-step`: emergency workers spawned at a time.
    pub backlog_step: u64,
    /// `cheaper-busyness-backlog-nonzero`: a listen queue non-empty for this many seconds
    /// spawns emergency workers.
    pub backlog_nonzero: u64,
}

impl Default for Busyness {
    fn default() -> Self {
        Self {
            max: 50,
            min: 25,
            multiplier: 10,
            penalty: 2,
            verbose: false,
            backlog_alert: 33,
            backlog_multiplier: 3,
            backlog_step: 1,
            backlog_nonzero: 60,
        }
    }
}

/// Adaptive process spawning. `count` is the `cheaper` option: 0 (the default) runs every
/// worker all the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cheaper {
    /// `cheaper`: the fewest workers kept running (0 = off).
    pub count: u64,
    /// `cheaper-initial`: workers started at first (0 = `cheaper`).
    pub initial: u64,
    /// `cheaper-step`: workers added at a time.
    pub step: u64,
    /// `cheaper-overload`: seconds (checks) of overload before adding workers; the
    /// `backlog` algorithm's queue threshold; the `busyness` window.
    pub overload: u64,
    /// `cheaper-algo`.
    pub algo: CheaperAlgo,
    /// `cheaper-idle` (`spare2`): checks with too many idle workers before removing one.
    pub cheaper_idle: u64,
    /// `cheaper-rss-limit-soft`: no workers are added while the workers' total RSS (bytes)
    /// is at least this (0 = off).
    pub rss_limit_soft: u64,
    /// `cheaper-rss-limit-hard`: a worker is removed while the total RSS is at least this.
    pub rss_limit_hard: u64,
    /// The `cheaper-busyness-*` options.
    pub busyness: Busyness,
    /// `idle`: after this many seconds without a request every worker is stopped until a
    /// connection arrives (0 = off).
    pub idle: u64,
    /// `die-on-idle`: with `idle`, shut down instead.
    pub die_on_idle: bool,
    /// `cheap`: start without workers; spawn them at the first connection.
    pub cheap: bool,
}

impl Default for Cheaper {
    fn default() -> Self {
        Self {
            count: 0,
            initial: 0,
            step: 1,
            overload: 3,
            algo: CheaperAlgo::Spare,
            cheaper_idle: 10,
            rss_limit_soft: 0,
            rss_limit_hard: 0,
            busyness: Busyness::default(),
            idle: 0,
            die_on_idle: false,
            cheap: false,
        }
    }
}

impl Cheaper {
    /// True when the worker count adapts (`cheaper` > 0).
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.count > 0
    }

    /// uWSGI's start-up checks against `processes`: `Err(message)` where uWSGI exits,
    /// `Ok(warnings)` (uWSGI's words) where it corrects the value, applied to `self`.
    ///
    /// # Errors
    /// The option (with its value) and what it must be, as one line.
    pub fn check(&mut self, processes: u64) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        if self.count > 0 && self.count >= processes {
            return Err(format!("cheaper = {}: must be lower than processes ({processes})", self.count));
        }
        if self.rss_limit_hard > 0 && self.rss_limit_soft == 0 {
            return Err(format!("cheaper-rss-limit-hard = {}: needs cheaper-rss-limit-soft too", self.rss_limit_hard));
        }
        if self.rss_limit_hard > 0 && self.rss_limit_hard <= self.rss_limit_soft {
            return Err(format!(
                "cheaper-rss-limit-hard = {}: must be higher than cheaper-rss-limit-soft ({})",
                self.rss_limit_hard, self.rss_limit_soft
            ));
        }
        if self.step == 0 {
            // uWSGI would never add a worker; one at a time is what `cheaper-step` defaults to.
            self.step = 1;
        }
        if self.overload == 0 {
            // uWSGI divides by it (`idle_count % cheaper_overload`); 1 is the shortest window.
            self.overload = 1;
        }
        if self.enabled() {
            if self.initial == 0 {
                self.initial = self.count;
            } else if self.initial < self.count {
                warnings.push(format!("warning: invalid cheaper-initial value ({}), must be equal or higher than cheaper ({}), using {} as initial number of workers", self.initial, self.count, self.count));
                self.initial = self.count;
            } else if self.initial > processes {
                warnings.push(format!("warning: invalid cheaper-initial value ({}), must be lower or equal than worker count ({processes}), using {processes} as initial number of workers", self.initial));
                self.initial = processes;
            }
        }
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cheaper_must_be_below_processes() {
        let mut c = Cheaper { count: 4, ..Cheaper::default() };
        assert_eq!(c.check(4).unwrap_err(), "cheaper = 4: must be lower than processes (4)");
        assert!(c.check(5).is_ok());
    }

    #[test]
    fn initial_defaults_to_cheaper_and_is_clamped_with_uwsgis_warning() {
        let mut c = Cheaper { count: 2, ..Cheaper::default() };
        assert!(c.check(8).unwrap().is_empty());
        assert_eq!(c.initial, 2);
        let mut c = Cheaper { count: 2, initial: 1, ..Cheaper::default() };
        assert!(c.check(8).unwrap()[0].contains("must be equal or higher than cheaper (2)"));
        assert_eq!(c.initial, 2);
        let mut c = Cheaper { count: 2, initial: 9, ..Cheaper::default() };
        assert!(c.check(8).unwrap()[0].contains("using 8 as initial"));
        assert_eq!(c.initial, 8);
    }

    #[test]
    fn rss_hard_limit_needs_a_lower_soft_one() {
        let mut c = Cheaper { count: 1, rss_limit_hard: 10, ..Cheaper::default() };
        assert!(c.check(4).unwrap_err().contains("needs cheaper-rss-limit-soft"));
        let mut c = Cheaper { count: 1, rss_limit_hard: 10, rss_limit_soft: 10, ..Cheaper::default() };
        assert!(c.check(4).unwrap_err().contains("must be higher"));
    }

    #[test]
    fn knows_uwsgis_algorithm_names() {
        for name in ["spare", "spare2", "backlog", "busyness", "manual"] {
            assert_eq!(CheaperAlgo::parse(name).map(CheaperAlgo::name), Some(name));
        }
        assert_eq!(CheaperAlgo::parse("fast"), None);
    }
}
