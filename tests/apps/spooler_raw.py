"""A spooler callable set by hand (`uwsgi.spooler = handler`), no uwsgidecorators: each
task says what to return. GET /spool?name=N&action=A[&at=EPOCH][&priority=P][&secs=S]
spools a task (its vars are the query); the handler appends one line per run to
SPOOLER_OUT/log. Actions: ok (SPOOL_OK), retry (SPOOL_RETRY twice, then SPOOL_OK),
ignore (SPOOL_IGNORE), sleep (sleeps `secs`, then SPOOL_OK). GET /msg?m=M sends mule 1 a
message; the mule's hook sleeps `M` seconds (mule-harakiri). GET /signal?n=N raises uWSGI
signal N: 17 is registered for mule 1, 18 for the spooler. GET /task?path=P shows
uwsgi.spooler_get_task(P) and uwsgi.spooler_jobs()."""

import os
import time
from urllib.parse import parse_qsl

import uwsgi

OUT = os.environ["SPOOLER_OUT"]


def record(line):
    with open(os.path.join(OUT, "log"), "a") as f:
        f.write(line + "\n")


def runs(name):
    try:
        with open(os.path.join(OUT, "log")) as f:
            return sum(1 for line in f if line.split(" ")[0] == name)
    except FileNotFoundError:
        return 0


def handler(env):
    name = env[b"name"].decode()
    action = env.get(b"action", b"ok").decode()
    record("%s %s t=%d pid=%d cwd=%s keys=%s" % (
        name, action, int(time.time()), os.getpid(), os.getcwd(), ",".join(sorted(k if isinstance(k, str) else k.decode() for k in env))))
    if action == "retry":
        return uwsgi.SPOOL_RETRY if runs(name) < 3 else uwsgi.SPOOL_OK
    if action == "ignore":
        return uwsgi.SPOOL_IGNORE
    if action == "sleep":
        time.sleep(float(env[b"secs"]))
    return uwsgi.SPOOL_OK


def mule_hook(message):
    record("mule %d got %s" % (uwsgi.mule_id(), message.decode()))
    time.sleep(float(message))


def mule_main():
    """`mule = spooler_raw:mule_main`: says so, then serves messages."""
    record("mule-main mule=%d" % uwsgi.mule_id())
    while True:
        message = uwsgi.mule_get_msg()
        if message is not None:
            record("mule-main got %s" % message.decode())


def on_signal(num):
    record("signal %d mule=%d spooler=%s" % (num, uwsgi.mule_id(), bool(uwsgi.i_am_the_spooler())))


uwsgi.spooler = handler
uwsgi.mule_msg_hook = mule_hook
uwsgi.register_signal(17, "mule1", on_signal)
uwsgi.register_signal(18, "spooler", on_signal)


def application(environ, start_response):
    query = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    if environ["PATH_INFO"] == "/msg":
        body = repr(uwsgi.mule_msg(query["m"].encode())).encode()
    elif environ["PATH_INFO"] == "/task":
        task = uwsgi.spooler_get_task(query["path"])
        jobs = [j.decode() for j in uwsgi.spooler_jobs()]
        body = repr((sorted((k if isinstance(k, str) else k.decode(), v) for k, v in task.items()), jobs)).encode()
    elif environ["PATH_INFO"] == "/signal":
        body = repr(uwsgi.signal(int(query["n"]))).encode()
    else:
        body = uwsgi.spool({k.encode(): v.encode() for k, v in query.items()})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
