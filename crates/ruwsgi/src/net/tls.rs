//! TLS with rustls (ring provider: no OpenSSL, builds into the manylinux2014 wheel with zig).
//! Owns the server contexts of the `https` listeners (certificate, key, cipher list, client
//! CA, `sni*` contexts), their reload when the files change, and the per-connection session
//! that `transport::Io` drives. No socket readiness logic here: a session only reads and
//! writes what the non-blocking fd takes, so the handshake runs in the worker's epoll loop
//! (`connection.rs`), never on a Python thread.
//!
//! Differs from uWSGI: rustls offers TLS 1.2 and 1.3 only; a cipher list keeps the TLS 1.2
//! suites it names (OpenSSL keywords such as `HIGH` are not read); certificate files that
//! change are re-read by the running workers (new handshakes get the new certificate, open
//! connections keep theirs), where uWSGI needs a reload.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use rustls::crypto::{ring as provider, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, ProducesTickets, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection, SupportedCipherSuite};
use ruwsgi_config::tls::{SniSpec, TlsSpec};
use ruwsgi_config::TlsOptions;

use super::socket_io;
use crate::scoreboard::now_micros;

/// How often a listener's certificate files are checked for changes (by one thread).
const RELOAD_CHECK: Duration = Duration::from_secs(1);
/// Most plaintext bytes encrypted per write: about four TLS records, so a slow client
/// holds at most this much beyond what the socket took.
pub const WRITE_CHUNK: usize = 64 * 1024;
/// Most plaintext `Session::queue` encrypts before its records must be sent: a round of
/// HTTP/2 frames (a 64 KiB response is four DATA frames and its HEADERS) goes out in one
/// `sendmsg`.
pub const QUEUE_LIMIT: usize = 256 * 1024;

/// The TLS side of one `https` listener.
#[derive(Debug)]
pub struct TlsSite {
    /// The listener, for log lines.
    name: String,
    /// The listener's own context.
    spec: TlsSpec,
    /// `sni*`, `sni-dir`, `https-export-cert`, `ssl-verbose`.
    options: TlsOptions,
    /// Shared by every context, made once in the master before the fork, so a session
    /// ticket from one worker resumes in another.
    ticketer: Arc<dyn ProducesTickets>,
    /// The contexts new handshakes use; replaced whole when a file changes.
    contexts: RwLock<Arc<Contexts>>,
    /// `sni-dir` contexts loaded so far, by lowercase name.
    sni_dir: Mutex<HashMap<String, SniDirEntry>>,
    /// When the files were last checked (µs), so only one thread per second stats them.
    checked: AtomicU64,
    /// The watched files' modification times at the last (re)load.
    stamps: Mutex<Vec<(PathBuf, Option<SystemTime>)>>,
}

/// One `sni-dir` name's context.
#[derive(Debug)]
struct SniDirEntry {
    /// `None`: its files don't make a context (logged when they were read).
    config: Option<Arc<ServerConfig>>,
    /// Modification times of its `.crt`, `.key` and `.ca` when read.
    stamps: [Option<SystemTime>; 3],
}

/// The server contexts of one listener.
#[derive(Debug)]
struct Contexts {
    /// The listener's own certificate, for clients that name no server or no `sni` one.
    default: Arc<ServerConfig>,
    /// `sni` (exact, case-insensitive) and `sni-regexp` contexts, in config order.
    sni: Vec<(SniName, Arc<ServerConfig>)>,
}

/// What an `sni`/`sni-regexp` entry answers for.
#[derive(Debug)]
enum SniName {
    /// `sni`: this server name, compared case-insensitively.
    Exact(String),
    /// `sni-regexp`: server names this matches.
    Regexp(regex::Regex),
}

