//! Fuzzes the whole request path (parse → environ → app → response → log) of a running
//! server: the real `ruwsgi` with `tests/apps/echo.py` on an HTTP and a uwsgi socket gets
//! mutated requests, each on its own connection (write, then half-close). Every input must
//! be answered with well-formed HTTP responses or a bare close, within a bound; the server
//! must never crash, panic or hang, and a canary request must keep working.
//!
//! Inputs come from a seeded generator (xorshift, no dependency): the seed corpora of
//! `fuzz/corpus/{http_head,uwsgi_packet}` plus built-in requests, mutated by byte flips,
//! inserts, deletes, splices of protocol tokens, and pipelining of two inputs.
//!
//! `scripts/test` runs a short pass (`FUZZ_REQUESTS`, default 400). A long run:
//! `FUZZ_SECONDS=300 FUZZ_SEED=7 cargo test --profile it -p it --test fuzz_request_path -- --nocapture`
//! prints the executions and the findings (docs/hardening.md has the figures).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use it::Server;

/// Protocol tokens spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\t",
    b",",
    b":",
    b"Content-Length: ",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: 18446744073709551615\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: keep-alive\r\n",
    b"Connection: close\r\n",
    b"Host: h\r\n",
    b"X-Forwarded-For: \xe2\x80\xa8\x1b[1m\r\n",
    b"0\r\n\r\n",
    b"0\r\nContent-Length: 1\r\n\r\n",
    b"5\r\nhello\r\n",
    b"ffffffffffffffff\r\n",
    b";ext=\"v\"",
    b"HTTP/1.0",
    b"HTTP/1.1",
    b"HTTP/2.0",
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"OPTIONS * ",
    b"CONNECT a:1 ",
    b"http://a:1/x?y",
    b"/%00%2e%2e/%ff?",
    b"\xc3\xa9\xe2\x80\xa9\xc2\x85",
];

/// Hand-written starting points besides the corpora.
const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /a?b=c HTTP/1.0\r\n\r\n",
    b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /?read=length HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /?read=line HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe\nlo\r\n0\r\nX-T: 1\r\n\r\n",
    b"POST /?read=iter HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://a:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nhi",
];

/// xorshift64*: deterministic for a given `FUZZ_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`; `other` is another seed for splicing and pipelining.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    let at = rng.below(input.len() + 1);
    match rng.below(8) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 => input.insert(at, rng.next() as u8),
        2 if at < input.len() => {
            let end = (at + 1 + rng.below(8)).min(input.len());
            input.drain(at..end);
        }
        3 | 4 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        5 => input.extend_from_slice(other),
        6 if !other.is_empty() => {
            let from = rng.below(other.len());
            let to = (from + 1 + rng.below(64)).min(other.len());
            input.splice(at..at, other[from..to].iter().copied());
        }
        _ => {
            let digits = ["0", "1", "7", "65536", "4294967296", "9223372036854775807"][rng.below(6)];
            input.splice(at..at, digits.bytes());
        }
    }
}

fn corpus(dir: &str) -> Vec<Vec<u8>> {
    let path = it::repo().join("fuzz/corpus").join(dir);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(path)
        .map(|d| d.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Everything the server sent for `raw` until it closed; `None` if it didn't close in time.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before taking everything: a failed write is fine.
    let _ = s.write_all(raw);
    let _ = s.shutdown(Shutdown::Write);
    it::read_until_eof_or_reset(&mut s).ok()
}

/// Checks that `bytes` is a sequence of HTTP/1.x responses, each with a well-formed head and
/// a body of its Content-Length (only the first head is checked when a HEAD was sent).
/// Returns how many responses there were.
fn well_formed(mut bytes: &[u8], sent_head: bool, statuses: &mut BTreeMap<u16, u64>) -> Result<usize, String> {
    let mut count = 0;
    while !bytes.is_empty() {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").ok_or("response head without its end")?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "response head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|r| r.get(..3)?.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        for line in lines {
            let (name, value) = line.split_once(": ").ok_or_else(|| format!("bad header line {line:?}"))?;
            if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) || value.bytes().any(|b| b < b' ') {
                return Err(format!("bad header {line:?}"));
            }
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|_| format!("bad Content-Length {value:?}"))?);
            }
        }
        bytes = &bytes[end + 4..];
        count += 1;
        *statuses.entry(status).or_default() += 1;
        if sent_head {
            // Which response answers the HEAD (and so has no body) isn't tracked.
            return Ok(count);
        }
        if (100..200).contains(&status) {
            continue;
        }
        let length = length.ok_or_else(|| format!("{status} response without Content-Length"))?;
        if length > bytes.len() {
            return Err(format!("body shorter than Content-Length {length}"));
        }
        bytes = &bytes[length..];
    }
    Ok(count)
}

