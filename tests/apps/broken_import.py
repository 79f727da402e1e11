"""An app module that fails to import (raises ImportError at import time).

For tests of app-loading failures (e.g. `need-app`): the server must report
the error and, with need-app, exit non-zero instead of serving.
"""

raise ImportError("broken_import: this module deliberately fails to import")


def application(environ, start_response):  # pragma: no cover - unreachable
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable\n"]
