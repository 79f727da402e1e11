"""The uwsgi module from a plain WSGI app: each path exercises one function; signal
handlers write `signal-<num>-worker-<id>` files in the working directory."""
import os

import uwsgi

AT_IMPORT = {"worker_id": uwsgi.worker_id(), "masterpid": uwsgi.masterpid(), "pid": os.getpid()}


def _mark(signum):
    with open("signal-%d-worker-%d" % (signum, uwsgi.worker_id()), "a") as f:
        f.write("ran\n")


uwsgi.register_signal(20, "worker2", _mark)
uwsgi.register_signal(21, "workers", _mark)
uwsgi.register_signal(22, "", _mark)
uwsgi.register_signal(23, "active-workers", _mark)
# A file monitor on ./watched and a timer that fires twice.
os.makedirs("watched", exist_ok=True)
uwsgi.register_signal(24, "worker", _mark)
uwsgi.add_file_monitor(24, os.path.abspath("watched"))
uwsgi.register_signal(25, "worker", _mark)
uwsgi.add_rb_timer(25, 1, 2)


def _text(env):
    path = env["PATH_INFO"]
    query = env.get("QUERY_STRING", "")
    if path == "/import":
        return repr(AT_IMPORT)
    if path == "/ids":
        return repr({"worker_id": uwsgi.worker_id(), "masterpid": uwsgi.masterpid(), "mule_id": uwsgi.mule_id(),
                     "pid": os.getpid(), "numproc": uwsgi.numproc})
    if path == "/opt":
        return repr({k: uwsgi.opt.get(k) for k in query.split(",")})
    if path == "/values":
        return repr((type(uwsgi.version).__name__, uwsgi.version_info[:3], type(uwsgi.hostname).__name__,
                     uwsgi.started_on > 0))
    if path == "/raise":
        uwsgi.signal(int(query))
        return "raised"
    if path == "/lock":
        n = int(query)
        uwsgi.lock(n)
        return repr(uwsgi.is_locked(n))
    if path == "/unlock":
        n = int(query)
        uwsgi.unlock(n)
        return repr(uwsgi.is_locked(n))
    if path == "/is_locked":
        return repr(uwsgi.is_locked(int(query)))
    if path == "/workers":
        return repr([(w["id"], w["pid"], w["status"], w["requests"], w["signals"]) for w in uwsgi.workers()])
    if path == "/total":
        return repr(uwsgi.total_requests())
    if path == "/missing":
        try:
            getattr(uwsgi, query)
        except AttributeError as e:
            return "AttributeError: %s" % e
        return "present"
    if path == "/logvar":
        uwsgi.set_logvar("user_id", query)
        return repr(uwsgi.get_logvar("user_id"))
    if path == "/fd":
        return repr(uwsgi.connection_fd() > 2 and uwsgi.is_connected(uwsgi.connection_fd()))
    if path == "/setprocname":
        uwsgi.setprocname(query)
        uwsgi.log("renamed worker %d to %s" % (uwsgi.worker_id(), query))
        return str(os.getpid())
    if path == "/is_a_reload":
        return repr(uwsgi.is_a_reload)
    if path == "/reload":
        return repr(uwsgi.reload())
    if path == "/stop":
        return repr(uwsgi.stop())
    return "?"


def application(env, start_response):
    try:
        body = _text(env)
    except Exception as e:  # the test reads what went wrong
        body = "%s: %s" % (type(e).__name__, e)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


from uwsgidecorators import harakiri  # noqa: E402


@harakiri(1)
def _too_slow():
    import time
    time.sleep(30)


def _slow_app(env, start_response):
    if env["PATH_INFO"] == "/too-slow":
        _too_slow()
    return _inner(env, start_response)


_inner, application = application, _slow_app
