"""The app: /spool?n=N spools a task (@spool) that writes OUT/job-N; /mule?n=N sends
mule 1 a message, /farm?n=N the farm `pair`; /mulefunc?n=N runs a @mulefunc in mule 3.
`block=1` makes the task wait for OUT/release-N (the test kills its spooler meanwhile)."""

import os
import sys
import time
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import uwsgi  # noqa: E402
from uwsgidecorators import mulefunc, spool  # noqa: E402

from common import OUT, server, write  # noqa: E402


@spool
def job(args):
    n = args["n"]
    if args.get("block"):
        write("started-%s-%d" % (n, os.getpid()), "")
        while not os.path.exists(os.path.join(OUT, "release-" + n)):
            time.sleep(0.05)
    write("job-" + n, "n=%s server=%s body=%s pid=%d cwd=%s\n"
          % (n, server(), args.get("body", ""), os.getpid(), os.getcwd()))


@mulefunc(3)
def in_mule(n):
    write("mulefunc-" + n, "mule=%d server=%s\n" % (uwsgi.mule_id(), server()))


def application(environ, start_response):
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    path = environ["PATH_INFO"]
    body = b"ok"
    if path == "/spool":
        args = {"n": query["n"]}
        for key in ("block", "body"):
            if key in query:
                args[key] = query[key]
        body = job.spool(**args)
    elif path == "/mule":
        uwsgi.mule_msg(query["n"].encode(), 1)
    elif path == "/farm":
        uwsgi.mule_msg(query["n"].encode(), b"pair")
    elif path == "/mulefunc":
        in_mule(query["n"])
    elif path == "/spooler":
        body = ("%d %s" % (uwsgi.spooler_pid(), len(uwsgi.spooler_jobs()))).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
