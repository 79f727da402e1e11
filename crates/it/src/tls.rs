//! HTTPS test helpers shared by `tests/tls.rs` and `tests/http2.rs`: a test CA made with
//! rcgen, server and client certificates, a server on `https`, and curl against it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::{app, Server, Start};

/// A test CA that signs server and client certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Default for Ca {
    fn default() -> Self {
        Self::new()
    }
}

impl Ca {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "ruwsgi test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// A certificate for `names` (DNS names; `127.0.0.1` too for the first server cert)
    /// with subject `CN=<cn>` (and `O=<org>`): (cert PEM, key PEM).
    pub fn issue(&self, cn: &str, org: Option<&str>, names: &[&str]) -> (String, String) {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        if let Some(org) = org {
            params.distinguished_name.push(DnType::OrganizationName, org);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes the CA, a `localhost` server certificate and a client certificate into `dir`.
pub fn write_certs(dir: &Path, ca: &Ca) {
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let (cert, key) = ca.issue("localhost", None, &["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("site.crt"), cert).unwrap();
    std::fs::write(dir.join("site.key"), key).unwrap();
    let (cert, key) = ca.issue("alice", Some("ruwsgi tests"), &[]);
    std::fs::write(dir.join("client.crt"), cert).unwrap();
    std::fs::write(dir.join("client.key"), key).unwrap();
}

/// Starts ruwsgi in a temp dir holding the certificates, with `https = 127.0.0.1:0,<tls>`
/// (`tls` is `site.crt,site.key[,...]`), plus `extra` flags.
pub fn start(tls: &str, wsgi: &str, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    start_in(dir, tls, wsgi, extra)
}

pub fn start_in(dir: tempfile::TempDir, tls: &str, wsgi: &str, extra: &[&str]) -> Server {
    let https = format!("127.0.0.1:0,{tls}");
    let wsgi = app(wsgi);
    let mut args: Vec<String> = ["--https", &https, "--wsgi-file", &wsgi, "--threads", "2"].map(str::to_owned).to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Server::start_in(dir, Start { args, env: vec![], workers: 1 })
}

pub fn dir_of(srv: &Server) -> PathBuf {
    srv.dir.path().to_path_buf()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `curl` over HTTPS against the test CA; returns (exit code, stdout, stderr).
pub fn curl(srv: &Server, args: &[&str]) -> (i32, Vec<u8>, String) {
    let dir = dir_of(srv);
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", srv.addr().port())])
        .args(args));
    (out.status.code().unwrap_or(-1), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs the Python client `script` (saved as `name` in the server's directory) with the
/// server's port, the test CA and `args`; returns the JSON it prints.
pub fn python_client(srv: &Server, name: &str, script: &str, args: &[&str]) -> crate::json::Value {
    let dir = dir_of(srv);
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let out = run(Command::new(crate::venv_python())
        .arg(&path)
        .arg(srv.addr().port().to_string())
        .arg(dir.join("ca.pem"))
        .args(args)
        .current_dir(&dir));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name} {args:?} failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    crate::json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{name} printed no JSON ({e}): {stdout}"))
}

pub fn url(srv: &Server, path: &str) -> String {
    format!("https://localhost:{}{path}", srv.addr().port())
}

/// The Django guestbook's form round trip with curl (`curl_args` before the others): `GET /`
/// for the CSRF cookie and token, then a POST of `fields` (`name=..&message=..`) with the
/// token, the cookie and a Referer. Returns curl's `-w write_out` for the POST.
pub fn guestbook_post(srv: &Server, curl_args: &[&str], fields: &str, write_out: &str) -> String {
    let jar = srv.dir.path().join("cookies.txt").display().to_string();
    let (code, body, err) = curl(srv, &[curl_args, &["-c", &jar, &url(srv, "/")]].concat());
    assert_eq!(code, 0, "{err}");
    let token = crate::csrf_token(&String::from_utf8_lossy(&body));
    let form = format!("csrfmiddlewaretoken={token}&{fields}");
    let referer = url(srv, "/");
    let post = ["-b", &jar, "-e", &referer, "-o", "/dev/null", "-w", write_out, "-d", &form, &url(srv, "/")];
    let (code, body, err) = curl(srv, &[curl_args, &post].concat());
    assert_eq!(code, 0, "{err}");
    String::from_utf8_lossy(&body).into_owned()
}

/// The Django example's `uwsgi-https.ini` on a free local port with the test certificate:
/// static files collected into a temp `STATIC_ROOT` (returned), the database migrated.
pub fn start_django_https() -> (Server, PathBuf) {
    let django = crate::repo().join("examples/django");
    let dir = tempfile::tempdir().unwrap();
    write_certs(dir.path(), &Ca::new());
    // collectstatic into a temp STATIC_ROOT, so the repository stays clean.
    let static_root = dir.path().join("static");
    std::fs::write(
        dir.path().join("it_settings.py"),
        format!("from demo.settings import *  # noqa\nSTATIC_ROOT = {:?}\n", static_root.display().to_string()),
    )
    .unwrap();
    let env = vec![
        ("DJANGO_SETTINGS_MODULE", "it_settings".to_owned()),
        ("PYTHONPATH", dir.path().display().to_string()),
        ("DEMO_DB", dir.path().join("db.sqlite3").display().to_string()),
    ];
    for args in [&["collectstatic", "--noinput"][..], &["migrate", "--noinput"][..]] {
        let out = run(Command::new(crate::venv_python())
            .arg("manage.py")
            .args(args)
            .current_dir(&django)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
        assert!(out.status.success(), "manage.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The example's ini, on a free local port, with the test's certificate and STATIC_ROOT.
    let cert_dir = dir.path().display().to_string();
    let ini = std::fs::read_to_string(django.join("uwsgi-https.ini"))
        .unwrap()
        .replace(
            "https = :8443,%dcert.pem,%dkey.pem",
            &format!("https = 127.0.0.1:0,{cert_dir}/site.crt,{cert_dir}/site.key"),
        )
        .replace("processes = 4", "processes = 1")
        .replace("static-map = /static=%dstatic", &format!("static-map = /static={}", static_root.display()))
        .replace("%d", &format!("{}/", django.display()));
    assert!(ini.contains("https = 127.0.0.1:0,") && ini.contains(&static_root.display().to_string()), "{ini}");
    std::fs::write(dir.path().join("app.ini"), ini).unwrap();
    let args = vec!["--ini".to_owned(), "app.ini".to_owned()];
    (Server::start_in(dir, Start { args, env, workers: 1 }), static_root)
}
