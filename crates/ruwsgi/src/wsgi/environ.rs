//! Builds the PEP 3333 environ: a copy of a per-process template plus the request's own
//! entries. Keys are interned; header-derived keys are cached per thread.

use std::borrow::Cow;
use std::cell::RefCell;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use ruwsgi_proto::{percent_decode, BodyFraming, RequestHead};

use super::Origin;

/// Most distinct header names cached per thread (bounded: names come from clients).
const KEY_CACHE_MAX: usize = 512;

/// Raw names (header or uwsgi var) to their interned environ keys, per thread. foldhash,
/// not the std hasher: a lookup per request header cost ~320 instructions with `SipHash`. It
/// is seeded per process, and the cache is bounded (`KEY_CACHE_MAX`) either way.
type KeyCache = foldhash::HashMap<Box<[u8]>, Py<PyString>>;

/// A value seen last (its text) and the Python string made for it.
type LastValue = Option<(Box<str>, Py<PyString>)>;

/// What a thread keeps from one environ to the next. One thread-local, reached once per
/// request: the extension is a `dlopen`ed library, so every thread-local access is a call
/// to `__tls_get_addr`, and with a thread-local per cache a request made five of them.
#[derive(Default)]
struct Caches {
    /// `HTTP_*` key strings by raw header name.
    header_keys: KeyCache,
    /// uwsgi var names (nginx's CGI names) as environ keys.
    var_keys: KeyCache,
    /// The last `SERVER_NAME`, `SERVER_PORT`, `REMOTE_ADDR` and `Host` values (see `repeated`).
    last: [LastValue; 4],
}

thread_local! {
    static CACHES: RefCell<Caches> = RefCell::new(Caches::default());
}

/// Slots of `Caches::last`.
const SERVER_NAME: usize = 0;
const SERVER_PORT: usize = 1;
const REMOTE_ADDR: usize = 2;
const HOST: usize = 3;

/// The value `text` as a Python string, the same object as last time when this thread's
/// last value in `last` was equal: a listener's name and port never change and most
/// clients come from a few addresses and name a few hosts, so most requests make no
/// string for them.
fn repeated<'py>(py: Python<'py>, last: &mut LastValue, text: &str) -> Bound<'py, PyString> {
    if let Some((seen, value)) = last {
        if **seen == *text {
            return value.bind(py).clone();
        }
    }
    let value = PyString::new(py, text);
    *last = Some((text.into(), value.clone().unbind()));
    value
}

/// The constant part of every environ.
pub fn template(
    py: Python<'_>,
    multiprocess: bool,
    multithread: bool,
    file_wrapper: bool,
) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(intern!(py, "wsgi.version"), PyTuple::new(py, [1, 0])?)?;
    d.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "http"))?;
    d.set_item(intern!(py, "wsgi.errors"), py.import("sys")?.getattr("stderr")?)?;
    d.set_item(intern!(py, "wsgi.multithread"), multithread)?;
    d.set_item(intern!(py, "wsgi.multiprocess"), multiprocess)?;
    d.set_item(intern!(py, "wsgi.run_once"), false)?;
    d.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    if file_wrapper {
        d.set_item(intern!(py, "wsgi.file_wrapper"), py.get_type::<super::FileWrapper>())?;
    }
    d.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
    Ok(d)
}

/// Keys every HTTP request's environ gets (`fill` and the `wsgi.input` of `call_app`).
const HTTP_KEYS: [&str; 10] = [
    "REQUEST_METHOD",
    "PATH_INFO",
    "QUERY_STRING",
    "REQUEST_URI",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "wsgi.input",
];

/// The template for HTTP requests: `template` plus a `None` for each of `HTTP_KEYS`, which
/// every HTTP request replaces. Its copy then has room for them: filling a copy of the bare
/// template grew the new dict's table once or twice per request.
pub fn http_template<'py>(template: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let py = template.py();
    let d = template.copy()?;
    for key in HTTP_KEYS {
        d.set_item(PyString::intern(py, key), py.None())?;
    }
    Ok(d)
}

/// Decodes bytes as latin-1 (PEP 3333's "bytes-as-unicode"); ASCII takes the fast path.
pub fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if bytes.is_ascii() {
        // ASCII is valid UTF-8.
        PyString::new(py, std::str::from_utf8(bytes).unwrap_or_default())
    } else {
        let s: String = bytes.iter().map(|&b| char::from(b)).collect();
        PyString::new(py, &s)
    }
}

