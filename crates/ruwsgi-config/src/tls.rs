//! The TLS options' values: `https`/`https-socket` (`addr,cert,key[,ciphers[,client_ca]]`),
//! `https2` (`addr=...,cert=...,key=...`) and `sni`/`sni-regexp` (`name cert,key[,ciphers[,client_ca]]`),
//! parsed as uWSGI does (`core/uwsgi.c` `uwsgi_opt_add_ssl_socket`, `core/ssl.c`
//! `uwsgi_opt_sni`, `plugins/http/https.c`). Pure: no file is read here; the runtime loads
//! the certificates (`ruwsgi::net::tls`).

/// One TLS context: a certificate chain and its key, and what clients must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// PEM certificate chain: a file path, or the PEM itself (a value starting `-----BEGIN `).
    pub cert: String,
    /// PEM private key: a file path, or the PEM itself.
    pub key: String,
    /// OpenSSL-style cipher list (`ECDHE-RSA-AES128-GCM-SHA256:...`); `None` = rustls's
    /// defaults. It restricts the TLS 1.2 suites, as OpenSSL's cipher list does.
    pub ciphers: Option<String>,
    /// CA bundle that client certificates are checked against (mutual TLS).
    pub client_ca: Option<ClientCa>,
}

/// The `client_ca` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCa {
    /// PEM CA bundle (path or the PEM itself).
    pub path: String,
    /// The value began with `!`: a client without a valid certificate is refused
    /// (OpenSSL's `SSL_VERIFY_FAIL_IF_NO_PEER_CERT`); otherwise a certificate is asked for
    /// but optional, and one that is given must be valid.
    pub required: bool,
}

/// One `sni`/`sni-regexp` context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniSpec {
    /// The server name (or, for `sni-regexp`, the regular expression) it answers for.
    pub name: String,
    /// `sni-regexp`: `name` is a regular expression matched against the server name.
    pub regexp: bool,
    /// Its certificate, key, ciphers and client CA.
    pub tls: TlsSpec,
}

/// Splits `cert,key[,ciphers[,client_ca]]`. Empty ciphers mean the defaults (uWSGI checks
/// `strlen(ciphers) > 0`); an empty client CA means none.
fn parse_context(value: &str) -> Option<TlsSpec> {
    let mut parts = value.splitn(4, ',');
    let cert = parts.next()?.trim();
    let key = parts.next()?.trim();
    if cert.is_empty() || key.is_empty() {
        return None;
    }
    let ciphers = parts.next().map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
    let client_ca = parts.next().map(str::trim).filter(|c| !c.is_empty()).map(client_ca);
    Some(TlsSpec { cert: cert.to_owned(), key: key.to_owned(), ciphers, client_ca })
}

fn client_ca(value: &str) -> ClientCa {
    match value.strip_prefix('!') {
        Some(path) => ClientCa { path: path.to_owned(), required: true },
        None => ClientCa { path: value.to_owned(), required: false },
    }
}

/// `https`/`https-socket`: `addr,cert,key[,ciphers[,client_ca]]`. Returns the address (not
/// yet checked) and the context. As in uWSGI, the client CA is everything after the fourth
/// comma.
#[must_use]
pub fn parse_https_socket(value: &str) -> Option<(String, TlsSpec)> {
    let (addr, rest) = value.trim().split_once(',')?;
    let addr = addr.trim();
    if addr.is_empty() {
        return None;
    }
    Some((addr.to_owned(), parse_context(rest)?))
}

/// `https2`: `addr=...,cert=...|crt=...,key=...[,ciphers=...][,clientca=...|client_ca=...]`
/// (uWSGI's key-value list; its `spdy` key is accepted and ignored).
#[must_use]
pub fn parse_https2(value: &str) -> Option<(String, TlsSpec)> {
    let (mut addr, mut cert, mut key, mut ciphers, mut ca) = (None, None, None, None, None);
    for item in value.trim().split(',') {
        let (k, v) = item.split_once('=')?;
        let v = Some(v.trim().to_owned());
        match k.trim() {
            "addr" => addr = v,
            "cert" | "crt" => cert = v,
            "key" => key = v,
            "ciphers" => ciphers = v,
            "clientca" | "client_ca" => ca = v,
            "spdy" => {}
            _ => return None,
        }
    }
    let tls = TlsSpec {
        cert: cert.filter(|c| !c.is_empty())?,
        key: key.filter(|k| !k.is_empty())?,
        ciphers: ciphers.filter(|c| !c.is_empty()),
        client_ca: ca.filter(|c| !c.is_empty()).as_deref().map(client_ca),
    };
    Some((addr.filter(|a| !a.is_empty())?, tls))
}

/// `sni`/`sni-regexp`: `name cert,key[,ciphers[,client_ca]]` (a space after the name).
#[must_use]
pub fn parse_sni(value: &str, regexp: bool) -> Option<SniSpec> {
    let (name, rest) = value.trim().split_once(' ')?;
    Some(SniSpec { name: name.to_owned(), regexp, tls: parse_context(rest)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(cert: &str, key: &str, ciphers: Option<&str>, ca: Option<(&str, bool)>) -> TlsSpec {
        TlsSpec {
            cert: cert.into(),
            key: key.into(),
            ciphers: ciphers.map(Into::into),
            client_ca: ca.map(|(path, required)| ClientCa { path: path.into(), required }),
        }
    }

    #[test]
    fn https_socket_takes_address_cert_key() {
        assert_eq!(parse_https_socket(":8443,a.crt,a.key"), Some((":8443".into(), spec("a.crt", "a.key", None, None))));
        assert_eq!(
            parse_https_socket("0.0.0.0:443,a.crt,a.key,HIGH,!ca.pem"),
            Some(("0.0.0.0:443".into(), spec("a.crt", "a.key", Some("HIGH"), Some(("ca.pem", true)))))
        );
        assert_eq!(
            parse_https_socket(":443,a.crt,a.key,,ca.pem"),
            Some((":443".into(), spec("a.crt", "a.key", None, Some(("ca.pem", false)))))
        );
    }

    #[test]
    fn client_ca_keeps_later_commas() {
        let (_, tls) = parse_https_socket(":1,c,k,x,ca,with,commas").unwrap();
        assert_eq!(tls.client_ca.unwrap().path, "ca,with,commas");
    }

    #[test]
    fn https_socket_needs_cert_and_key() {
        for bad in ["", ":8443", ":8443,a.crt", ",a.crt,a.key", ":8443,,a.key", ":8443,a.crt,"] {
            assert_eq!(parse_https_socket(bad), None, "{bad}");
        }
    }

    #[test]
    fn https2_reads_key_value_items() {
        assert_eq!(
            parse_https2("addr=:8443,crt=a.crt,key=a.key,client_ca=!ca.pem,spdy=1"),
            Some((":8443".into(), spec("a.crt", "a.key", None, Some(("ca.pem", true)))))
        );
        assert_eq!(parse_https2("addr=:8443,cert=a.crt"), None);
        assert_eq!(parse_https2("addr=:8443,cert=a.crt,key=k,bogus=1"), None);
    }

    #[test]
    fn sni_takes_a_name_then_a_context() {
        assert_eq!(
            parse_sni("example.com a.crt,a.key", false),
            Some(SniSpec { name: "example.com".into(), regexp: false, tls: spec("a.crt", "a.key", None, None) })
        );
        assert_eq!(parse_sni("example.com", false), None);
        assert_eq!(parse_sni("example.com a.crt", false), None);
    }
}