impl TlsSite {
    /// Loads the listener's contexts; the error names the file at fault.
    pub fn load(name: &str, spec: &TlsSpec, options: &TlsOptions) -> Result<Self> {
        let ticketer = provider::Ticketer::new().map_err(|e| anyhow!("cannot make TLS session ticket keys: {e}"))?;
        let contexts = build_contexts(spec, &options.sni, &ticketer)?;
        for sni in &options.sni {
            if let Some(ciphers) = &sni.tls.ciphers {
                warn_unread_ciphers(&sni.name, ciphers);
            }
        }
        if let Some(ciphers) = &spec.ciphers {
            warn_unread_ciphers(name, ciphers);
        }
        let site = Self {
            name: name.to_owned(),
            spec: spec.clone(),
            options: options.clone(),
            ticketer,
            contexts: RwLock::new(Arc::new(contexts)),
            sni_dir: Mutex::new(HashMap::new()),
            checked: AtomicU64::new(0),
            stamps: Mutex::new(Vec::new()),
        };
        *lock(&site.stamps) = site.current_stamps();
        Ok(site)
    }

    /// A new connection's session: it reads the `ClientHello` before picking a context.
    pub fn session(self: &Arc<Self>) -> Session {
        Session {
            site: Arc::clone(self),
            state: State::Accepting(Box::default()),
            client: None,
            tail: Vec::new(),
            queued: 0,
        }
    }

    /// `https-export-cert`.
    pub fn export_cert(&self) -> bool {
        self.options.export_cert
    }

    /// Re-reads the certificates when a watched file changed (at most once per
    /// `RELOAD_CHECK` per worker). A broken new file keeps the old context, with a warning.
    pub fn refresh(&self) {
        let now = now_micros();
        let last = self.checked.load(Ordering::Relaxed);
        if now.saturating_sub(last) < RELOAD_CHECK.as_micros() as u64
            || self.checked.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let stamps = self.current_stamps();
        {
            let mut known = lock(&self.stamps);
            if *known == stamps {
                return;
            }
            *known = stamps;
        }
        lock(&self.sni_dir).clear();
        match build_contexts(&self.spec, &self.options.sni, &self.ticketer) {
            Ok(contexts) => {
                *self.contexts.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(contexts);
                tracing::info!("https {}: certificate files changed; new TLS connections use them", self.name);
            }
            Err(e) => tracing::warn!(
                "https {}: reloading the certificates failed: {e:#}; still serving the previous ones",
                self.name
            ),
        }
    }

    /// The files whose change triggers a reload, with their modification times.
    fn current_stamps(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        let specs = std::iter::once(&self.spec).chain(self.options.sni.iter().map(|s| &s.tls));
        specs
            .flat_map(|s| [Some(&s.cert), Some(&s.key), s.client_ca.as_ref().map(|c| &c.path)])
            .flatten()
            .filter(|p| !is_inline_pem(p))
            .map(|p| {
                let path = PathBuf::from(p);
                let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                (path, modified)
            })
            .collect()
    }

    /// The context for the server name the client asked for (SNI): `sni` names, then
    /// `sni-regexp`, then `sni-dir`, else the listener's own.
    fn choose(&self, server_name: Option<&str>) -> Arc<ServerConfig> {
        let contexts = Arc::clone(&self.contexts.read().unwrap_or_else(PoisonError::into_inner));
        let Some(name) = server_name else { return Arc::clone(&contexts.default) };
        for (sni, config) in &contexts.sni {
            let hit = match sni {
                SniName::Exact(n) => n.eq_ignore_ascii_case(name),
                SniName::Regexp(re) => re.is_match(name),
            };
            if hit {
                return Arc::clone(config);
            }
        }
        if let Some(dir) = &self.options.sni_dir {
            if let Some(config) = self.load_from_sni_dir(dir, name) {
                return config;
            }
        }
        Arc::clone(&contexts.default)
    }

