//! Master crons (`cron`, `cron2`, `unique-cron`): the parsed entries and uWSGI's schedule
//! rule (`core/master_utils.c`, `uwsgi_cron_task_needs_execution`). Pure: the master's runner
//! (`ruwsgi::master::cron`) asks `Cron::is_due` with the local time once a second.
//!
//! Each of the five fields is a number to match, or negative: `-1` matches any value and
//! `-N` matches values divisible by N (crontab's `*/N`). As in crontab, when both the day
//! of month and the weekday are given (non-negative), either one matching is enough.

/// A broken-down local time, as the schedule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronTime {
    /// 0-59.
    pub minute: i32,
    /// 0-23.
    pub hour: i32,
    /// Day of month, 1-31.
    pub day: i32,
    /// 1-12.
    pub month: i32,
    /// Day of week, 0-6, Sunday = 0.
    pub week: i32,
}

/// `harakiri` of one cron command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronHarakiri {
    /// `cron-harakiri` applies (none when that is 0).
    Default,
    /// `cron2 harakiri=0`: never killed.
    Off,
    /// Killed (its whole process group) after this many seconds.
    Seconds(u64),
}

/// One cron entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    /// Minute field (negative = every N).
    pub minute: i32,
    /// Hour field.
    pub hour: i32,
    /// Day-of-month field.
    pub day: i32,
    /// Month field (1-12).
    pub month: i32,
    /// Weekday field (0-6, 7 is also Sunday).
    pub week: i32,
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// `unique-cron` / `cron2 unique=1`: not started while the previous run lives.
    pub unique: bool,
    /// When its run is killed.
    pub harakiri: CronHarakiri,
}

const FIELDS: [(&str, i32, i32); 5] =
    [("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("week", 0, 7)];

fn field(name: &str, text: &str, min: i32, max: i32) -> Result<i32, String> {
    let n: i32 = text.parse().map_err(|_| format!("{name}: expected a number, -1 (any) or -N (every N)"))?;
    // uWSGI accepts any number (one out of range never matches); refusing it catches typos.
    if n >= 0 && !(min..=max).contains(&n) {
        return Err(format!("{name} {n} is out of range ({min}-{max}, or -N)"));
    }
    Ok(n)
}

/// `cron = MIN HOUR DAY MONTH WEEKDAY COMMAND`.
pub fn parse_cron(value: &str, unique: bool) -> Result<Cron, String> {
    let mut rest = value.trim_start();
    let mut nums = [0i32; 5];
    for (slot, (name, min, max)) in nums.iter_mut().zip(FIELDS) {
        let (word, tail) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if word.is_empty() {
            return Err("expected: minute hour day month weekday command".to_owned());
        }
        *slot = field(name, word, min, max)?;
        rest = tail.trim_start();
    }
    if rest.is_empty() {
        return Err("expected: minute hour day month weekday command".to_owned());
    }
    let [minute, hour, day, month, week] = nums;
    Ok(Cron { minute, hour, day, month, week, command: rest.to_owned(), unique, harakiri: CronHarakiri::Default })
}

/// `cron2 = [key=value,...] COMMAND`; keys `minute hour day month week unique harakiri`,
/// each field defaulting to -1 (any).
pub fn parse_cron2(value: &str) -> Result<Cron, String> {
    let (keys, command) = match value.split_once(' ') {
        Some((first, rest)) if first.contains('=') => (first, rest.trim_start()),
        _ if value.split(' ').next().is_some_and(|w| w.contains('=')) => {
            return Err("expected key=value,... command".to_owned())
        }
        _ => ("", value.trim()),
    };
    if command.is_empty() {
        return Err("expected a command".to_owned());
    }
    let mut cron = Cron {
        minute: -1,
        hour: -1,
        day: -1,
        month: -1,
        week: -1,
        command: command.to_owned(),
        unique: false,
        harakiri: CronHarakiri::Default,
    };
    for pair in keys.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| format!("\"{pair}\": expected key=value"))?;
        let range = |name| FIELDS.iter().find(|f| f.0 == name).map_or((0, 0), |f| (f.1, f.2));
        match k {
            "minute" | "hour" | "day" | "month" | "week" => {
                let (min, max) = range(k);
                let n = field(k, v, min, max)?;
                *match k {
                    "minute" => &mut cron.minute,
                    "hour" => &mut cron.hour,
                    "day" => &mut cron.day,
                    "month" => &mut cron.month,
                    _ => &mut cron.week,
                } = n;
            }
            "unique" => cron.unique = v.parse::<u64>().map_err(|_| "unique: expected 0 or 1")? != 0,
            "harakiri" => {
                let secs: u64 = v.parse().map_err(|_| "harakiri: expected seconds")?;
                cron.harakiri = if secs == 0 { CronHarakiri::Off } else { CronHarakiri::Seconds(secs) };
            }
            "legion" => return Err("legion crons are not supported (ruwsgi has no legions)".to_owned()),
            other => return Err(format!("unknown key \"{other}\"")),
        }
    }
    Ok(cron)
}

