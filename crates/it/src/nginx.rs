//! A real nginx in front of the server under test: its own temp dir and `nginx.conf`
//! (everything nginx writes stays inside it), a free loopback port, one process
//! (`master_process off`) killed by PID on drop. nginx is found on `$NGINX`, `PATH` or the
//! usual sbin directories; when it's missing the test fails, since CI installs it.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{read_response_to, Response};

/// Where distributions put nginx when it isn't on `PATH` (e.g. `/usr/sbin` for a non-root user).
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin", "/opt/homebrew/bin"];
/// Where distributions put `uwsgi_params`, beside the default `nginx.conf`.
const CONF_DIRS: &[&str] = &["/etc/nginx", "/usr/local/etc/nginx", "/usr/local/nginx/conf", "/opt/homebrew/etc/nginx"];

/// A running nginx.
pub struct Nginx {
    child: Child,
    /// Temp dir holding `nginx.conf`, logs and temp files.
    pub dir: tempfile::TempDir,
    /// The `listen` address.
    pub addr: SocketAddr,
}

/// The nginx executable; panics with an explanation when there is none.
pub fn nginx_command() -> PathBuf {
    if let Ok(path) = std::env::var("NGINX") {
        return PathBuf::from(path);
    }
    let path_dirs = std::env::var("PATH").unwrap_or_default();
    let found =
        path_dirs.split(':').chain(SBIN_DIRS.iter().copied()).map(|d| Path::new(d).join("nginx")).find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "nginx not found (looked on PATH and in {SBIN_DIRS:?}): these tests need a real nginx. \
             Install it (Debian: apt-get install nginx-light) or point $NGINX at the executable."
        )
    })
}

/// The text of nginx's own `uwsgi_params`, read from the installed nginx.
pub fn uwsgi_params() -> String {
    let mut dirs: Vec<PathBuf> = CONF_DIRS.iter().map(PathBuf::from).collect();
    // `nginx -V` names the compiled-in conf path; its directory holds uwsgi_params.
    if let Ok(out) = Command::new(nginx_command()).arg("-V").output() {
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        if let Some(conf) = text.split_whitespace().find_map(|w| w.strip_prefix("--conf-path=")) {
            if let Some(parent) = Path::new(conf).parent() {
                dirs.insert(0, parent.to_path_buf());
            }
        }
    }
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join("uwsgi_params")).ok())
        .unwrap_or_else(|| panic!("uwsgi_params not found in {dirs:?}: is nginx installed completely?"))
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind 127.0.0.1:0").port()
}

impl Nginx {
    /// Starts nginx with `server_body` (locations etc.) inside a `server { listen ...; }`
    /// block. `include uwsgi_params;` works; the `http` block allows 200 MiB bodies.
    /// Waits until the port accepts connections; panics with the error log otherwise.
    pub fn start(server_body: &str) -> Nginx {
        Self::start_http(|addr| {
            format!("server {{\n    listen {addr};\n    server_name localhost;\n{server_body}\n}}\n")
        })
    }

    /// Starts nginx with `servers(listen address)` as the content of the `http` block, for
    /// whole `server { }` blocks such as an example site file.
    pub fn start_http(servers: impl Fn(SocketAddr) -> String) -> Nginx {
        let mut last_error = String::new();
        // The port is free when picked but another test may grab it first: retry.
        for _ in 0..3 {
            match Self::try_start(&servers) {
                Ok(nginx) => return nginx,
                Err(e) => last_error = e,
            }
        }
        panic!("nginx did not start:\n{last_error}");
    }

    fn try_start(servers: &impl Fn(SocketAddr) -> String) -> Result<Nginx, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display().to_string();
        std::fs::write(dir.path().join("uwsgi_params"), uwsgi_params()).expect("write uwsgi_params");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let conf = format!(
            "daemon off;\n\
             master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n\
             \x20   access_log {d}/access.log;\n\
             \x20   client_body_temp_path {d}/client_body;\n\
             \x20   proxy_temp_path {d}/proxy;\n\
             \x20   fastcgi_temp_path {d}/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/uwsgi;\n\
             \x20   scgi_temp_path {d}/scgi;\n\
             \x20   types {{ text/html html; text/css css; application/javascript js; text/plain txt; }}\n\
             \x20   default_type application/octet-stream;\n\
             \x20   client_max_body_size 200m;\n\
             {}\n\
             }}\n",
            servers(addr)
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let child = Command::new(nginx_command())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            // Before the config is read nginx logs to its compiled-in path; keep it here too.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("stderr.log")).expect("stderr.log")))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx_command().display()));
        let mut nginx = Nginx { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(format!("nginx exited with {status}:\n{}", nginx.log()));
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok(nginx);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("nginx not accepting on {addr} after 10 s:\n{}", nginx.log()))
    }

    /// nginx's stderr and error log.
    pub fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    /// A connection to nginx with a read timeout.
    pub fn connect(&self) -> TcpStream {
        crate::connect(self.addr)
    }

    /// Sends raw bytes on a fresh connection and reads one response (`head`: it answers a HEAD).
    pub fn exchange_to(&self, raw: &[u8], head: bool) -> Response {
        let mut s = self.connect();
        s.write_all(raw).expect("write to nginx");
        read_response_to(&mut BufReader::new(s), head)
            .unwrap_or_else(|e| panic!("no response from nginx: {e}\n{}", self.log()))
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn exchange(&self, raw: &[u8]) -> Response {
        self.exchange_to(raw, false)
    }

    /// `GET path` with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.exchange(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes())
    }

    /// `POST path` with a body and `Connection: close`.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        let mut raw = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        self.exchange(&raw)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