    /// `sni-dir`: `<dir>/<name>.crt`, `.key` and the optional `.ca`. Loaded on first use and
    /// again when one of the files changes. Only names with files there are remembered, so
    /// clients sending made-up names can't grow the cache.
    fn load_from_sni_dir(&self, dir: &Path, name: &str) -> Option<Arc<ServerConfig>> {
        // rustls passes only valid DNS names, but a path must never leave the directory.
        if name.contains('/') || name.starts_with('.') {
            return None;
        }
        let name = name.to_ascii_lowercase();
        let file = |ext: &str| dir.join(format!("{name}.{ext}"));
        let (cert, key, ca) = (file("crt"), file("key"), file("ca"));
        let stamps = [&cert, &key, &ca].map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        if stamps[0].is_none() || stamps[1].is_none() {
            lock(&self.sni_dir).remove(&name);
            return None;
        }
        if let Some(known) = lock(&self.sni_dir).get(&name).filter(|e| e.stamps == stamps) {
            return known.config.clone();
        }
        let spec = TlsSpec {
            cert: cert.to_string_lossy().into_owned(),
            key: key.to_string_lossy().into_owned(),
            ciphers: self.options.sni_dir_ciphers.clone(),
            client_ca: stamps[2]
                .is_some()
                .then(|| ruwsgi_config::tls::ClientCa { path: ca.to_string_lossy().into_owned(), required: false }),
        };
        // A broken file is logged once per change, not once per handshake.
        let config = server_config(&spec, &self.ticketer)
            .inspect_err(|e| tracing::warn!("sni-dir: cannot load the certificate for {name}: {e:#}"))
            .ok()
            .map(Arc::new);
        lock(&self.sni_dir).insert(name, SniDirEntry { config: config.clone(), stamps });
        config
    }
}

/// Makes the certificate, key and CA paths of the TLS options absolute against `base` (the
/// directory ruwsgi started in), as uWSGI, which loads them while reading its options,
/// before `chdir`.
pub fn anchor_paths(cfg: &mut ruwsgi_config::Config, base: &Path) {
    let anchor = |value: &mut String| {
        if !is_inline_pem(value) && Path::new(value.as_str()).is_relative() {
            *value = base.join(&*value).to_string_lossy().into_owned();
        }
    };
    let specs = cfg.sockets.iter_mut().filter_map(|s| s.tls.as_mut()).chain(cfg.tls.sni.iter_mut().map(|s| &mut s.tls));
    for spec in specs {
        anchor(&mut spec.cert);
        anchor(&mut spec.key);
        if let Some(ca) = &mut spec.client_ca {
            anchor(&mut ca.path);
        }
    }
    if let Some(dir) = &mut cfg.tls.sni_dir {
        *dir = base.join(&*dir);
    }
}

/// rustls's ring provider. Deprecated since rustls 0.23.48 for lacking post-quantum key
/// exchange (X25519MLKEM768, aws-lc-rs only); ring builds into the manylinux2014 wheel with
/// zig where aws-lc-rs needs cmake and a C toolchain (docs/tls.md).
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    provider::default_provider()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn build_contexts(spec: &TlsSpec, sni: &[SniSpec], ticketer: &Arc<dyn ProducesTickets>) -> Result<Contexts> {
    let default = Arc::new(server_config(spec, ticketer)?);
    let mut out = Vec::with_capacity(sni.len());
    for s in sni {
        let config = server_config(&s.tls, ticketer).with_context(|| format!("sni {}", s.name))?;
        let name = if s.regexp {
            SniName::Regexp(regex::Regex::new(&s.name).with_context(|| format!("sni-regexp {}", s.name))?)
        } else {
            SniName::Exact(s.name.clone())
        };
        out.push((name, Arc::new(config)));
    }
    Ok(Contexts { default, sni: out })
}

/// uWSGI takes a value that starts `-----BEGIN ` as the PEM itself (with `ssl-tmp-dir`).
fn is_inline_pem(value: &str) -> bool {
    value.starts_with("-----BEGIN ")
}

fn read_pem(value: &str) -> Result<Vec<u8>> {
    if is_inline_pem(value) {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(value).with_context(|| format!("cannot read {value}"))
    }
}

fn certificates(value: &str) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{}: not a PEM certificate file: {e}", shown(value)))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate in it", shown(value)));
    }
    Ok(certs)
}

/// A file name, or `inline PEM` for PEM given in the option's value.
fn shown(value: &str) -> &str {
    if is_inline_pem(value) {
        "inline PEM"
    } else {
        value
    }
}

