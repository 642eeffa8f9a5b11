"""The FastAPI app: routes over :class:`StreamService`, built by a factory, state in lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response, WebSocket
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from .._errors import ConfigError, DataError, StatelineError, describe
from ..stream import UnknownStreamError
from ._answers import blank_answer
from ._coalesce import StepCoalescer
from ._columns import ColumnBatch
from ._config import ServeConfig
from ._events import Event
from ._guards import BodyLimit, RequestGuard, allowed_hosts, host_name
from ._service import StreamService
from ._single_route import SingleStepRoute, SteppingApp
from ._wire import (
    ARROW,
    STREAM_ID_PATTERN,
    STREAM_ID_RULE,
    answer_to_arrow,
    answer_to_json,
    arrow_request,
    batch_from_json,
    json_type,
    valid_stream_id,
)

__all__ = ["create_app"]

# Strict: JSON numbers only ("55" and true are refused, not read as 55.0 and 1.0).
# At least one number per step and one step: an empty list is never a step.
Step = Annotated[list[StrictFloat], Field(min_length=1)]
Values = Step | Annotated[list[Step], Field(min_length=1)]

LOG = logging.getLogger("stateline.serve")

_UNPARSED = "There was an error parsing the body"
"""FastAPI's detail for a body that raised something other than a JSON decode error."""


def stream_id_text(value: str) -> str:
    """Check a stream id against :data:`STREAM_ID_RULE`; returns it unchanged.

    >>> stream_id_text("pump-7/a")
    Traceback (most recent call last):
    ...
    ValueError: must be 1 to 256 characters of Unicode text, without '/', ...
    """
    if not valid_stream_id(value):
        raise ValueError(f"must be {STREAM_ID_RULE}")
    return value


def _validation_message(error: ValidationError, where: str) -> str:
    """``where.field: message`` for each problem pydantic found (at most three)."""
    parts = []
    for problem in error.errors()[:3]:
        field = ".".join(str(part) for part in problem["loc"])
        parts.append(f"{where}{'.' + field if field else ''}: {problem['msg']}")
    return "; ".join(parts)


def answer_batch(service: StreamService, raw_events: list[Any]) -> list[dict[str, Any]]:
    """Check every event on its own, apply the good ones in order, answer every one (a batch
    of more than ``--max-events`` is refused whole, before any event is read)."""
    service.check_event_count(len(raw_events))
    answers: list[dict[str, Any] | None] = [None] * len(raw_events)
    events, positions = [], []
    for position, raw in enumerate(raw_events):
        try:
            event = EventIn.model_validate(raw)
        except ValidationError as error:
            stream = raw.get("stream") if isinstance(raw, dict) else None
            answers[position] = blank_answer(
                stream if valid_stream_id(stream) else None,
                "error",
                error=_validation_message(error, f"events[{position}]"),
            )
            continue
        events.append(Event(event.stream, event.values, event.seq, event.start, event.end))
        positions.append(position)
    refused = len(raw_events) - len(events)
    if refused:
        service.metrics.steps.inc("error", amount=refused)
    for position, answer in zip(positions, service.step(events) if events else [], strict=True):
        answers[position] = answer
    return [answer for answer in answers if answer is not None]


async def _service_of(request: Request) -> StreamService:
    service: StreamService = request.app.state.service
    return service


Service = Annotated[StreamService, Depends(_service_of)]


StreamIdPath = Annotated[
    str,
    Path(
        description=f"the stream: {STREAM_ID_RULE}",
        # documented, not checked here: _check_path_id refuses a bad id with the rule's text
        json_schema_extra={"pattern": STREAM_ID_PATTERN, "not": {"enum": [".", ".."]}},
    ),
]

MAX_SEQ = 2**63 - 1
"""The largest sequence number (the store keeps them as signed 64-bit integers)."""


class StepIn(BaseModel):
    """One stream's step(s)."""

    model_config = ConfigDict(extra="forbid")
    values: Values = Field(description="one step (inputs,) or k steps (k, inputs), original units")
    seq: StrictInt | None = Field(
        None, ge=0, le=MAX_SEQ, description="sequence number of the first step (< 2^63)"
    )
    start: StrictBool = Field(False, description="reset the stream before this step")
    end: StrictBool = Field(False, description="forget the stream after this step")


class EventIn(StepIn):
    stream: str = Field(min_length=1, max_length=256)

    @field_validator("stream")
    @classmethod
    def _text(cls, value: str) -> str:
        return stream_id_text(value)


class BatchIn(BaseModel):
    """Events to apply in order; each is checked on its own (a bad one is answered alone)."""

    model_config = ConfigDict(extra="forbid")
    events: list[Any] = Field(
        description="events: objects with stream, values and optionally seq, start, end"
    )


class StepOut(BaseModel):
    stream: str | None
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


