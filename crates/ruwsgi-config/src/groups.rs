//! Every uWSGI 2.0 option name that the main table (`options::OPTIONS`) doesn't list: the
//! generated `uwsgi_names` gives each name its group, and this module gives each group one
//! status and one description, so that no real uWSGI option is ever "unknown" to ruwsgi.
//! `options::find` falls back to `find` here. Pure data, no I/O.
//!
//! A group is `NotImplemented` (a start-up warning saying what differs; an error under
//! `strict`) unless ignoring it would leave the server unsafe or silently wrong, in which case
//! it is `Refused` (`docs/options.md` lists the refusals with their reasons), or ruwsgi
//! serves as well without it, in which case it is `IgnoredWithNotice`.

use std::sync::LazyLock;

use crate::options::{Kind, OptionSpec, Status, OPTIONS};
use crate::uwsgi_names::UWSGI_NAMES;

/// Whether a uWSGI option takes a value (getopt's `has_arg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A flag: `--name` alone.
    No,
    /// `--name VALUE`.
    Required,
    /// `--name` or `--name=VALUE`.
    Optional,
}

/// One generated name: `(name, group, value, one-letter alias, the first name of the same
/// option when this is another name of it)`.
pub(crate) type UwsgiName = (&'static str, &'static str, Arg, Option<char>, Option<&'static str>);

/// A group of uWSGI options outside the main table, sharing one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Group {
    /// The group's key, as `scripts/gen-uwsgi-names` writes it.
    pub name: &'static str,
    /// What the group is, in a few words (our own text, for the docs and the table rows).
    pub about: &'static str,
    /// `NotImplemented(what differs)` or `Refused(why)`.
    pub status: Status,
}

const fn group(name: &'static str, about: &'static str, status: Status) -> Group {
    Group { name, about, status }
}

use Status::{NotImplemented, Refused};

/// Every group, in the order `docs/options.md` lists them.
pub(crate) static GROUPS: &[Group] = &[
    group("listeners", "sockets and routers speaking TLS, FastCGI, SCGI, raw TCP or persistent uwsgi; zerg pools; UDP",
        Refused(crate::options::NO_LISTENER)),
    group("isolation", "chroot, pivot_root, capabilities, namespaces, jails, cgroups, early privilege drop",
        Refused(crate::options::NO_ISOLATION)),
    group("config", "config sources and constructs ruwsgi does not read: XML, generic loaders, inherit, inject, declare-option, set, black/white lists",
        Refused("ruwsgi does not read this config construct, so the options it brings in or guards would be wrong")),
    group("routing", "pcre-jit", NotImplemented("regexps are Rust `regex`, compiled once at start-up")),
    group("core", "other settings of uWSGI's core", NotImplemented("it is ignored")),
    group("modifiers", "uwsgi modifier1/modifier2 settings, which select other uWSGI plugins",
        NotImplemented("every request goes to the WSGI app whatever its modifier")),
    group("tls", "TLS settings (certificates, SNI, ciphers, sessions)",
        NotImplemented("ruwsgi's TLS (rustls) has no such setting; it is ignored")),
    group("emperor", "the Emperor and its vassals",
        NotImplemented("ruwsgi runs one instance, not an Emperor with vassals (use systemd or a container orchestrator)")),
    group("legion", "Legion clustering", NotImplemented("the instance runs alone, outside any Legion")),
    group("cron", "uWSGI cron tasks", NotImplemented("the command does not run")),
    group("actions", "print-and-exit and control helpers (dump-options, cflags, connect-and-read, ping...)",
        NotImplemented("ruwsgi does not perform this action and starts the server as usual")),
    group("hooks", "hooks and exec/call/mount actions run at start-up phases, after requests or on touch",
        NotImplemented("the action does not run")),
    group("wait", "waiting at start-up for files, sockets, mountpoints or interfaces",
        NotImplemented("start-up does not wait for it")),
    group("cache", "caches, queues and sharedareas",
        NotImplemented("no uWSGI cache, queue or sharedarea exists, so the app can't use them through the `uwsgi` module")),
    // Every spooler and mule option is in the main table; these groups only keep the
    // generated list's group names known.
    group("spooler", "the spooler", NotImplemented("it is ignored")),
    group("mules", "mule processes and farms", NotImplemented("it is ignored")),
    group("signals", "uWSGI's signal framework and timers", NotImplemented("the signal or timer it configures is not set up (the Python API's signals, timers, crons and file monitors work: docs/python-api.md)")),
    group("locks", "uWSGI locks and file locks", NotImplemented("no uWSGI lock is taken")),
    group("subscriptions", "subscriptions to fastrouter/HTTP routers", NotImplemented("the instance subscribes to no router")),
    group("metrics", "the metrics subsystem, stats pushers, carbon, SNMP, rrdtool, multicast",
        NotImplemented("nothing is collected or pushed; the stats server (and `metrics`) report ruwsgi's figures")),
    group("alarms", "alarms", NotImplemented("no alarm is raised")),
    group("logging", "loggers, log routing and encoders, the log master, other log settings",
        NotImplemented("log lines go to the usual place (stderr, `logto` or `daemonize`) in the usual format")),
    // Every name of this group has a row in the main table (kept for the generated list).
    group("cheaper", "adaptive process spawning (cheaper modes and algorithms)",
        Status::IgnoredWithNotice("ruwsgi keeps all `processes` workers running")),
    group("loops", "async cores and loop engines (gevent, ugreen)",
        NotImplemented("requests run on `threads`, not on a loop engine, so a worker serves `threads` requests at a time")),
    group("routers", "settings of the fastrouter, rawrouter, sslrouter and zerg pools",
        NotImplemented("ruwsgi has no router processes")),
    group("requests", "request and response extras: virtual hosting, error pages, header collection, WebSocket and chunked-input limits, more static-file settings",
        NotImplemented("the request is handled without it")),
    group("http", "settings of uWSGI's HTTP router process",
        NotImplemented("ruwsgi has no HTTP router process: `http` is served by the workers, without these settings")),
    group("python", "other settings of the Python plugin", NotImplemented("it is ignored")),
    group("symcall", "calling C symbols as request handlers", NotImplemented("ruwsgi calls no C symbols")),
];

