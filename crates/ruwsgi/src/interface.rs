//! The application interface: the one boundary between the connection loop (`net/`), which
//! parses requests and moves bytes, and what answers them in Python (`wsgi/` for WSGI
//! callables, `wsgi/asgi` for ASGI apps). The loop hands an `Application` a parsed
//! `Request` (with its `Client` connection and `BodyReader`) and gets back what was `Served`,
//! for the log and the scoreboard. `net/` never imports `wsgi::`, and the app side never
//! holds a raw socket fd: it writes and waits through `Client`.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use ruwsgi_proto::{RequestHead, UwsgiPacket};

pub use crate::net::body::{BodyReader, Progress as BodyProgress};
pub use crate::net::client::{Client, OwnedClient, Wait};

/// What answers requests in a worker: the WSGI callables or an ASGI app.
pub trait Application: Sync {
    /// Answers one request on the calling thread (`req.client` is the connection, `body`
    /// its request body). Returns what was sent and the body reader, so the connection can
    /// recover bytes of a pipelined next request.
    fn handle(&self, req: &Request<'_>, body: BodyReader) -> (Served, BodyReader);
}

/// Where a request came from, borrowed from the connection's buffer.
pub enum Origin<'a> {
    /// Parsed HTTP/1.x head.
    Http {
        /// The head.
        head: &'a RequestHead<'a>,
        /// `SERVER_NAME`.
        server_name: &'a str,
        /// `SERVER_PORT`.
        server_port: &'a str,
        /// `REMOTE_ADDR`.
        remote_addr: &'a str,
        /// `REMOTE_PORT`.
        remote_port: &'a str,
    },
    /// A uwsgi packet (nginx `uwsgi_pass`): the environ is given.
    Uwsgi {
        /// The packet.
        packet: &'a UwsgiPacket<'a>,
    },
}

/// One request ready for the app.
pub struct Request<'a> {
    /// What arrived.
    pub origin: Origin<'a>,
    /// The connection, for the response.
    pub client: Client,
    /// What `route*` rules left for the app: environ variables, headers to add or drop.
    pub route: Option<&'a crate::routing::RouteState>,
    /// The worker's stop flag, when no other request is buffered behind this one: if it is
    /// set by the time the response head is written, the head says `Connection: close`.
    pub closing: Option<&'a Arc<AtomicBool>>,
    /// When (µs) this request started, as harakiri and the stats see it; 0 = not busy. A
    /// request that turns into a long-lived session (a WebSocket) sets it to 0.
    pub harakiri_clock: &'a AtomicU64,
}

/// What happened, for the request log and the scoreboard.
#[derive(Debug, Default)]
#[allow(clippy::struct_excessive_bools)] // facts about one response, each a yes/no
pub struct Served {
    /// Status code sent (or 500 when the app failed before sending one).
    pub status: u16,
    /// Body bytes sent.
    pub body_bytes: u64,
    /// Header lines sent.
    pub header_count: usize,
    /// Bytes of the response head.
    pub header_bytes: usize,
    /// Number of environ entries.
    pub vars: usize,
    /// The connection may carry another request.
    pub keep_alive: bool,
    /// The app raised.
    pub app_error: bool,
    /// The body went out with sendfile.
    pub sendfile: bool,
    /// The app that served it (uWSGI's `app: N`); `None` when no app matched (`app: -1`).
    pub app: Option<usize>,
    /// `vhost`: the request's host, which uWSGI puts in front of its request-log line.
    pub vhost: Option<String>,
    /// A `donotlog` routing rule fired: no request-log line.
    pub donotlog: bool,
    /// Logvars routing rules set (`logvar:NAME=VALUE`), for `%(NAME)` in a `log-format`.
    pub logvars: Vec<(String, String)>,
    /// Response headers kept by `collect-header`/`pull-header`: (variable, value), for
    /// `%(var.NAME)` in a `log-format`.
    pub collected: Vec<(String, Vec<u8>)>,
    /// The rest of a `wsgi.file_wrapper` body the client didn't take at once: the
    /// connection's event loop sends it, so a slow client doesn't hold the app's thread.
    pub rest: Option<FileRest>,
}

/// The unsent part of a file body, on a file descriptor of its own.
#[derive(Debug)]
pub struct FileRest {
    /// A duplicate of the app's file (the app's object is closed when the request ends).
    pub file: std::fs::File,
    /// Next byte to send.
    pub offset: u64,
    /// Bytes left.
    pub remaining: u64,
}