impl Cron {
    /// uWSGI's rule: does the schedule match this minute?
    #[must_use]
    pub fn is_due(&self, t: &CronTime) -> bool {
        let matches = |want: i32, now: i32| if want < 0 { now % want.abs() == 0 } else { want == now };
        let week = if self.week == 7 { 0 } else { self.week };
        let fixed = matches(self.minute, t.minute) && matches(self.hour, t.hour) && matches(self.month, t.month);
        if self.day >= 0 && week >= 0 {
            fixed && (t.day == self.day || t.week == week)
        } else {
            fixed && matches(self.day, t.day) && matches(week, t.week)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i32, hour: i32, day: i32, month: i32, week: i32) -> CronTime {
        CronTime { minute, hour, day, month, week }
    }

    #[test]
    fn parses_the_five_fields_and_the_command() {
        let c = parse_cron("0 -1 -1 -1 -1 /usr/bin/backup --all  now", false).unwrap();
        assert_eq!((c.minute, c.hour, c.day, c.month, c.week), (0, -1, -1, -1, -1));
        assert_eq!(c.command, "/usr/bin/backup --all  now");
        assert!(parse_cron("0 -1 -1 -1 -1", false).is_err());
        assert!(parse_cron("60 -1 -1 -1 -1 x", false).unwrap_err().contains("minute 60"));
        assert!(parse_cron("* * * * * x", false).unwrap_err().contains("minute"));
        assert!(parse_cron("0 0 0 -1 -1 x", false).unwrap_err().contains("day 0"));
    }

    #[test]
    fn minus_one_is_any_and_minus_n_is_every_n() {
        let every = parse_cron("-1 -1 -1 -1 -1 x", false).unwrap();
        assert!(every.is_due(&at(37, 13, 6, 12, 0)));
        let five = parse_cron("-5 -1 -1 -1 -1 x", false).unwrap();
        assert!(five.is_due(&at(35, 1, 1, 1, 1)));
        assert!(!five.is_due(&at(36, 1, 1, 1, 1)));
        let nightly = parse_cron("30 2 -1 -1 -1 x", false).unwrap();
        assert!(nightly.is_due(&at(30, 2, 9, 4, 3)));
        assert!(!nightly.is_due(&at(30, 3, 9, 4, 3)));
        assert!(!nightly.is_due(&at(31, 2, 9, 4, 3)));
    }

    #[test]
    fn day_and_weekday_are_ored_when_both_are_given() {
        // The 1st of the month or any Monday, at midnight.
        let c = parse_cron("0 0 1 -1 1 x", false).unwrap();
        assert!(c.is_due(&at(0, 0, 1, 5, 4)));
        assert!(c.is_due(&at(0, 0, 15, 5, 1)));
        assert!(!c.is_due(&at(0, 0, 15, 5, 2)));
        // 7 is Sunday too.
        let sunday = parse_cron("0 0 -1 -1 7 x", false).unwrap();
        assert!(sunday.is_due(&at(0, 0, 3, 5, 0)));
    }

    #[test]
    fn cron2_reads_keys_and_defaults_to_every_minute() {
        let c = parse_cron2("minute=-10,unique=1,harakiri=30 python manage.py clearsessions").unwrap();
        assert_eq!((c.minute, c.hour, c.unique), (-10, -1, true));
        assert_eq!(c.harakiri, CronHarakiri::Seconds(30));
        assert_eq!(c.command, "python manage.py clearsessions");
        let c = parse_cron2("echo hi").unwrap();
        assert_eq!((c.minute, c.week, c.command.as_str()), (-1, -1, "echo hi"));
        assert_eq!(parse_cron2("harakiri=0 x").unwrap().harakiri, CronHarakiri::Off);
        assert!(parse_cron2("minute=5").is_err());
        assert!(parse_cron2("color=red x").unwrap_err().contains("color"));
        assert!(parse_cron2("legion=l x").is_err());
    }
}
