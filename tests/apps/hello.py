"""Minimal WSGI app: 200, Content-Type text/plain, body b"Hello, World!".

The body (13 bytes) is returned as a one-element list, with Content-Length.
"""

BODY = b"Hello, World!"


def application(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
