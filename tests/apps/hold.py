"""Holds `/hold` requests while the file named by $HOLD_GATE exists (at most 60 s), so a
test decides when a load step ends; any other path answers at once. The body is the pid."""
import os
import time

GATE = os.environ.get("HOLD_GATE", "")


def application(environ, start_response):
    if environ["PATH_INFO"] == "/hold":
        deadline = time.monotonic() + 60
        while GATE and os.path.exists(GATE) and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
