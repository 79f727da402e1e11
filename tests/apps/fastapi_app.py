"""A FastAPI app for the integration tests: lifespan state, a JSON endpoint, a streaming
response, a request body."""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
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
