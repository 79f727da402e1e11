//! The command line: read the config, print what was asked for, or run the master.

use ruwsgi_config::Command;

/// `ruwsgi ARGS...`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    crate::log::init();
    match ruwsgi_config::load(args) {
        Ok(Command::Print(text)) => {
            print!("{text}");
            0
        }
        Ok(Command::Run { config, notices }) => {
            for notice in notices {
                tracing::info!("{notice}");
            }
            if let Err(e) = crate::static_files::check(&config) {
                eprintln!("ruwsgi: {e}");
                return 1;
            }
            crate::master::run(config)
        }
        Err(e) => {
            eprintln!("ruwsgi: {e}");
            1
        }
    }
}
