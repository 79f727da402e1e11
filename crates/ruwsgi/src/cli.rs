//! The command line: read the config, print what was asked for, or run the master.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ruwsgi_config::{Command, Control};

/// `ruwsgi ARGS...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    crate::log::init();
    match ruwsgi_config::load(args) {
        Ok(Command::Print(text)) => {
            print!("{text}");
            0
        }
        Ok(Command::Signal { control, pidfile }) => match signal_pidfile(control, &pidfile) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ruwsgi: {e}");
                1
            }
        },
        Ok(Command::Run { config, notices, warnings, show_config, files_read }) => {
            // First, so the notices and warnings are logged once, by the interpreter that runs.
            if let Err(e) = crate::wsgi::reexec_for_optimize(config.optimize) {
                eprintln!("ruwsgi: {e:#}");
                return 1;
            }
            // `print`: plain lines on stdout, as uWSGI's `print` option.
            for line in &config.print {
                println!("{line}");
            }
            for notice in notices {
                tracing::info!("{notice}");
            }
            // The log has no level column (uWSGI style), so the text says it.
            for warning in warnings {
                tracing::warn!("WARNING: {warning}");
            }
            // `show-config = true` in a file: uWSGI logs the config between these lines. One
            // log line each (the log indents the continuation lines of a message).
            if let Some(text) = show_config {
                tracing::info!(";uWSGI instance configuration");
                tracing::info!("[uwsgi]");
                for line in text.lines() {
                    tracing::info!("{line}");
                }
                tracing::info!(";end of configuration");
            }
            if let Err(e) = crate::static_files::check(&config) {
                eprintln!("ruwsgi: {e}");
                return 1;
            }
            crate::master::run(config, &files_read)
        }
        Err(e) => {
            eprintln!("ruwsgi: {e}");
            1
        }
    }
}

/// `--stop`/`--reload PIDFILE`: sends the master in `pidfile` uWSGI's signal for it.
fn signal_pidfile(control: Control, pidfile: &Path) -> Result<(), String> {
    let (option, signal) = match control {
        Control::Stop => ("--stop", Signal::SIGINT),
        Control::Reload => ("--reload", Signal::SIGHUP),
    };
    let text = std::fs::read_to_string(pidfile).map_err(|e| format!("{option} {}: {e}", pidfile.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|&pid| pid > 0)
        .ok_or_else(|| format!("{option} {}: no pid in the file ({:?})", pidfile.display(), text.trim()))?;
    kill(Pid::from_raw(pid), signal)
        .map_err(|e| format!("{option} {}: cannot signal pid {pid}: {e}", pidfile.display()))
}
