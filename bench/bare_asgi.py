"""The floor of bench/serve.py's single-step rows: a bare ASGI app on uvicorn, no model.

It answers ``POST /v1/streams/{id}/steps`` as ``stateline serve`` does in
shape (``ok``, or ``duplicate`` for a seq it has seen), after parsing the
JSON body and remembering each stream's last seq, and nothing more: what HTTP
on loopback, JSON and uvicorn cost on this machine, with the same clients.
Anything else gets a 404.

Run: .venv/bin/python bench/bare_asgi.py PORT
"""

from __future__ import annotations

import json
import sys
from typing import Any

import uvicorn

PREFIX, SUFFIX = "/v1/streams/", "/steps"
last_seq: dict[str, int] = {}


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if scope["method"] != "POST" or not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        await answer(send, 404, {"detail": "Not Found"})
        return
    stream = path[len(PREFIX) : -len(SUFFIX)]
    event = json.loads(body)
    seq = int(event.get("seq", last_seq.get(stream, -1) + 1))
    fresh = seq > last_seq.get(stream, -1)
    if fresh:
        last_seq[stream] = seq
    await answer(
        send,
        200,
        {
            "stream": stream,
            "status": "ok" if fresh else "duplicate",
            "seq": last_seq[stream],
            "forecast": [[[21.5]]],
            "scores": [None],
            "flags": [False],
            "anomaly_scores": [None],
            "level": None,
            "error": None,
        },
    )


async def answer(send: Any, status: int, content: Any) -> None:
    body = json.dumps(content, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
