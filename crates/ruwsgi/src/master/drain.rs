//! A graceful stop that loses no client (SIGTERM, master FIFO `q`, a `gracefully_kill_them_all`
//! hook). In order:
//! 1. The instance reports itself unhealthy (`health-path` answers 503, the scoreboard's
//!    `unhealthy` flag) and keeps serving for `drain-delay` seconds, so a load balancer or
//!    Kubernetes takes it out of rotation before it stops accepting.
//! 2. The sockets are closed to newcomers without dropping the connections that already
//!    wait in the listen backlog: a TCP listener gets a socket filter that drops opening
//!    SYNs (new clients go unanswered, then are refused once the socket is gone; with
//!    `reuse-port` the kernel sends them to another instance), and with `vacuum` unix socket
//!    files are removed first, so no new client finds them.
//! 3. The workers are told to stop; each first serves what waits in the backlog, then stops
//!    accepting and finishes its requests (`worker::serve`, the scoreboard's `closing` flag).
//!
//! Sockets from systemd socket activation get neither the filter nor the wait: systemd keeps
//! them open, so their backlog waits for the next start (the filter would stay on them).
//! The master only decides and flags here; the workers do the serving.
//!
//! Differs from uWSGI: uWSGI has no drain delay nor health path, and closing its sockets
//! resets the connections waiting in the backlog.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::net::listener::{self, Listener};
use crate::scoreboard::Scoreboard;

/// The drain of one master image.
#[derive(Debug)]
pub struct Drain {
    /// `drain-delay`.
    delay: Duration,
    /// End of the delay, while it runs.
    until: Option<Instant>,
    /// The delay is over (or was 0): the stop proper has begun.
    over: bool,
}

impl Drain {
    /// A drain with `drain-delay = delay_secs`.
    pub fn new(delay_secs: u64) -> Self {
        Self { delay: Duration::from_secs(delay_secs), until: None, over: false }
    }

    /// A graceful stop was asked (`why` starts the log line). Marks the instance unhealthy;
    /// true while the stop must wait for the delay (just started, or still running).
    pub fn defer(&mut self, board: Scoreboard, why: &str) -> bool {
        board.board().unhealthy.store(1, Relaxed);
        if self.over {
            return false;
        }
        if self.until.is_some() {
            tracing::info!("{why}: already draining");
            return true;
        }
        if self.delay.is_zero() {
            self.over = true;
            return false;
        }
        self.until = Some(Instant::now() + self.delay);
        tracing::info!(
            "{why}: draining for {} s (health checks answer 503, requests are still served), then stopping gracefully",
            self.delay.as_secs()
        );
        true
    }

    /// True (once) when the delay has run out: the caller stops now.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.until.is_some_and(|t| now >= t) {
            self.until = None;
            self.over = true;
            return true;
        }
        false
    }

    /// While the delay runs: when it ends (for the master's poll timeout).
    pub fn next_due(&self) -> Option<Instant> {
        self.until
    }

    /// True while the delay runs (a reload then is ignored: it would bring back a healthy
    /// instance that is about to stop).
    pub fn running(&self) -> bool {
        self.until.is_some()
    }
}

/// Step 2: closes the sockets to newcomers, keeping the backlog; then flags the workers to
/// serve it before they stop. Call before the master drops its own copies of the sockets
/// and before the workers are signalled.
pub fn close_to_newcomers(board: Scoreboard, listeners: &[Listener], vacuum: bool) {
    for l in listeners.iter().filter(|l| !l.activated && !l.is_unix()) {
        if let Err(e) = l.refuse_newcomers() {
            tracing::warn!("cannot close {} to new clients while its backlog is served: {e}", l.name);
        }
    }
    if vacuum {
        listener::vacuum(listeners);
    }
    board.board().closing.store(1, Relaxed);
}
