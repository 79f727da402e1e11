"""A mule script (`mule = consumer.py`): consumes messages forever, one file each."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import uwsgi  # noqa: E402

from common import server, write  # noqa: E402

while True:
    message = uwsgi.mule_get_msg()
    if message is None:
        continue
    n = message.decode()
    farm = "pair" if uwsgi.in_farm("pair") else "-"
    write("mule-" + n, "mule=%d farm=%s server=%s pid=%d\n" % (uwsgi.mule_id(), farm, server(), os.getpid()))