class Refusal(BaseModel):
    """A refused request: the reason as text, or the body's problems one by one (FastAPI's
    validation errors: ``loc``, ``msg``, ``type``)."""

    detail: str | list[dict[str, Any]]


def refusal(why: str) -> dict[str, Any]:
    """An error answer in the OpenAPI schema."""
    return {"model": Refusal, "description": why}


Responses = dict[int | str, dict[str, Any]]
REFUSALS: Responses = {
    400: refusal("a Host header this server does not answer to, or a body that is not JSON"),
    413: refusal("a body past --max-body-bytes, as declared or as read"),
    422: refusal("refused: the reason, or the body's problems"),
}
"""What any route may answer besides its own results (the guards in front of every route)."""
WRITE: Responses = {401: refusal("missing or wrong bearer token")}
READ: Responses = {401: refusal("missing or wrong bearer token (unless --public-reads)")}
UNKNOWN: Responses = {404: refusal("the stream is not held")}


def create_app(config: ServeConfig, *, service: StreamService | None = None) -> FastAPI:
    """Build the app; the model and state store are loaded when it starts (lifespan), unless
    ``service`` is given loaded (``stateline serve`` loads it first: a model, snapshot or
    setting that cannot be served is then an error before anything listens)."""
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
        loaded = service if service is not None else await asyncio.to_thread(StreamService, config)
        app.state.service = loaded
        app.state.single_steps = StepCoalescer(loaded)
        task = asyncio.create_task(_snapshots(loaded, config.snapshot_interval))
        stop_learning = loaded.learn_in_background("stateline-online")
        # What is loaded now (PyTorch, the model, the libraries: ~200,000 objects) lives as
        # long as the server: keep it out of the cyclic collector's full passes, each of which
        # otherwise stalled a call by 100-200 ms (worst of 400 calls of 1,024 events: 225 ->
        # 56 ms). Undone on shutdown.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await asyncio.to_thread(stop_learning)
            try:
                await asyncio.to_thread(loaded.snapshot)
            except Exception as error:  # logged by the service; the CLI exits non-zero
                app.state.final_snapshot_error = f"{type(error).__name__}: {error}"

    app = SteppingApp(
        title="stateline",
        version=__version__,
        description="Stateful LSTM/GRU forecasts and anomaly scores for live streams.",
        lifespan=lifespan,
        responses=REFUSALS,
    )
    app.add_middleware(BodyLimit, limit=config.max_body_bytes)

    # Dependencies are ``async def``: they only read headers, and a plain ``def`` would cost
    # each request a hop through the thread pool (16 hops per single step were measured).
    async def authorised(request: Request) -> None:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status_code=401,
                detail="Missing or wrong bearer token. Expected header "
                "'Authorization: Bearer <token>' (the server's --token or STATELINE_TOKEN).",
                headers={"WWW-Authenticate": "Bearer"},
            )

    writer = Depends(authorised)

    async def authorised_read(request: Request) -> None:
        if not config.public_reads:
            await authorised(request)

    reader = Depends(authorised_read)
    hosts = allowed_hosts(config)
    app.add_middleware(RequestGuard, hosts=hosts, max_body_bytes=config.max_body_bytes)
    app.single_step = SingleStepRoute(
        body_model=StepIn, expected=expected, hosts=hosts, max_body_bytes=config.max_body_bytes
    )

    @app.exception_handler(StarletteHTTPException)  # what FastAPI's routing raises
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        """FastAPI's own answers, but a body it could not parse says why (its "There was an
        error parsing the body" names neither the body nor the problem)."""
        cause = error.__cause__
        if error.status_code == 400 and cause is not None and error.detail == _UNPARSED:
            why = (
                "nested too deeply"
                if isinstance(cause, RecursionError)
                else f"not UTF-8 ({cause})"
                if isinstance(cause, UnicodeDecodeError)
                else f"{type(cause).__name__}: {cause}"
            )
            return JSONResponse(status_code=400, content={"detail": f"body: not JSON: {why}"[:300]})
        return await http_exception_handler(request, error)

    @app.exception_handler(StatelineError)
    async def stateline_error(request: Request, error: StatelineError) -> JSONResponse:
        status = 404 if isinstance(error, UnknownStreamError) else 422
        return JSONResponse(status_code=status, content={"detail": str(error)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        page = files("stateline.serve").joinpath("dashboard.html").read_text("utf-8")
        return HTMLResponse(page)

    @app.get("/healthz")
    async def healthz(service: Service) -> dict[str, Any]:
        return service.health()  # no lock: cheap reads

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[reader], responses=READ)
    def metrics(service: Service) -> PlainTextResponse:
        return PlainTextResponse(
            service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.post(
        "/v1/streams/{stream_id}/steps",
        response_model=StepOut,
        openapi_extra={"requestBody": STEP_BODY},
        responses=WRITE,
    )
    async def step_one(stream_id: StreamIdPath, request: Request) -> Response:
        # A request with nothing wrong is answered before FastAPI (._single_route); this
        # route answers the rest. The token, the id and the body are checked here, not
        # through FastAPI's dependencies and body model (about 0.4 ms a request on the
        # 2-core machine; the answers are the same, see tests/serve/test_app.py).
        await authorised(request)
        _check_path_id(stream_id)
        body = _step_body(await request.body(), request.headers.get("content-type", ""))
        event = Event(stream_id, body.values, body.seq, body.start, body.end)
        # Stepped with the single steps that came at the same time, on the loop when the
        # lock is free (no thread hop); the answer is built by the service in StepOut's
        # shape, so it goes out as is (response_model documents it).
        answer = await request.app.state.single_steps.step(event)
        if answer["status"] == "error":  # one event: its error is the request's (422)
            raise HTTPException(status_code=422, detail=answer.get("error"))
        answer.setdefault("error", None)
        return JSONResponse(answer)

    @app.post("/v1/steps", response_model=BatchOut, dependencies=[writer], responses=WRITE)
    async def step_many(body: BatchIn, service: Service) -> Response:
        results = await asyncio.to_thread(answer_batch, service, body.events)
        for answer in results:
            answer.setdefault("error", None)
        return JSONResponse({"results": results})

    @app.post(
        "/v1/columns",
        dependencies=[writer],
        openapi_extra={"requestBody": {"required": True, "content": COLUMNS_BODY}},
        responses=COLUMNS_RESPONSES,
    )
    async def step_columns(request: Request, service: Service) -> Response:
        """A batch as columns (JSON or an Arrow IPC stream); answered as columns in the same form.

        See :mod:`stateline.serve._wire` for the columns; a row with a bad id,
        NaN/inf values or an out-of-range seq is refused alone.
        """
        arrow = request.headers.get("content-type", "").split(";")[0].strip().lower() == ARROW
        body = await request.body()
        answer = await asyncio.to_thread(_answer_columns, service, body, arrow)  # one hop
        if arrow:
            return Response(answer, media_type=ARROW)
        return Response(answer, media_type="application/json")

    @app.get("/v1/streams", dependencies=[reader], responses=READ)
    async def list_streams(
        service: Service,
        limit: Annotated[int, Query(ge=1, le=1000, description="rows per page")] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_SEQ, description="rows to skip")] = 0,
    ) -> dict[str, Any]:
        """A page of the held streams; ``next`` is the offset of the next page (null: last)."""
        return await asyncio.to_thread(service.streams, limit=limit, offset=offset)

    @app.get("/v1/streams/{stream_id}", dependencies=[reader], responses=READ | UNKNOWN)
    async def get_stream(stream_id: StreamIdPath, service: Service) -> dict[str, Any]:
        _check_path_id(stream_id)
        return await asyncio.to_thread(service.stream, stream_id)

    @app.delete(
        "/v1/streams/{stream_id}", status_code=204, dependencies=[writer], responses=WRITE | UNKNOWN
    )
    async def delete_stream(stream_id: StreamIdPath, service: Service) -> Response:
        _check_path_id(stream_id)
        await asyncio.to_thread(service.delete, stream_id)
        return Response(status_code=204)

    @app.websocket("/v1/ws")
    async def ingest(socket: WebSocket) -> None:
        """Send ``{"events": [...]}`` messages, get ``{"results": [...]}`` back, in order.

        The token goes in the ``Authorization`` header or a ``token`` query parameter.
        """
        if hosts is not None and host_name(socket.headers.get("host", "")) not in hosts:
            await socket.close(code=1008, reason="Host header not allowed")
            return
        header = socket.headers.get("authorization", "")
        query = socket.query_params.get("token", "")
        given = (header or f"Bearer {query}").encode()
        if not hmac.compare_digest(given, expected):
            await socket.close(code=1008, reason="missing or wrong bearer token")
            return
        await socket.accept()
        service: StreamService = socket.app.state.service
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:  # a binary frame: a batch of columns as an Arrow IPC stream
                data = message.get("bytes") or b""
                if len(data) > config.max_body_bytes:
                    message_text = f"message too large: at most {config.max_body_bytes} bytes"
                    await socket.send_text(json.dumps({"error": message_text}))
                    continue
                try:
                    answer = await asyncio.to_thread(_answer_columns, service, data, True)
                    await socket.send_bytes(answer)
                except StatelineError as error:
                    await socket.send_text(json.dumps({"error": f"message: {error}"}))
                except Exception as error:  # nothing a client sends may drop the connection
                    LOG.exception("a WebSocket binary frame failed")
                    reason = f"message: {type(error).__name__}: {str(error)[:200]}"
                    await socket.send_text(json.dumps({"error": reason}))
                continue
            if len(text) > config.max_body_bytes:
                message_text = f"message too large: at most {config.max_body_bytes} bytes"
                await socket.send_text(json.dumps({"error": message_text}))
                continue
            try:
                batch = BatchIn.model_validate(json.loads(text))
                results = await asyncio.to_thread(answer_batch, service, batch.events)
                await socket.send_text(json.dumps({"results": results}))
            except ValidationError as error:
                await socket.send_text(json.dumps({"error": _validation_message(error, "message")}))
            except (json.JSONDecodeError, RecursionError, StatelineError) as error:
                reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
                await socket.send_text(json.dumps({"error": f"message: {reason}"}))
            except Exception as error:  # nothing a client sends may drop the connection
                LOG.exception("a WebSocket text frame failed")
                reason = f"message: {type(error).__name__}: {str(error)[:200]}"
                await socket.send_text(json.dumps({"error": reason}))

    return app


