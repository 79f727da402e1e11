//! Golden tests: each config in `tests/golden/config/` resolves (`--show-config`) to the text
//! in its `.out` file; each config in `tests/golden/errors/` fails with the one-line message in
//! its `.err` file; `docs/options.md` matches the option table. `UPDATE_GOLDEN=1` rewrites them.
//!
//! The environment is injected (working directory = the golden folder, fixed hostname, CPU
//! count and variables), and the folder's absolute path is replaced by `<golden>/`, so the
//! expected files hold no machine paths.

use std::path::{Path, PathBuf};

use ruwsgi_config::{load_with_env, Command, Environment};

fn golden_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(sub)
}

fn test_env(cwd: &Path) -> Environment {
    Environment {
        vars: vec![
            ("DEPLOY".into(), "prod".into()),
            ("APP_HOME".into(), "/srv/app".into()),
            ("APP_USER".into(), "www-data".into()),
        ],
        cwd: cwd.to_path_buf(),
        hostname: "testhost".into(),
        cpu_cores: 4,
    }
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some()
}

/// Compares `actual` with the file, or rewrites the file under `UPDATE_GOLDEN=1`.
fn check(expected_path: &Path, actual: &str) -> Result<(), String> {
    if updating() {
        std::fs::write(expected_path, actual).map_err(|e| e.to_string())?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(expected_path)
        .map_err(|e| format!("{}: {e} (run with UPDATE_GOLDEN=1)", expected_path.display()))?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!("{} differs:\n--- expected\n{expected}\n--- actual\n{actual}", expected_path.display()))
    }
}

fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("golden dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("ini" | "json" | "yaml" | "yml"))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden configs in {}", dir.display());
    files
}

fn normalise(text: &str, dir: &Path) -> String {
    let canonical = dir.canonicalize().expect("golden dir");
    text.replace(&format!("{}/", canonical.display()), "<golden>/").replace(&format!("{}/", dir.display()), "<golden>/")
}

#[test]
fn configs_resolve_to_their_golden_output() {
    let dir = golden_dir("config");
    let mut failures = Vec::new();
    for file in config_files(&dir) {
        let name = file.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
        let args = vec!["--show-config".to_owned(), name.clone()];
        let actual = match load_with_env(&args, &test_env(&dir)) {
            Ok(Command::Print(text)) => normalise(&text, &dir),
            other => format!("unexpected: {other:?}\n"),
        };
        if let Err(e) = check(
            &file.with_extension(format!("{}.out", file.extension().and_then(|e| e.to_str()).unwrap_or(""))),
            &actual,
        ) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bad_configs_fail_with_their_golden_message() {
    let dir = golden_dir("errors");
    let mut failures = Vec::new();
    for file in config_files(&dir) {
        let name = file.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
        let Err(e) = load_with_env(std::slice::from_ref(&name), &test_env(&dir)) else {
            failures.push(format!("{name}: loaded, but every file here must fail"));
            continue;
        };
        let actual = format!("{e}\n");
        assert_eq!(actual.lines().count(), 1, "{name}: error is not one line: {actual}");
        if let Err(e) = check(
            &file.with_extension(format!("{}.err", file.extension().and_then(|e| e.to_str()).unwrap_or(""))),
            &normalise(&actual, &dir),
        ) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn options_md_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/options.md");
    if updating() {
        std::fs::create_dir_all(path.parent().expect("docs dir")).expect("create docs/");
    }
    check(&path, &ruwsgi_config::options::render_markdown()).unwrap_or_else(|e| panic!("{e}"));
}
