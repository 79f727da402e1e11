//! HTTP/2 (issue 17) on `https` (ALPN `h2`) and, with `http2-cleartext`, on `http-socket`
//! (prior knowledge), checked with real clients: curl, Python's httpx (several streams on
//! one connection, big bodies both ways, a cancelled stream), h2load, `openssl s_client`
//! and the Django example. The denial-of-service defences are each shown by flooding one connection with
//! frames crafted by hand (Python's sans-I/O `h2` package for the HTTP/2 state, raw bytes
//! for the flood): that connection gets GOAWAY `ENHANCE_YOUR_CALM` and is closed, while
//! another client is served meanwhile.

use std::process::Command;
use std::time::Duration;

use it::tls::{curl, dir_of, guestbook_post, python_client, run, start, start_django_https, url};
use it::{app, json, Server, Start};

/// `ENHANCE_YOUR_CALM` (RFC 9113 §7).
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// Runs one operation of `CLIENT` against the server (the test CA trusted); returns its
/// JSON answer.
fn python(srv: &Server, args: &[&str]) -> json::Value {
    python_client(srv, "h2client.py", CLIENT, args)
}

const CLIENT: &str = r#"
import asyncio, hashlib, json, os, socket, ssl, struct, sys, threading, time
import httpx

port, cafile, op, *args = sys.argv[1:]
port = int(port)
base = "https://localhost:%d" % port
PATTERN = bytes(range(256)) * 256

def client():
    return httpx.Client(http2=True, verify=ssl.create_default_context(cafile=cafile), timeout=30)

if op == "concurrent":  # concurrent N: N streams at once on one connection
    n = int(args[0])
    async def main():
        async with httpx.AsyncClient(http2=True, verify=ssl.create_default_context(cafile=cafile), timeout=30) as c:
            first = await c.get(base + "/env")
            rs = await asyncio.gather(*[c.get(base + "/together?n=%d" % n) for _ in range(n)])
            bodies = [r.json() for r in rs]
            return {"versions": sorted({r.http_version for r in rs + [first]}),
                    "met": all(b["met"] for b in bodies),
                    "threads": len({b["thread"] for b in bodies}),
                    "ports": len({b["port"] for b in bodies} | {first.json()["REMOTE_PORT"]})}
    print(json.dumps(asyncio.run(main())))
