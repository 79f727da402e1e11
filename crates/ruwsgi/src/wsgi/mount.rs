//! Which loaded app serves a request, as uWSGI picks it (`mount`, `manage-script-name`,
//! `no-default-app`): pure string matching over the mountpoints, no Python and no I/O.
//! `wsgi::App` owns a `MountTable` and applies its `Route` to the environ.
//!
//! uWSGI's rules, in order:
//! 1. With `manage-script-name`, the longest mountpoint that `PATH_INFO` starts with, ending
//!    at a `/` or at the end of `PATH_INFO`, becomes `SCRIPT_NAME`; `PATH_INFO` keeps the rest
//!    (`/blog/post/1` under `/blog` → `/blog` + `/post/1`; `/blog` itself → `/blog` + an empty `PATH_INFO`).
//!    `/blogx` doesn't match `/blog`.
//! 2. Otherwise the app whose mountpoint equals `SCRIPT_NAME` (as sent by nginx's
//!    `uwsgi_param SCRIPT_NAME`, or `""` when absent) serves it. With `vhost` the key is
//!    `host|SCRIPT_NAME` instead, the host being `HTTP_HOST` (port included, as sent) or
//!    else `SERVER_NAME`: `mount = example.com|=site.py` serves `Host: example.com`.
//! 3. Otherwise the default app: the first one loaded whose mountpoint is not a host one
//!    (empty or starting with `/`), unless `no-default-app`.
//! 4. Otherwise no app: the caller answers 500.

/// The mountpoints of the loaded apps, by app id.
#[derive(Debug, Clone)]
pub struct MountTable {
    /// Mountpoint of app N at index N, without a trailing `/`; `""` for the app of
    /// `module`/`wsgi-file` (or `mount = /=...`).
    mountpoints: Vec<String>,
    /// `manage-script-name`.
    manage_script_name: bool,
    /// `vhost`: exact matches are on `host|SCRIPT_NAME`.
    vhost: bool,
    /// App for requests nothing else matches: app 0, or none with `no-default-app`.
    default_app: Option<usize>,
}

/// Where one request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The app id, or `None` when no app matches and there is no default app.
    pub app: Option<usize>,
    /// `manage-script-name` matched: the app's mountpoint becomes `SCRIPT_NAME` and
    /// `PATH_INFO` loses its first `split` bytes (the mountpoint's length).
    pub split: Option<usize>,
}

impl MountTable {
    /// A table over `mountpoints` (by app id, normalised as the config gives them).
    pub fn new(mountpoints: Vec<String>, manage_script_name: bool, no_default_app: bool, vhost: bool) -> Self {
        let default_app = if no_default_app { None } else { default_app(&mountpoints) };
        Self { mountpoints, manage_script_name, vhost, default_app }
    }

    /// `vhost`: `route` needs the host.
    pub fn is_vhost(&self) -> bool {
        self.vhost
    }

    /// The mountpoint of app `id`.
    pub fn mountpoint(&self, id: usize) -> &str {
        &self.mountpoints[id]
    }

    /// `manage-script-name`: `route` needs `PATH_INFO`.
    pub fn manages_script_name(&self) -> bool {
        self.manage_script_name
    }

    /// True when every request goes to app 0 with its environ untouched: one app at `""`
    /// that is also the default. The per-request path then skips routing altogether.
    pub fn is_single_app(&self) -> bool {
        self.mountpoints.len() == 1 && self.mountpoints[0].is_empty() && self.default_app == Some(0)
    }

    /// Routes a request by its `SCRIPT_NAME` (`""` when absent) and `PATH_INFO`, and with
    /// `vhost` its host.
    pub fn route(&self, host: &[u8], script_name: &[u8], path_info: &[u8]) -> Route {
        if self.manage_script_name {
            if let Some(app) = longest_mountpoint(&self.mountpoints, path_info) {
                return Route { app: Some(app), split: Some(self.mountpoints[app].len()) };
            }
        }
        let exact = if self.vhost {
            self.mountpoints
                .iter()
                .position(|m| split_host(m.as_bytes()).is_some_and(|(h, s)| h == host && s == script_name))
        } else {
            self.mountpoints.iter().position(|m| m.as_bytes() == script_name)
        };
        Route { app: exact.or(self.default_app), split: None }
    }
}

/// The app for requests nothing else matches, as uWSGI picks it: the first one whose
/// mountpoint is `""` or a path, never a `host|...` one.
pub fn default_app(mountpoints: &[String]) -> Option<usize> {
    mountpoints.iter().position(|m| !m.contains('|'))
}

/// A `host|script_name` mountpoint split at its first `|`; `None` for a path mountpoint.
fn split_host(mountpoint: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = mountpoint.iter().position(|&b| b == b'|')?;
    Some((&mountpoint[..at], &mountpoint[at + 1..]))
}

