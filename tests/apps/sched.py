"""Answers with the scheduling policy of the thread that serves the request
(os.SCHED_OTHER is 0, os.SCHED_BATCH is 3)."""
import os


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.sched_getscheduler(0)).encode()]
