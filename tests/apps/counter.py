"""Counts the requests that reach the app, so tests can check that one never did.

  /count       the number of counted requests so far (this route isn't counted)
  /deadlock    takes a lock it already holds: the thread hangs until harakiri
  anything     counted; reads the whole body with wsgi.input.read() and echoes it back
"""
import threading

_lock = threading.Lock()
_count = 0


def application(environ, start_response):
    global _count
    path = environ.get("PATH_INFO", "")
    if path == "/count":
        body = str(_count).encode()
    elif path == "/deadlock":
        stuck = threading.Lock()
        stuck.acquire()
        stuck.acquire()
        body = b"unreachable"
    else:
        with _lock:
            _count += 1
        body = environ["wsgi.input"].read()
    start_response(
        "200 OK",
        [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
    )
    return [body]
