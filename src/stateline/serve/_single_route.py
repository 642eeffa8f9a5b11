"""``POST /v1/streams/{id}/steps`` answered before the framework, when nothing is wrong with it.

One step per request is the API's busiest route and its cheapest work (about
0.12-0.4 ms in the service): FastAPI's and Starlette's layers around it
(routing, eight middlewares, the dependency solver) cost about 0.3 ms more per
request on the 2-core machine (server CPU per request 0.9 -> 0.6 ms without
them). :class:`SteppingApp` answers the common case itself: a request with an
allowed ``Host``, a ``Content-Length`` within the limit, the right token, a
JSON body that :class:`StepIn` accepts and a valid stream id, while FastAPI's
own OpenTelemetry is off (with it on, every request goes through FastAPI,
which traces it). Anything else, down to a repeated header, goes to the
FastAPI app as it came (the body already read is handed on first), so every
refusal is the one the app's route and guards give;
tests/serve/test_single_route.py sends the same requests, good and hostile,
with and without this path and compares answers, headers and metrics.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from .._errors import StatelineError
from ..stream import UnknownStreamError
from ._events import Event
from ._guards import LOG, host_name
from ._wire import json_type, valid_stream_id

__all__ = ["ROUTE", "SingleStepRoute", "SteppingApp"]

ROUTE = "/v1/streams/{stream_id}/steps"
"""The route's name in the request metrics (as the FastAPI route names it)."""

_PATH = re.compile(r"/v1/streams/([^/]+)/steps")
_READ = frozenset({b"host", b"content-length", b"content-type", b"authorization"})
_JSON_HEADERS = [(b"content-type", b"application/json")]

Asgi = Callable[[Any, Any, Any], Awaitable[None]]


class SingleStepRoute:
    """The single-step route's common case: see the module's text.

    ``body_model`` is the route's body model (``StepIn``); ``expected`` the
    whole ``Authorization`` value; ``hosts`` the allowed ``Host`` names (None:
    any).
    """

    def __init__(
        self,
        *,
        body_model: type[BaseModel],
        expected: bytes,
        hosts: set[str] | None,
        max_body_bytes: int,
    ) -> None:
        self.body_model, self.expected = body_model, expected
        self.hosts, self.max_body_bytes = hosts, max_body_bytes

    def matches(self, scope: Any) -> str | None:
        """The stream id when ``scope`` is a POST to the single-step route, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        match = _PATH.fullmatch(scope["path"])
        return match.group(1) if match else None

    async def __call__(
        self, app: Any, stream_id: str, scope: Any, receive: Any, send: Any, fallback: Asgi
    ) -> None:
        started = time.perf_counter()
        headers = self._headers(scope)
        if headers is None or not valid_stream_id(stream_id):
            await fallback(scope, receive, send)
            return
        body, more, whole = await self._read(receive)
        step = self._body(body, headers[b"content-type"]) if whole else None
        coalescer = getattr(app.state, "single_steps", None)
        service = getattr(app.state, "service", None)
        if step is None or coalescer is None or service is None:
            await fallback(scope, _replay(body, more, receive), send)
            return
        event = Event(stream_id, step.values, step.seq, step.start, step.end)
        try:
            answer = await coalescer.step(event)
        except StatelineError as error:  # as the app's handler answers it
            code = 404 if isinstance(error, UnknownStreamError) else 422
            answer = {"detail": str(error)}
        except Exception as error:  # as RequestGuard answers (and logs) what escapes a route
            LOG.exception("POST %s: answered 500", scope["path"])
            code, answer = 500, {"detail": f"{type(error).__name__}: {error}"}
        else:
            if answer["status"] == "error":  # one event: its error is the request's
                code, answer = 422, {"detail": answer.get("error") or HTTPStatus(422).phrase}
            else:
                code = 200
                answer.setdefault("error", None)
        try:
            body = _render(answer)
        except Exception as error:  # as RequestGuard answers a response that cannot render
            LOG.exception("POST %s: answered 500", scope["path"])
            code, body = 500, _render({"detail": f"{type(error).__name__}: {error}"})
        await _send_json(send, code, body)
        service.metrics.requests.inc(ROUTE, str(code))
        service.metrics.latency.observe(time.perf_counter() - started)

    def _headers(self, scope: Any) -> dict[bytes, bytes] | None:
        """The headers this path reads, when each came once and all are as wanted."""
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ:
                if name in found:
                    return None
                found[name] = value
        if len(found) != len(_READ):
            return None
        length = found[b"content-length"]
        if not length.isdigit() or int(length) > self.max_body_bytes:
            return None
        # as the route reads it: the header decoded as Latin-1, the text encoded as UTF-8
        given = found[b"authorization"].decode("latin-1").encode()
        if not hmac.compare_digest(given, self.expected):
            return None
        if self.hosts is not None and host_name(found[b"host"].decode("latin-1")) not in self.hosts:
            return None
        return found

    async def _read(self, receive: Any) -> tuple[bytes, bool, bool]:
        """The body as read, whether the client said more follows, and whether it is whole
        (not past the limit, and the client did not go away first)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(parts), True, False
            chunk = message.get("body", b"")
            parts.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
            if size > self.max_body_bytes:
                return b"".join(parts), more, False
            if not more:
                return b"".join(parts), False, True

    def _body(self, raw: bytes, content_type: bytes) -> Any:
        if not json_type(content_type.decode("latin-1")):  # as the route reads the header
            return None
        try:
            return self.body_model.model_validate_json(raw)
        except ValidationError:
            return None


def _replay(body: bytes, more: bool, receive: Any) -> Any:
    """``receive`` as the app would have seen it: what was read first, then the rest."""
    pending = [{"type": "http.request", "body": body, "more_body": more}]

    async def replayed() -> Any:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


def _render(content: Any) -> bytes:
    """``content`` as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def _send_json(send: Any, code: int, body: bytes) -> None:
    """A JSON answer's ``body``, sent as Starlette's ``JSONResponse`` sends it."""
    headers = [(b"content-length", str(len(body)).encode("latin-1")), *_JSON_HEADERS]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class SteppingApp(FastAPI):
    """FastAPI, with the single-step route's common case answered by :attr:`single_step`
    before the framework's layers (None: every request goes through FastAPI)."""

    single_step: SingleStepRoute | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        route = self.single_step
        stream_id = route.matches(scope) if route is not None else None
        if route is None or stream_id is None or self._traced():
            await super().__call__(scope, receive, send)
            return
        await route(self, stream_id, scope, receive, send, super().__call__)

    def _traced(self) -> bool:
        """Whether FastAPI's own OpenTelemetry is on (a tracer, meter or logger provider is
        configured): then every request goes through FastAPI, which opens its span."""
        telemetry = getattr(self, "_native_telemetry", None)  # FastAPI >= 0.165
        return telemetry is not None and bool(telemetry.enabled())
