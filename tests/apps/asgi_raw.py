"""A plain ASGI 3 app for the integration tests (crates/it/tests/asgi.rs): lifespan with
state, body echo, streaming, disconnect, errors, a blocking call on the loop."""

import asyncio
import json
import os
import time

events = []
# `/park` requests waiting for `/release` (one worker's loop: no lock needed).
parked = {"count": 0, "release": None}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("ASGI_FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                scope["state"]["started_pid"] = os.getpid()
                print("lifespan startup in", os.getpid(), flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("lifespan shutdown in", os.getpid(), flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/echo":
        if scope["query_string"]:
            # Work before reading the body (longer than socket-timeout, say).
            await asyncio.sleep(float(scope["query_string"]))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/scope":
        info = {k: scope[k] for k in ("http_version", "method", "scheme", "path", "root_path", "client", "server")}
        info["raw_path"] = scope["raw_path"].decode()
        info["query_string"] = scope["query_string"].decode()
        info["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
        info["state"] = scope.get("state", {}).get("started_pid") == os.getpid()
        body = json.dumps(info).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d\n" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    if path == "/wait-disconnect":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        print("saw http.disconnect", flush=True)
        return
    if path == "/park":
        # A long poll: waits until a `/release` request comes.
        if parked["release"] is None:
            parked["release"] = asyncio.Event()
        release = parked["release"]
        parked["count"] += 1
        await release.wait()
        parked["count"] -= 1
    if path == "/big":
        # 32 MiB in 64 KiB messages: more than the socket buffers take while the client
        # doesn't read.
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        for i in range(512):
            await send({"type": "http.response.body", "body": bytes([i % 256]) * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        print("big response sent", flush=True)
        return
    if path == "/parked":
        body = b"%d" % parked["count"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/release":
        if parked["release"] is not None:
            parked["release"].set()
            parked["release"] = None
    if path == "/sleep":
        print("sleep started", flush=True)
        await asyncio.sleep(float(scope["query_string"] or b"5"))
    if path == "/raise":
        raise RuntimeError("boom from the ASGI app")
    if path == "/block":
        time.sleep(2.5)  # a sync call inside a coroutine: blocks the loop
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, ASGI!"})
