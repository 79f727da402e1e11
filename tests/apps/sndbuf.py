"""Answers with the SO_SNDBUF of the request's connection (`uwsgi.connection_fd()`)."""
import socket

import uwsgi


def application(environ, start_response):
    # fromfd duplicates the fd: closing the copy leaves the connection open.
    conn = socket.fromfd(uwsgi.connection_fd(), socket.AF_INET, socket.SOCK_STREAM)
    size = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    conn.close()
    body = str(size).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
