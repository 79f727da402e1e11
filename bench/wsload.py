"""WebSocket echo load for bench/driver.py (wrk can't speak WebSocket).

    python wsload.py HOST PORT PATH CONNECTIONS SECONDS [SIZE]

Opens CONNECTIONS WebSockets (RFC 6455 handshake by hand), then, all starting together, each
sends a SIZE-byte text message (masked, as a client must) and waits for its echo before the
next, for SECONDS. Prints one JSON object: messages echoed, messages/s, per-connection
messages/s min / max (a starved connection shows as a tiny min), round-trip p50/p99 and the
connections that failed. Runs on uvloop when installed. Bounded: SECONDS + 20 s at most.
"""
import asyncio
import base64
import json
import os
import statistics
import sys
import time


def frame(payload, opcode=0x1):
    """One masked client frame (payload < 64 KiB)."""
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126
                                    else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    if b1 & 0x80:
        key = await reader.readexactly(4)
        data = bytes(b ^ key[i % 4] for i, b in enumerate(await reader.readexactly(n)))
    else:
        data = await reader.readexactly(n)
    return b0 & 0x0F, data


async def connect(host, port, path):
    reader, writer = await asyncio.open_connection(host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
    return reader, writer


async def session(conn, payload, start, stop, rtts):
    reader, writer = conn
    msg = frame(payload)  # same bytes every time: one mask key per connection
    count = 0
    await start.wait()
    while time.monotonic() < stop[0]:
        t = time.monotonic()
        writer.write(msg)
        while True:
            opcode, data = await read_frame(reader)
            if opcode == 0x9:  # ping: answer, keep waiting for the echo
                writer.write(frame(data, 0xA))
                continue
            break
        if opcode != 0x1 or data != payload:
            raise ConnectionError(f"bad echo (opcode {opcode}, {len(data)} bytes)")
        count += 1
        if count % 8 == 0:
            rtts.append(time.monotonic() - t)
    writer.write(frame(b"\x03\xe8", 0x8))
    try:
        await asyncio.wait_for(read_frame(reader), 2)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
        pass
    writer.close()
    return count


async def main(host, port, path, conns, seconds, size):
    payload = b"x" * size
    opened = await asyncio.gather(*(connect(host, port, path) for _ in range(conns)),
                                  return_exceptions=True)
    errors = [repr(c) for c in opened if isinstance(c, BaseException)]
    live = [c for c in opened if not isinstance(c, BaseException)]
    start, stop, rtts = asyncio.Event(), [0.0], []
    tasks = [asyncio.ensure_future(session(c, payload, start, stop, rtts)) for c in live]
    t0 = time.monotonic()
    stop[0] = t0 + seconds
    start.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    counts = [d if isinstance(d, int) else 0 for d in done]
    errors += [repr(d) for d in done if isinstance(d, BaseException)]
    counts += [0] * (conns - len(live))
    rtts.sort()
    pct = lambda p: rtts[min(len(rtts) - 1, int(len(rtts) * p))] * 1000 if rtts else None  # noqa: E731
    return {
        "requests": sum(counts), "rps": sum(counts) / elapsed, "seconds": elapsed,
        "min": min(counts) / elapsed, "max": max(counts) / elapsed,
        "mean": statistics.mean(counts) / elapsed, "n": conns,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        "errors": len(errors), "error_samples": errors[:3],
    }


if __name__ == "__main__":
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    host, port, path, conns, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], \
        int(sys.argv[4]), float(sys.argv[5])
    size = int(sys.argv[6]) if len(sys.argv) > 6 else 32
    res = asyncio.run(asyncio.wait_for(main(host, port, path, conns, seconds, size),
                                       seconds + 20))
    print(json.dumps(res))
