"""The FastAPI app: routes over :class:`StreamService`, built by a factory, state in lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, ValidationError
from starlette.websockets import WebSocketDisconnect

from .. import __version__
from .._errors import ConfigError, StatelineError, describe
from ..stream import UnknownStreamError
from ._service import Event, ServeConfig, StreamService

__all__ = ["create_app"]

# Strict: JSON numbers only ("55" and true are refused, not read as 55.0 and 1.0).
Values = list[StrictFloat] | list[list[StrictFloat]]


def _service_of(request: Request) -> StreamService:
    service: StreamService = request.app.state.service
    return service


Service = Annotated[StreamService, Depends(_service_of)]


class StepIn(BaseModel):
    """One stream's step(s)."""

    model_config = ConfigDict(extra="forbid")
    values: Values = Field(description="one step (inputs,) or k steps (k, inputs), original units")
    seq: int | None = Field(None, ge=0, description="sequence number of the first step")
    start: bool = Field(False, description="reset the stream before this step")
    end: bool = Field(False, description="forget the stream after this step")


class EventIn(StepIn):
    stream: str = Field(min_length=1, max_length=256)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn]


class StepOut(BaseModel):
    stream: str
    status: str = Field(description="ok, gap, restarted, duplicate, stale or error")
    seq: int | None = Field(description="the stream's last applied sequence number")
    forecast: list[list[list[float | None]]] = Field(
        description="per step sent: the forecast of the next `horizon` steps, original units"
    )
    scores: list[float | None] = Field(
        description="smoothed error score per step (null: calibrating)"
    )
    flags: list[bool]
    anomaly_scores: list[float | None] = Field(
        default_factory=list,
        description="anomaly likelihood in [0, 1] per step (null: calibrating)",
    )
    level: float | None = Field(
        description="the stream's threshold (the alarm level with threshold=likelihood)"
    )
    error: str | None = None


class BatchOut(BaseModel):
    results: list[StepOut]