/// The group of a generated name.
#[must_use]
pub(crate) fn group_of(name: &str) -> Option<&'static Group> {
    let (_, group, ..) = UWSGI_NAMES.iter().find(|(n, ..)| *n == name)?;
    GROUPS.iter().find(|g| g.name == *group)
}

/// The main table's row for a name or alias.
fn listed(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name || o.aliases.contains(&name))
}

/// The row for a uWSGI name the main table doesn't list: the main table's row when uWSGI
/// says it is another name of a listed option (`chmod` is `chmod-socket`), else its group's.
/// `name` has `_` as `-` already; the two uWSGI names with a `_` match either way.
pub(crate) fn find(name: &str) -> Option<&'static OptionSpec> {
    let same =
        |n: &str| n.len() == name.len() && n.bytes().zip(name.bytes()).all(|(a, b)| a == b || (a == b'_' && b == b'-'));
    let (_, _, _, _, alias_of) = UWSGI_NAMES.iter().find(|(n, ..)| same(n))?;
    alias_of.and_then(listed).or_else(|| ROWS.iter().find(|o| same(o.name)))
}

/// The generated names the main table doesn't list, as table rows (built once); names that
/// are another name of a listed option have no row of their own.
static ROWS: LazyLock<Vec<OptionSpec>> = LazyLock::new(|| {
    UWSGI_NAMES
        .iter()
        .filter(|(name, .., alias_of)| listed(name).is_none() && alias_of.and_then(listed).is_none())
        .filter_map(|&(name, group, arg, short, _)| {
            let group = GROUPS.iter().find(|g| g.name == group)?;
            // A flag or an optional value reads like a bool on the command line: `--name` alone
            // takes no value and `--name=value` still works.
            let kind = if arg == Arg::Required { Kind::Text } else { Kind::Bool };
            Some(OptionSpec {
                name,
                aliases: &[],
                short,
                kind,
                repeat: true,
                default: "",
                status: group.status,
                help: group.about,
            })
        })
        .collect()
});

/// The rows of every uWSGI option outside the main table.
pub(crate) fn rows() -> &'static [OptionSpec] {
    &ROWS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_group_has_a_status() {
        for (name, group, ..) in UWSGI_NAMES {
            assert!(GROUPS.iter().any(|g| g.name == *group), "{name}: group {group} is not in GROUPS");
        }
        for g in GROUPS {
            assert!(!g.status.is_supported(), "{}: a group is not supported", g.name);
            assert!(UWSGI_NAMES.iter().any(|(_, group, ..)| *group == g.name), "{}: no option uses this group", g.name);
        }
    }

    #[test]
    fn knows_every_name_of_the_pypi_build() {
        // uWSGI 2.0.31 from PyPI: core plus the embedded plugins, with TLS and PCRE routing.
        assert!(UWSGI_NAMES.len() > 1000, "{}", UWSGI_NAMES.len());
    }
}