#[test]
fn fuzzed_requests_get_well_formed_answers_and_the_server_survives() {
    let seconds: u64 = std::env::var("FUZZ_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let budget: u64 = std::env::var("FUZZ_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let seed: u64 = std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(19);
    let echo = it::app("echo.py");
    let srv = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        &echo,
        "--processes",
        "2",
        "--threads",
        "2",
        "--master",
        "--socket-timeout",
        "2",
        "--limit-post",
        "1000000",
        "--log-x-forwarded-for",
    ]);
    let (http, uwsgi) = (srv.addrs[0], srv.addrs[1]);
    let workers = srv.worker_pids();
    let mut http_seeds: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
    http_seeds.extend(corpus("http_head"));
    let uwsgi_seeds = corpus("uwsgi_packet");
    assert!(!uwsgi_seeds.is_empty());
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let (mut runs, mut answered, mut closed) = (0u64, 0u64, 0u64);
    let mut findings = Vec::new();
    let mut statuses = BTreeMap::new();
    while if seconds > 0 { started.elapsed() < Duration::from_secs(seconds) } else { runs < budget } {
        let to_uwsgi = rng.below(4) == 0;
        let seeds = if to_uwsgi { &uwsgi_seeds } else { &http_seeds };
        let mut input = seeds[rng.below(seeds.len())].clone();
        let other = &seeds[rng.below(seeds.len())];
        for _ in 0..=rng.below(6) {
            mutate(&mut rng, &mut input, other);
        }
        let sent_head = input.windows(5).any(|w| w == b"HEAD ") || input.windows(4).any(|w| w == b"HEAD");
        runs += 1;
        match exchange(if to_uwsgi { uwsgi } else { http }, &input) {
            None => findings.push(format!("no close within 10 s for {:?}", String::from_utf8_lossy(&input))),
            Some(reply) if reply.is_empty() => closed += 1,
            Some(reply) => match well_formed(&reply, sent_head, &mut statuses) {
                Ok(_) => answered += 1,
                Err(why) => findings.push(format!(
                    "{why}: {:?} answered {:?}",
                    String::from_utf8_lossy(&input),
                    String::from_utf8_lossy(&reply[..reply.len().min(400)])
                )),
            },
        }
        if runs % 100 == 0 {
            let canary = srv.get(&format!("/canary?n={runs}"));
            assert_eq!(canary.status, 200, "canary after {runs} inputs: {canary:?}");
            assert!(canary.text().contains("\"PATH_INFO\": \"/canary\""), "{}", canary.text());
        }
        assert!(findings.len() < 20, "findings:\n{}", findings.join("\n"));
    }
    assert_eq!(srv.get("/canary").status, 200);
    let log = srv.log();
    println!(
        "fuzz_request_path: seed {seed}: {runs} inputs in {:.0} s ({answered} answered, {closed} closed without an answer), {} findings; responses by status: {statuses:?}",
        started.elapsed().as_secs_f64(),
        findings.len()
    );
    // What the app raised (500s), for triage: its exception lines, counted.
    let mut raised: BTreeMap<&str, u64> = BTreeMap::new();
    for line in log.lines().filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.contains("Error")) {
        *raised.entry(line.trim()).or_default() += 1;
    }
    println!("fuzz_request_path: app exceptions: {raised:?}");
    for bad in ["panic", "internal error", "DAMN", "HARAKIRI"] {
        let line = log.lines().find(|l| l.contains(bad));
        assert!(line.is_none(), "the log says {line:?}");
    }
    assert_eq!(srv.worker_pids(), workers, "a worker was replaced");
    assert!(findings.is_empty(), "findings:\n{}", findings.join("\n"));
}