/// One rustls server context from uWSGI's `cert,key[,ciphers[,client_ca]]`.
fn server_config(spec: &TlsSpec, ticketer: &Arc<dyn ProducesTickets>) -> Result<ServerConfig> {
    let certs = certificates(&spec.cert)?;
    let key_pem = read_pem(&spec.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| anyhow!("{}: no private key in it: {e}", shown(&spec.key)))?;
    let mut suites = ring_provider().cipher_suites;
    if let Some(ciphers) = &spec.ciphers {
        suites = select_suites(&suites, ciphers);
    }
    let provider = Arc::new(CryptoProvider { cipher_suites: suites, ..ring_provider() });
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("TLS versions: {e}"))?;
    let builder = match &spec.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(&ca.path)? {
                roots.add(cert).map_err(|e| anyhow!("{}: bad CA certificate: {e}", shown(&ca.path)))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if ca.required { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| anyhow!("{}: {e}", shown(&ca.path)))?)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        anyhow!("{} and {} do not make a certificate and its key: {e}", shown(&spec.cert), shown(&spec.key))
    })?;
    config.ticketer = Arc::clone(ticketer);
    // uWSGI sets SSL_OP_CIPHER_SERVER_PREFERENCE when a cipher list is given.
    config.ignore_client_order = spec.ciphers.is_some();
    // HTTP/2 first (served by the worker's HTTP/2 thread, `http2.rs`), as browsers expect.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The suites a cipher list names, by OpenSSL name (`ECDHE-RSA-AES128-GCM-SHA256`) or IANA
/// name (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`), in its order. As OpenSSL's cipher list,
/// it restricts TLS 1.2 only, unless it names TLS 1.3 suites too. Keywords and exclusions
/// (`HIGH`, `!aNULL`) are skipped; a list naming no TLS 1.2 suite keeps them all.
fn select_suites(all: &[SupportedCipherSuite], ciphers: &str) -> Vec<SupportedCipherSuite> {
    let named: Vec<SupportedCipherSuite> = cipher_names(ciphers).filter_map(|n| suite_named(all, n)).collect();
    let keep = |tls13: bool| -> Vec<SupportedCipherSuite> {
        let chosen: Vec<_> = named.iter().copied().filter(|s| is_tls13(*s) == tls13).collect();
        if chosen.is_empty() {
            all.iter().copied().filter(|s| is_tls13(*s) == tls13).collect()
        } else {
            chosen
        }
    };
    let mut out = keep(true);
    out.extend(keep(false));
    out
}

fn cipher_names(ciphers: &str) -> impl Iterator<Item = &str> {
    ciphers.split([':', ',', ' ']).map(str::trim).filter(|n| !n.is_empty() && !n.starts_with(['!', '-', '+', '@']))
}

