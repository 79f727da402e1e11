"""uWSGI's `uwsgidecorators`, for ruwsgi.

ruwsgi registers this module as `uwsgidecorators` in `sys.modules` before the app is
imported, so `from uwsgidecorators import postfork, timer` works unchanged (and a
`uwsgidecorators.py` that `pip install uwsgi` put in the same virtualenv is not used).
The decorators have uWSGI's names, arguments and behaviour; they sit on the `uwsgi`
module (see docs/python-api.md).
"""

import pickle
from functools import partial
from threading import Thread

import uwsgi

if uwsgi.masterpid() == 0:
    raise Exception("you have to enable the uWSGI master process to use this module")

spooler_functions = {}
mule_functions = {}
postfork_chain = []


def get_free_signal():
    """The lowest signal number nobody registered in this process."""
    for signum in range(256):
        if not uwsgi.signal_registered(signum):
            return signum
    raise Exception("No free uwsgi signal available")


def postfork_chain_hook():
    for f in postfork_chain:
        f()


uwsgi.post_fork_hook = postfork_chain_hook


class postfork:
    """Run the function in every worker right after it is forked (`@postfork`), or only in
    worker N (`@postfork(N)`)."""

    def __init__(self, f):
        if callable(f):
            self.wid = 0
            self.f = f
        else:
            self.wid = f
            self.f = None
        postfork_chain.append(self)

    def __call__(self, *args, **kwargs):
        if self.f is None:
            # `@postfork(N)`: this call is the decoration.
            self.f = args[0]
            return self
        if self.wid > 0 and self.wid != uwsgi.worker_id():
            return None
        return self.f()


class signal:
    """`@signal(num, target='')`: the function handles uWSGI signal `num`."""

    def __init__(self, num, **kwargs):
        self.num = num
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        return f


class timer:
    """`@timer(secs, signum=None, target='')`: the master raises a signal every `secs`
    seconds and the function handles it."""

    def __init__(self, secs, **kwargs):
        self.num = kwargs.get("signum", get_free_signal())
        self.secs = secs
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_timer(self.num, self.secs)
        return f


class rbtimer(timer):
    """`@rbtimer(secs)`: as `@timer` (uWSGI's red-black-tree timers)."""

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_rb_timer(self.num, self.secs)
        return f


class cron:
    """`@cron(minute, hour, day, month, weekday)`: -1 = any, -N = every N."""

    def __init__(self, minute, hour, day, month, dayweek, **kwargs):
        self.num = kwargs.get("signum", get_free_signal())
        self.fields = (minute, hour, day, month, dayweek)
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_cron(self.num, *self.fields)
        return f


class filemon:
    """`@filemon(path)`: the function runs when the file or directory changes."""

    def __init__(self, fsobj, **kwargs):
        self.num = kwargs.get("signum", get_free_signal())
        self.fsobj = fsobj
        self.target = kwargs.get("target", "")

    def __call__(self, f):
        uwsgi.register_signal(self.num, self.target, f)
        uwsgi.add_file_monitor(self.num, self.fsobj)
        return f


