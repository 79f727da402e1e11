"""Runs a WSGI app under bjoern (single process): bjoern_runner.py HOST PORT DIR MODULE:CALLABLE"""
import importlib
import sys

import bjoern


def main():
    host, port, directory, target = sys.argv[1:5]
    sys.path.insert(0, directory)
    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name or "application")
    bjoern.run(app, host, int(port))


if __name__ == "__main__":
    main()
