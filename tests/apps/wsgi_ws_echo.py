"""A WSGI WebSocket echo through uWSGI's API for the Autobahn fuzzing client
(scripts/autobahn). uwsgi.websocket_recv() returns bytes without saying whether the message
was text or binary, so a message that decodes as UTF-8 goes back as text, any other as
binary (an empty or UTF-8-looking binary message comes back as text)."""

import uwsgi


def application(environ, start_response):
    if "HTTP_SEC_WEBSOCKET_KEY" not in environ:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"websocket only\n"]
    uwsgi.websocket_handshake()
    while True:
        try:
            msg = uwsgi.websocket_recv()
        except IOError:
            return []
        try:
            msg.decode("utf-8")
        except UnicodeDecodeError:
            uwsgi.websocket_send_binary(msg)
        else:
            uwsgi.websocket_send(msg)
