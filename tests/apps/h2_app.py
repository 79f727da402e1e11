"""App for the HTTP/2 tests (crates/it/tests/http2.rs).

    /env             the environ's str values as JSON
    /together?n=N    waits (up to 20 s) until N requests are in the app at once; says whether
                     they met, and the thread it ran on
    /upload          reads wsgi.input in 64 KiB pieces; answers its length and sha256
    /big?n=N         N bytes (a repeating pattern), in 64 KiB pieces without Content-Length
    /sized?n=N       N bytes of the pattern with Content-Length, in one piece
    /endless         16 KiB pieces until the client goes away; then writes "gone after N"
                     to $H2_MARK
    /pid             the worker's process id
    /sleep?s=N       sleeps N seconds (having touched $H2_MARK.sleeping), then answers
"""
import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

PATTERN = bytes(range(256)) * 256  # 64 KiB
_lock = threading.Lock()
_inside = 0


def together(n):
    global _inside
    with _lock:
        _inside += 1
    deadline = time.monotonic() + 20
    met = False
    while time.monotonic() < deadline:
        with _lock:
            if _inside >= n:
                met = True
                break
        time.sleep(0.005)
    # Stay a little so the others see the count too.
    time.sleep(0.2)
    with _lock:
        _inside -= 1
    return met


def endless():
    sent = 0
    try:
        while sent < 10_000:
            yield b"z" * 16384
            sent += 1
            time.sleep(0.01)
    finally:
        with open(os.environ["H2_MARK"], "w") as f:
            f.write("gone after %d" % sent)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    if path == "/together":
        met = together(int(query["n"]))
        body = json.dumps({"met": met, "thread": threading.get_ident(), "port": environ["REMOTE_PORT"]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/upload":
        h = hashlib.sha256()
        size = 0
        while True:
            piece = environ["wsgi.input"].read(65536)
            if not piece:
                break
            h.update(piece)
            size += len(piece)
        body = json.dumps({"len": size, "sha256": h.hexdigest()}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/big":
        n = int(query["n"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (PATTERN[: min(65536, n - i)] for i in range(0, n, 65536))
    if path == "/sized":
        n = int(query["n"])
        body = (PATTERN * (n // len(PATTERN) + 1))[:n]
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(n))])
        return [body]
    if path == "/sleep":
        open(os.environ["H2_MARK"] + ".sleeping", "w").close()
        time.sleep(float(query["s"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/endless":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return endless()
    env = {k: v for k, v in environ.items() if isinstance(v, str)}
    body = json.dumps(env).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Multi", "a"), ("X-Multi", "b")])
    return [body]
