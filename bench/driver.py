#!/usr/bin/env python3
"""Benchmark driver: ruwsgi against uWSGI, Gunicorn, Granian, bjoern and a Rust-only ceiling.

Run through `bench/run` (which installs everything into bench/.venv first); see
docs/benchmarking.md. Only the standard library is used, plus matplotlib for the chart.

For each app, every server of that app's list is started once (own process group, 127.0.0.1,
a port of its own), polled until it answers, warmed up, then measured with wrk in round-robin
alternation: round 1 runs every server once, then round 2, ... Figures per run: req/s, p50/p99
latency, errors, server CPU time per request (utime+stime of the whole process group from /proc
before/after the wrk run), total RSS of the group; once per cell, h2load's per-client req/s
(fairness across 64 keep-alive connections). Servers are stopped by PID: SIGTERM, then SIGKILL.
The connection-scaling cells (hello-64, hello-1k, hello-10k) are loaded by `h2load --h1`
instead, every connection opened and busy for BENCH_STEADY_WARMUP s before the measured window.

Environment: BENCH_DURATION (s, default 10), BENCH_ROUNDS (3), BENCH_WARMUP (s, 1),
BENCH_CONNECTIONS (64), BENCH_FAIRNESS (target seconds of the h2load run, 2; 0 = skip),
BENCH_H2_STREAMS (concurrent streams per connection in the HTTP/2 cells, 1), BENCH_NOTE (a
sentence printed under the report's heading, e.g. that the machine was shared).

The HTTPS cells (`--apps tls`: tls-hello, tls-64k and their -h2 variants) serve the apps over
TLS with a self-signed certificate made at run time by openssl: ruwsgi `https`, Granian with
its own TLS, and nginx terminating TLS in front of ruwsgi's uwsgi `socket`. HTTP/1.1 cells are
loaded by wrk over https, HTTP/2 cells by h2load (ALPN h2). A server that doesn't pick `h2`
by ALPN gets "n/a" in the HTTP/2 cells. A run of only these cells replaces the HTTPS section
of an existing benchmarks.md and leaves the rest of the file alone. Any other run writes its
report between the "full run" markers of benchmarks.md and keeps what follows them.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
APPS_DIR = BENCH / "apps"
DJANGO_DIR = ROOT / "examples" / "django"
VENV_BIN = Path(sys.prefix) / "bin"
CEILING = BENCH / "ceiling" / "target" / "release" / "ruwsgi-bench-ceiling"
POST_LUA = BENCH / "post64k.lua"
WSLOAD = BENCH / "wsload.py"
HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
STATIC_FILE = "bench.css"
STATIC_SIZE = 16 * 1024
POST_SIZE = 64 * 1024

# --------------------------------------------------------------------------------------------
# apps and servers
# --------------------------------------------------------------------------------------------


class App:
    def __init__(self, key, label, directory, target, path="/", post=False, static=False,
                 connections=None, close=False, asgi=False, ws=None, tls=False, h2=False):
        self.key = key
        self.label = label
        self.dir = directory
        self.target = target  # "module:callable"
        self.path = path
        self.post = post
        self.static = static
        # Load shape: wrk's connection count (None: BENCH_CONNECTIONS) and whether every
        # request comes on a new connection (`Connection: close`).
        self.connections = connections
        self.close = close
        # ASGI app (ruwsgi gets `--asgi`), and the WebSocket path loaded by bench/wsload.py
        # instead of wrk (the HTTP `path` only answers the readiness probe).
        self.asgi = asgi
        self.ws = ws
        # Served over TLS by the server itself (or by nginx in front); `h2`: loaded over
        # HTTP/2 (ALPN h2) by h2load instead of HTTP/1.1 by wrk.
        self.tls = tls
        self.h2 = h2
        self.scheme = "https" if tls else "http"


APPS = [
    App("hello", "hello world (13 B)", APPS_DIR, "bench_apps:hello"),
    App("django", "Django page (examples/django)", DJANGO_DIR, "demo.wsgi:application"),
    App("post64k", "64 KiB POST echo", APPS_DIR, "bench_apps:echo", post=True),
    App("big", "1 MiB response", APPS_DIR, "bench_apps:big"),
    App("static", "static file (16 KiB)", APPS_DIR, "bench_apps:hello",
        path="/static/" + STATIC_FILE, static=True),
    App("sleep", "10 ms sleep (I/O-bound)", APPS_DIR, "bench_apps:sleep"),
    # The connection-scaling cells, loaded by h2load after a warm-up (`run_h2`); hello-64 is
    # their 64-connection reference measured the same way.
    App("hello-64", "hello world, 64 keep-alive connections (h2load, as the 1k/10k cells)",
        APPS_DIR, "bench_apps:hello", connections=64),
    App("hello-1k", "hello world, 1,000 keep-alive connections", APPS_DIR, "bench_apps:hello",
        connections=1000),
    App("hello-10k", "hello world, 10,000 keep-alive connections", APPS_DIR,
        "bench_apps:hello", connections=10000),
    App("hello-close", "hello world, one request per connection (Connection: close)",
        APPS_DIR, "bench_apps:hello", close=True),
    App("asgi-hello", "ASGI hello world (plain ASGI callable)", APPS_DIR, "asgi_apps:hello",
        asgi=True),
    App("asgi-fastapi", "ASGI FastAPI JSON endpoint", APPS_DIR, "asgi_apps:fastapi", asgi=True),
    App("asgi-ws", "ASGI WebSocket echo (32 B messages, one in flight per connection)",
        APPS_DIR, "asgi_apps:echo", asgi=True, ws="/ws"),
    App("tls-hello", "HTTPS hello world (13 B), HTTP/1.1", APPS_DIR, "bench_apps:hello",
        tls=True),
    App("tls-hello-h2", "HTTPS hello world (13 B), HTTP/2", APPS_DIR, "bench_apps:hello",
        tls=True, h2=True),
    App("tls-64k", "HTTPS 64 KiB response, HTTP/1.1", APPS_DIR, "bench_apps:big64k", tls=True),
    App("tls-64k-h2", "HTTPS 64 KiB response, HTTP/2", APPS_DIR, "bench_apps:big64k",
        tls=True, h2=True),
]
APP_BY_KEY = {a.key: a for a in APPS}
# `--apps tls` runs every HTTPS cell.
APP_GROUPS = {"tls": [a.key for a in APPS if a.tls]}

# key -> (label, front) ; front: None, "nginx" (uwsgi_pass to the app server), "nginx-static"
SERVERS = {
    "ruwsgi": ("ruwsgi http-socket", None),
    # Another ruwsgi build (BENCH_RUWSGI_BASE: its `ruwsgi` command), run beside the one in
    # bench/.venv for a before/after in one run; joins every cell that runs "ruwsgi".
    "ruwsgi-base": (os.environ.get("BENCH_BASE_LABEL", "ruwsgi http-socket, baseline build"), None),
    "ruwsgi-t4": ("ruwsgi threads=4", None),
    "ruwsgi-nginx": ("ruwsgi + nginx uwsgi_pass", "nginx"),
    "ruwsgi-log": ("ruwsgi, default request log on", None),
    "ruwsgi-logformat": ("ruwsgi, log-format (nginx combined)", None),
    "uwsgi": ("uWSGI http-socket", None),
    "uwsgi-http11": ("uWSGI http11-socket", None),
    "uwsgi-http": ("uWSGI --http (router)", None),
    "uwsgi-nginx": ("uWSGI + nginx uwsgi_pass", "nginx"),
    "gunicorn-sync": ("gunicorn sync", None),
    "gunicorn-gthread": ("gunicorn gthread (2x4)", None),
    "gunicorn-nginx": ("gunicorn + nginx (protocol uwsgi)", "nginx"),
    "granian": ("Granian wsgi", None),
    # bjoern runs as many processes as the others' workers (its own fork recipe,
    # bench/apps/bjoern_runner.py); "bjoern-1p" is its single process, for reference.
    "bjoern": ("bjoern (2 processes)", None),
    "bjoern-1p": ("bjoern (1 process)", None),
    "ceiling": ("Rust-only ceiling", None),
    "nginx-static": ("nginx (static)", "nginx-static"),
    # ASGI peers (the asgi-* apps; there "ruwsgi" runs `--asgi`)
    "uvicorn": ("uvicorn (uvloop, httptools)", None),
    "granian-asgi": ("Granian asgi", None),
    "gunicorn-uvicorn": ("gunicorn + UvicornWorker", None),
    "hypercorn": ("Hypercorn (uvloop)", None),
}
RUWSGI_KEYS = ("ruwsgi", "ruwsgi-base", "ruwsgi-t4", "ruwsgi-nginx", "ruwsgi-log", "ruwsgi-logformat")
# `log-format` as nginx's `combined` (issue 12: at most 1 µs more server CPU per request
# than the default request line; both write every request's line to the server log file).
COMBINED = ('%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size) '
            '"%(referer)" "%(uagent)"')
PEER_KEYS = [k for k in SERVERS if k not in RUWSGI_KEYS and k != "ceiling"]

ASGI_SERVERS = ["ruwsgi", "uvicorn", "granian-asgi", "gunicorn-uvicorn", "hypercorn"]
# ruwsgi's `threads` for ASGI apps: connection threads per worker, each holding any number
# of requests parked on the worker's event loop (docs/asgi.md), so 1 as for the peers.
ASGI_THREADS = os.environ.get("BENCH_ASGI_THREADS", "1")

# The HTTPS cells: the same three keys in every one, each terminating TLS itself (nginx in
# front of ruwsgi's uwsgi socket for "ruwsgi-nginx"); labels say how (`tls_label`).
TLS_SERVERS = ["ruwsgi", "granian", "ruwsgi-nginx"]
H2_STREAMS = int(os.environ.get("BENCH_H2_STREAMS", "1"))
# The 1,000/10,000-connection cells: seconds h2load runs every connection before its
# measured window opens (`run_h2`), so that opening them is outside every server's figures.
STEADY_WARMUP = float(os.environ.get("BENCH_STEADY_WARMUP", "5"))
NO_H2 = "not available (no h2 by ALPN)"


def tls_label(key, app):
    http = "HTTP/2" if app.h2 else "HTTP/1.1"
    return {
        "ruwsgi": f"ruwsgi https ({http})",
        "ruwsgi-base": f"ruwsgi https ({http}), baseline build",
        "granian": f"Granian wsgi, own TLS (--http {2 if app.h2 else 1})",
        "ruwsgi-nginx": f"nginx TLS ({http}) + ruwsgi uwsgi_pass",
    }[key]


# Which servers run for which app (full run; `--plan` prints the cells and an estimate:
# 92 cells, ~62 minutes at 3 rounds x 10 s, ~39 with BENCH_DURATION=5): every
# server on hello; the nginx fronts and the uWSGI router on hello and (nginx) Django; the
# Rust-only ceiling on hello and on the connection-scaling cells (what the kernel alone
# costs at many connections); bjoern (no threads) is left out of the sleep app, and its
# one-process form (bjoern-1p) runs on hello only, for reference.
MATRIX = {
    "hello": ["ruwsgi", "ruwsgi-t4", "ruwsgi-nginx", "ruwsgi-log", "ruwsgi-logformat", "uwsgi",
              "uwsgi-http11", "uwsgi-http", "uwsgi-nginx", "gunicorn-sync", "gunicorn-gthread",
              "gunicorn-nginx", "granian", "bjoern", "bjoern-1p", "ceiling"],
    "django": ["ruwsgi", "ruwsgi-t4", "ruwsgi-nginx", "uwsgi", "uwsgi-http11", "uwsgi-nginx",
               "gunicorn-sync", "gunicorn-gthread", "granian", "bjoern"],
    "post64k": ["ruwsgi", "uwsgi", "uwsgi-http11", "gunicorn-gthread", "granian", "bjoern"],
    "big": ["ruwsgi", "uwsgi", "uwsgi-http11", "gunicorn-gthread", "granian", "bjoern"],
    "static": ["ruwsgi", "nginx-static"],
    "sleep": ["ruwsgi", "ruwsgi-t4", "uwsgi", "gunicorn-gthread", "granian"],
    # No uWSGI http-socket in the keep-alive scaling cells: it closes every connection, so
    # it holds none open (wrk measured its reconnects there; h2load doesn't reconnect).
    "hello-64": ["ruwsgi", "gunicorn-gthread", "granian", "bjoern", "ceiling"],
    "hello-1k": ["ruwsgi", "gunicorn-gthread", "granian", "bjoern", "ceiling"],
    "hello-10k": ["ruwsgi", "gunicorn-gthread", "granian", "bjoern", "ceiling"],
    "hello-close": ["ruwsgi", "uwsgi", "gunicorn-gthread", "granian", "bjoern"],
    "asgi-hello": ASGI_SERVERS,
    "asgi-fastapi": ASGI_SERVERS,
    "asgi-ws": ASGI_SERVERS,
    **{a.key: TLS_SERVERS for a in APPS if a.tls},
}
QUICK_MATRIX = {
    "hello": ["ruwsgi", "ruwsgi-nginx", "uwsgi", "uwsgi-http11", "uwsgi-nginx",
              "gunicorn-gthread", "granian", "bjoern", "ceiling"],
    "django": ["ruwsgi", "uwsgi", "granian", "bjoern"],
    "post64k": ["ruwsgi", "uwsgi", "granian"],
    "static": ["ruwsgi", "nginx-static"],
}


def scaling_backlog(app):
    """`listen 1024` for ruwsgi and uWSGI in the 1k/10k cells: their default backlog (100, as
    uWSGI's) overflows when thousands of connections open at once, while bjoern (1024),
    Granian (1024) and Gunicorn (2048) start with a larger one. A uWSGI user serving that
    many connections raises `listen` the same way."""
    return ["--listen", "1024"] if (app.connections or 0) > 64 else []


def app_argv(key, app, port):
    """argv of the app-server process for server `key` (listening on `port`)."""
    bind = f"{HOST}:{port}"
    if key.startswith("ruwsgi"):
        argv = [os.environ["BENCH_RUWSGI_BASE"] if key == "ruwsgi-base" else str(VENV_BIN / "ruwsgi")]
        if key == "ruwsgi-nginx":
            argv += ["--socket", bind]
        elif app.tls:
            argv += ["--https", f"{bind},{app.cert},{app.key_file}"]
        else:
            argv += ["--http-socket", bind]
        threads = ASGI_THREADS if app.asgi else "4" if key == "ruwsgi-t4" else "1"
        argv += ["--chdir", str(app.dir), "--asgi" if app.asgi else "--module", app.target,
                 "--master", "--processes", "2", "--threads", threads, "--die-on-term"]
        if key == "ruwsgi-logformat":
            argv += ["--log-format", COMBINED]
        elif key != "ruwsgi-log":
            argv += ["--disable-logging"]
        if app.static:
            argv += ["--static-map", f"/static={app.static_dir}"]
        return argv + scaling_backlog(app)
    if key.startswith("uwsgi"):
        flag = {"uwsgi": "--http-socket", "uwsgi-http11": "--http11-socket",
                "uwsgi-http": "--http", "uwsgi-nginx": "--socket"}[key]
        return [str(VENV_BIN / "uwsgi"), flag, bind, "--chdir", str(app.dir),
                "--module", app.target, "--master", "--processes", "2", "--threads", "1",
                "--disable-logging", "--die-on-term", "--need-app"] + scaling_backlog(app)
    if key == "uvicorn":
        return [str(VENV_BIN / "uvicorn"), "--workers", "2", "--loop", "uvloop", "--http",
                "httptools", "--host", HOST, "--port", str(port), "--app-dir", str(app.dir),
                "--no-access-log", "--log-level", "warning", app.target]
    if key == "granian-asgi":
        return [str(VENV_BIN / "granian"), "--interface", "asgi", "--workers", "2",
                "--host", HOST, "--port", str(port), "--working-dir", str(app.dir),
                "--no-access-log", "--log-level", "warning", app.target]
    if key == "gunicorn-uvicorn":
        return [str(VENV_BIN / "gunicorn"), "--bind", bind, "--chdir", str(app.dir),
                "--workers", "2", "--worker-class", "uvicorn.workers.UvicornWorker",
                "--log-level", "warning", "--graceful-timeout", "3", app.target]
    if key == "hypercorn":
        return [str(VENV_BIN / "hypercorn"), "--workers", "2", "--worker-class", "uvloop",
                "--bind", bind, "--log-level", "warning", app.target]
    if key.startswith("gunicorn"):
        argv = [str(VENV_BIN / "gunicorn"), "--bind", bind, "--chdir", str(app.dir),
                "--workers", "2", "--log-level", "warning", "--graceful-timeout", "3"]
        if key == "gunicorn-gthread":
            argv += ["--worker-class", "gthread", "--threads", "4"]
        else:
            argv += ["--worker-class", "sync"]
        if key == "gunicorn-nginx":
            argv += ["--protocol", "uwsgi"]
        return argv + [app.target]
    if key == "granian":
        # One blocking (app) thread per worker, like every other "2 x 1" server: Granian's
        # default pool runs many WSGI calls at once per worker.
        argv = [str(VENV_BIN / "granian"), "--interface", "wsgi", "--workers", "2",
                "--blocking-threads", "1",
                "--host", HOST, "--port", str(port), "--working-dir", str(app.dir),
                "--no-access-log", "--log-level", "warning"]
        if app.tls:
            argv += ["--ssl-certificate", str(app.cert), "--ssl-keyfile", str(app.key_file),
                     "--http", "2" if app.h2 else "1"]
        return argv + [app.target]
    if key in ("bjoern", "bjoern-1p"):
        return [str(VENV_BIN / "python"), str(APPS_DIR / "bjoern_runner.py"), HOST, str(port),
                str(app.dir), app.target, "1" if key == "bjoern-1p" else "2"]
    if key == "ceiling":
        return [str(CEILING), bind, "2"]
    raise KeyError(key)


def nginx_conf(tmp, port, upstream_port=None, static_dir=None, tls=None):
    """A self-contained nginx.conf (daemon off, 2 workers, no access log, 127.0.0.1 only).

    `tls`: (cert, key): the listener terminates TLS and speaks HTTP/2 to clients that offer
    h2 by ALPN (HTTP/1.1 to the others), as a typical HTTPS front does."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    if static_dir:
        location = f"location /static/ {{ alias {static_dir}/; }}"
    else:
        location = (
            "location / {\n"
            "            include " + str(tmp / "uwsgi_params") + ";\n"
            f"            uwsgi_pass {HOST}:{upstream_port};\n"
            "        }"
        )
    listen = f"{HOST}:{port}"
    if tls:
        # nginx 1.22 (Debian 12): `http2` is a `listen` flag (`http2 on;` came in 1.25.1).
        listen += (f" ssl http2;\n        ssl_certificate {tls[0]};\n"
                   f"        ssl_certificate_key {tls[1]};\n"
                   "        ssl_protocols TLSv1.2 TLSv1.3")
    return f"""{user}worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_max_body_size 4m;
    client_body_buffer_size 128k;
    uwsgi_buffers 64 16k;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    server {{
        listen {listen};
        {location}
    }}
}}
"""


UWSGI_PARAMS = """uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme;
uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""

# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------


def free_port(taken):
    """A free TCP port on 127.0.0.1 outside the ephemeral range (so other tests can't grab it)."""
    for _ in range(1000):
        port = random.randint(20000, 29999)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port")


def proc_table():
    """{pid: (pgrp, cpu_ticks, rss_bytes)} for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode("latin-1")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()
        # rest[0] = state (field 3): pgrp = field 5, utime/stime = 14/15, rss = 24
        table[int(name)] = (int(rest[2]), int(rest[11]) + int(rest[12]), int(rest[21]) * PAGE)
    return table


def pss_bytes(pids):
    """Proportional set size summed over `pids` (shared pages split between sharers)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        except OSError:
            continue
        total += int(m.group(1)) * 1024 if m else 0
    return total


def group_pids(pgid):
    return [pid for pid, (pg, _, _) in proc_table().items() if pg == pgid]


class Proc:
    """One process started in its own session/process group, output to a log file."""

    def __init__(self, name, argv, env, log_path, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True)
        self.pgid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def log_tail(self, n=15):
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stop(self, timeout=8.0):
        """SIGTERM to the leader, SIGKILL after `timeout`; then SIGKILL leftovers by PID."""
        if self.alive():
            try:
                self.p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        deadline = time.monotonic() + 3
        while True:
            left = group_pids(self.pgid)
            if not left:
                break
            if time.monotonic() > deadline:
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
                if not group_pids(self.pgid):
                    break
                deadline = time.monotonic() + 3
            time.sleep(0.05)
        self.log.close()


def wait_port(port, procs, deadline):
    while time.monotonic() < deadline:
        for p in procs:
            if not p.alive():
                return f"{p.name} exited with {p.p.returncode}: {p.log_tail()}"
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.05)
    return f"port {port} not open in time"


def client_tls(alpn):
    """A client TLS context that accepts the self-signed certificate, offering `alpn`."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    return context


def tls_hello(port, deadline):
    """Handshakes offering h2 and http/1.1 until one succeeds: {alpn, version, cipher} or
    {error}. The client is Python's OpenSSL, which offers the same suites in the same order as
    wrk's and h2load's."""
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=5) as raw, \
                    client_tls(["h2", "http/1.1"]).wrap_socket(raw, server_hostname="localhost") \
                    as tls:
                return {"alpn": tls.selected_alpn_protocol(), "version": tls.version(),
                        "cipher": tls.cipher()[0]}
        except OSError as exc:
            last = repr(exc)
            time.sleep(0.1)
    return {"error": last}


def probe_h2(ctx, port, app, deadline):
    """One HTTP/2 request by h2load until it succeeds; returns (status, error)."""
    last = "no answer"
    while time.monotonic() < deadline:
        argv = [ctx.h2load, "-n1", "-c1", "--npn-list=h2", f"https://{HOST}:{port}{app.path}"]
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
        except subprocess.TimeoutExpired:
            out = "h2load timed out"
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        if m and sum(int(x) for x in m.groups()):
            return (200 if int(m.group(1)) else 0), None
        last = out.strip().splitlines()[-1] if out.strip() else "no output"
        time.sleep(0.2)
    return None, last


def probe(port, app, body, deadline):
    """Polls with a real request until the server answers; returns (status, error)."""
    last = "no answer"
    while time.monotonic() < deadline:
        if app.tls:
            conn = http.client.HTTPSConnection(HOST, port, timeout=5,
                                               context=client_tls(["http/1.1"]))
        else:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            if app.post:
                conn.request("POST", app.path, body=body,
                             headers={"Content-Type": "application/octet-stream"})
            else:
                conn.request("GET", app.path)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status == 200 and app.post and data != body:
                return resp.status, "echo body mismatch"
            return resp.status, None
        except (OSError, http.client.HTTPException) as exc:
            last = repr(exc)
            time.sleep(0.1)
        finally:
            conn.close()
    return None, last


class Server:
    """A running cell: the app server (and its nginx front, if any)."""

    def __init__(self, key, app, ctx):
        self.key = key
        self.app = app
        self.procs = []
        self.error = None
        self.na = None  # reason the cell is not applicable (e.g. 404 for static-map)
        self.tls = None  # what a TLS handshake negotiated (TLS apps)
        self.ctx = ctx
        self.port = None
        front = SERVERS[key][1]
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=ctx.tmp))
        self.tmp = tmp
        ports = []
        if front != "nginx-static":
            app_port = free_port(ctx.ports)
            ports.append(app_port)
            self.procs.append(Proc(key, app_argv(key, app, app_port), ctx.env,
                                   tmp / "server.log", cwd=str(app.dir)))
            self.port = app_port
        if front:
            nport = free_port(ctx.ports)
            ports.append(nport)
            (tmp / "uwsgi_params").write_text(UWSGI_PARAMS)
            conf = nginx_conf(tmp, nport, upstream_port=self.port,
                              static_dir=app.static_dir if front == "nginx-static" else None,
                              tls=(app.cert, app.key_file) if app.tls else None)
            (tmp / "nginx.conf").write_text(conf)
            self.procs.append(Proc("nginx", [ctx.nginx, "-p", str(tmp), "-c",
                                             str(tmp / "nginx.conf"), "-e",
                                             str(tmp / "nginx-error.log")],
                                   ctx.env, tmp / "nginx.log"))
            self.port = nport
        self.ports = ports

    def ready(self, timeout, body):
        deadline = time.monotonic() + timeout
        for port in self.ports:
            err = wait_port(port, self.procs, deadline)
            if err:
                self.error = err
                return False
        if self.app.tls:
            self.tls = tls_hello(self.port, deadline)
            if "error" in self.tls:
                self.error = f"TLS handshake failed: {self.tls['error']}; " + " | ".join(
                    p.log_tail(5) for p in self.procs)
                return False
            if self.app.h2 and self.tls["alpn"] != "h2":
                self.na = NO_H2
                return False
        if self.app.h2:
            status, err = probe_h2(self.ctx, self.port, self.app, deadline)
        else:
            status, err = probe(self.port, self.app, body, deadline)
        if status is None or err:
            self.error = f"probe failed: {err}; " + " | ".join(p.log_tail(5) for p in self.procs)
            return False
        if status != 200:
            self.na = f"answers {status}"
            return False
        return True

    def snapshot(self):
        """{group name: (cpu_ticks, rss_bytes, nprocs, {pid: cpu_ticks})} over each process
        group."""
        table = proc_table()
        out = {}
        for p in self.procs:
            members = {pid: v for pid, v in table.items() if v[0] == p.pgid}
            out[p.name] = (sum(m[1] for m in members.values()),
                           sum(m[2] for m in members.values()), len(members),
                           {pid: m[1] for pid, m in members.items()})
        return out

    def stop(self):
        for p in reversed(self.procs):
            p.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# load generators
# --------------------------------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def run_wrk(ctx, app, port, duration, latency=True):
    connections = app.connections or ctx.connections
    argv = [ctx.wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "4s"]
    if latency:
        argv.append("--latency")
    if app.close:
        argv += ["-H", "Connection: close"]
    if app.post:
        argv += ["-s", str(POST_LUA)]
    argv.append(f"{app.scheme}://{HOST}:{port}{app.path}")
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30).stdout
    except subprocess.TimeoutExpired:
        return {"error": "wrk timed out"}
    res = {"raw": out}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        res[f"p{pct}_ms"] = parse_ms(m.group(1)) if m else None
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non2xx"] = int(m.group(1)) if m else 0
    errors += res["non2xx"]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    kinds = dict(zip(("connect", "read", "write", "timeout"),
                     (int(x) for x in m.groups()) if m else (0, 0, 0, 0)))
    res["socket_error_kinds"] = kinds
    res["socket_errors"] = sum(kinds.values())
    errors += res["socket_errors"]
    res["errors"] = errors
    return res


def run_h2load(ctx, app, port, expected_rps, seconds):
    """h2load --h1 -c64 -n N sized to last ~`seconds`; per-client req/s min/max/mean."""
    n = int(max(ctx.connections * 10, min(200000, expected_rps * seconds)))
    n -= n % ctx.connections
    argv = [ctx.h2load, "--h1", f"-c{ctx.connections}", "-t1", f"-n{n}"]
    if app.post:
        argv += ["-d", str(ctx.post_file)]
    argv.append(f"{app.scheme}://{HOST}:{port}{app.path}")
    limit = max(15.0, seconds * 8)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"n": n, "timeout": True, "limit_s": limit}
    res = {"n": n, "timeout": False}
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        res["succeeded"] = int(m.group(4))
        res["failed"] = int(m.group(5)) + int(m.group(6)) + int(m.group(7))
    m = re.search(r"^req/s\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if m:
        res["min"], res["max"], res["mean"], res["sd"] = (float(x) for x in m.groups())
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    if m:
        res["total_rps"] = float(m.group(3))
    if "min" not in res:
        res["raw"] = out[-2000:]
    return res


def run_h2(ctx, app, port, duration, latency=True, snapshot=None):
    """The HTTP/2 cells' load: `h2load -c64 -m1 -t1 -D duration --npn-list=h2`, the same
    64 requests in flight as wrk's 64 keep-alive connections. Latency percentiles come from
    h2load's per-request log (h2load prints no percentiles); fairness from its per-client
    req/s.

    The 1,000/10,000-connection cells (`app.connections`) use it too, over HTTP/1.1:
    `h2load --h1 -cN -m1 -t1 --warm-up-time W -D duration`. h2load opens every connection
    and keeps requests going for W s before its measured window, so req/s, latency and the
    log cover steady state only; wrk would open them inside its window. `snapshot` (the
    server's CPU counters) is then taken when the window opens and returned as
    "cpu_before", so the CPU per request excludes the set-up too."""
    if app.connections:
        # No -N/-T timeout: h2load 1.52 aborts on a libev assertion when one fires. A server
        # that leaves connections unanswered (one that holds fewer than opened) makes h2load
        # wait past the window: the run then ends as "h2load timed out".
        argv = [ctx.h2load, "--h1", f"-c{app.connections}", "-m1", "-t1", f"-D{duration}",
                f"--warm-up-time={STEADY_WARMUP:g}"]
    else:
        argv = [ctx.h2load, f"-c{ctx.connections}", f"-m{H2_STREAMS}", "-t1", f"-D{duration}",
                "--npn-list=h2"]
    log = None
    if latency:
        fd, log = tempfile.mkstemp(prefix="h2load-", suffix=".log", dir=ctx.tmp)
        os.close(fd)
        argv.append(f"--log-file={log}")
    argv.append(f"{app.scheme}://{HOST}:{port}{app.path}")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = None
    if snapshot and app.connections:
        time.sleep(STEADY_WARMUP)
        before = snapshot()
    try:
        out, _ = p.communicate(timeout=duration + 30 + (STEADY_WARMUP if app.connections else 0))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {"error": "h2load timed out (connections left without a response)"
                if app.connections else "h2load timed out"}
    res = {"raw": out}
    if before is not None:
        res["cpu_before"] = before
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", out)
    res["rps"] = float(m.group(3)) if m else 0.0
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    failed = sum(int(x) for x in m.groups()[4:]) if m else 0
    m2 = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    res["requests"] = int(m2.group(1)) if m2 else 0
    res["non2xx"] = sum(int(x) for x in m2.groups()[1:]) if m2 else 0
    # h2load's "failed" requests are its socket/stream errors (no response)
    res["socket_error_kinds"] = {"read": failed}
    res["socket_errors"] = failed
    res["errors"] = failed + res["non2xx"]
    if "No protocol negotiated" in out or "h2 is not supported" in out:
        res["error"] = NO_H2
    m = re.search(r"^req/s\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)
    if m:
        res["fair"] = dict(zip(("min", "max", "mean", "sd"), (float(x) for x in m.groups())))
        res["fair"].update(n=res["requests"], succeeded=res["requests"], failed=failed)
    if log:
        reqs = []  # (completed at, duration) in µs
        try:
            with open(log) as f:
                for line in f:
                    cols = line.split("\t")
                    if len(cols) >= 3:
                        reqs.append((int(cols[0]) + int(cols[2]), int(cols[2])))
        finally:
            os.unlink(log)
        if app.connections and reqs:
            # The log has the warm-up's requests too: keep those completed in the window.
            end = max(r[0] for r in reqs)
            reqs = [r for r in reqs if r[0] >= end - duration * 1_000_000]
        times = [r[1] / 1000.0 for r in reqs]
        times.sort()
        for pct in (50, 99):
            res[f"p{pct}_ms"] = times[min(len(times) - 1, len(times) * pct // 100)] \
                if times else None
    return res


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


class Ctx:
    pass


def fmt_dur(s):
    s = int(s)
    return f"{s // 60}m{s % 60:02d}s"


def need(tool):
    path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.path.exists(f"/usr/sbin/{tool}")
                                  else None)
    if not path:
        sys.exit(f"bench: {tool} not found (bench/run installs it)")
    return path


def prepare(ctx):
    ctx.tmp = Path(tempfile.mkdtemp(prefix="ruwsgi-bench-"))
    if os.geteuid() == 0:
        os.chmod(ctx.tmp, 0o755)
    static_dir = ctx.tmp / "static"
    static_dir.mkdir()
    line = b"body { margin: 0; padding: 0; font-family: sans-serif; color: #333; }\n"
    data = (line * (STATIC_SIZE // len(line) + 1))[:STATIC_SIZE]
    (static_dir / STATIC_FILE).write_bytes(data)
    for a in APPS:
        a.static_dir = static_dir
    if any(APP_BY_KEY[a].tls for a in ctx.matrix):
        # A self-signed P-256 certificate for 127.0.0.1/localhost, made for this run only.
        cert, key = ctx.tmp / "tls.crt", ctx.tmp / "tls.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o644)  # nginx's workers and every server read it; a throwaway key
        for a in APPS:
            a.cert, a.key_file = cert, key
    ctx.post_body = b"x" * POST_SIZE
    ctx.post_file = ctx.tmp / "post64k.bin"
    ctx.post_file.write_bytes(ctx.post_body)
    env = dict(os.environ)
    env["DEMO_DB"] = str(ctx.tmp / "demo.sqlite3")
    env.pop("DEMO_DEBUG", None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    ctx.env = env
    if "django" in ctx.matrix:
        subprocess.run([str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"],
                       cwd=DJANGO_DIR, env=env, check=True, timeout=300)


def versions(ctx):
    def cmd(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "?"

    def dist(name):
        try:
            from importlib.metadata import version
            return version(name)
        except Exception:  # noqa: BLE001 - any failure just means "unknown"
            return "?"

    return {
        "ruwsgi": cmd([str(VENV_BIN / "ruwsgi"), "--version"]).removeprefix("ruwsgi "),
        "uWSGI": cmd([str(VENV_BIN / "uwsgi"), "--version"]),
        "gunicorn": dist("gunicorn"),
        "Granian": dist("granian"),
        "bjoern": dist("bjoern"),
        "Django": dist("django"),
        **{name: dist(name) for name in ("uvicorn", "uvloop", "httptools", "hypercorn",
                                         "fastapi", "websockets")
           if any(APP_BY_KEY[a].asgi for a in ctx.matrix)},
        "Python": platform.python_version(),
        "nginx": cmd([ctx.nginx, "-v"]).replace("nginx version: nginx/", ""),
        "wrk": cmd([ctx.wrk, "-v"]).split(" [")[0].replace("wrk ", ""),
        "h2load": cmd([ctx.h2load, "--version"]).replace("h2load ", ""),
        **({"OpenSSL (wrk, h2load, nginx)": cmd(["openssl", "version"]).split()[1]}
           if any(APP_BY_KEY[a].tls for a in ctx.matrix) else {}),
    }


def machine():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = m.group(1).strip() if m else platform.machine()
        m = re.search(r"^cpu MHz\s*:\s*(.+)$", cpuinfo, re.M)
        info["mhz"] = m.group(1).strip() if m else "?"
    except OSError:
        info["cpu"] = platform.machine()
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        pass
    meminfo = Path("/proc/meminfo").read_text()
    m = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    info["mem_gib"] = round(int(m.group(1)) / 1024 / 1024, 1) if m else None
    info["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    return info


def run_wsload(ctx, app, port, duration):
    """bench/wsload.py: ctx.connections WebSockets echoing for `duration` s."""
    argv = [str(VENV_BIN / "python"), str(WSLOAD), HOST, str(port), app.ws,
            str(ctx.connections), str(duration)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    except subprocess.TimeoutExpired:
        return {"error": "wsload timed out"}
    try:
        res = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "wsload failed", "raw": (out.stdout + out.stderr)[-2000:]}
    res["socket_error_kinds"] = {}
    res["non2xx"] = 0
    return res


def generator_cpu_s():
    """CPU seconds of the reaped children: the load generators (servers are reaped only
    when stopped, after their cell)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def measure(ctx, srv, duration):
    before = srv.snapshot()
    gen_before = generator_cpu_s()
    if srv.app.ws:
        res = run_wsload(ctx, srv.app, srv.port, duration)
    elif srv.app.h2 or srv.app.connections:
        res = run_h2(ctx, srv.app, srv.port, duration, snapshot=srv.snapshot)
        before = res.pop("cpu_before", before)
    else:
        res = run_wrk(ctx, srv.app, srv.port, duration)
    after = srv.snapshot()
    app_name = srv.procs[0].name
    req = res.get("requests", 0)
    # Over loopback the kernel's TCP work for a connection runs in whichever process handles
    # its packets: a server whose sends queue behind the client's ACKs has them transmitted
    # in the client's context. The load generator's CPU per request shows that share (not in
    # the connection-scaling cells: their generator CPU includes the warm-up).
    gen = generator_cpu_s() - gen_before
    res["gen_cpu_us_per_req"] = gen * 1e6 / req if req and not srv.app.connections else None
    unseen = (0, 0, 0, {})  # a group that had no process yet when `before` was taken
    cpu = {}
    for name in after:
        ticks = after[name][0] - before.get(name, unseen)[0]
        cpu[name] = ticks / TICKS
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = (sum(cpu.values()) * 1e6 / req) if req else None
    # The share of the app server's CPU its busiest process had: ~1/N when its N processes
    # split the connections, near 1 when one process accepted (nearly) all of them.
    per_pid = [t - before.get(app_name, unseen)[3].get(pid, 0)
               for pid, t in after[app_name][3].items()]
    res["busiest_share"] = max(per_pid) / sum(per_pid) if sum(per_pid) > 0 else None
    res["rss_bytes"] = {name: v[1] for name, v in after.items()}
    res["nprocs"] = {name: v[2] for name, v in after.items()}
    # RSS of the app server (master + workers); for nginx-only cells, nginx's
    res["rss_mib"] = after[app_name][1] / 1048576
    res["pss_mib"] = pss_bytes(group_pids(srv.procs[0].pgid)) / 1048576
    if len(srv.procs) > 1:
        # everything serving (nginx's processes too): the HTTPS section's memory columns
        res["rss_total_mib"] = sum(v[1] for v in after.values()) / 1048576
        res["pss_total_mib"] = sum(pss_bytes(group_pids(p.pgid)) for p in srv.procs) / 1048576
    else:
        res["rss_total_mib"], res["pss_total_mib"] = res["rss_mib"], res["pss_mib"]
    if res.get("requests"):
        res.pop("raw", None)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s, 1 round, a subset of cells")
    ap.add_argument("--apps", help="comma-separated app keys to run (default: all of the mode)")
    ap.add_argument("--servers", help="comma-separated server keys to run")
    ap.add_argument("--out", help="directory for benchmarks.md/.png (default docs/, "
                    "bench/results/quick/ with --quick)")
    ap.add_argument("--plan", action="store_true",
                    help="print the matrix and the time estimate, run nothing")
    args = ap.parse_args()

    ctx = Ctx()
    env_int = lambda name, default: int(os.environ.get(name, default))  # noqa: E731
    if args.quick:
        ctx.duration = env_int("BENCH_DURATION", 2)
        ctx.rounds = env_int("BENCH_ROUNDS", 1)
        ctx.fair_s = float(os.environ.get("BENCH_FAIRNESS", 1))
        matrix = QUICK_MATRIX
    else:
        ctx.duration = env_int("BENCH_DURATION", 10)
        ctx.rounds = env_int("BENCH_ROUNDS", 3)
        ctx.fair_s = float(os.environ.get("BENCH_FAIRNESS", 2))
        matrix = MATRIX
    ctx.warmup = env_int("BENCH_WARMUP", 1)
    ctx.connections = env_int("BENCH_CONNECTIONS", 64)
    # The 10,000-connection cell needs that many sockets in wrk and in each server: every
    # process started from here inherits the hard limit as its soft one.
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.apps:
        keep = [k for a in args.apps.split(",") for k in APP_GROUPS.get(a, [a])]
        matrix = {a: MATRIX.get(a, []) for a in keep}
    if os.environ.get("BENCH_RUWSGI_BASE"):
        matrix = {a: ss + ["ruwsgi-base"] if "ruwsgi" in ss else ss for a, ss in matrix.items()}
    if args.servers:
        keep = set(args.servers.split(","))
        matrix = {a: [s for s in ss if s in keep] for a, ss in matrix.items()}
    ctx.matrix = {a: ss for a, ss in matrix.items() if ss}
    out_dir = Path(args.out) if args.out else (
        BENCH / "results" / "quick" if args.quick else ROOT / "docs")
    ctx.wrk, ctx.nginx, ctx.h2load = need("wrk"), need("nginx"), need("h2load")
    if any("ceiling" in ss for ss in ctx.matrix.values()) and not CEILING.exists():
        sys.exit(f"bench: {CEILING} missing (cargo build --release in bench/ceiling)")
    ctx.ports = set()

    cells = sum(len(ss) for ss in ctx.matrix.values())
    est = cells * (ctx.rounds * (ctx.duration + 0.4) + ctx.warmup + ctx.fair_s + 1.5) \
        + len(ctx.matrix) * 8 \
        + sum(len(ss) for a, ss in ctx.matrix.items() if APP_BY_KEY[a].connections) \
        * (ctx.rounds + 1) * STEADY_WARMUP
    print(f"bench: {cells} cells x {ctx.rounds} rounds x {ctx.duration} s "
          f"(+{ctx.warmup} s warm-up, fairness ~{ctx.fair_s:g} s); estimate {fmt_dur(est)}",
          flush=True)
    if args.plan:
        for app_key, keys in ctx.matrix.items():
            print(f"  {app_key}: {', '.join(keys)}")
        return

    started = time.monotonic()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "settings": {"duration_s": ctx.duration, "rounds": ctx.rounds, "warmup_s": ctx.warmup,
                     "connections": ctx.connections, "wrk_threads": 1,
                     "fairness_s": ctx.fair_s, "quick": args.quick,
                     "h2_streams": H2_STREAMS, "steady_warmup_s": STEADY_WARMUP},
        "note": os.environ.get("BENCH_NOTE", ""),
        "commit": subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip(),
        "apps": {a.key: a.label for a in APPS if a.key in ctx.matrix},
        "servers": {k: v[0] for k, v in SERVERS.items()},
        "cells": {},
    }
    prepare(ctx)
    result["versions"] = versions(ctx)
    done = 0
    total_runs = cells * ctx.rounds
    try:
        for app_key, keys in ctx.matrix.items():
            app = APP_BY_KEY[app_key]
            cells_of_app = {k: {"runs": [], "status": "ok"} for k in keys}
            result["cells"][app_key] = cells_of_app
            print(f"== {app.label}: starting {len(keys)} servers", flush=True)
            servers = {}
            try:
                for k in keys:
                    servers[k] = Server(k, app, ctx)
                for k, srv in servers.items():
                    cell = cells_of_app[k]
                    ok = srv.ready(90, ctx.post_body)
                    if srv.tls:
                        cell["tls"] = srv.tls
                    if not ok:
                        cell["status"] = "n/a" if srv.na else "error"
                        cell["reason"] = srv.na or srv.error
                        print(f"   {k}: {cell['status']} ({cell['reason'][:300]})", flush=True)
                        srv.stop()
                        continue
                    if app.ws:
                        run_wsload(ctx, app, srv.port, ctx.warmup)
                    elif app.h2 or app.connections:
                        run_h2(ctx, app, srv.port, ctx.warmup, latency=False)
                    else:
                        run_wrk(ctx, app, srv.port, ctx.warmup, latency=False)
                live = [k for k in keys if cells_of_app[k]["status"] == "ok"]
                for rnd in range(1, ctx.rounds + 1):
                    for k in keys:
                        done += 1
                        if k not in live:
                            continue
                        srv = servers[k]
                        res = measure(ctx, srv, ctx.duration)
                        cells_of_app[k]["runs"].append(res)
                        dead = [p.name for p in srv.procs if not p.alive()]
                        if dead:
                            # a crashed server is a result too: keep its runs, stop measuring
                            live.remove(k)
                            cells_of_app[k]["died"] = (
                                f"{', '.join(dead)} exited during round {rnd}: "
                                + " | ".join(p.log_tail(5) for p in srv.procs))
                            print(f"   {k}: {cells_of_app[k]['died'][:300]}", flush=True)
                        fair = res.pop("fair", {})
                        if (app.h2 or app.connections) and rnd == 1:
                            cells_of_app[k]["fairness"] = fair
                        elif app.ws and rnd == 1:
                            # per-connection messages/s of this run (min/max)
                            cells_of_app[k]["fairness"] = {
                                f: res[f] for f in ("min", "max", "mean", "n") if f in res}
                        elif rnd == 1 and ctx.fair_s > 0 and not (app.connections
                                                                  or app.close):
                            cells_of_app[k]["fairness"] = run_h2load(
                                ctx, app, srv.port, max(res.get("rps", 0), 50), ctx.fair_s)
                        elapsed = time.monotonic() - started
                        eta = elapsed / done * (total_runs - done)
                        fair = cells_of_app[k].get("fairness", {})
                        if fair.get("timeout"):
                            fair_txt = " fair TIMEOUT"
                        elif fair.get("failed"):
                            fair_txt = f" fair n/a ({fair['failed']} h2load failures)"
                        elif "min" in fair:
                            fair_txt = f" fair {fair['min']:.0f}-{fair['max']:.0f}"
                        else:
                            fair_txt = ""
                        cpu = res.get("cpu_us_per_req")
                        print(f"[{done}/{total_runs} {fmt_dur(elapsed)} eta {fmt_dur(eta)}] "
                              f"{app_key} r{rnd} {k}: {res.get('rps', 0):,.0f} req/s "
                              f"p99 {res.get('p99_ms') or 0:.1f} ms "
                              f"cpu {cpu or 0:.0f} us/req err {res.get('errors', '?')}"
                              f"{fair_txt}", flush=True)
            finally:
                for srv in servers.values():
                    srv.stop()
    finally:
        shutil.rmtree(ctx.tmp, ignore_errors=True)

    result["elapsed_s"] = round(time.monotonic() - started)
    result["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    summarize(result)
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = results_dir / f"{'quick-' if args.quick else ''}{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1))
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(tls_apps(result)) == len(result["cells"]):
        write_https_only(result, out_dir / "benchmarks.md", json_path)
        print(f"bench: done in {fmt_dur(result['elapsed_s'])}; wrote the HTTPS section of "
              f"{out_dir}/benchmarks.md, {json_path}", flush=True)
        return
    write_markdown(result, out_dir / "benchmarks.md", json_path)
    write_chart(result, out_dir / "benchmarks.png")
    print(f"bench: done in {fmt_dur(result['elapsed_s'])}; wrote {out_dir}/benchmarks.md, "
          f"{out_dir}/benchmarks.png, {json_path}", flush=True)


# --------------------------------------------------------------------------------------------
# summary, report, chart
# --------------------------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(result):
    for app_key, cells in result["cells"].items():
        for k, cell in cells.items():
            runs = [r for r in cell["runs"] if "rps" in r]
            if cell["status"] == "ok" and not runs:
                cell["status"] = "error"
                cell["reason"] = next((r["error"] for r in cell["runs"] if r.get("error")),
                                      "no wrk result")
            cell["median"] = {
                "rps": med([r["rps"] for r in runs]),
                "p50_ms": med([r.get("p50_ms") for r in runs]),
                "p99_ms": med([r.get("p99_ms") for r in runs]),
                "cpu_us": med([r.get("cpu_us_per_req") for r in runs]),
                "rss_mib": med([r.get("rss_mib") for r in runs]),
                "pss_mib": med([r.get("pss_mib") for r in runs]),
                "rss_total_mib": med([r.get("rss_total_mib") for r in runs]),
                "pss_total_mib": med([r.get("pss_total_mib") for r in runs]),
                "busiest_share": med([r.get("busiest_share") for r in runs]),
                "gen_cpu_us": med([r.get("gen_cpu_us_per_req") for r in runs]),
                "errors": sum(r.get("errors", 0) for r in runs),
                "error_kinds": {
                    kind: sum(r.get("socket_error_kinds", {}).get(kind, 0) for r in runs)
                    for kind in ("connect", "read", "write", "timeout")
                } | {"non-2xx": sum(r.get("non2xx", 0) for r in runs)},
                "requests": sum(r.get("requests", 0) for r in runs),
            }
        base = cells.get("ruwsgi", {}).get("median", {}).get("rps")
        for k, cell in cells.items():
            rps = cell["median"]["rps"]
            cell["median"]["x_ruwsgi"] = (rps / base) if base and rps else None


def fmt_num(v, digits=0, suffix=""):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{suffix}"


def fmt_cpu(v):
    """CPU µs/req: tenths below 100 µs, where one change to the request path moves it by
    less than a microsecond."""
    return fmt_num(v, 1 if v is not None and v < 100 else 0)


def errors_text(md):
    if not md["errors"]:
        return "0"
    kinds = [f"{n:,} {kind}" for kind, n in md.get("error_kinds", {}).items() if n]
    return ", ".join(kinds) or f"{md['errors']:,}"


def fairness_text(f):
    if not f:
        return "–"
    if f.get("timeout"):
        return f"timeout (>{f['limit_s']:.0f} s)"
    if "min" not in f:
        return "?"
    if f.get("failed"):
        return f"– ({f.get('succeeded', 0):,} of {f['n']:,} ok: connections closed)"
    ratio = f["min"] / f["max"] if f["max"] else 0
    return f"{f['min']:,.0f} / {f['max']:,.0f} ({ratio:.0%})"


def fair_ok(f):
    """Every keep-alive connection got a fair share: min per-client req/s >= 25% of max."""
    if not f or f.get("timeout") or "min" not in f or not f.get("max"):
        return False
    return f["min"] >= 0.25 * f["max"] and f.get("failed", 0) == 0


def get(result, app, key, field):
    cell = result["cells"].get(app, {}).get(key)
    if not cell or cell.get("status") != "ok":
        return None
    return cell["median"].get(field)


def cpu_growth(result, app, key):
    """", CPU µs/req N× hello-64's" for server `key` in `app`, or "" if either is missing."""
    a, b = get(result, app, key, "cpu_us"), get(result, "hello-64", key, "cpu_us")
    return f", CPU µs/req {a / b:.2f}× hello-64's" if a and b else ""


def targets(result):
    """[(target, measured, verdict)] for issue 18's targets (ratios from this run)."""
    rows = []

    def verdict(ok, miss):
        if ok is None:
            return "not measured"
        return "**met**" if ok else f"missed ({miss})"

    def ratio_row(name, mine, theirs, at_least, text):
        ratio = mine / theirs if mine and theirs else None
        rows.append((name, text(ratio) if ratio is not None else "–",
                     verdict(None if ratio is None else
                             (ratio >= at_least if at_least > 0 else ratio <= -at_least),
                             text(ratio) if ratio is not None else "")))

    x = lambda r: f"{r:.2f}×"  # noqa: E731
    # bjoern with 2 processes, as ruwsgi's 2 workers: like with like.
    ratio_row("hello: req/s ≥ bjoern's (both 2 processes)", get(result, "hello", "ruwsgi", "rps"),
              get(result, "hello", "bjoern", "rps"), 1.0, x)
    ratio_row("hello: CPU µs/req ≤ bjoern's (both 2 processes)",
              get(result, "hello", "ruwsgi", "cpu_us"),
              get(result, "hello", "bjoern", "cpu_us"), -1.0, x)
    ratio_row("hello: req/s ≥ 0.9× the Rust-only ceiling's", get(result, "hello", "ruwsgi", "rps"),
              get(result, "hello", "ceiling", "rps"), 0.9, x)
    ratio_row("hello: p99 ≤ 2× bjoern's (both 2 processes)",
              get(result, "hello", "ruwsgi", "p99_ms"),
              get(result, "hello", "bjoern", "p99_ms"), -2.0, x)
    # bjoern's p99 depends on how its 2 processes split wrk's connections (their accept race):
    # when one takes nearly all of them, it has a CPU to itself beside wrk.
    shares = [get(result, "hello", k, "busiest_share") for k in ("ruwsgi", "bjoern")]
    if all(shares):
        name, measured, seen = rows[-1]
        rows[-1] = (name, measured + " (busiest process's share of the CPU: ruwsgi "
                    f"{shares[0]:.0%}, bjoern {shares[1]:.0%})", seen)
    for app in ("big", "post64k", "hello-close"):
        peers = [(get(result, app, k, "cpu_us"), k) for k in PEER_KEYS]
        peers = [p for p in peers if p[0]]
        best = min(peers) if peers else (None, None)
        ratio_row(f"{APP_BY_KEY[app].label}: CPU µs/req ≤ every peer's"
                  + (f" (best: {result['servers'][best[1]]})" if best[1] else ""),
                  get(result, app, "ruwsgi", "cpu_us"), best[0], -1.0, x)
    # The 1 MiB cell's server CPU alone can drop by moving TCP work to the client (see
    # `measure`): the machine's CPU per request, server + load generator, can't.
    def both(key):
        server = get(result, "big", key, "cpu_us")
        generator = get(result, "big", key, "gen_cpu_us")
        return server + generator if server and generator else None

    peers = [(both(k), k) for k in PEER_KEYS]
    peers = [p for p in peers if p[0]]
    best = min(peers) if peers else (None, None)
    ratio_row(f"{APP_BY_KEY['big'].label}: server + load generator CPU µs/req ≤ every peer's"
              + (f" (best: {result['servers'][best[1]]})" if best[1] else ""),
              both("ruwsgi"), best[0], -1.0, x)
    for app in ("post64k", "django"):
        peers = [(get(result, app, k, "rps"), k) for k in PEER_KEYS]
        peers = [p for p in peers if p[0]]
        best = max(peers) if peers else (None, None)
        ratio_row(f"{APP_BY_KEY[app].label}: req/s ≥ every peer's"
                  + (f" (best: {result['servers'][best[1]]})" if best[1] else ""),
                  get(result, app, "ruwsgi", "rps"), best[0], 1.0, x)
    for app in ("hello-1k", "hello-10k"):
        # Against hello-64: the same load generator and warm-up, 64 connections. The Rust-only
        # ceiling's own ratio is what the kernel and the load generator lose without Python.
        # CPU µs/req against hello-64's, for both: what each connection more costs the server
        # itself, whichever side (server or h2load) limits the req/s.
        c, c64 = get(result, app, "ceiling", "rps"), get(result, "hello-64", "ceiling", "rps")
        ref = cpu_growth(result, app, "ruwsgi")
        if c and c64:
            ref += f" (Rust-only ceiling: {c / c64:.2f}×{cpu_growth(result, app, 'ceiling')})"
        ratio_row(f"{APP_BY_KEY[app].label}: req/s ≥ 0.9× the 64-connection figure (hello-64)",
                  get(result, app, "ruwsgi", "rps"), get(result, "hello-64", "ruwsgi", "rps"),
                  0.9, x)
        name, measured, seen = rows[-1]
        rows[-1] = (name, measured + ref, seen)
    bad = []
    seen = False
    for app, cells in result["cells"].items():
        cell = cells.get("ruwsgi")
        if cell and cell.get("status") == "ok" and cell.get("fairness"):
            seen = True
            if not fair_ok(cell["fairness"]):
                bad.append(f"{app}: {fairness_text(cell['fairness'])}")
    rows.append(("fairness: every keep-alive connection served (min ≥ 25% of max)",
                 "all apps" if seen and not bad else ("; ".join(bad) or "–"),
                 verdict(None if not seen else not bad, ", ".join(b.split(":")[0] for b in bad))))
    a, b = get(result, "hello", "ruwsgi", "pss_mib"), get(result, "hello", "uwsgi", "pss_mib")
    rows.append(("PSS (master + 2 workers, hello) ≤ uWSGI's",
                 f"{fmt_num(a, 1, ' MiB')} vs {fmt_num(b, 1, ' MiB')}",
                 verdict(None if a is None or b is None else a <= b,
                         f"+{(a or 0) - (b or 0):.1f} MiB")))
    return rows


HTTPS_BEGIN = "<!-- https: generated by bench/run (--apps tls); the next such run replaces it -->"
HTTPS_END = "<!-- https: end -->"
FULL_BEGIN = "<!-- full run: generated by bench/run; the next full run replaces it -->"
FULL_END = "<!-- full run: end -->"


def tls_apps(result):
    return [a for a in result["cells"] if APP_BY_KEY[a].tls]


def short_app(app_key):
    app = APP_BY_KEY[app_key]
    return ("hello" if "hello" in app_key else "64 KiB") + (" h2" if app.h2 else " h1")


def https_goals(result):
    """[(goal, measured, verdict)]: issue 17's benchmark goals, per HTTPS cell."""
    rows = []
    for a in tls_apps(result):
        mine = result["cells"][a].get("ruwsgi")
        for peer, field, name, better in (
                ("granian", "rps", "req/s ≥ Granian's", lambda r: r >= 1.0),
                ("ruwsgi-nginx", "cpu_us", "total CPU µs/req < nginx + ruwsgi's",
                 lambda r: r < 1.0)):
            theirs = result["cells"][a].get(peer)
            goal = f"{short_app(a)}: {name}"
            if not mine or mine["status"] != "ok":
                why = (mine or {}).get("reason") or "not run"
                rows.append((goal, "–", f"not measured (ruwsgi https: {why})"))
                continue
            if not theirs or theirs["status"] != "ok":
                why = (theirs or {}).get("reason") or "not run"
                rows.append((goal, "–", f"not measured ({tls_label(peer, APP_BY_KEY[a])}: "
                             f"{why.splitlines()[0][:80]})"))
                continue
            m, t = mine["median"][field], theirs["median"][field]
            if not m or not t:
                rows.append((goal, "–", "not measured"))
                continue
            unit = " req/s" if field == "rps" else " µs"
            meas = f"{m / t:.2f}× ({fmt_num(m, 0, unit)} vs {fmt_num(t, 0, unit)})"
            rows.append((goal, meas, "**met**" if better(m / t) else "missed"))
    return rows


def https_section(result, json_path):
    """The "HTTPS" section: the tls-* cells, ratios to each peer, issue 17's goals."""
    m, s, v = result["machine"], result["settings"], result["versions"]
    apps = tls_apps(result)
    negotiated = sorted({f"{c['tls']['version']} {c['tls']['cipher']}"
                         for a in apps for c in result["cells"][a].values()
                         if c.get("tls", {}).get("version")})
    lines = [
        HTTPS_BEGIN,
        "## HTTPS",
        "",
        f"Generated by `bench/run --apps tls` (raw results `bench/results/{json_path.name}`, "
        "not committed); see [benchmarking.md](benchmarking.md#https-cells). Issue 17's "
        "benchmark: hello world and a 64 KiB response over HTTPS, HTTP/1.1 and HTTP/2, with "
        "ruwsgi terminating TLS itself (`https`) against Granian terminating TLS itself and "
        "against nginx terminating TLS in front of ruwsgi.",
        "",
    ]
    if result.get("note"):
        lines += [f"**Note:** {result['note']}", ""]
    lines += [
        f"- date: {result['date']} (run took {fmt_dur(result['elapsed_s'])}); machine: "
        f"{m.get('cpu')}, nproc {m.get('nproc')}, Linux {m.get('kernel')}; load average "
        f"{' '.join(m.get('loadavg_start', []))} at the start, "
        f"{' '.join(m.get('loadavg_end', []) or ['?'])} at the end.",
        f"- load: HTTP/1.1 `wrk -t1 -c{s['connections']} -d{s['duration_s']}s --latency "
        "https://…` (wrk offers no ALPN: HTTP/1.1 everywhere); HTTP/2 "
        f"`h2load -t1 -c{s['connections']} -m{s.get('h2_streams', 1)} -D{s['duration_s']} "
        "--npn-list=h2 https://…` (the same number of requests in flight; p50/p99 from its "
        f"per-request log). {s['rounds']} round(s) in alternation, {s['warmup_s']} s warm-up, "
        "medians shown (and the lowest–highest round's req/s). Fairness: per-client req/s "
        "min / max (HTTP/1.1: `h2load --h1` once per cell; HTTP/2: the first round's h2load "
        "run).",
        "- TLS: a self-signed ECDSA P-256 certificate made by `openssl req` for the run; "
        "negotiated with an OpenSSL client (the library wrk and h2load use): "
        + (", ".join(negotiated) or "?") + ".",
        "- servers, 2 worker processes × 1 thread each, request logging off: ruwsgi "
        "`--https ADDR,CERT,KEY --master --processes 2 --threads 1`; Granian `--interface wsgi "
        "--workers 2 --blocking-threads 1 --ssl-certificate CERT --ssl-keyfile KEY --http 1` "
        "(HTTP/2 cells `--http 2`); nginx (2 worker processes, `listen … ssl http2`, TLS 1.2 "
        "and 1.3) with `uwsgi_pass` to ruwsgi `--socket` (same ruwsgi options).",
        "- **CPU µs/req** is user+sys of *everything serving* per request: ruwsgi's master "
        "and workers, Granian's processes, and for nginx + ruwsgi nginx's master and workers "
        "plus ruwsgi's. RSS / PSS likewise sum every serving process (nginx included).",
        "- versions: " + ", ".join(
            f"{k} {val}" for k, val in v.items()
            if k in ("ruwsgi", "Granian", "Python", "nginx", "wrk", "h2load",
                     "OpenSSL (wrk, h2load, nginx)"))
        + (f"; checkout at commit {result['commit']}" if result.get("commit") else ""),
        "",
    ]
    for a in apps:
        lines += [f"### {result['apps'][a]}", "",
                  "| server | req/s | rounds' req/s | × ruwsgi | p50 | p99 | errors "
                  "| CPU µs/req (total) | RSS MiB | PSS MiB | fairness min / max req/s "
                  "| ALPN (h2, http/1.1 offered) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for k, cell in result["cells"][a].items():
            label = tls_label(k, APP_BY_KEY[a])
            if k == "ruwsgi":
                label = f"**{label}**"
            alpn = cell.get("tls", {}).get("alpn") or "none"
            if cell["status"] != "ok":
                reason = (cell.get("reason") or "").splitlines()[0][:80] \
                    if cell.get("reason") else ""
                lines.append(f"| {label} | {cell['status']}: {reason} | | | | | | | | | | "
                             f"{alpn} |")
                continue
            md = cell["median"]
            if cell.get("died"):
                label += " (exited during the run)"
            spread = [r["rps"] for r in cell["runs"] if "rps" in r]
            spread = f"{min(spread):,.0f}–{max(spread):,.0f}" if len(spread) > 1 else "–"
            lines.append(
                f"| {label} | {fmt_num(md['rps'])} | {spread} | "
                f"{fmt_num(md['x_ruwsgi'], 2, '×')} | "
                f"{fmt_num(md['p50_ms'], 2, ' ms')} | {fmt_num(md['p99_ms'], 2, ' ms')} | "
                f"{errors_text(md)} | {fmt_cpu(md['cpu_us'])} | "
                f"{fmt_num(md.get('rss_total_mib'), 1)} | {fmt_num(md.get('pss_total_mib'), 1)} "
                f"| {fairness_text(cell.get('fairness'))} | {alpn} |")
        lines.append("")

    def ratio_table(title, field):
        out = [f"### {title}", "", "| peer | " + " | ".join(short_app(a) for a in apps) + " |",
               "|---|" + "---:|" * len(apps)]
        for peer in ("granian", "ruwsgi-nginx"):
            row = []
            for a in apps:
                mine = result["cells"][a].get("ruwsgi")
                if mine and mine["status"] != "ok":
                    row.append("n/a (ruwsgi: no h2)" if mine.get("reason") == NO_H2 else "n/a")
                    continue
                theirs = result["cells"][a].get(peer)
                if theirs and theirs["status"] != "ok":
                    row.append("n/a (peer: no h2)" if theirs.get("reason") == NO_H2 else "n/a")
                    continue
                x, y = get(result, a, "ruwsgi", field), get(result, a, peer, field)
                row.append(fmt_num(x / y, 2, "×") if x and y else "–")
            name = "Granian, own TLS" if peer == "granian" else "nginx TLS + ruwsgi"
            out.append(f"| {name} | " + " | ".join(row) + " |")
        return out + [""]

    lines += ratio_table("req/s ratio ruwsgi https ÷ peer (above 1: ruwsgi serves more)", "rps")
    lines += ratio_table("CPU µs/req ratio ruwsgi https ÷ peer (below 1: ruwsgi uses less "
                         "CPU; nginx + ruwsgi counts both)", "cpu_us")
    lines += ["### Goals (issue 17)", "", "| goal | measured (ruwsgi ÷ peer) | verdict |",
              "|---|---|---|"]
    for goal, meas, verdict in https_goals(result):
        lines.append(f"| {goal} | {meas} | {verdict} |")
    lines += ["", HTTPS_END]
    return lines


def write_https_only(result, path, json_path):
    """A run of only the HTTPS cells: replace the HTTPS section of an existing report (or
    append it), leaving the other sections as they are."""
    section = "\n".join(https_section(result, json_path)) + "\n"
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    if HTTPS_BEGIN in old and HTTPS_END in old:
        head, rest = old.split(HTTPS_BEGIN, 1)
        new = head + section.rstrip("\n") + rest.split(HTTPS_END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    path.write_text(new)


def write_markdown(result, path, json_path):
    m, s, v = result["machine"], result["settings"], result["versions"]
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run` (see [benchmarking.md](benchmarking.md)); raw results in "
        f"`bench/results/{json_path.name}` (not committed).",
        "",
    ] + ([f"**Note:** {result['note']}", ""] if result.get("note") else []) + [
        f"- date: {result['date']} (run took {fmt_dur(result['elapsed_s'])})"
        + (f"; checkout at commit {result['commit']}" if result.get("commit") else ""),
        f"- machine: {m.get('cpu')} ({m.get('mhz')} MHz), nproc {m.get('nproc')}, "
        f"{m.get('mem_gib')} GiB RAM, Linux {m.get('kernel')}, load average at start "
        f"{' '.join(m.get('loadavg_start', []))}",
        f"- load: `wrk -t1 -c{s['connections']} -d{s['duration_s']}s --latency` on 127.0.0.1, "
        f"{s['rounds']} round(s) in alternation (every server of an app once per round), "
        f"{s['warmup_s']} s warm-up; medians shown. Fairness: `h2load --h1 -c{s['connections']}"
        f" -n N` (N sized for ~{s['fairness_s']:g} s) once per cell. The 1,000/10,000-"
        "connection cells: `h2load --h1 -cN -m1 -t1 --warm-up-time "
        f"{s.get('steady_warmup_s', STEADY_WARMUP):g} -D{s['duration_s']}` instead: every "
        "connection open and busy before the measured window (req/s, latency, CPU µs/req "
        "and fairness cover the window only).",
        "- servers: 2 worker processes × 1 thread unless noted; request logging off; "
        "nginx: 2 workers, `uwsgi_pass` over TCP.",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
        "Columns: req/s (median), × ruwsgi (req/s relative to ruwsgi http-socket), latency "
        "p50/p99, errors (non-2xx + wrk socket errors, summed over rounds; servers that close "
        "every connection without `Connection: close` show one `read` error per request), **CPU µs/req** (user+sys of "
        "all server processes — including nginx where it fronts — per request), RSS (sum over "
        "master + workers after the run; the app server's, for nginx cells nginx's), PSS (the "
        "same processes' proportional set size: pages shared between master and workers "
        "counted once), fairness (h2load per-client req/s min / max; on the "
        "1,000/10,000-connection cells from the first round's h2load run; not run on the "
        "one-request-per-connection cell).",
        "",
    ]
    for app_key, cells in result["cells"].items():
        if APP_BY_KEY[app_key].tls:
            continue  # in the HTTPS section
        lines += [f"## {result['apps'][app_key]}", "",
                  "| server | req/s | × ruwsgi | p50 | p99 | errors | CPU µs/req | RSS MiB "
                  "| PSS MiB | fairness min / max req/s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for k, cell in cells.items():
            label = result["servers"][k]
            if k.startswith("ruwsgi"):
                label = f"**{label}**"
            if cell["status"] != "ok":
                reason = (cell.get("reason") or "").splitlines()[0][:80] if cell.get("reason") \
                    else ""
                lines.append(f"| {label} | {cell['status']} | | | | | | | | {reason} |")
                continue
            md = cell["median"]
            if cell.get("died"):
                label += " (exited during the run)"
            lines.append(
                f"| {label} | {fmt_num(md['rps'])} | {fmt_num(md['x_ruwsgi'], 2, '×')} | "
                f"{fmt_num(md['p50_ms'], 2, ' ms')} | {fmt_num(md['p99_ms'], 2, ' ms')} | "
                f"{errors_text(md)} | {fmt_cpu(md['cpu_us'])} | {fmt_num(md['rss_mib'], 1)} | "
                f"{fmt_num(md.get('pss_mib'), 1)} | {fairness_text(cell.get('fairness'))} |")
        lines.append("")
    # ratio table: ruwsgi / peer
    lines += ["## ruwsgi vs every peer (req/s ratio ruwsgi ÷ peer, same app, same run)", ""]
    apps = [a for a in result["cells"] if not APP_BY_KEY[a].tls]
    lines.append("| peer | " + " | ".join(apps) + " |")
    lines.append("|---|" + "---:|" * len(apps))
    keys = [k for k in SERVERS
            if k not in RUWSGI_KEYS and any(k in result["cells"][a] for a in apps)]
    for k in keys:
        row = []
        for a in apps:
            mine, theirs = get(result, a, "ruwsgi", "rps"), get(result, a, k, "rps")
            row.append(fmt_num(mine / theirs, 2, "×") if mine and theirs else "–")
        lines.append(f"| {result['servers'][k]} | " + " | ".join(row) + " |")
    lines += ["", "## CPU µs/req ratio ruwsgi ÷ peer (below 1: ruwsgi uses less CPU)", "",
              "| peer | " + " | ".join(apps) + " |", "|---|" + "---:|" * len(apps)]
    for k in keys:
        row = []
        for a in apps:
            mine, theirs = get(result, a, "ruwsgi", "cpu_us"), get(result, a, k, "cpu_us")
            row.append(fmt_num(mine / theirs, 2, "×") if mine and theirs else "–")
        lines.append(f"| {result['servers'][k]} | " + " | ".join(row) + " |")
    lines += ["", "## Targets (issue 18)", "", "| target | measured | verdict |", "|---|---|---|"]
    for t, meas, verdict in targets(result):
        lines.append(f"| {t} | {meas} | {verdict} |")
    lines += ["", "![req/s per app and server](benchmarks.png)", ""]
    if tls_apps(result):
        lines += https_section(result, json_path) + [""]
    # The report is the part between the markers; what follows them (the before/after
    # measurements of single changes, written by hand) stays.
    old = path.read_text() if path.exists() else ""
    kept = old.split(FULL_END, 1)[1] if FULL_BEGIN in old and FULL_END in old else "\n"
    path.write_text(FULL_BEGIN + "\n" + "\n".join(lines) + FULL_END + kept)


def write_chart(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib missing, no chart", flush=True)
        return
    apps = [a for a in result["cells"] if not APP_BY_KEY[a].tls
            and any(c["status"] == "ok" for c in result["cells"][a].values())]
    if not apps:
        return
    cols = min(3, len(apps))
    rows = (len(apps) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 0.5 + 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(apps):]:
        ax.axis("off")
    for ax, app in zip(axes.flat, apps):
        cells = [(k, c) for k, c in result["cells"][app].items() if c["status"] == "ok"]
        labels = [result["servers"][k] for k, _ in cells]
        values = [c["median"]["rps"] or 0 for _, c in cells]
        colors = ["#d9480f" if k.startswith("ruwsgi") else
                  ("#868e96" if k == "ceiling" else "#4c6ef5") for k, _ in cells]
        y = range(len(cells))
        ax.barh(list(y), values, color=colors)
        ax.set_yticks(list(y))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(result["apps"][app], fontsize=10)
        ax.set_xlabel("requests/s (median)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        top = max(values) if values else 1
        for yi, val in zip(y, values):
            ax.text(val + top * 0.01, yi, f"{val:,.0f}", va="center", fontsize=7)
        ax.set_xlim(0, top * 1.18)
    s = result["settings"]
    fig.suptitle(f"ruwsgi vs peers — wrk -c{s['connections']} -d{s['duration_s']}s, "
                 f"median of {s['rounds']}, {result['machine'].get('nproc')} CPUs, "
                 f"{result['date']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