elif op == "bodies":  # bodies UP DOWN: an upload of UP bytes and a download of DOWN bytes
    up, down = int(args[0]), int(args[1])
    with client() as c:
        data = os.urandom(up)
        u = c.post(base + "/upload", content=data)
        d = c.get(base + "/big?n=%d" % down)
        # A body of unknown length (no content-length): the app reads it to its end.
        g = c.post(base + "/upload", content=iter([data[i:i + 100_000] for i in range(0, len(data), 100_000)]))
        want = (PATTERN * (down // len(PATTERN) + 1))[:down]
        print(json.dumps({"version": u.http_version, "up_len": u.json()["len"],
                          "up_same": u.json()["sha256"] == hashlib.sha256(data).hexdigest(),
                          "down_len": len(d.content), "down_same": d.content == want,
                          "down_version": d.http_version, "unsized_len": g.json()["len"],
                          "unsized_same": g.json()["sha256"] == hashlib.sha256(data).hexdigest()}))
elif op == "cancel":  # cancel: read a little of an endless response, close the stream
    with client() as c:
        with c.stream("GET", base + "/endless") as r:
            got = 0
            for piece in r.iter_bytes():
                got += len(piece)
                if got >= 100_000:
                    break
        after = c.get(base + "/env")
        print(json.dumps({"version": r.http_version, "got": got, "after": after.status_code,
                          "after_version": after.http_version}))
elif op == "env":  # env PATH: the environ seen over HTTP/2, and the response headers
    with client() as c:
        r = c.get(base + args[0], headers=[("X-Test", "1"), ("Cookie", "a=1"), ("Cookie", "b=2")])
        print(json.dumps({"version": r.http_version, "status": r.status_code, "environ": r.json(),
                          "multi": r.headers.get_list("x-multi")}))
elif op == "spread":  # spread N: N connections opened one by one and held; the pid of each
    clients = [client() for _ in range(int(args[0]))]
    pids = [c.get(base + "/pid").text for c in clients]
    print(json.dumps({"pids": pids, "versions": sorted({c.get(base + "/pid").http_version for c in clients})}))
    for c in clients:
        c.close()
elif op == "stall":  # stall: ask for a big response, never open the stream's window
    import h2.config, h2.connection, h2.events, h2.settings
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    conn.send_headers(1, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/big?n=10000000")], end_stream=True)
    sock.sendall(conn.data_to_send())
    sock.settimeout(30)
    reset, status = None, None
    while reset is None:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers)[":status"]
            if isinstance(ev, h2.events.StreamReset) and ev.stream_id == 1:
                reset = int(ev.error_code)
        sock.sendall(conn.data_to_send())
    with client() as c:
        after = c.get(base + "/env").status_code
    print(json.dumps({"status": status, "reset": reset, "after": after}))
elif op in ("stall_one", "cancel_upload"):
    # stall_one: a big response on stream 1 whose window is never opened, and /env on stream 3
    # of the same connection meanwhile. cancel_upload: 200 KB of a 10 MB upload on stream 1,
    # then RST_STREAM, and /env on stream 3.
    import h2.config, h2.connection, h2.events
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    def request(sid, method, path, end, extra=()):
        conn.send_headers(sid, [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path), *extra], end_stream=end)
    if op == "stall_one":
        request(1, "GET", "/big?n=10000000", True)
    else:
        request(1, "POST", "/upload", False, [("content-length", "10000000")])
        sent = 0
        while sent < 200_000:
            room = min(conn.local_flow_control_window(1), conn.max_outbound_frame_size, 200_000 - sent)
            if room == 0:
                sock.sendall(conn.data_to_send())
                for ev in conn.receive_data(sock.recv(65536)):
                    pass
                continue
            conn.send_data(1, b"u" * room)
            sent += room
        sock.sendall(conn.data_to_send())
        time.sleep(0.5)  # the app is reading the body now (or waits for more)
        conn.reset_stream(1)
    request(3, "GET", "/env", True)
    sock.sendall(conn.data_to_send())
    sock.settimeout(20)
    got = {1: 0, 3: 0}
    status, ended = {}, set()
    while 3 not in ended:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status[ev.stream_id] = dict(ev.headers)[":status"]
            elif isinstance(ev, h2.events.DataReceived):
                got[ev.stream_id] = got.get(ev.stream_id, 0) + len(ev.data)
                if ev.stream_id == 1:
                    # Connection credit back, never the stream's own.
                    conn.increment_flow_control_window(ev.flow_controlled_length)
                else:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        sock.sendall(conn.data_to_send())
    print(json.dumps({"status": status.get(3), "env_bytes": got[3], "stalled_bytes": got[1],
                      "stalled_ended": 1 in ended, "env_ended": 3 in ended}))
elif op == "late_reader":  # late_reader N SIZE: N big responses at once, read only after a pause
    n, size = int(args[0]), int(args[1])
    import h2.config, h2.connection, h2.events, h2.settings
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    # Windows that never stop the server: only the socket (unread for a while) holds it back.
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    sids = [1 + 2 * i for i in range(n)]
    for sid in sids:
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/big?n=%d" % size)], end_stream=True)
    sock.sendall(conn.data_to_send())
    time.sleep(1.5)  # the server's socket buffer fills meanwhile
    sock.settimeout(30)
    bodies = {sid: bytearray() for sid in sids}
    ended = set()
    while len(ended) < n:
        data = sock.recv(1 << 20)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                bodies[ev.stream_id] += ev.data
            elif isinstance(ev, h2.events.StreamEnded):
                ended.add(ev.stream_id)
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
    want = (PATTERN * (size // len(PATTERN) + 1))[:size]
    print(json.dumps({"ended": len(ended), "lens": sorted({len(b) for b in bodies.values()}),
                      "same": all(bytes(b) == want for b in bodies.values())}))
elif op == "records":  # records N: the TLS records that carry a response of N bytes
    n = int(args[0])
    import h2.config, h2.connection, h2.events, h2.settings
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), 20)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    pending = b""
    def pump():
        global pending
        out = outgoing.read()
        if out:
            raw.sendall(out)
        data = raw.recv(1 << 20)
        if not data:
            raise SystemExit("closed")
        pending += data
        sizes = []
        while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
            size = int.from_bytes(pending[3:5], "big")
            sizes.append(size)
            incoming.write(pending[:5 + size])
            pending = pending[5 + size:]
        return sizes
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    def exchange(sid, path):
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", path)], end_stream=True)
        tls.write(conn.data_to_send())
        sizes, body = [], b""
        while True:
            sizes += pump()
            while True:
                try:
                    data = tls.read(1 << 20)
                except ssl.SSLWantReadError:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        body += ev.data
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                        return sizes, body
                out = conn.data_to_send()
                if out:
                    tls.write(out)
    exchange(1, "/env")  # settings and session tickets come before this one ends
    sizes, body = exchange(3, "/sized?n=%d" % n)
    print(json.dumps({"records": sizes, "len": len(body), "same": body == (PATTERN * (n // len(PATTERN) + 1))[:n]}))
elif op == "flood":  # flood KIND COUNT: flood one connection, serve another meanwhile
    kind, count = args[0], int(args[1])
    import h2.config, h2.connection
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 20), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    def frame(kind_, flags, stream, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([kind_, flags]) + struct.pack(">I", stream) + payload
    request = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"), (":path", "/env")]
    out = b""
    if kind == "ping":
        out = b"".join(frame(6, 0, 0, struct.pack(">Q", i)) for i in range(count))
    elif kind == "settings":
        out = frame(4, 0, 0) * count
    elif kind == "reset":  # rapid reset: open a stream, cancel it, again and again
        for i in range(count):
            sid = 1 + 2 * i
            conn.send_headers(sid, request, end_stream=True)
            conn.reset_stream(sid)
        out = conn.data_to_send()
    elif kind == "continuation":  # one header block that never ends
        conn.send_headers(1, request, end_stream=True)
        block = conn.data_to_send()
        # The HEADERS frame without END_HEADERS, then empty CONTINUATION frames.
        out = frame(1, 0x1, 1, block[9:]) + frame(9, 0, 1) * count
    elif kind == "hpack":  # HPACK bomb: a 4000-byte value in the table, referenced again and again
        def literal(name, value):  # literal with incremental indexing, new name
            def length(n):  # 7-bit prefix integer
                if n < 127:
                    return bytes([n])
                n -= 127
                b = bytearray([127])
                while n >= 128:
                    b.append((n & 0x7f) | 0x80)
                    n >>= 7
                b.append(n)
                return bytes(b)
            return b"\x40" + length(len(name)) + name + length(len(value)) + value
        pseudo = b"\x82\x87\x84" + literal(b":authority", b"localhost")
        out = frame(1, 0x5, 1, pseudo + literal(b"x-bomb", b"b" * 4000))
        for i in range(1, count):
            # Index 62 is the newest dynamic entry: the bomb (after :authority, 63).
            out += frame(1, 0x5, 1 + 2 * i, b"\x82\x87\x84\xbf" + b"\xbe" * 4000)
    else:
        raise SystemExit("unknown flood " + kind)
    other = client()
    before = other.get(base + "/env").status_code
    sock.settimeout(20)
    try:
        sock.sendall(out)
    except OSError:
        pass  # closed while still sending: the defence was quicker
    served = [other.get(base + "/env").status_code for _ in range(3)]
    # Read what the flooded connection gets until it closes: look for GOAWAY.
    data, goaway, closed = b"", None, False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except (ssl.SSLError, OSError):
            closed = True
            break
        if not piece:
            closed = True
            break
        data += piece
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        if data[pos + 3] == 7 and pos + 9 + 8 <= len(data):
            goaway = int.from_bytes(data[pos + 13:pos + 17], "big")
        pos += 9 + length
    print(json.dumps({"before": before, "served": served, "goaway": goaway, "closed": closed}))
"#;

fn start_h2(extra: &[&str]) -> Server {
    start_h2_workers(extra, 1)
}

/// `start_h2`, waiting for `workers` workers.
fn start_h2_workers(extra: &[&str], workers: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    it::tls::write_certs(dir.path(), &it::tls::Ca::new());
    let mark = dir.path().join("mark").display().to_string();
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let mut args: Vec<String> =
        ["--https", &https, "--wsgi-file", &app("h2_app.py"), "--threads", "4"].map(str::to_owned).to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Server::start_in(dir, Start { args, env: vec![("H2_MARK", mark)], workers })
}

#[test]
fn curl_speaks_http2_over_https_and_the_app_sees_http2() {
    let srv = start("site.crt,site.key", "echo.py", &[]);
    let (code, body, err) =
        curl(&srv, &["--http2", "-v", "-o", "/dev/null", "-w", "%{http_version}", &url(&srv, "/x?y=1")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&body), "2", "{err}");
    assert!(err.contains("ALPN: server accepted h2"), "{err}");
    let (code, body, err) = curl(&srv, &["--http2", &url(&srv, "/path%20x?y=1")]);
    assert_eq!(code, 0, "{err}");
    let got: json::Value = json::from_str(&String::from_utf8_lossy(&body)).unwrap();
    let env = &got["environ"];
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/2");
    assert_eq!(env["HTTPS"], "on");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["PATH_INFO"], "/path x");
    assert_eq!(env["QUERY_STRING"], "y=1");
    assert_eq!(env["REQUEST_URI"], "/path%20x?y=1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(env["HTTP_HOST"], format!("localhost:{}", srv.addr().port()));
    // Each HTTP/2 request is logged as an HTTP/1.1 one is, with its protocol.
    assert!(srv.wait_log("GET /path%20x?y=1 => generated", Duration::from_secs(10)), "{}", srv.log());
    assert!(srv.log().contains("(HTTP/2 200)"), "{}", srv.log());
    // --http1.1 still gets HTTP/1.1 on the same socket.
    let (code, body, err) = curl(&srv, &["--http1.1", "-o", "/dev/null", "-w", "%{http_version}", &url(&srv, "/")]);
    assert_eq!((code, String::from_utf8_lossy(&body).as_ref()), (0, "1.1"), "{err}");
}

#[test]
fn headers_both_ways_over_http2() {
    let srv = start_h2(&[]);
    let got = python(&srv, &["env", "/env?q=1"]);
    assert_eq!(got["version"], "HTTP/2");
    let env = &got["environ"];
    assert_eq!(env["HTTP_X_TEST"], "1");
    // HTTP/2 sends each cookie as its own field: the app gets them joined, as on HTTP/1.1.
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(got["multi"], json::json!(["a", "b"]));
}

#[test]
fn concurrent_streams_on_one_connection_run_on_the_workers_threads_at_once() {
    let srv = start_h2(&[]);
    let got = python(&srv, &["concurrent", "4"]);
    assert_eq!(got["versions"], json::json!(["HTTP/2"]), "{got}");
    assert_eq!(got["ports"], 1, "one connection: {got}");
    assert_eq!(got["met"], true, "the 4 streams were in the app at once: {got}");
    assert_eq!(got["threads"], 4, "{got}");
    // Each is logged and counted (the worker's request counter, `req: N/N`) as an HTTP/1.1
    // request is.
    assert!(srv.wait_for(Duration::from_secs(10), |log| log.matches("(HTTP/2 200)").count() == 5), "{}", srv.log());
    assert!(srv.log().contains("|req: 5/5]"), "{}", srv.log());
}

#[test]
fn harakiri_kills_a_stuck_http2_request() {
    let srv = start_h2(&["--master", "--harakiri", "1"]);
    let (code, _, _) = curl(&srv, &["--http2", &url(&srv, "/sleep?s=30")]);
    assert_ne!(code, 0, "the stuck request's connection dies with its worker");
    assert!(srv.wait_log("HARAKIRI", Duration::from_secs(15)), "{}", srv.log());
    assert!(srv.log().contains("GET /sleep?s=30"), "harakiri names the HTTP/2 request: {}", srv.log());
    // The new worker serves HTTP/2.
    let (code, body, err) = curl(&srv, &["--http2", "-w", "%{http_version}", &url(&srv, "/sleep?s=0")]);
    assert_eq!((code, String::from_utf8_lossy(&body).as_ref()), (0, "slept2"), "{err}");
}

#[test]
fn a_response_the_client_grants_no_window_is_reset_after_socket_timeout() {
    let srv = start_h2(&["--socket-timeout", "2", "--threads", "1"]);
    let got = python(&srv, &["stall"]);
    assert_eq!(got["status"], "200", "{got}");
    assert_eq!(got["reset"], 8, "RST_STREAM CANCEL: {got}");
    // The app's only thread was freed (its write timed out as for a client that doesn't read).
    assert_eq!(got["after"], 200, "{got}");
}

#[test]
fn a_stream_whose_client_never_reads_holds_its_app_thread_but_not_the_connections_other_streams() {
    let srv = start_h2(&["--threads", "2"]);
    let got = python(&srv, &["stall_one"]);
    assert_eq!(got["status"], "200", "{got}");
    assert_eq!(got["env_ended"], true, "{got}");
    assert!(got["env_bytes"].as_u64().unwrap() > 100, "{got}");
    // The stalled stream got at most its window's worth (64 KiB), and did not end.
    assert_eq!(got["stalled_ended"], false, "{got}");
    assert!(got["stalled_bytes"].as_u64().unwrap() <= 65_535, "{got}");
}

#[test]
fn a_stream_reset_mid_upload_ends_the_apps_read_and_frees_its_thread() {
    // One thread, and a socket-timeout longer than the client waits: the next stream is
    // answered only if the reset ended the app's read.
    let srv = start_h2(&["--threads", "1", "--socket-timeout", "60"]);
    let got = python(&srv, &["cancel_upload"]);
    assert_eq!(got["status"], "200", "{got}");
    assert_eq!(got["env_ended"], true, "{got}");
}

#[test]
fn a_graceful_reload_finishes_the_http2_stream_in_flight() {
    let srv = start_h2(&["--master"]);
    let dir = dir_of(&srv);
    let curl = Command::new("curl")
        .args(["-sS", "--max-time", "30", "--http2", "-w", " %{http_version}", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", srv.addr().port())])
        .arg(url(&srv, "/sleep?s=2"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let sleeping = dir.join("mark.sleeping");
    for _ in 0..400 {
        if sleeping.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(sleeping.exists(), "the request reached the app: {}", srv.log());
    srv.signal(nix::sys::signal::Signal::SIGHUP);
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "slept 2");
    let reloaded = srv.wait_for(Duration::from_secs(30), |log| log.matches("spawned uWSGI worker").count() >= 2);
    assert!(reloaded, "{}", srv.log());
    let (code, body, err) = curl_h2(&srv, "/sleep?s=0");
    assert_eq!((code, body.as_str()), (0, "slept"), "{err}");
}

fn curl_h2(srv: &Server, path: &str) -> (i32, String, String) {
    let (code, body, err) = curl(srv, &["--http2", &url(srv, path)]);
    (code, String::from_utf8_lossy(&body).into_owned(), err)
}

#[test]
fn large_upload_and_download_over_http2_with_flow_control() {
    let srv = start_h2(&[]);
    // Both far past the 64 KiB stream window and the 1 MiB connection window.
    let got = python(&srv, &["bodies", "5000000", "7000000"]);
    assert_eq!(got["version"], "HTTP/2", "{got}");
    assert_eq!(got["up_len"], 5_000_000, "{got}");
    assert_eq!(got["up_same"], true, "{got}");
    assert_eq!(got["down_len"], 7_000_000, "{got}");
    assert_eq!(got["down_same"], true, "{got}");
    assert_eq!(got["unsized_len"], 5_000_000, "{got}");
    assert_eq!(got["unsized_same"], true, "{got}");
}

#[test]
fn many_big_responses_to_a_client_that_reads_late_arrive_whole() {
    // Responses are encrypted into the connection's TLS queue and sent after each round
    // of frames: with windows that never stop the server, the queue fills past its bound
    // and the socket fills while the client doesn't read; every byte still arrives, in
    // order, once it does.
    let srv = start_h2(&[]);
    let got = python(&srv, &["late_reader", "8", "1500000"]);
    assert_eq!(got["ended"], 8, "{got}");
    assert_eq!(got["lens"], json::json!([1_500_000]), "{got}");
    assert_eq!(got["same"], true, "{got}");
}

#[test]
fn a_64k_response_fills_whole_tls_records() {
    // `h2` writes a 16 KiB DATA frame and the 9-byte header of the next at a time; the
    // bytes short of a full record wait for the next frame instead of making a record of
    // their own: the HEADERS, four full records and one small one (there were four small
    // ones more, one after each frame).
    let srv = start_h2(&[]);
    let got = python(&srv, &["records", "65536"]);
    assert_eq!(got["len"], 65536, "{got}");
    assert_eq!(got["same"], true, "{got}");
    let sizes: Vec<u64> = got["records"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let small = sizes.iter().filter(|&&n| n < 1024).count();
    assert!(small <= 2 && sizes.len() <= 6, "records: {sizes:?}");
}

#[test]
fn a_cancelled_stream_is_a_disconnect_for_the_app_and_the_connection_goes_on() {
    let srv = start_h2(&[]);
    let got = python(&srv, &["cancel"]);
    assert_eq!(got["version"], "HTTP/2", "{got}");
    assert_eq!(got["after"], 200, "{got}");
    assert_eq!(got["after_version"], "HTTP/2", "{got}");
    // The app's generator was closed when its write failed, long before its 10000 pieces.
    let mark = srv.dir.path().join("mark");
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(&mark).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent: u32 = text.strip_prefix("gone after ").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    assert!(sent < 10_000, "{text}");
}

#[test]
fn cleartext_http2_with_prior_knowledge_when_enabled() {
    let on = Server::start(&["--http-socket", "127.0.0.1:0", "--http2-cleartext", "--wsgi-file", &app("echo.py")]);
    let addr = format!("http://127.0.0.1:{}/c", on.addr().port());
    let out = run(Command::new("curl").args(["-sS", "--max-time", "20", "--http2-prior-knowledge", "-d", "hi", &addr]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: json::Value = json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(got["environ"]["SERVER_PROTOCOL"], "HTTP/2");
    assert_eq!(got["environ"]["wsgi.url_scheme"], "http");
    assert_eq!(got["body"], "hi");
    // HTTP/1.1 on the same socket as before.
    assert_eq!(on.get("/").status, 200);
    // Without the option, the preface is a bad HTTP/1.1 request.
    let off = Server::start(&["--http-socket", "127.0.0.1:0", "--wsgi-file", &app("echo.py")]);
    let addr = format!("http://127.0.0.1:{}/c", off.addr().port());
    let out = run(Command::new("curl").args(["-sS", "--max-time", "20", "--http2-prior-knowledge", &addr]));
    assert!(!out.status.success());
}

#[test]
fn asgi_app_over_http2() {
    let dir = tempfile::tempdir().unwrap();
    it::tls::write_certs(dir.path(), &it::tls::Ca::new());
    let apps = it::repo().join("tests/apps").display().to_string();
    let https = "127.0.0.1:0,site.crt,site.key".to_owned();
    let args = ["--https", &https, "--chdir", &apps, "--asgi", "asgi_raw:app", "--threads", "2"];
    let srv = Server::start_args_in(dir, &args, 1);
    let (code, body, err) = curl(&srv, &["--http2", &url(&srv, "/scope?a=1")]);
    assert_eq!(code, 0, "{err}");
    let scope: json::Value = json::from_slice(&body).unwrap();
    assert_eq!(scope["http_version"], "2", "{scope}");
    assert_eq!(scope["scheme"], "https", "{scope}");
    assert_eq!(scope["query_string"], "a=1", "{scope}");
    let (code, body, err) = curl(&srv, &["--http2", "--data-binary", "ping over h2", &url(&srv, "/echo")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body, b"ping over h2");
    let (code, body, err) = curl(&srv, &["--http2", &url(&srv, "/stream")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(body, b"part0\npart1\npart2\n");
}

/// 400 requests of `/env` by h2load over `clients` connections with `streams` each in
/// flight: whether it exited 0, and what it printed.
fn h2load(srv: &Server, clients: u32, streams: u32) -> (bool, String) {
    let url = format!("https://127.0.0.1:{}/env", srv.addr().port());
    let (c, m) = (clients.to_string(), streams.to_string());
    let out = run(Command::new("h2load").args(["-n", "400", "-c", &c, "-m", &m, &url]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn h2load_bounded_run_over_tls() {
    let srv = start_h2(&[]);
    let (ok, text) = h2load(&srv, 4, 8);
    assert!(ok, "{text}");
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(text.contains("400 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(text.contains("status codes: 400 2xx"), "{text}");
}

/// RFC 9113 recommends allowing at least 100 concurrent streams: a client that opens that
/// many at once (before it has read the server's SETTINGS) gets every one answered, not
/// refused, while the worker's few threads take them in turn.
#[test]
fn a_hundred_streams_at_once_on_one_connection_are_all_answered() {
    let srv = start_h2(&[]);
    let (_, text) = h2load(&srv, 2, 100);
    assert!(text.contains("400 succeeded, 0 failed, 0 errored"), "{text}");
}

/// Streams that arrive while the worker's only loop thread is in the app are queued without
/// waking anyone (no thread waits in epoll); the thread takes them one after another before
/// it waits again, so none is left behind (nor served twice).
#[test]
fn streams_queued_while_the_only_thread_is_busy_are_all_answered_once() {
    let srv = start_h2(&["--threads", "1"]);
    let url = format!("https://127.0.0.1:{}/sleep?s=0.002", srv.addr().port());
    let out = run(Command::new("h2load").args(["-n", "120", "-c", "2", "-m", "30", &url]));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("120 succeeded, 0 failed, 0 errored"), "{text}");
    assert!(srv.wait_for(Duration::from_secs(10), |log| log.matches("(HTTP/2 200)").count() == 120), "{}", srv.log());
    assert!(srv.log().contains("|req: 120/120]"), "{}", srv.log());
}

/// HTTP/2 connections leave the loop threads for the worker's HTTP/2 thread; they still
/// count in the balance of connections over the workers, so one worker doesn't take them
/// all (with 2 workers it served 3,650 req/s to some h2load clients and 370 to others).
#[test]
fn http2_connections_are_spread_over_the_workers() {
    let srv = start_h2_workers(&["--processes", "2", "--threads", "1"], 2);
    let got = python(&srv, &["spread", "20"]);
    assert_eq!(got["versions"], json::json!(["HTTP/2"]), "{got}");
    let mut per_worker = std::collections::HashMap::<String, usize>::new();
    for pid in got["pids"].as_array().unwrap() {
        *per_worker.entry(pid.as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_worker.len(), 2, "{per_worker:?}");
    assert!(per_worker.values().all(|&n| n >= 6), "{per_worker:?}");
}

#[test]
fn openssl_s_client_is_offered_h2_then_http11() {
    let srv = start_h2(&[]);
    for (alpn, want) in
        [("h2", "ALPN protocol: h2"), ("http/1.1", "ALPN protocol: http/1.1"), ("h2,http/1.1", "ALPN protocol: h2")]
    {
        let out = run(Command::new("openssl")
            .args(["s_client", "-connect", &srv.addr().to_string(), "-alpn", alpn])
            .stdin(std::process::Stdio::null()));
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(want), "-alpn {alpn}: {text}");
    }
}

#[test]
fn django_example_admin_and_static_files_over_http2() {
    let (srv, static_root) = start_django_https();
    let (code, body, err) = curl(&srv, &["--http2", "-i", &url(&srv, "/admin/login/")]);
    assert_eq!(code, 0, "{err}");
    let page = String::from_utf8_lossy(&body);
    assert!(page.starts_with("HTTP/2 200"), "{page}");
    assert!(page.contains("csrfmiddlewaretoken") && page.contains("id_username"), "{page}");
    assert!(page.contains("strict-transport-security: max-age=31536000"), "{page}");
    // A static file (static-map) over HTTP/2.
    let (code, body, err) =
        curl(&srv, &["--http2", "-w", "\n%{http_version}", &url(&srv, "/static/admin/css/base.css")]);
    assert_eq!(code, 0, "{err}");
    let want = std::fs::read(static_root.join("admin/css/base.css")).unwrap();
    assert_eq!(&body[..body.len() - 2], want.as_slice());
    assert_eq!(&body[body.len() - 2..], b"\n2");
    // The guestbook's form round trip over HTTP/2: CSRF cookie, token and Referer check.
    let posted = guestbook_post(&srv, &["--http2"], "name=Grace&message=over+HTTP/2", "%{http_code} %{http_version}");
    assert_eq!(posted, "303 2");
    let (_, body, _) = curl(&srv, &["--http2", &url(&srv, "/")]);
    assert!(String::from_utf8_lossy(&body).contains("<strong>Grace</strong>: over HTTP/2"));
}

/// Floods one connection with `kind` frames; checks that connection got GOAWAY
/// `ENHANCE_YOUR_CALM` and was closed, that another client was served meanwhile, and that
/// the log says why.
fn flood(kind: &str, count: usize, logged: &str) {
    let srv = start_h2(&[]);
    let got = python(&srv, &["flood", kind, &count.to_string()]);
    assert_eq!(got["before"], 200, "{got}");
    assert_eq!(got["served"], json::json!([200, 200, 200]), "{got}");
    assert_eq!(got["goaway"], ENHANCE_YOUR_CALM, "{got}\n{}", srv.log());
    assert_eq!(got["closed"], true, "{got}");
    assert!(srv.wait_log(logged, Duration::from_secs(10)), "{}", srv.log());
}

#[test]
fn ping_flood_closes_the_connection() {
    flood("ping", 5000, "PING flood (GOAWAY ENHANCE_YOUR_CALM)");
}

#[test]
fn settings_flood_closes_the_connection() {
    flood("settings", 5000, "SETTINGS flood (GOAWAY ENHANCE_YOUR_CALM)");
}

#[test]
fn rapid_reset_closes_the_connection() {
    flood("reset", 3000, "(rapid reset) (GOAWAY ENHANCE_YOUR_CALM)");
}

#[test]
fn continuation_flood_closes_the_connection() {
    flood("continuation", 5000, "CONTINUATION flood (GOAWAY ENHANCE_YOUR_CALM)");
}

#[test]
fn hpack_bomb_closes_the_connection() {
    flood("hpack", 200, "oversized or bad headers (HPACK bomb) (GOAWAY ENHANCE_YOUR_CALM)");
}
