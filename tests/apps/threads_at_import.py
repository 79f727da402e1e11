"""Hello app whose module starts a daemon thread at import time.

Loading this in the master before fork leaves a thread that does not exist in
the forked workers; servers (like uWSGI) should warn about threads started
while loading the app in the master.  `IMPORT_THREAD` is that thread.
"""
import threading

_stop = threading.Event()


def _background():
    # Idle forever; only exists so that a non-main thread is alive.
    while not _stop.wait(60):
        pass


IMPORT_THREAD = threading.Thread(
    target=_background, name="started-at-import", daemon=True
)
IMPORT_THREAD.start()

BODY = b"Hello from threads_at_import!"


def application(environ, start_response):
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]
