"""ASGI apps for the benchmark matrix (bench/driver.py, the asgi-* apps).

Each is a module-level ASGI 3 callable, loaded by every server as `asgi_apps:<name>`:

    hello     plain ASGI: 200, text/plain, b"Hello, World!" (13 bytes); no lifespan
    fastapi   FastAPI: GET / returns the JSON {"message": "Hello, World!", "items": [0..9]}
    echo      plain ASGI WebSocket echo: accepts, sends every message back as it came
              (text or bytes) until the client closes; an HTTP request gets the hello body
              (the driver's readiness probe)
"""
from fastapi import FastAPI

HELLO = b"Hello, World!"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
HELLO_BODY = {"type": "http.response.body", "body": HELLO}


async def _lifespan(receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    await send(HELLO_START)
    await send(HELLO_BODY)


async def echo(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "http":
        await send(HELLO_START)
        await send(HELLO_BODY)
        return
    msg = await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg["bytes"]})


fastapi = FastAPI()
ITEMS = list(range(10))


@fastapi.get("/")
async def json_hello():
    return {"message": "Hello, World!", "items": ITEMS}
