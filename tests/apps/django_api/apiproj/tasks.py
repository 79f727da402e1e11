"""What a uWSGI app typically registers at import time, in the master: each hook writes a
marker file in API_OUT so a test (or you) can see it ran."""
import os

import uwsgi
from django.conf import settings
from django.db import connection
from uwsgidecorators import cron, postfork, timer


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


# Opened in the master at import time (e.g. a check at start-up): the reason for @postfork.
with connection.cursor() as cursor:
    cursor.execute("select 1")
