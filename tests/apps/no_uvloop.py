"""Imported first (`import = no_uvloop.py`): makes `import uvloop` fail, so ruwsgi's ASGI
worker runs asyncio's own event loop even where uvloop is installed."""
import sys

sys.modules["uvloop"] = None