COLUMNS_BODY: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["stream", "values"],
            "properties": {
                "stream": {"type": "array", "items": {"type": "string"}},
                "values": {"type": "array", "items": {"type": "array"}},
                # null: not given
                "seq": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 0}},
                "start": {"type": ["array", "null"], "items": {"type": "boolean"}},
                "end": {"type": ["array", "null"], "items": {"type": "boolean"}},
            },
        }
    },
    ARROW: {"schema": {"type": "string", "format": "binary"}},
}
"""The columnar body, in the OpenAPI schema (JSON columns or an Arrow IPC stream)."""

_column = {"type": "array"}
ANSWER_COLUMNS = [
    *("stream", "status", "seq", "forecast", "scores", "flags", "anomaly_scores", "level"),
    "errors",
]
COLUMNS_ANSWER: dict[str, Any] = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ANSWER_COLUMNS,
            "properties": {
                "stream": _column,
                "status": {"type": "array", "items": {"type": "string"}},
                "seq": {"type": "array", "items": {"type": ["integer", "null"]}},
                "forecast": _column,
                "scores": _column,
                "flags": {  # (rows, steps), as the scores
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "boolean"}},
                },
                "anomaly_scores": _column,
                "level": _column,
                "errors": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    },
    ARROW: {"schema": {"type": "string", "format": "binary"}},
}
"""The columnar answer, in the OpenAPI schema (in the request's form)."""
COLUMNS_RESPONSES: Responses = {
    200: {"content": COLUMNS_ANSWER, "description": "the answer, as columns"},
    **WRITE,
}


