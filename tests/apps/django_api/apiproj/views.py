import json
import os

import uwsgi
from django.db import connection
from django.http import HttpResponse

from apiproj.models import SpooledRow
from apiproj.tasks import write_row


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


def spool(request):
    """Spools the job that writes a row (apiproj.tasks.write_row); answers the task file name."""
    return HttpResponse(write_row.spool(name=request.GET["name"]))


def rows(request):
    """The rows the spooled jobs wrote, read back through the ORM in this worker."""
    return HttpResponse(" ".join(row.name for row in SpooledRow.objects.order_by("pk")))


def mule(request):
    """Sends mule 1 a message; its consumer (apiproj.mule) appends it to mule.log."""
    uwsgi.mule_msg(request.GET["msg"].encode(), 1)
    return HttpResponse("sent")
