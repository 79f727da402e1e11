"""WSGI apps for the benchmark matrix (bench/driver.py).

Each is a module-level callable so every server can load it as `bench_apps:<name>`:

    hello     200, text/plain, b"Hello, World!" (13 bytes)
    echo      reads the whole body with wsgi.input.read() and sends it back
    big       a 1 MiB response body (one bytes object)
    big64k    a 64 KiB response body (one bytes object; the HTTPS cells)
    sleep     time.sleep(0.01), then the hello body (I/O-bound)
"""
import time

HELLO = b"Hello, World!"
BIG = b"x" * (1024 * 1024)
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))]
BIG64K = b"x" * (64 * 1024)
BIG64K_HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(len(BIG64K))),
]
BIG_HEADERS = [
    ("Content-Type", "application/octet-stream"),
    ("Content-Length", str(len(BIG))),
]


def hello(environ, start_response):
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]


def big(environ, start_response):
    start_response("200 OK", BIG_HEADERS)
    return [BIG]


def big64k(environ, start_response):
    start_response("200 OK", BIG64K_HEADERS)
    return [BIG64K]


def sleep(environ, start_response):
    time.sleep(0.01)
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO]