def create_app(config: ServeConfig) -> FastAPI:
    """Build the app; the model and state store are loaded when it starts (lifespan)."""
    if not config.token:
        raise ConfigError(
            describe(
                "token",
                "a bearer token for writes",
                repr(config.token),
                problem="is missing.",
                fix="Pass --token or set STATELINE_TOKEN.",
            )
        )
    expected = f"Bearer {config.token}".encode()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = await asyncio.to_thread(StreamService, config)
        app.state.service = service
        task = asyncio.create_task(_snapshots(service, config.snapshot_interval))
        stop = threading.Event()
        learning = None
        if service.learner is not None:  # updates train outside the lock, swap inside it
            learning = threading.Thread(
                target=service.learner.run, args=(stop,), name="stateline-online", daemon=True
            )
            learning.start()
        try:
            yield
        finally:
            stop.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if learning is not None:
                await asyncio.to_thread(learning.join)
            try:
                await asyncio.to_thread(service.snapshot)
            except Exception as error:  # logged by the service; the CLI exits non-zero
                app.state.final_snapshot_error = f"{type(error).__name__}: {error}"

    app = FastAPI(
        title="stateline",
        version=__version__,
        description="Stateful LSTM/GRU forecasts and anomaly scores for live streams.",
        lifespan=lifespan,
    )

    def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status_code=401,
                detail="Missing or wrong bearer token. Expected header "
                "'Authorization: Bearer <token>' (the server's --token or STATELINE_TOKEN).",
                headers={"WWW-Authenticate": "Bearer"},
            )

    writer = Depends(authorised)

    @app.middleware("http")
    async def limits_and_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > config.max_body_bytes):
            response: Response = JSONResponse(
                status_code=413,
                content={
                    "detail": f"Request body too large: expected at most "
                    f"{config.max_body_bytes} bytes, received {length}. Split the batch."
                },
            )
        else:
            try:
                response = await call_next(request)
            except Exception as error:  # nothing a client sends may crash the server
                response = JSONResponse(
                    status_code=500, content={"detail": f"{type(error).__name__}: {error}"}
                )
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        service = getattr(request.app.state, "service", None)
        if service is not None:
            service.metrics.requests.inc(path, str(response.status_code))
            service.metrics.latency.observe(time.perf_counter() - started)
        return response

    @app.exception_handler(StatelineError)
    async def stateline_error(request: Request, error: StatelineError) -> JSONResponse:
        status = 404 if isinstance(error, UnknownStreamError) else 422
        return JSONResponse(status_code=status, content={"detail": str(error)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        page = files("stateline.serve").joinpath("dashboard.html").read_text("utf-8")
        return HTMLResponse(page)

    @app.get("/healthz")
    def healthz(service: Service) -> dict[str, Any]:
        return service.health()

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(service: Service) -> PlainTextResponse:
        return PlainTextResponse(
            service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.post("/v1/streams/{stream_id}/steps", response_model=StepOut, dependencies=[writer])
    def step_one(stream_id: str, body: StepIn, service: Service) -> dict[str, Any]:
        event = Event(stream_id, body.values, body.seq, body.start, body.end)
        answer = service.step([event])[0]
        if answer["status"] == "error":  # one event: its error is the request's (422)
            raise HTTPException(status_code=422, detail=answer.get("error"))
        return answer

    @app.post("/v1/steps", response_model=BatchOut, dependencies=[writer])
    def step_many(body: BatchIn, service: Service) -> dict[str, Any]:
        events = [Event(e.stream, e.values, e.seq, e.start, e.end) for e in body.events]
        return {"results": service.step(events)}

    @app.get("/v1/streams")
    def list_streams(service: Service) -> dict[str, Any]:
        return {"streams": service.streams()}

    @app.get("/v1/streams/{stream_id}")
    def get_stream(stream_id: str, service: Service) -> dict[str, Any]:
        return service.stream(stream_id)

    @app.delete("/v1/streams/{stream_id}", status_code=204, dependencies=[writer])
    def delete_stream(stream_id: str, service: Service) -> Response:
        service.delete(stream_id)
        return Response(status_code=204)

    @app.websocket("/v1/ws")
    async def ingest(socket: WebSocket) -> None:
        """Send ``{"events": [...]}`` messages, get ``{"results": [...]}`` back, in order.

        The token goes in the ``Authorization`` header or a ``token`` query parameter.
        """
        header = socket.headers.get("authorization", "")
        query = socket.query_params.get("token", "")
        given = (header or f"Bearer {query}").encode()
        if not hmac.compare_digest(given, expected):
            await socket.close(code=1008, reason="missing or wrong bearer token")
            return
        await socket.accept()
        service: StreamService = socket.app.state.service
        while True:
            try:
                text = await socket.receive_text()
            except WebSocketDisconnect:
                return
            if len(text) > config.max_body_bytes:
                message = f"message too large: at most {config.max_body_bytes} bytes"
                await socket.send_text(json.dumps({"error": message}))
                continue
            try:
                batch = BatchIn.model_validate(json.loads(text))
                events = [Event(e.stream, e.values, e.seq, e.start, e.end) for e in batch.events]
                results = await asyncio.to_thread(service.step, events)
                await socket.send_text(json.dumps({"results": results}))
            except (ValidationError, json.JSONDecodeError, StatelineError) as error:
                await socket.send_text(json.dumps({"error": str(error)}))

    return app


async def _snapshots(service: StreamService, interval: float) -> None:
    """Snapshot every ``interval`` seconds (and expire idle streams) until cancelled.

    A failed snapshot is logged and counted by the service (``/healthz`` says
    ``degraded``) and retried after 0.5 s, then 1, 2, 4 ... seconds, at most
    ``interval``, until one is written.
    """
    delay = interval
    while True:
        await asyncio.sleep(delay)
        await asyncio.to_thread(service.expire)
        try:
            await asyncio.to_thread(service.snapshot)
            delay = interval
        except Exception:
            delay = min(interval, 0.5 * 2 ** min(service.snapshot_failing - 1, 10))
