"""uWSGI's WebSocket API from a WSGI app (uwsgi.websocket_*): an echo, as uWSGI's own
tests/websockets_echo.py does it. Served by ruwsgi in the tests, and by uWSGI to compare."""

import time

import uwsgi


def echo(environ):
    uwsgi.websocket_handshake(environ["HTTP_SEC_WEBSOCKET_KEY"], environ.get("HTTP_ORIGIN", ""))
    while True:
        try:
            msg = uwsgi.websocket_recv()
        except IOError as e:
            print("websocket ended: %s" % e, flush=True)
            return []
        if msg == b"bye":
            # The app ends the session.
            return []
        if msg == b"boom":
            raise RuntimeError("boom after the handshake")
        if msg.startswith(b"bin:"):
            uwsgi.websocket_send_binary(msg[4:])
        else:
            uwsgi.websocket_send(b"echo: " + msg)


def echo_nb(environ):
    # The handshake with the request's own headers, then polling.
    uwsgi.websocket_handshake()
    idle = 0
    while True:
        msg = uwsgi.websocket_recv_nb()
        if msg:
            uwsgi.websocket_send("nb: %s" % msg.decode())
        else:
            idle += 1
            time.sleep(0.01)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ws":
        return echo(environ)
    if path == "/ws-nb":
        return echo_nb(environ)
    if path == "/ws-no-key":
        try:
            uwsgi.websocket_handshake()
        except IOError as e:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [str(e).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"plain " + path.encode()]