def _answer_columns(service: StreamService, body: bytes, arrow: bool) -> bytes:
    """Decode a columns body, step it, encode the answer in the same form (one thread hop)."""
    if arrow:  # the ids go back as they came, not rebuilt from Python strings
        batch, ids = arrow_request(body, **service.column_bounds)
        return answer_to_arrow(service.step_columns(batch), stream=ids)
    answer = service.step_columns(_decode_json_columns(body))
    return json.dumps(answer_to_json(answer), allow_nan=False).encode()


def _decode_json_columns(body: bytes) -> ColumnBatch:
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise DataError(
            describe("body", "JSON columns", f"{type(error).__name__}", problem="is not JSON.")
        ) from None
    return batch_from_json(document)


STEP_BODY: dict[str, Any] = {
    "required": True,
    "content": {"application/json": {"schema": StepIn.model_json_schema()}},
}
"""One step's body in the OpenAPI schema (the route reads it itself: :func:`_step_body`)."""


def _step_body(raw: bytes, content_type: str) -> StepIn:
    """The body of one step, or FastAPI's own 422 (``loc`` starting with ``body``).

    The body must be declared JSON, as FastAPI's body models want it; a body
    that is not JSON is not echoed back (it may not even be text).
    """
    if not json_type(content_type):
        kind = content_type.split(";")[0].strip().lower()
        problem: dict[str, Any] = {
            "type": "content_type",
            "loc": ("body",),
            "msg": f"expected Content-Type application/json, received {kind[:80] or 'none'!r}",
        }
        raise RequestValidationError([problem])
    try:
        return StepIn.model_validate_json(raw)
    except ValidationError as error:
        problems: list[dict[str, Any]] = [
            {key: value for key, value in problem.items() if key != "url"}
            | {"loc": ("body", *problem["loc"])}
            for problem in error.errors(include_context=False)
        ]
        for problem in problems:
            if problem["type"] == "json_invalid":  # the raw body: maybe not text, maybe large
                problem.pop("input", None)
        raise RequestValidationError(problems) from None


def _check_path_id(stream_id: str) -> None:
    if not valid_stream_id(stream_id):
        raise HTTPException(status_code=422, detail=f"stream_id: must be {STREAM_ID_RULE}")


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
            delay = min(interval, 0.5 * 2 ** min(service.snapshots.failing - 1, 10))
