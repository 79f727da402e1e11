"""The mule (`mule = apiproj.mule:consume`): takes the messages the /mule view sends with
uwsgi.mule_msg() and appends each to API_OUT/mule.log."""
import os

import uwsgi


def consume():
    out = os.environ.get("API_OUT", "/tmp")
    while True:
        message = uwsgi.mule_get_msg()
        if message is None:  # a signal was handled instead
            continue
        with open(os.path.join(out, "mule.log"), "a") as f:
            f.write("message %s in mule %d\n" % (message.decode(), uwsgi.mule_id()))