/// `HTTP_` + upper-cased name with `-` as `_`.
fn header_key<'py>(cache: &mut KeyCache, py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    cached_key(cache, py, name.as_bytes(), || {
        let mut key = String::with_capacity(5 + name.len());
        key.push_str("HTTP_");
        key.extend(name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
        key
    })
}

/// The interned key for `raw` from `cache`, made by `make` (and cached) on a miss.
fn cached_key<'py>(
    cache: &mut KeyCache,
    py: Python<'py>,
    raw: &[u8],
    make: impl FnOnce() -> String,
) -> Bound<'py, PyString> {
    if let Some(k) = cache.get(raw) {
        return k.bind(py).clone();
    }
    let s = PyString::intern(py, &make());
    if cache.len() < KEY_CACHE_MAX {
        cache.insert(raw.into(), s.clone().unbind());
    }
    s
}

/// `PATH_INFO` of an HTTP request, as `fill` sets it (percent-decoded bytes).
pub fn http_path_info<'h>(head: &RequestHead<'h>) -> Cow<'h, [u8]> {
    percent_decode(head.path().as_bytes())
}

/// An `https` connection's variables, as uWSGI's: `HTTPS=on` and the `https` scheme; with
/// a client certificate, `HTTPS_DN` (its subject), `HTTPS_CLIENT_CERTIFICATE` (DER) and,
/// with `https-export-cert`, `HTTPS_CC` (PEM).
pub fn fill_tls(py: Python<'_>, env: &Bound<'_, PyDict>, tls: &crate::net::transport::TlsFacts) -> PyResult<()> {
    env.set_item(intern!(py, "HTTPS"), intern!(py, "on"))?;
    env.set_item(intern!(py, "wsgi.url_scheme"), intern!(py, "https"))?;
    if let Some(cert) = &tls.client {
        env.set_item(intern!(py, "HTTPS_DN"), PyString::new(py, &cert.dn))?;
        env.set_item(intern!(py, "HTTPS_CLIENT_CERTIFICATE"), latin1(py, &cert.der))?;
        if let Some(pem) = &cert.pem {
            env.set_item(intern!(py, "HTTPS_CC"), PyString::new(py, pem))?;
        }
    }
    Ok(())
}

/// Fills `env` (a template copy) for one request.
pub fn fill(py: Python<'_>, env: &Bound<'_, PyDict>, origin: &Origin<'_>) -> PyResult<()> {
    // No Python code runs while the caches are borrowed (dict items with `str` keys, new
    // strings, and the drop of a replaced `str` call none), so `fill` can't re-enter.
    CACHES.with(|caches| fill_with(py, env, origin, &mut caches.borrow_mut()))
}

