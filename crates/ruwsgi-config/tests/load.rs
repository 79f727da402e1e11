//! `load_with_env` end to end: source precedence, argv and env error messages, the seed ini's
//! typed `Config`, and the print-and-exit commands.

use std::path::{Path, PathBuf};

use ruwsgi_config::{load_with_env, Command, Config, Environment, SocketProtocol, SocketSpec};

fn env_with(vars: &[(&str, &str)]) -> Environment {
    Environment {
        vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        cwd: Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/config"),
        hostname: "testhost".into(),
        cpu_cores: 4,
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn run(a: &[&str], vars: &[(&str, &str)]) -> (Config, Vec<String>) {
    match load_with_env(&args(a), &env_with(vars)) {
        Ok(Command::Run { config, notices, .. }) => (config, notices),
        other => panic!("expected Run, got {other:?}"),
    }
}

fn error(a: &[&str], vars: &[(&str, &str)]) -> String {
    load_with_env(&args(a), &env_with(vars)).expect_err("should fail").to_string()
}

#[test]
fn seed_ini_resolves_to_the_expected_config() {
    let (c, notices) = run(&["seed.ini"], &[]);
    assert_eq!(
        c.sockets,
        vec![
            SocketSpec { address: ":8080".into(), protocol: SocketProtocol::Http, tls: None },
            SocketSpec { address: ":9009".into(), protocol: SocketProtocol::Uwsgi, tls: None },
        ]
    );
    assert_eq!(c.chdir, Some(PathBuf::from("/srv/demo")));
    assert_eq!(c.wsgi_file, Some(PathBuf::from("demo/wsgi.py")));
    assert_eq!(c.module.as_deref(), Some("demo.wsgi:application"));
    assert_eq!((c.processes, c.threads, c.vacuum, c.py_autoreload), (4, 2, true, 1));
    assert_eq!(c.daemonize, Some(PathBuf::from("/srv/demo/demo.log")));
    assert_eq!(notices, vec!["plugins = python3 is accepted and ignored: ruwsgi has Python built in".to_owned()]);
}

#[test]
fn env_loses_to_files_which_lose_to_flags() {
    let vars = [("UWSGI_PROCESSES", "2"), ("UWSGI_HARAKIRI", "5"), ("UWSGI_PYTHONPATH", "/env")];
    let (c, _) = run(&["--threads", "9", "seed.ini", "--pythonpath=/flag"], &vars);
    assert_eq!(c.processes, 4, "file beats env");
    assert_eq!(c.threads, 9, "flag beats file even when given first");
    assert_eq!(c.harakiri, 5, "env applies when nothing else sets it");
    assert_eq!(c.pythonpath, vec![PathBuf::from("/env"), PathBuf::from("/flag")], "lists accumulate in order");
}

#[test]
fn short_aliases_and_bare_flags() {
    let (c, _) = run(&["-s", "/tmp/a.sock", "-M", "-p", "3", "-t", "20", "-L", "--chmod-socket", "-H", "/venv"], &[]);
    assert_eq!(
        c.sockets,
        vec![SocketSpec { address: "/tmp/a.sock".into(), protocol: SocketProtocol::Uwsgi, tls: None }]
    );
    assert!(c.master && c.disable_logging);
    assert_eq!((c.processes, c.harakiri, c.chmod_socket), (3, 20, Some(0o666)));
    assert_eq!(c.home, Some(PathBuf::from("/venv")));
}

#[test]
fn argv_and_env_errors_name_their_source() {
    assert_eq!(error(&["--http", ":80x"], &[]), "--http \":80x\": expected [host]:port");
    assert_eq!(error(&["--harakiri=-30"], &[]), "--harakiri \"-30\": expected a whole number of seconds");
    assert_eq!(error(&[], &[("UWSGI_PROCESSES", "-4")]), "UWSGI_PROCESSES=\"-4\": expected a whole number");
    assert_eq!(error(&["--ini", "nope.ini"], &[]), "--ini \"nope.ini\": file not found");
    assert_eq!(
        error(&["--route", "^/x$ frobnicate:403"], &[]),
        "--route \"^/x$ frobnicate:403\": unknown routing action \"frobnicate\""
    );
    assert_eq!(
        error(&["--strict", "--freebind"], &[]),
        "argument 2: option \"freebind\" is not implemented by ruwsgi (it is ignored): strict mode refuses it"
    );
    assert_eq!(error(&["--for", "a"], &[]), "argument 1: --for is only valid in config files");
}

#[test]
fn hooks_parse_at_load_and_bad_actions_name_the_option() {
    let (c, notices) = run(
        &[
            "--hook-master-start",
            "unix_signal:15 gracefully_kill_them_all",
            "--exec-pre-app",
            "python manage.py migrate",
        ],
        &[],
    );
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!(c.hooks.len(), 2);
    assert_eq!(c.hooks[1].action, ruwsgi_config::hooks::HookAction::Exec("python manage.py migrate".into()));
    assert_eq!(
        error(&["--hook-pre-app", "call:uwsgi_foo"], &[]),
        "--hook-pre-app \"call:uwsgi_foo\": hook action \"call\" calls a C function of uWSGI or a plugin, which ruwsgi doesn't have: use exec: instead"
    );
    assert_eq!(
        error(&["--cron", "* * * * * true"], &[]),
        "--cron \"* * * * * true\": minute: expected a number, -1 (any) or -N (every N)"
    );
}

#[test]
fn not_implemented_options_from_every_source_warn() {
    let warnings = |a: &[&str], vars: &[(&str, &str)]| match load_with_env(&args(a), &env_with(vars)) {
        Ok(Command::Run { warnings, .. }) => warnings,
        other => panic!("expected Run, got {other:?}"),
    };
    assert_eq!(
        warnings(&["--reaper", "--harakiri-queue-threshold", "5"], &[("UWSGI_FREEBIND", "1"), ("UWSGI_PROJECT", "x")]),
        [
            "environment variable UWSGI_FREEBIND: option \"freebind\" is not implemented by ruwsgi: it is ignored",
            "argument 1: option \"reaper\" is not implemented by ruwsgi: it is ignored",
            "argument 2: option \"harakiri-queue-threshold\" is not implemented by ruwsgi: it is ignored",
        ],
        "an unknown UWSGI_* variable only provides a placeholder, silently"
    );
    assert_eq!(error(&["--vaccum"], &[]), "argument 1: unknown option \"vaccum\" (did you mean \"vacuum\"?)");
}

#[test]
fn cheaper_settings_are_read_and_checked_as_uwsgi() {
    let (c, notices) = run(&["--processes", "8", "--cheaper", "2", "--cheaper-algo", "busyness"], &[]);
    assert_eq!(c.processes, 8);
    assert!(notices.is_empty(), "{notices:?}");
    assert_eq!((c.cheaper.count, c.cheaper.initial, c.cheaper.algo.name()), (2, 2, "busyness"));
    assert_eq!(
        error(&["--processes", "2", "--cheaper", "2"], &[]),
        "argument 3: cheaper = 2: must be lower than processes (2)"
    );
    assert_eq!(
        error(&["--cheaper-algo", "fast"], &[]),
        "--cheaper-algo \"fast\": expected spare, spare2, backlog, busyness or manual"
    );
}

#[test]
fn unknown_uwsgi_env_vars_are_only_placeholders() {
    let (c, _) = run(&["--chdir", "/srv/%(app-name)"], &[("UWSGI_APP_NAME", "shop"), ("UWSGI_RELOADS", "3")]);
    assert_eq!(c.chdir, Some(PathBuf::from("/srv/shop")));
}

#[test]
fn env_can_name_a_config_file() {
    let (c, _) = run(&[], &[("UWSGI_INI", "seed.ini")]);
    assert_eq!(c.processes, 4);
}

#[test]
fn help_version_and_show_config_print() {
    let print = |a: &[&str]| match load_with_env(&args(a), &env_with(&[])) {
        Ok(Command::Print(text)) => text,
        other => panic!("expected Print, got {other:?}"),
    };
    let help = print(&["--help"]);
    assert!(help.contains("--processes, --workers, -p <number>"), "{help}");
    assert!(!help.contains("--freebind"), "help lists supported options only");
    assert_eq!(print(&["--version"]), format!("ruwsgi {}\n", env!("CARGO_PKG_VERSION")));
    // Help is printed even when the config would fail.
    assert!(print(&["--help", "missing.ini"]).starts_with("Usage:"));
    assert_eq!(print(&["--show-config", "-p", "2", "--workers", "5"]), "processes = 5\n");
}

#[test]
fn real_world_ini_runs_with_warnings_and_logs_its_config() {
    let Ok(Command::Run { config, warnings, show_config, .. }) =
        load_with_env(&args(&["real_world.ini"]), &env_with(&[("DEPLOY", "prod")]))
    else {
        panic!("expected Run");
    };
    assert_eq!((config.processes, config.threads, config.harakiri, config.max_requests), (8, 9, 60, 1000));
    assert_eq!(config.post_buffering, 0, "post-buffering = true is 0 in uWSGI");
    assert_eq!(config.print, ["starting real_world with 8 workers"]);
    assert!(warnings.iter().any(|w| w.contains("UNSET_VAR is not set")), "{warnings:?}");
    let shown = show_config.expect("show-config = true in the file logs the config");
    assert!(shown.contains("processes = 8\n"), "{shown}");
    // On the command line it still prints and exits.
    assert!(matches!(
        load_with_env(&args(&["--show-config", "real_world.ini"]), &env_with(&[])),
        Ok(Command::Print(_))
    ));
}

#[test]
fn if_reload_holds_in_a_reexecuted_master() {
    let (c, _) = run(&["real_world.ini"], &[(ruwsgi_config::RELOADED_ENV, "1")]);
    assert!(c.env.contains(&("RELOADED".to_owned(), "1".to_owned())), "{:?}", c.env);
    assert!(!c.env.iter().any(|(k, _)| k == "FIRST_START"));
    let (c, _) = run(&["real_world.ini"], &[]);
    assert!(c.env.contains(&("FIRST_START".to_owned(), "1".to_owned())));
}