class lock:
    """`@lock`: the function runs holding uWSGI lock 0 (one caller at a time across all the
    workers)."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args, **kwargs):
        if uwsgi.i_am_the_spooler():
            return None
        uwsgi.lock()
        try:
            return self.f(*args, **kwargs)
        finally:
            uwsgi.unlock()


class thread:
    """`@thread`: each call runs the function in a new daemon thread."""

    def __init__(self, f):
        self.f = f

    def __call__(self, *args):
        t = Thread(target=self.f, args=args)
        t.daemon = True
        t.start()
        return self.f


class harakiri:
    """`@harakiri(secs)`: a call running longer than `secs` kills the worker."""

    def __init__(self, seconds):
        self.s = seconds

    def real_call(self, *args, **kwargs):
        uwsgi.set_user_harakiri(self.s)
        try:
            return self.f(*args, **kwargs)
        finally:
            uwsgi.set_user_harakiri(0)

    def __call__(self, f):
        self.f = f
        return self.real_call


# --- spooler and mules (docs/python-api.md)

def _encode(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    # Differs from uWSGI: numbers (`at=time.time() + 60`) are sent as their text; uWSGI
    # refuses them.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value).encode("ascii")
    return value


def _decode(value):
    if isinstance(value, bytes):
        # Differs from uWSGI: a value that isn't UTF-8 (a binary `body`) stays bytes; uWSGI
        # raises, and the task is retried forever.
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def manage_spool_request(vars):
    vars = {_decode(k): v for k, v in vars.items()}
    if "args" in vars:
        for k in ("args", "kwargs"):
            vars[k] = pickle.loads(vars.pop(k))
    vars = {k: _decode(v) for k, v in vars.items()}
    f = spooler_functions.get(vars["ud_spool_func"])
    if f is None:
        # Differs from uWSGI (a KeyError, retried on every scan): a task whose function this
        # spooler never imported (lazy-apps without spooler-import) is left in the queue
        # with the server's "unable to find the spooler function" line.
        return uwsgi.SPOOL_IGNORE
    if "args" in vars:
        ret = f(*vars["args"], **vars["kwargs"])
    else:
        ret = f(vars)
    return int(vars.get("ud_spool_ret", ret))


uwsgi.spooler = manage_spool_request


class _spoolraw:
    def __init__(self, f, pass_arguments):
        if "spooler" not in uwsgi.opt:
            raise Exception(
                "you have to enable the uWSGI spooler to use @%s decorator" % self.__class__.__name__)
        self.f = f
        spooler_functions[f.__name__] = f
        f.spool = self.__call__
        self.pass_arguments = pass_arguments
        self.base_dict = {"ud_spool_func": f.__name__}

    def __call__(self, *args, **kwargs):
        arguments = dict(self.base_dict)
        if not self.pass_arguments:
            if args:
                arguments.update(args[0])
            arguments.update(kwargs)
        else:
            for key in ("message_dict", "spooler", "priority", "at", "body"):
                if key in kwargs:
                    arguments[key] = kwargs.pop(key)
            arguments["args"] = pickle.dumps(args)
            arguments["kwargs"] = pickle.dumps(kwargs)
        return uwsgi.spool({_encode(k): _encode(v) for k, v in arguments.items()})

    def spool(self, *args, **kwargs):
        return self.__class__.__call__(self, *args, **kwargs)


class _spool(_spoolraw):
    def __call__(self, *args, **kwargs):
        self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_OK)
        return _spoolraw.__call__(self, *args, **kwargs)


class _spoolforever(_spoolraw):
    def __call__(self, *args, **kwargs):
        self.base_dict["ud_spool_ret"] = str(uwsgi.SPOOL_RETRY)
        return _spoolraw.__call__(self, *args, **kwargs)


def spool_decorate(f=None, pass_arguments=False, _class=_spoolraw):
    if not f:
        return partial(_class, pass_arguments=pass_arguments)
    return _class(f, pass_arguments)


def spoolraw(f=None, pass_arguments=False):
    return spool_decorate(f, pass_arguments)


def spool(f=None, pass_arguments=False):
    return spool_decorate(f, pass_arguments, _spool)


def spoolforever(f=None, pass_arguments=False):
    return spool_decorate(f, pass_arguments, _spoolforever)


class mulefunc:
    def __init__(self, f):
        if callable(f):
            self.fname = f.__name__
            self.mule = 0
            mule_functions[f.__name__] = f
        else:
            self.mule = f
            self.fname = None

    def real_call(self, *args, **kwargs):
        message = {"service": "uwsgi_mulefunc", "func": self.fname, "args": args, "kwargs": kwargs}
        uwsgi.mule_msg(pickle.dumps(message), self.mule)

    def __call__(self, *args, **kwargs):
        if not self.fname:
            self.fname = args[0].__name__
            mule_functions[self.fname] = args[0]
            return self.real_call
        return self.real_call(*args, **kwargs)


def mule_msg_dispatcher(message):
    msg = pickle.loads(message)
    if msg["service"] == "uwsgi_mulefunc":
        return mule_functions[msg["func"]](*msg["args"], **msg["kwargs"])
    return None


uwsgi.mule_msg_hook = mule_msg_dispatcher
