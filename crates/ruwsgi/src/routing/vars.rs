//! The request variables (`PATH_INFO`, `HTTP_HOST`, ...) the routing rules read, for both
//! listeners: an HTTP head is looked up like the environ `wsgi/` builds from it, a uwsgi
//! packet by its vars. Pure: no I/O, and no allocation unless a value must be decoded.

use std::borrow::Cow;

use ruwsgi_proto::{percent_decode, RequestHead, UwsgiPacket};

/// A parsed request, seen as CGI variables.
pub trait RequestVars {
    /// The value of a CGI variable, `None` when the request has none.
    fn var(&self, name: &str) -> Option<Cow<'_, [u8]>>;
}

/// An HTTP request head and what the connection knows.
pub struct HttpVars<'a> {
    /// The parsed head.
    pub head: &'a RequestHead<'a>,
    /// `SERVER_NAME`.
    pub server_name: &'a str,
    /// `SERVER_PORT`.
    pub server_port: &'a str,
    /// `REMOTE_ADDR`.
    pub remote_addr: &'a str,
    /// `REMOTE_PORT`.
    pub remote_port: &'a str,
    /// An `https` connection: `HTTPS` is `on`.
    pub https: bool,
}

impl RequestVars for HttpVars<'_> {
    fn var(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        let head = self.head;
        let s: &str = match name {
            "REQUEST_METHOD" => head.method,
            "REQUEST_URI" => head.target,
            // As the environ: percent-decoded.
            "PATH_INFO" => return Some(percent_decode(head.path().as_bytes())),
            "QUERY_STRING" => head.query(),
            "SERVER_PROTOCOL" => {
                if head.minor_version == 0 {
                    "HTTP/1.0"
                } else {
                    "HTTP/1.1"
                }
            }
            "SERVER_NAME" => self.server_name,
            "SERVER_PORT" => self.server_port,
            "REMOTE_ADDR" => self.remote_addr,
            "REMOTE_PORT" => self.remote_port,
            "HTTPS" if self.https => "on",
            "CONTENT_TYPE" => return head.header("content-type").map(Cow::Borrowed),
            "CONTENT_LENGTH" => return head.header("content-length").map(Cow::Borrowed),
            _ => {
                let wanted = name.strip_prefix("HTTP_")?;
                return head.headers.iter().find(|(n, _)| header_is_var(n, wanted)).map(|(_, v)| Cow::Borrowed(*v));
            }
        };
        Some(Cow::Borrowed(s.as_bytes()))
    }
}

/// `X-Forwarded-For` is `FORWARDED_FOR` after `HTTP_`; headers with `_` never are (the
/// environ drops them too).
fn header_is_var(header: &str, var: &str) -> bool {
    header.len() == var.len()
        && header.bytes().zip(var.bytes()).all(|(h, v)| {
            if h == b'-' {
                v == b'_'
            } else {
                h != b'_' && h.to_ascii_uppercase() == v
            }
        })
}

/// A uwsgi packet (nginx `uwsgi_pass`).
pub struct UwsgiVars<'a> {
    /// The parsed packet.
    pub packet: &'a UwsgiPacket<'a>,
}

impl RequestVars for UwsgiVars<'_> {
    fn var(&self, name: &str) -> Option<Cow<'_, [u8]>> {
        // The last of repeated vars, as in the environ.
        self.packet.vars.iter().rev().find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| Cow::Borrowed(*v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_map_to_http_vars() {
        assert!(header_is_var("User-Agent", "USER_AGENT"));
        assert!(header_is_var("host", "HOST"));
        assert!(!header_is_var("X_User", "X_USER"));
        assert!(!header_is_var("Hosts", "HOST"));
    }
}