fn is_tls13(suite: SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// The suite with this OpenSSL or IANA name.
fn suite_named(all: &[SupportedCipherSuite], name: &str) -> Option<SupportedCipherSuite> {
    let iana = match name {
        "ECDHE-ECDSA-AES256-GCM-SHA384" => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256" => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305" => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384" => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256" => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "ECDHE-RSA-CHACHA20-POLY1305" => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        other => other,
    };
    all.iter().copied().find(|s| s.suite().as_str() == Some(iana))
}

/// One warning for the names in a cipher list that are no suite rustls has.
fn warn_unread_ciphers(context: &str, ciphers: &str) {
    let all = ring_provider().cipher_suites;
    let unread: Vec<&str> = cipher_names(ciphers).filter(|n| suite_named(&all, n).is_none()).collect();
    if !unread.is_empty() {
        let tls12 = cipher_names(ciphers).filter_map(|n| suite_named(&all, n)).any(|s| !is_tls13(s));
        let what = if tls12 { "the suites it names" } else { "rustls's default suites" };
        tracing::warn!(
            "{context}: cipher list {ciphers:?}: {} not a TLS 1.2/1.3 suite rustls has (OpenSSL keywords are not read); using {what}",
            unread.join(", ")
        );
    }
}

/// One connection's TLS state.
pub struct Session {
    site: Arc<TlsSite>,
    state: State,
    /// The client certificate's facts, worked out on the first request that needs them.
    client: Option<Arc<ClientCert>>,
    /// Plaintext `queue` took and has not encrypted yet: what is short of a full record, so
    /// that the next write fills the same record (`h2` writes a 16 KiB frame and its 9-byte
    /// header at a time: one full record and one of 9 bytes each without it).
    tail: Vec<u8>,
    /// Plaintext `queue` encrypted since the queue of records was last empty.
    queued: usize,
}

/// Most plaintext in one TLS record (TLS 1.2 and 1.3; rustls's default fragment size).
const RECORD: usize = 16 * 1024;

enum State {
    /// Reading the `ClientHello`, to pick the context by its server name.
    Accepting(Box<Acceptor>),
    /// Handshaking or open.
    Open(Box<ServerConnection>),
    /// The handshake failed (alert sent): nothing more goes in or out.
    Failed,
}

/// What the environ says about a client certificate (uWSGI's HTTP router names).
#[derive(Debug)]
pub struct ClientCert {
    /// `HTTPS_DN`: the subject, OpenSSL's one-line form (`/C=IT/O=x/CN=name`).
    pub dn: String,
    /// `HTTPS_CLIENT_CERTIFICATE`: the certificate, DER.
    pub der: Vec<u8>,
    /// `HTTPS_CC` (with `https-export-cert`): the certificate, PEM.
    pub pem: Option<String>,
}

/// The socket as `Read`/`Write` for rustls, without SIGPIPE.
struct Fd(RawFd);

impl Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        socket_io::try_read(self.0, buf)
    }
}

