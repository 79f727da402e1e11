"""A FastAPI app for the integration tests: lifespan state, a JSON endpoint, a streaming
response, a request body."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import StreamingResponse


@asynccontextmanager
async def lifespan(app):
    print("fastapi startup", os.getpid(), flush=True)
    yield {"greeting": "hello from lifespan"}
    print("fastapi shutdown", os.getpid(), flush=True)


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}


@app.get("/state")
async def state(request: Request):
    return {"greeting": request.state.greeting, "root_path": request.scope.get("root_path", "")}


@app.post("/upload")
async def upload(request: Request):
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


@app.get("/stream")
async def stream():
    async def numbers():
        for i in range(5):
            yield f"line {i}\n"
            await asyncio.sleep(0.01)

    return StreamingResponse(numbers(), media_type="text/plain")


@app.websocket("/ws")
async def ws_echo(websocket: WebSocket):
    """Echoes text (prefixed) and bytes until the client closes; "close" closes from here."""
    await websocket.accept(subprotocol="echo" if "echo" in websocket.scope["subprotocols"] else None)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            print("websocket closed by the client with", message["code"], flush=True)
            return
        if message.get("text") == "close":
            await websocket.close(code=4001, reason="asked to")
            return
        if message.get("text") is not None:
            await websocket.send_text("echo: " + message["text"])
        else:
            await websocket.send_bytes(message["bytes"])


@app.websocket("/ws-refused")
async def ws_refused(websocket: WebSocket):
    await websocket.close(code=1008)
