"""Runs a WSGI app under bjoern: bjoern_runner.py HOST PORT DIR MODULE:CALLABLE [PROCESSES]

PROCESSES (default 1) > 1 is bjoern's own multi-process recipe (its tests/fork.py): the app
is imported and the socket bound once by `bjoern.listen`, then that many worker processes
are forked, each running `bjoern.run()` on the shared listening socket, while this process
waits as their master. SIGTERM to the master (the bench driver's stop) ends the workers
too; a worker that dies ends the others. With 1 the process serves by itself, as before.
"""
import importlib
import os
import signal
import sys

import bjoern


def main():
    host, port, directory, target = sys.argv[1:5]
    processes = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    sys.path.insert(0, directory)
    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name or "application")
    if processes <= 1:
        bjoern.run(app, host, int(port))
        return
    bjoern.listen(app, host, int(port))
    workers = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            try:
                bjoern.run()
            except KeyboardInterrupt:
                pass
            os._exit(0)
        workers.append(pid)

    def stop(*_):
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        os.wait()  # the first worker to exit (a crash, or the stop above) ends them all
    finally:
        stop()
        for _ in workers[1:]:
            try:
                os.wait()
            except ChildProcessError:
                break


if __name__ == "__main__":
    main()
