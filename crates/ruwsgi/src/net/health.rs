//! `health-path` (ruwsgi only, not a uWSGI option): a GET or HEAD of that path, on any
//! socket and with any query string, is answered by the connection loop itself, before
//! routing, static files and Python: `200 ok` while the instance serves, `503 draining`
//! from the moment a graceful stop began (the master's `unhealthy` flag in the scoreboard,
//! `master/drain.rs`). A load balancer or a Kubernetes probe then stops sending traffic
//! while the instance still serves what it gets. Such answers are neither logged nor
//! counted as requests: probes every few seconds would flood the log and skew the
//! figures an autoscaler reads. Building the answer is pure; the loop writes it.

/// The answer to a request for `path` (the request target: the query string is ignored),
/// or `None` when it is not a health check. `head_only`: a HEAD request (no body);
/// `keep_alive`: the client allows another request on the connection (a 503 closes it).
pub fn reply(
    health_path: &str,
    method: &[u8],
    path: &[u8],
    healthy: bool,
    head_only: bool,
    keep_alive: bool,
) -> Option<Vec<u8>> {
    if method != b"GET" && method != b"HEAD" {
        return None;
    }
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    if path != health_path.as_bytes() {
        return None;
    }
    let (status, body) = if healthy { ("200 OK", "ok\n") } else { ("503 Service Unavailable", "draining\n") };
    let connection = if keep_alive && healthy { "" } else { "Connection: close\r\n" };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{connection}\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    Some(out)
}

/// True when the reply built by `reply` leaves the connection open.
pub fn keeps_alive(reply: &[u8]) -> bool {
    !reply.windows(19).any(|w| w == b"Connection: close\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: Option<Vec<u8>>) -> String {
        String::from_utf8(r.expect("a health check")).unwrap()
    }

    #[test]
    fn answers_200_while_healthy_with_any_query_string() {
        for target in [&b"/healthz"[..], b"/healthz?probe=kubelet"] {
            let r = text(reply("/healthz", b"GET", target, true, false, true));
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nok\n"), "{r}");
            assert!(keeps_alive(r.as_bytes()));
        }
    }

    #[test]
    fn answers_503_and_closes_once_draining() {
        let r = text(reply("/healthz", b"GET", b"/healthz", false, false, true));
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n") && r.ends_with("draining\n"), "{r}");
        assert!(!keeps_alive(r.as_bytes()));
    }

    #[test]
    fn head_gets_no_body_and_other_paths_or_methods_pass() {
        let r = text(reply("/healthz", b"HEAD", b"/healthz", true, true, false));
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        assert_eq!(reply("/healthz", b"GET", b"/healthz/x", true, false, true), None);
        assert_eq!(reply("/healthz", b"GET", b"/health", true, false, true), None);
        assert_eq!(reply("/healthz", b"POST", b"/healthz", true, false, true), None);
    }
}
