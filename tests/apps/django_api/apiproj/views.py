import json
import os

import uwsgi
from django.db import connection
from django.http import HttpResponse


def worker(request):
    """Which worker serves: uwsgi.worker_id() next to the pid uwsgi.workers() gives it."""
    wid = uwsgi.worker_id()
    pids = {w["id"]: w["pid"] for w in uwsgi.workers()}
    body = {"worker_id": wid, "pid": os.getpid(), "pid_of_worker": pids.get(wid), "numproc": uwsgi.numproc}
    return HttpResponse(json.dumps(body), content_type="application/json")


def db(request):
    """A query on the worker's own connection (the master's was closed by @postfork)."""
    with connection.cursor() as cursor:
        cursor.execute("select 21 * 2")
        (value,) = cursor.fetchone()
    return HttpResponse(str(value))