/// Index of the longest non-empty mountpoint that `path_info` starts with at a path-segment
/// boundary (the next byte is `/` or there is none). An empty mountpoint never matches here,
/// as in uWSGI: it is the default, not a prefix.
pub fn longest_mountpoint(mountpoints: &[String], path_info: &[u8]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, m) in mountpoints.iter().enumerate() {
        let m = m.as_bytes();
        let longer = best.is_none_or(|b| m.len() > mountpoints[b].len());
        let at_boundary = matches!(path_info.get(m.len()), None | Some(b'/'));
        if !m.is_empty() && longer && path_info.starts_with(m) && at_boundary {
            best = Some(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(mountpoints: &[&str], manage: bool, no_default: bool) -> MountTable {
        MountTable::new(mountpoints.iter().map(|m| (*m).to_owned()).collect(), manage, no_default, false)
    }

    fn mounts(list: &[&str]) -> Vec<String> {
        list.iter().map(|m| (*m).to_owned()).collect()
    }

    #[test]
    fn longest_mountpoint_wins_at_a_segment_boundary() {
        let m = mounts(&["", "/blog", "/blog/admin", "/shop"]);
        for (path, want) in [
            ("/blog/post/1", Some(1)),
            ("/blog", Some(1)),
            ("/blog/", Some(1)),
            ("/blog/admin", Some(2)),
            ("/blog/admin/users", Some(2)),
            ("/blog/administrator", Some(1)),
            ("/blogx", None),
            ("/blogx/y", None),
            ("/shop/cart", Some(3)),
            ("/", None),
            ("", None),
            ("/other", None),
            ("/BLOG", None),
        ] {
            assert_eq!(longest_mountpoint(&m, path.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn longest_mountpoint_ignores_the_order_given() {
        let m = mounts(&["/a/b", "/a"]);
        assert_eq!(longest_mountpoint(&m, b"/a/b/c"), Some(0));
        assert_eq!(longest_mountpoint(&m, b"/a/c"), Some(1));
    }

    #[test]
    fn manage_script_name_splits_path_info() {
        let t = table(&["", "/blog", "/shop"], true, false);
        assert_eq!(t.route(b"", b"", b"/blog/post/1"), Route { app: Some(1), split: Some(5) });
        assert_eq!(t.route(b"", b"", b"/blog"), Route { app: Some(1), split: Some(5) });
        assert_eq!(t.route(b"", b"", b"/blogx"), Route { app: Some(0), split: None });
        assert_eq!(t.route(b"", b"", b"/"), Route { app: Some(0), split: None });
        // uWSGI rewrites even a SCRIPT_NAME the web server sent.
        assert_eq!(t.route(b"", b"/elsewhere", b"/shop/x"), Route { app: Some(2), split: Some(5) });
    }

    #[test]
    fn script_name_selects_by_exact_match() {
        let t = table(&["", "/blog", "/shop"], false, false);
        assert_eq!(t.route(b"", b"/blog", b"/blog/post"), Route { app: Some(1), split: None });
        assert_eq!(t.route(b"", b"/shop", b"/"), Route { app: Some(2), split: None });
        // Without manage-script-name PATH_INFO plays no part, and SCRIPT_NAME must be exact.
        assert_eq!(t.route(b"", b"", b"/blog/post"), Route { app: Some(0), split: None });
        assert_eq!(t.route(b"", b"/blog/post", b"/"), Route { app: Some(0), split: None });
    }

    #[test]
    fn first_app_is_the_default_unless_no_default_app() {
        let t = table(&["/blog", "/shop"], false, false);
        assert_eq!(t.route(b"", b"", b"/x"), Route { app: Some(0), split: None });
        let t = table(&["/blog", "/shop"], true, true);
        assert_eq!(t.route(b"", b"", b"/x"), Route { app: None, split: None });
        assert_eq!(t.route(b"", b"", b"/shop/x"), Route { app: Some(1), split: Some(5) });
        // no-default-app still lets SCRIPT_NAME "" reach an app mounted at "".
        let t = table(&["", "/blog"], false, true);
        assert_eq!(t.route(b"", b"", b"/x"), Route { app: Some(0), split: None });
        assert_eq!(t.route(b"", b"/nope", b"/x"), Route { app: None, split: None });
    }

    #[test]
    fn vhost_matches_host_and_script_name() {
        let m = |l: &[&str]| l.iter().map(|m| (*m).to_owned()).collect::<Vec<_>>();
        let t = MountTable::new(m(&["a.test|", "b.test:8080|", "/x", "a.test|/blog"]), false, false, true);
        assert_eq!(t.route(b"a.test", b"", b"/p"), Route { app: Some(0), split: None });
        assert_eq!(t.route(b"b.test:8080", b"", b"/p"), Route { app: Some(1), split: None });
        assert_eq!(t.route(b"a.test", b"/blog", b"/p"), Route { app: Some(3), split: None });
        // No match: the first path-mounted app is the default, as in uWSGI.
        assert_eq!(t.route(b"b.test", b"", b"/p"), Route { app: Some(2), split: None });
        assert_eq!(t.route(b"A.TEST", b"", b"/p"), Route { app: Some(2), split: None });
        let t = MountTable::new(m(&["a.test|", "b.test|"]), false, false, true);
        assert_eq!(t.route(b"c.test", b"", b"/"), Route { app: None, split: None });
        assert_eq!(default_app(&m(&["a|", "", "/b"])), Some(1));
    }

    #[test]
    fn single_app_needs_no_routing() {
        assert!(table(&[""], true, false).is_single_app());
        assert!(!table(&[""], false, true).is_single_app());
        assert!(!table(&["/blog"], true, false).is_single_app());
        assert!(!table(&["", "/blog"], false, false).is_single_app());
    }
}