fn fill_with(py: Python<'_>, env: &Bound<'_, PyDict>, origin: &Origin<'_>, caches: &mut Caches) -> PyResult<()> {
    match origin {
        Origin::Http { head, server_name, server_port, remote_addr, remote_port, .. } => {
            env.set_item(intern!(py, "REQUEST_METHOD"), method(py, head.method))?;
            let target = PyString::new(py, head.target);
            let plain = head.authority.is_none() && !head.target.contains(['?', '%']);
            // The usual target (no query, nothing escaped) is its own PATH_INFO: one string.
            let path_info = if plain { target.clone() } else { latin1(py, &http_path_info(head)) };
            env.set_item(intern!(py, "PATH_INFO"), path_info)?;
            let query = head.query();
            let query = if query.is_empty() { intern!(py, "").clone() } else { PyString::new(py, query) };
            env.set_item(intern!(py, "QUERY_STRING"), query)?;
            env.set_item(intern!(py, "REQUEST_URI"), target)?;
            let protocol = if head.minor_version == 0 { intern!(py, "HTTP/1.0") } else { intern!(py, "HTTP/1.1") };
            env.set_item(intern!(py, "SERVER_PROTOCOL"), protocol)?;
            env.set_item(intern!(py, "SERVER_NAME"), repeated(py, &mut caches.last[SERVER_NAME], server_name))?;
            env.set_item(intern!(py, "SERVER_PORT"), repeated(py, &mut caches.last[SERVER_PORT], server_port))?;
            env.set_item(intern!(py, "REMOTE_ADDR"), repeated(py, &mut caches.last[REMOTE_ADDR], remote_addr))?;
            env.set_item(intern!(py, "REMOTE_PORT"), PyString::new(py, remote_port))?;
            // The one length the body was framed with: `Content-Length: 5, 5` or two equal
            // fields (RFC 9110 §8.6 lets them collapse) must not reach the app as "5, 5".
            if let BodyFraming::Length(n) = head.body {
                env.set_item(intern!(py, "CONTENT_LENGTH"), n.to_string())?;
            }
            // RFC 9112 §3.2.2: an absolute-form target's authority replaces the Host header.
            if let Some(authority) = head.authority {
                env.set_item(intern!(py, "HTTP_HOST"), PyString::new(py, authority))?;
            }
            for (i, (name, value)) in head.headers.iter().enumerate() {
                let key = if name.eq_ignore_ascii_case("content-type") {
                    intern!(py, "CONTENT_TYPE").clone()
                } else if name.eq_ignore_ascii_case("content-length")
                    || (head.authority.is_some() && name.eq_ignore_ascii_case("host"))
                {
                    continue;
                } else if name.contains('_') {
                    // Differs from uWSGI: like nginx and Gunicorn, headers with '_' are dropped,
                    // so `X_User` can't pose as a proxy's `X-User` once both become HTTP_X_USER.
                    continue;
                } else {
                    header_key(&mut caches.header_keys, py, name)
                };
                let seen_before = head.headers[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
                if seen_before {
                    // RFC 9110 §5.3: repeated fields combine with ", " (cookies with "; ").
                    let sep = if name.eq_ignore_ascii_case("cookie") { "; " } else { ", " };
                    let old: String = env.get_item(&key)?.map(|v| v.extract()).transpose()?.unwrap_or_default();
                    let mut combined = old;
                    combined.push_str(sep);
                    combined.push_str(&latin1(py, value).to_cow()?);
                    env.set_item(key, combined)?;
                } else if name.eq_ignore_ascii_case("host") && value.is_ascii() {
                    // ASCII is valid UTF-8.
                    env.set_item(
                        key,
                        repeated(py, &mut caches.last[HOST], std::str::from_utf8(value).unwrap_or_default()),
                    )?;
                } else {
                    env.set_item(key, latin1(py, value))?;
                }
            }
        }
        Origin::Uwsgi { packet, .. } => {
            for (k, v) in &packet.vars {
                let key = cached_key(&mut caches.var_keys, py, k, || k.iter().map(|&b| char::from(b)).collect());
                let value = latin1(py, v);
                // nginx before 1.23 sends each header line as its own var: combine repeated
                // HTTP_* vars as the HTTP listener combines repeated headers (RFC 9110 §5.3),
                // so both listeners give an app the same environ. Other vars: the last wins.
                let repeated = if k.starts_with(b"HTTP_") { env.get_item(&key)? } else { None };
                match repeated {
                    Some(old) => {
                        let sep = if *k == b"HTTP_COOKIE" { "; " } else { ", " };
                        let combined = format!("{}{sep}{}", old.extract::<String>()?, value.to_cow()?);
                        env.set_item(key, combined)?;
                    }
                    None => env.set_item(key, value)?,
                }
            }
            // The scheme, whatever the order of the vars: uWSGI's UWSGI_SCHEME first, then
            // nginx's `HTTPS on` (uwsgi_params sends it only behind TLS), then REQUEST_SCHEME.
            let https = packet.var(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case(b"on") || v == b"1");
            let scheme =
                packet.var(b"UWSGI_SCHEME").or(https.then_some(b"https".as_slice())).or(packet.var(b"REQUEST_SCHEME"));
            if let Some(s) = scheme {
                env.set_item(intern!(py, "wsgi.url_scheme"), latin1(py, s))?;
            }
            if env.get_item(intern!(py, "PATH_INFO"))?.is_none() {
                env.set_item(intern!(py, "PATH_INFO"), intern!(py, ""))?;
            }
            if env.get_item(intern!(py, "QUERY_STRING"))?.is_none() {
                env.set_item(intern!(py, "QUERY_STRING"), intern!(py, ""))?;
            }
        }
    }
    Ok(())
}

/// Interned strings for the common methods.
fn method<'py>(py: Python<'py>, m: &str) -> Bound<'py, PyString> {
    match m {
        "GET" => intern!(py, "GET").clone(),
        "POST" => intern!(py, "POST").clone(),
        "HEAD" => intern!(py, "HEAD").clone(),
        "PUT" => intern!(py, "PUT").clone(),
        "DELETE" => intern!(py, "DELETE").clone(),
        _ => PyString::new(py, m),
    }
}
