"""What a uWSGI app typically registers at import time, in the master: each hook writes a
marker file in API_OUT so a test (or you) can see it ran."""
import os

import uwsgi
from django.conf import settings
from django.db import DatabaseError, connection
from uwsgidecorators import cron, postfork, spool, timer

from apiproj.models import SpooledRow


def _append(name, line):
    with open(os.path.join(settings.OUT, name), "a") as f:
        f.write(line + "\n")


@postfork
def close_inherited_db_connection():
    # The master opened a connection while importing (below): a worker must not share its
    # socket/file with the master and the other workers, so it closes it after the fork.
    inherited = connection.connection is not None
    connection.close()
    _append("postfork-%d" % uwsgi.worker_id(), "inherited=%s closed=%s" % (inherited, connection.connection is None))


@timer(1)
def every_second(signum):
    _append("timer.log", "signal %d in worker %d" % (signum, uwsgi.worker_id()))


@cron(-1, -1, -1, -1, -1)
def every_minute(signum):
    _append("cron.log", "signal %d in worker %d" % (signum, uwsgi.worker_id()))


@spool
def write_row(args):
    # Runs in the spooler process: one row through the ORM, then the rows it reads back.
    SpooledRow.objects.create(name=args["name"], spooler_pid=os.getpid())
    names = " ".join(row.name for row in SpooledRow.objects.order_by("pk"))
    _append("spool.log", "rows %s in spooler %s" % (names, uwsgi.i_am_the_spooler()))


# Opened in the master at import time (e.g. a check at start-up): the reason for @postfork.
with connection.cursor() as cursor:
    cursor.execute("select 1")

# The table of the spooled jobs, made at start-up (what `manage.py migrate` does in a real
# project). With lazy-apps every worker runs this: the first one makes it.
if SpooledRow._meta.db_table not in connection.introspection.table_names():
    try:
        with connection.schema_editor() as editor:
            editor.create_model(SpooledRow)
    except DatabaseError:
        pass
