"""The well-behaved test routes wrapped in wsgiref.validate.validator.

The validator asserts (AssertionError -> the server answers 500) whenever the
server hands the app a non-compliant environ / start_response / wsgi.input /
write callable, or mishandles the response iterator (e.g. never calls
close()).  WSGIWarning is escalated to an error too.  So any non-200 here,
or a "Iterator garbage collected without being closed" message on stderr,
means the *server* broke PEP 3333.

Routes:
  /echo...   -> echo.application (any path starting with /echo).  If no
                `read=` is given, read=n:65536 is used, because the validator
                only allows wsgi.input.read(size) (so read=all is not allowed)
  the well-behaved wsgi_features routes: / /stream /write /file /exc-info
                /close /close-count /sleep /big /threadlocal /pid /head
                /error (raises before start_response: expect 500)
  anything else -> 404 (the crash/leak routes are not exposed here)
"""
import os
import sys
import warnings
from wsgiref.validate import WSGIWarning, validator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import echo  # noqa: E402
import wsgi_features  # noqa: E402

warnings.simplefilter("error", WSGIWarning)

FEATURE_ROUTES = {
    "/", "/stream", "/write", "/file", "/exc-info", "/close", "/close-count",
    "/sleep", "/big", "/threadlocal", "/pid", "/head", "/error",
}

_echo = validator(echo.application)
_features = validator(wsgi_features.application)
_not_found = validator(wsgi_features.not_found)


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    if path.startswith("/echo"):
        qs = environ.get("QUERY_STRING", "")
        if "read=" not in qs:
            environ["QUERY_STRING"] = qs + ("&" if qs else "") + "read=n:65536"
        return _echo(environ, start_response)
    if path in FEATURE_ROUTES:
        return _features(environ, start_response)
    return _not_found(environ, start_response)
