"""WSGI feature/torture app for server integration tests; dispatches on PATH_INFO.

Well-behaved routes:
  /                 text/plain list of routes
  /stream           generator yielding 5 chunks b"chunk N\\n" (no Content-Length)
  /write            legacy write() callable: writes 3 chunks, returns []
                    (no Content-Length)
  /file[?path=P]    this source file (or P) via environ["wsgi.file_wrapper"]
                    (with Content-Length)
  /exc-info         start_response("200 OK") then, before any body, catches an
                    exception and calls start_response("500 ...", ..., exc_info)
                    again -- allowed by PEP 3333; client must see the 500 and
                    body b"recovered via exc_info"
  /close            body from an iterable whose close() bumps a per-process counter
  /close-count      that counter (text/plain integer)
  /sleep?s=N        time.sleep(N) (float ok), then b"slept N" (formatted with %g)
  /big?mb=N         N MiB (float ok) in 64 KiB chunks, with Content-Length;
                    byte at offset p is (p % 251)
  /big-list?mb=N    the same N MiB as one bytes object in a list (the server adds the
                    Content-Length); the list's close() bumps the /close-count counter
  /threadlocal      JSON {"count", "thread", "pid"}; count is a threading.local()
                    counter, incremented per call on the same thread
  /pid              os.getpid() as text/plain
  /spawn            starts `sleep 30` with subprocess; its pid as text/plain
  /head             200 with body b"body-for-get" (Content-Length 12); for HEAD
                    the server must send the headers but no body
  /leak?mb=N        permanently keeps N MiB (touched, so RSS grows) in a module
                    list; returns total leaked MiB

Misbehaving routes:
  /error            raises RuntimeError before start_response (expect 500)
  /error-after-start  start_response, yields one chunk, then raises RuntimeError
  /exit             os._exit(1): the worker dies mid-request
  /segfault         ctypes.string_at(0): the worker dies with SIGSEGV

Anything else: 404.
"""
import ctypes
import json
import os
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs

CHUNK = 64 * 1024
MIB = 1024 * 1024

# Pattern for /big: any 64 KiB window of the sequence (p % 251).
_PATTERN = bytes(i % 251 for i in range(CHUNK + 251))

_close_lock = threading.Lock()
close_count = 0

_local = threading.local()
_leaked = []


def _text(start_response, body, status="200 OK", ctype="text/plain"):
    if isinstance(body, str):
        body = body.encode()
    start_response(
        status, [("Content-Type", ctype), ("Content-Length", str(len(body)))]
    )
    return [body]


def _query(environ, name, default):
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    return float(values[0]) if values else default


def index(environ, start_response):
    return _text(start_response, "\n".join(sorted(ROUTES)) + "\n")


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(5):
            yield b"chunk %d\n" % i

    return gen()


def write(environ, start_response):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"write 0\n")
    w(b"write 1\n")
    w(b"write 2\n")
    return []


def file(environ, start_response):
    path = (parse_qs(environ.get("QUERY_STRING", "")).get("path") or [os.path.abspath(__file__)])[0]
    if path.endswith((".pyc", ".pyo")):  # pragma: no cover
        path = path[:-1]
    size = os.path.getsize(path)
    start_response(
        "200 OK",
        [("Content-Type", "text/x-python"), ("Content-Length", str(size))],
    )
    fh = open(path, "rb")
    wrapper = environ.get("wsgi.file_wrapper")
    if wrapper is None:
        from wsgiref.util import FileWrapper as wrapper
    return wrapper(fh, 8192)


def error(environ, start_response):
    raise RuntimeError("wsgi_features: /error raised before start_response")


def error_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first chunk\n"
        raise RuntimeError("wsgi_features: /error-after-start raised mid-body")

    return gen()


def exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    body = b"recovered via exc_info"
    try:
        raise ValueError("something went wrong before the body was sent")
    except ValueError:
        start_response(
            "500 Internal Server Error",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            sys.exc_info(),
        )
    return [body]


class _ClosingBody:
    def __init__(self, chunks):
        self._chunks = chunks

    def __iter__(self):
        return iter(self._chunks)

    def close(self):
        global close_count
        with _close_lock:
            close_count += 1


def close(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _ClosingBody([b"closing ", b"body\n"])


def close_count_view(environ, start_response):
    with _close_lock:
        n = close_count
    return _text(start_response, str(n))


def exit_(environ, start_response):
    sys.stderr.write("wsgi_features: /exit calling os._exit(1)\n")
    sys.stderr.flush()
    os._exit(1)


def segfault(environ, start_response):
    sys.stderr.write("wsgi_features: /segfault dereferencing NULL\n")
    sys.stderr.flush()
    ctypes.string_at(0)
    return _text(start_response, "still alive?!")  # pragma: no cover


def sleep(environ, start_response):
    secs = _query(environ, "s", 1.0)
    time.sleep(secs)
    return _text(start_response, "slept %g" % secs)


def big(environ, start_response):
    total = int(_query(environ, "mb", 1.0) * MIB)
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"),
         ("Content-Length", str(total))],
    )

    def gen():
        offset = 0
        while offset < total:
            n = min(CHUNK, total - offset)
            start = offset % 251
            yield _PATTERN[start:start + n]
            offset += n

    return gen()


class _ClosingList(list):
    def close(self):
        global close_count
        with _close_lock:
            close_count += 1


def big_list(environ, start_response):
    total = int(_query(environ, "mb", 1.0) * MIB)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    reps = total // 251 + 1
    return _ClosingList([(_PATTERN[:251] * reps)[:total]])


def threadlocal(environ, start_response):
    _local.count = getattr(_local, "count", 0) + 1
    body = json.dumps(
        {"count": _local.count, "thread": threading.get_ident(), "pid": os.getpid()}
    )
    return _text(start_response, body, ctype="application/json")


_children = []


def spawn(environ, start_response):
    child = subprocess.Popen(["sleep", "30"])
    _children.append(child)
    return _text(start_response, str(child.pid))


def pid(environ, start_response):
    return _text(start_response, str(os.getpid()))


def head(environ, start_response):
    return _text(start_response, b"body-for-get")


def leak(environ, start_response):
    n = int(_query(environ, "mb", 1.0) * MIB)
    _leaked.append(b"\xa5" * n)  # non-zero fill: pages really get touched
    total = sum(len(b) for b in _leaked) / MIB
    return _text(start_response, "leaked %g MiB" % total)


def header(environ, start_response):
    """Answers with the header `name: value` from the query string added."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    name, value = query["name"][0], query.get("value", ["1"])[0]
    start_response("200 OK", [("Content-Type", "text/plain"), (name, value)])
    return [b"header set\n"]


def not_found(environ, start_response):
    return _text(start_response, "not found\n", status="404 Not Found")


ROUTES = {
    "/": index,
    "/stream": stream,
    "/write": write,
    "/file": file,
    "/error": error,
    "/error-after-start": error_after_start,
    "/exc-info": exc_info,
    "/close": close,
    "/close-count": close_count_view,
    "/exit": exit_,
    "/segfault": segfault,
    "/sleep": sleep,
    "/big": big,
    "/big-list": big_list,
    "/threadlocal": threadlocal,
    "/pid": pid,
    "/spawn": spawn,
    "/head": head,
    "/leak": leak,
    "/header": header,
}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO") or "/", not_found)
    return handler(environ, start_response)
