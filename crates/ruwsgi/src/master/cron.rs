//! Master crons (`cron`, `cron2`, `unique-cron`): on each loop turn while serving, the
//! master checks every entry against the local time (`ruwsgi_config::cron`, uWSGI's rule)
//! and starts the due ones as `/bin/sh -c COMMAND` in their own session, without waiting:
//! the reap loop hands exited pids to `Crons::reaped`. So the master stays single-threaded
//! and never blocks on a cron command.
//!
//! As uWSGI (core/cron.c): an entry runs at most once per 60 s; a `unique` one is skipped
//! while its previous run lives; a run past its harakiri (`cron-harakiri`, or `cron2`'s
//! `harakiri=`) gets SIGKILL on its whole process group. The log lines are uWSGI's.

use std::os::unix::process::CommandExt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{Datelike, Timelike};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use ruwsgi_config::cron::{Cron, CronHarakiri, CronTime};

/// One cron entry and its last run.
struct Job {
    spec: Cron,
    /// The running command, if any (a non-unique entry started again forgets the older run,
    /// as uWSGI does; the reap loop collects it silently).
    pid: Option<Pid>,
    /// Epoch second the running command started.
    started_at: i64,
    /// Epoch second of the last start (0 = never).
    last_start: i64,
    /// Epoch second after which the running command is killed.
    harakiri_at: Option<i64>,
}

/// Every cron entry of the config.
pub struct Crons {
    jobs: Vec<Job>,
    /// `cron-harakiri`.
    default_harakiri: u64,
}

fn epoch() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The local time as the schedule sees it.
pub(super) fn local_time() -> CronTime {
    let now = chrono::Local::now();
    CronTime {
        minute: now.minute() as i32,
        hour: now.hour() as i32,
        day: now.day() as i32,
        month: now.month() as i32,
        week: now.weekday().num_days_from_sunday() as i32,
    }
}

impl Crons {
    pub fn new(specs: &[Cron], default_harakiri: u64) -> Self {
        for spec in specs {
            tracing::info!("[uwsgi-cron] command \"{}\" registered as cron task", spec.command);
        }
        let jobs = specs
            .iter()
            .map(|spec| Job { spec: spec.clone(), pid: None, started_at: 0, last_start: 0, harakiri_at: None })
            .collect();
        Self { jobs, default_harakiri }
    }

    /// Starts the due commands and kills the ones past their harakiri.
    pub fn tick(&mut self) {
        if !self.jobs.is_empty() {
            self.tick_at(epoch(), &local_time());
        }
    }

    /// `tick` at epoch second `now`, local time `time`.
    fn tick_at(&mut self, now: i64, time: &CronTime) {
        for job in &mut self.jobs {
            if let (Some(pid), Some(deadline)) = (job.pid, job.harakiri_at) {
                if now > deadline {
                    tracing::error!("*** HARAKIRI ON CRON \"{}\" (pid: {pid}) ***", job.spec.command);
                    let _ = killpg(pid, Signal::SIGKILL);
                    job.harakiri_at = None;
                }
            }
            if job.spec.unique && job.pid.is_some() {
                continue;
            }
            if !job.spec.is_due(time) || now - job.last_start < 60 {
                continue;
            }
            job.last_start = now;
            match spawn(&job.spec.command) {
                Ok(pid) => {
                    tracing::info!("[uwsgi-cron] running \"{}\" (pid {pid})", job.spec.command);
                    job.pid = Some(pid);
                    job.started_at = now;
                    let limit = match job.spec.harakiri {
                        CronHarakiri::Default => self.default_harakiri,
                        CronHarakiri::Off => 0,
                        CronHarakiri::Seconds(s) => s,
                    };
                    job.harakiri_at = (limit > 0).then(|| now + limit as i64);
                }
                Err(e) => tracing::error!("[uwsgi-cron] cannot run \"{}\": {e}", job.spec.command),
            }
        }
    }

    /// True when `pid` was a cron command (its end is logged).
    pub fn reaped(&mut self, pid: Pid) -> bool {
        let Some(job) = self.jobs.iter_mut().find(|j| j.pid == Some(pid)) else { return false };
        tracing::info!(
            "[uwsgi-cron] command \"{}\" running with pid {pid} exited after {} second(s)",
            job.spec.command,
            epoch() - job.started_at
        );
        job.pid = None;
        job.harakiri_at = None;
        true
    }
}

/// Starts `/bin/sh -c COMMAND` in a new session (so harakiri reaches all it started).
fn spawn(command: &str) -> std::io::Result<Pid> {
    let mut cmd = crate::hooks::shell(command);
    cmd.process_group(0);
    let child = cmd.spawn()?;
    // The `Child` handle only holds the pid: the master's reap loop collects the exit.
    Ok(Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use ruwsgi_config::cron::parse_cron;

    fn reap(crons: &mut Crons, pid: Pid) {
        assert!(matches!(waitpid(pid, None), Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))));
        assert!(crons.reaped(pid));
    }

    #[test]
    fn a_unique_cron_waits_for_its_run_and_any_cron_starts_once_a_minute() {
        let specs =
            [parse_cron("-1 -1 -1 -1 -1 sleep 30", true).unwrap(), parse_cron("-1 -1 -1 -1 -1 true", false).unwrap()];
        let mut crons = Crons::new(&specs, 0);
        let time = CronTime { minute: 0, hour: 0, day: 1, month: 1, week: 0 };
        crons.tick_at(1000, &time);
        let (sleeper, quick) = (crons.jobs[0].pid.unwrap(), crons.jobs[1].pid.unwrap());
        reap(&mut crons, quick);
        // Within the minute: nothing starts again.
        crons.tick_at(1030, &time);
        assert_eq!(crons.jobs[1].pid, None);
        // A minute later the plain one runs again; the unique one still runs, so it doesn't.
        crons.tick_at(1060, &time);
        assert_eq!(crons.jobs[0].pid, Some(sleeper));
        let quick = crons.jobs[1].pid.expect("started again");
        reap(&mut crons, quick);
        // Once its run is gone, the unique one starts on the next due tick.
        killpg(sleeper, Signal::SIGKILL).unwrap();
        reap(&mut crons, sleeper);
        crons.tick_at(1061, &time);
        let again = crons.jobs[0].pid.expect("unique cron started again");
        assert_ne!(again, sleeper);
        killpg(again, Signal::SIGKILL).unwrap();
        reap(&mut crons, again);
        assert!(!crons.reaped(again), "a pid is reaped once");
    }

    #[test]
    fn harakiri_kills_the_process_group_after_its_seconds() {
        let mut spec = parse_cron("-1 -1 -1 -1 -1 sleep 30", false).unwrap();
        spec.harakiri = CronHarakiri::Seconds(5);
        let mut crons = Crons::new(&[spec], 0);
        let time = CronTime { minute: 7, hour: 0, day: 1, month: 1, week: 0 };
        crons.tick_at(1000, &time);
        let pid = crons.jobs[0].pid.unwrap();
        crons.tick_at(1005, &time);
        assert_eq!(crons.jobs[0].harakiri_at, Some(1005), "not yet");
        crons.tick_at(1006, &time);
        assert_eq!(waitpid(pid, None), Ok(WaitStatus::Signaled(pid, Signal::SIGKILL, false)));
    }
}
