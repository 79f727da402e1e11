"""Echo app: responds with JSON describing the request environ and body.

Response (application/json, with Content-Length)::

    {
      "environ": {KEY: value, ...},   # keys whose value is str/int/bool/tuple
                                      # (tuples become JSON arrays)
      "types": {KEY: "str" | "int" | "bool" | "tuple" | <type name>, ...},
                                      # type name of EVERY environ key,
                                      # e.g. "wsgi.input": "SomeInputClass"
      "read_mode": "all",             # how wsgi.input was read (see below)
      "read_calls": 3,                # number of read/readline/next calls made
      "body_len": 1234,
      "body_sha256": "hex...",
      "body": "..."                   # latin-1 decoded body, only if <= 64 KiB
    }

The body is read from wsgi.input until EOF, so the server must simulate EOF
at CONTENT_LENGTH (PEP 3333).  Choose the reading style with `?read=`:

    all      read()              one call, no size argument (default)
    length   read(CONTENT_LENGTH) one call, exact size (most portable)
    n:N      read(N)             loop until b""   e.g. read=n:1024
    line     readline()          loop until b""
    line:N   readline(N)         loop until b""
    lines    readlines()         one call
    iter     for chunk in wsgi.input
    none     do not touch wsgi.input at all (server must discard the body)

Note: wsgiref.validate only accepts read(size), so `all` fails under it.
"""
import hashlib
import json
from urllib.parse import parse_qs

BODY_INLINE_LIMIT = 64 * 1024
JSON_TYPES = (str, int, bool, tuple)


class _Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self, fn, *args):
        self.calls += 1
        return fn(*args)


def read_body(stream, mode, environ):
    """Read the whole request body using `mode`; return (bytes, call_count)."""
    count = _Counter()
    parts = []
    if mode == "none":
        pass
    elif mode == "all":
        parts.append(count(stream.read))
    elif mode == "length":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > 0:
            parts.append(count(stream.read, length))
    elif mode.startswith("n:") or mode == "line" or mode.startswith("line:"):
        if mode == "line":
            fn, args = stream.readline, ()
        elif mode.startswith("line:"):
            fn, args = stream.readline, (int(mode[5:]),)
        else:
            fn, args = stream.read, (int(mode[2:]),)
        while True:
            chunk = count(fn, *args)
            if not chunk:
                break
            parts.append(chunk)
    elif mode == "lines":
        parts.extend(count(stream.readlines))
    elif mode == "iter":
        it = iter(stream)
        while True:
            try:
                chunk = count(next, it)
            except StopIteration:
                break
            parts.append(chunk)
    else:
        raise ValueError("unknown read mode %r" % mode)
    for p in parts:
        if not isinstance(p, bytes):
            raise TypeError("wsgi.input returned %s, not bytes" % type(p).__name__)
    return b"".join(parts), count.calls


def describe_environ(environ):
    values = {}
    types = {}
    for key, value in environ.items():
        types[key] = type(value).__name__
        if isinstance(value, JSON_TYPES):
            values[key] = list(value) if isinstance(value, tuple) else value
    return values, types


def application(environ, start_response):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    mode = query.get("read", ["all"])[0]
    try:
        body, calls = read_body(environ["wsgi.input"], mode, environ)
    except ValueError as exc:
        msg = ("bad request: %s\n" % exc).encode()
        start_response(
            "400 Bad Request",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(msg)))],
        )
        return [msg]

    values, types = describe_environ(environ)
    result = {
        "environ": values,
        "types": types,
        "read_mode": mode,
        "read_calls": calls,
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }
    if len(body) <= BODY_INLINE_LIMIT:
        result["body"] = body.decode("latin-1")
    out = json.dumps(result, default=repr, sort_keys=True).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(out)))],
    )
    return [out]