impl Write for Fd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket_io::try_write(self.0, &[io::IoSlice::new(buf)])
    }

    /// rustls hands over every queued record at once: one `sendmsg` for all of them, not
    /// one per record (a 64 KiB write is four or more records).
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        socket_io::try_write(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tls_error(e: &rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Session {
    /// Reads what the socket has and processes it. `Ok(0)`: the peer closed the TCP stream;
    /// `WouldBlock`: nothing there. A failed handshake sends its alert and is an error.
    fn read_tls(&mut self, fd: RawFd) -> io::Result<usize> {
        match &mut self.state {
            State::Failed => Err(io::Error::new(io::ErrorKind::InvalidData, "TLS failed")),
            State::Accepting(acceptor) => {
                let n = acceptor.read_tls(&mut Fd(fd))?;
                if n == 0 {
                    return Ok(0);
                }
                let accepted = match acceptor.accept() {
                    Ok(None) => return Ok(n),
                    Ok(Some(accepted)) => accepted,
                    Err((e, mut alert)) => {
                        let _ = alert.write(&mut Fd(fd));
                        self.state = State::Failed;
                        return Err(self.failed(&e));
                    }
                };
                let config = self.site.choose(accepted.client_hello().server_name());
                match accepted.into_connection(config) {
                    Ok(conn) => {
                        self.state = State::Open(Box::new(conn));
                        self.process(fd)?;
                        Ok(n)
                    }
                    Err((e, mut alert)) => {
                        let _ = alert.write(&mut Fd(fd));
                        self.state = State::Failed;
                        Err(self.failed(&e))
                    }
                }
            }
            State::Open(conn) => {
                let n = conn.read_tls(&mut Fd(fd))?;
                if n > 0 {
                    self.process(fd)?;
                }
                Ok(n)
            }
        }
    }

    /// Decrypts what was read; on a protocol error sends the alert rustls queued.
    fn process(&mut self, fd: RawFd) -> io::Result<()> {
        let State::Open(conn) = &mut self.state else { return Ok(()) };
        if let Err(e) = conn.process_new_packets() {
            let _ = conn.write_tls(&mut Fd(fd));
            let err = self.failed(&e);
            self.state = State::Failed;
            return Err(err);
        }
        Ok(())
    }

    /// Logs a failed handshake or record (`ssl-verbose`: at info level) and makes the error.
    fn failed(&self, e: &rustls::Error) -> io::Error {
        if self.site.options.verbose {
            tracing::info!("https {}: TLS error: {e}", self.site.name);
        } else {
            tracing::debug!("https {}: TLS error: {e}", self.site.name);
        }
        tls_error(e)
    }

    /// Non-blocking read of plaintext: `Ok(0)` at the end of the stream (`close_notify` or
    /// TCP close), `WouldBlock` while the handshake runs or nothing has arrived.
    pub fn try_read(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let State::Open(conn) = &mut self.state {
                match conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // The TCP stream ended without `close_notify`: the client went away.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
            }
            let n = self.read_tls(fd);
            // The handshake's answer (or a KeyUpdate's) goes out now, as far as it fits.
            self.flush(fd)?;
            if n? == 0 {
                if let State::Open(conn) = &mut self.state {
                    if let Ok(n) = conn.reader().read(buf) {
                        return Ok(n);
                    }
                }
                return Ok(0);
            }
        }
    }

    /// Writes queued TLS records. `Ok(true)`: nothing left; `Ok(false)`: the socket is full.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<bool> {
        self.seal_tail()?;
        let State::Open(conn) = &mut self.state else { return Ok(true) };
        while conn.wants_write() {
            match conn.write_tls(&mut Fd(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.queued = 0;
        Ok(true)
    }

    /// Encrypts some of `bufs` (what was queued before must be out first) and sends what
    /// the socket takes; returns the plaintext bytes taken.
    pub fn try_write(&mut self, fd: RawFd, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if !self.flush(fd)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let State::Open(conn) = &mut self.state else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no TLS session"));
        };
        // One vectored write: a response head and its body go out in the same records.
        let mut slices = Vec::with_capacity(bufs.len());
        let mut room = WRITE_CHUNK;
        for b in bufs {
            if room == 0 {
                break;
            }
            let take = b.len().min(room);
            slices.push(io::IoSlice::new(&b[..take]));
            room -= take;
        }
        let taken = conn.writer().write_vectored(&slices)?;
        self.flush(fd)?;
        Ok(taken)
    }

    /// Takes `bufs` for the queue of records to send, without sending them (`flush` does):
    /// an HTTP/2 connection writes one frame at a time and sends all the frames of a round
    /// in one `sendmsg`. Whole records are encrypted at once; what is short of one waits in
    /// `tail` for the next write or the flush. Returns the bytes taken: all of them, or
    /// `Ok(0)` once `QUEUE_LIMIT` bytes wait to be sent (send them first; so at most that
    /// and one write wait).
    pub fn queue(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let State::Open(conn) = &mut self.state else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "no TLS session"));
        };
        if self.queued >= QUEUE_LIMIT {
            return Ok(0);
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let whole = (self.tail.len() + total) / RECORD * RECORD;
        // Bytes of `bufs` that go into records now (after the tail).
        let mut from_bufs = whole.saturating_sub(self.tail.len());
        if whole > 0 {
            let mut slices = Vec::with_capacity(bufs.len() + 1);
            slices.push(io::IoSlice::new(&self.tail));
            let mut left = from_bufs;
            for b in bufs {
                let take = b.len().min(left);
                slices.push(io::IoSlice::new(&b[..take]));
                left -= take;
            }
            conn.set_buffer_limit(None);
            if conn.writer().write_vectored(&slices)? != whole {
                return Err(io::Error::other("TLS session took only part of a write"));
            }
            self.queued += whole;
            self.tail.clear();
        }
        for b in bufs {
            let skip = b.len().min(from_bufs);
            from_bufs -= skip;
            self.tail.extend_from_slice(&b[skip..]);
        }
        Ok(total)
    }

    /// Encrypts what `queue` left in `tail` (one record).
    fn seal_tail(&mut self) -> io::Result<()> {
        if self.tail.is_empty() {
            return Ok(());
        }
        let State::Open(conn) = &mut self.state else { return Ok(()) };
        conn.set_buffer_limit(None);
        if conn.writer().write(&self.tail)? != self.tail.len() {
            return Err(io::Error::other("TLS session took only part of a write"));
        }
        self.queued += self.tail.len();
        self.tail.clear();
        Ok(())
    }

    /// Records still waiting for room in the socket.
    pub fn wants_write(&self) -> bool {
        !self.tail.is_empty() || matches!(&self.state, State::Open(conn) if conn.wants_write())
    }

    /// Plaintext already decrypted and not yet read.
    pub fn has_plaintext(&mut self) -> bool {
        match &mut self.state {
            State::Open(conn) => conn.process_new_packets().is_ok_and(|s| s.plaintext_bytes_to_read() > 0),
            _ => false,
        }
    }

    /// The client and the server agreed on HTTP/2 by ALPN.
    pub fn alpn_h2(&self) -> bool {
        matches!(&self.state, State::Open(conn) if conn.alpn_protocol() == Some(b"h2"))
    }

    /// The handshake hasn't finished.
    pub fn handshaking(&self) -> bool {
        match &self.state {
            State::Accepting(_) => true,
            State::Open(conn) => conn.is_handshaking(),
            State::Failed => false,
        }
    }

    /// Queues `close_notify` and sends what the socket takes (best effort: the connection
    /// is closing).
    pub fn close_notify(&mut self, fd: RawFd) {
        // What `queue` holds goes first.
        let _ = self.seal_tail();
        if let State::Open(conn) = &mut self.state {
            if !conn.is_handshaking() {
                conn.send_close_notify();
                let _ = self.flush(fd);
            }
        }
    }

    /// The client certificate, if the client sent one.
    pub fn client_cert(&mut self) -> Option<Arc<ClientCert>> {
        if self.client.is_none() {
            let State::Open(conn) = &self.state else { return None };
            let der = conn.peer_certificates()?.first()?.to_vec();
            let dn = subject_oneline(&der).unwrap_or_default();
            let pem = self.site.export_cert().then(|| pem_encode(&der));
            self.client = Some(Arc::new(ClientCert { dn, der, pem }));
        }
        self.client.clone()
    }
}

