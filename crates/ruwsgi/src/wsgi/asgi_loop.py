"""ruwsgi's ASGI event loop (run as the module `_ruwsgi_asgi` by wsgi/asgi.rs).

One asyncio loop per worker, on its own thread. Connection threads (Rust) queue requests
and replies on the Rust `feed`, whose eventfd this loop watches: `feed.drain(runner)`
builds each request's scope and calls `Runner.start_task`, and completes the futures the
connection threads answered. The app's `receive()`/`send()` go through the Rust
`exchange`, which queues them for the connection thread that owns the socket. No socket
is touched on this side, and all Python work happens on this thread.
"""

import asyncio
import functools
import sys
import threading
import time
import traceback

#: Seconds the loop may go without running its heartbeat before it counts as blocked.
BLOCK_AFTER = 1.0


def new_loop():
    """uvloop's loop when uvloop is installed, else asyncio's; and its name for the log."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop " + getattr(uvloop, "__version__", "")


def loop_name():
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    return "uvloop " + getattr(uvloop, "__version__", "")


def _set(fut, value, exc):
    if not fut.done():
        if exc is None:
            fut.set_result(value)
        else:
            fut.set_exception(exc)


class Runner:
    def __init__(self, app, log):
        self.app = app
        self.log = log  # log(level, message): ruwsgi's log
        self.state = {}
        self.loop = None
        self.lifespan = None
        self.beat = time.monotonic()

    # -- worker life -------------------------------------------------------------------

    def start(self, startup_timeout, feed):
        """Starts the loop thread, watching `feed`, and runs lifespan startup; returns an
        error or None."""
        self.loop, _ = new_loop()
        # The replies of the callbacks ready now wake their connections together, after them.
        feed.set_flusher(functools.partial(self.loop.call_soon, feed.flush))
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), name="ruwsgi-asgi-loop", daemon=True)
        self.thread.start()
        ready.wait()
        self.loop.call_soon_threadsafe(self.loop.add_reader, feed.fileno(), feed.drain, self)
        threading.Thread(target=self._watch, name="ruwsgi-asgi-watchdog", daemon=True).start()
        fut = asyncio.run_coroutine_threadsafe(self._lifespan_start(), self.loop)
        try:
            return fut.result(startup_timeout)
        except Exception as e:  # timeout
            return "lifespan startup did not complete within %ss (%r)" % (startup_timeout, e)

    def stop(self, timeout):
        """Lifespan shutdown, then the loop stops; returns an error or None."""
        if self.loop is None:
            return None
        err = None
        if self.lifespan is not None:
            fut = asyncio.run_coroutine_threadsafe(self._lifespan_stop(), self.loop)
            try:
                err = fut.result(timeout)
            except Exception as e:
                err = "lifespan shutdown did not complete within %ss (%r)" % (timeout, e)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        return err

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.call_soon(self._heartbeat)
        self.loop.run_forever()

    def _heartbeat(self):
        self.beat = time.monotonic()
        self.loop.call_later(BLOCK_AFTER / 4, self._heartbeat)

    def _watch(self):
        """Logs the loop thread's stack once per episode in which it doesn't come back to
        the loop for BLOCK_AFTER seconds (a sync call in an async view)."""
        reported = False
        while self.thread.is_alive():
            time.sleep(BLOCK_AFTER / 2)
            late = time.monotonic() - self.beat
            if late < BLOCK_AFTER:
                reported = False
                continue
            if reported:
                continue
            reported = True
            frame = sys._current_frames().get(self.thread.ident)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
            self.log(
                "warn",
                "ASGI event loop blocked for %.1fs (a blocking call in a coroutine?); its stack:\n%s"
                % (late, stack.rstrip()),
            )

    # -- lifespan ----------------------------------------------------------------------

    async def _lifespan_start(self):
        loop = asyncio.get_running_loop()
        inbox = asyncio.Queue()
        started = loop.create_future()
        stopped = loop.create_future()
        self.lifespan = (inbox, started, stopped)

        async def receive():
            return await inbox.get()

        async def send(message):
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                _set(started, None, None)
            elif kind == "lifespan.startup.failed":
                _set(started, "lifespan startup failed: %s" % message.get("message", ""), None)
            elif kind == "lifespan.shutdown.complete":
                _set(stopped, None, None)
            elif kind == "lifespan.shutdown.failed":
                _set(stopped, "lifespan shutdown failed: %s" % message.get("message", ""), None)
            else:
                raise RuntimeError("unexpected ASGI lifespan message %r" % kind)

        async def main():
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
            try:
                await self.app(scope, receive, send)
            except BaseException:
                if not started.done():
                    # As uvicorn's `lifespan = auto`: an app that raises before startup
                    # doesn't speak lifespan; serve it without.
                    self.lifespan = None
                    self.log("info", "ASGI 'lifespan' protocol appears unsupported by the app")
                    _set(started, None, None)
                else:
                    self.log("error", "ASGI lifespan raised:\n" + traceback.format_exc().rstrip())
            finally:
                _set(started, None, None)
                _set(stopped, None, None)

        inbox.put_nowait({"type": "lifespan.startup"})
        self.lifespan_task = loop.create_task(main())
        return await started

    async def _lifespan_stop(self):
        inbox, _, stopped = self.lifespan
        inbox.put_nowait({"type": "lifespan.shutdown"})
        return await stopped

    # -- requests ----------------------------------------------------------------------

    def start_task(self, scope, exchange, first_body):
        """Called by `feed.drain` on the loop: runs the app for one request."""
        if self.lifespan is not None:
            scope["state"] = self.state.copy()
        self.loop.create_task(self._call(scope, exchange, first_body))

    async def _call(self, scope, ex, first_body):
        loop = self.loop
        pending = [first_body]

        async def receive():
            if pending:
                body = pending.pop()
                if body is not None:
                    return {"type": "http.request", "body": body, "more_body": False}
            fut = loop.create_future()
            ex.receive(fut)
            return await fut

        async def send(message):
            fut = loop.create_future()
            if ex.send(message, fut):
                await fut

        try:
            await self.app(scope, receive, send)
        except BaseException as e:
            ex.done(e)
            if not isinstance(e, Exception):
                raise
        else:
            ex.done(None)
