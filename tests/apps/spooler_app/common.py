"""What the app and the mule script share: where they write, and which server runs them."""

import os

import uwsgi

OUT = os.environ["SPOOLER_OUT"]


def server():
    """'ruwsgi' or 'uwsgi'."""
    return "ruwsgi" if b"ruwsgi" in uwsgi.version else "uwsgi"


def write(name, text):
    """Writes OUT/name atomically (the test polls for it)."""
    path = os.path.join(OUT, name)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)
