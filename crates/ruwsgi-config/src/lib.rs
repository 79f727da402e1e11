//! uWSGI-compatible configuration. Placeholder: the readers and option table land next.
#![forbid(unsafe_code)]

mod config;

pub use config::{Config, SocketProtocol, SocketSpec, StaticMap};

/// Entry point the runtime calls with `sys.argv[1:]`. Reads `--ini`, flags, env vars.
pub fn load(_args: &[String]) -> Result<Config, String> {
    Ok(Config::default())
}