/// The subject as OpenSSL's `X509_NAME_oneline` writes it: `/C=IT/O=x/CN=name`.
fn subject_oneline(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut out = String::new();
    for rdn in cert.subject().iter() {
        for attr in rdn.iter() {
            let oid = attr.attr_type();
            let id = oid.to_id_string();
            let name = openssl_short_name(&id).map_or_else(
                || x509_parser::objects::oid2sn(oid, registry).map_or(id.clone(), str::to_owned),
                str::to_owned,
            );
            let value = attr
                .as_str()
                .map_or_else(|_| String::from_utf8_lossy(attr.attr_value().data).into_owned(), str::to_owned);
            out.push('/');
            out.push_str(&name);
            out.push('=');
            out.push_str(&value);
        }
    }
    Some(out)
}

/// OpenSSL's short names of the usual subject attributes (the OID registry has long ones).
fn openssl_short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.42" => "GN",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        _ => return None,
    })
}

fn pem_encode(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(suites: &[SupportedCipherSuite]) -> Vec<&'static str> {
        suites.iter().filter_map(|s| s.suite().as_str()).collect()
    }

    #[test]
    fn cipher_list_keeps_the_named_tls12_suites_in_order() {
        let all = ring_provider().cipher_suites;
        let picked = select_suites(&all, "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:!aNULL");
        let tls12: Vec<_> = names(&picked).into_iter().filter(|n| n.starts_with("TLS_ECDHE")).collect();
        assert_eq!(tls12, ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        // TLS 1.3 suites are not restricted by an OpenSSL cipher list.
        assert_eq!(picked.iter().filter(|s| is_tls13(**s)).count(), all.iter().filter(|s| is_tls13(**s)).count());
    }

    #[test]
    fn cipher_list_of_keywords_keeps_every_suite() {
        let all = ring_provider().cipher_suites;
        assert_eq!(names(&select_suites(&all, "HIGH:!aNULL:!MD5")).len(), all.len());
    }

    #[test]
    fn pem_encoding_wraps_at_64_columns() {
        let pem = pem_encode(&[0u8; 100]);
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64 || l.starts_with("-----")));
        assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    }
}
