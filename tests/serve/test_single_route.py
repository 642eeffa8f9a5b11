"""The single-step route's own path (serve/_single_route.py) answers as the FastAPI route does.

Two real servers of one model, one with the path and one without, get the same
requests, good and hostile, sent as raw bytes; status, type and body must be
the same, and so must the streams' state and the request metrics at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace

from stateline.serve._app import create_app
from stateline.serve._single_route import SingleStepRoute

from .conftest import AUTH, TOKEN, serve_config, serving

LIMIT = 20_000
GOOD = b'{"values": [21.5], "seq": 0}'


def request(
    path: str = "/v1/streams/a/steps",
    body: bytes = GOOD,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    extra: tuple[tuple[str, str], ...] = (),
    chunked: bool = False,
) -> bytes:
    """Raw HTTP/1.1 bytes: Host, Content-Length, Authorization, Content-Type by default;
    a header set to "" is left out; ``extra`` headers are added as they are (repeats too)."""
    fields = {
        "Host": "127.0.0.1",
        "Content-Length": str(len(body)),
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/json",
    }
    fields.update(headers or {})
    if chunked:
        fields.pop("Content-Length")
        fields["Transfer-Encoding"] = "chunked"
        body = b"".join(
            b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]) if part
        )
        body += b"0\r\n\r\n"
    lines = [f"{method} {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in fields.items() if value != ""]
    lines += [f"{name}: {value}" for name, value in extra]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def send(url: str, raw: bytes) -> tuple[int, str, Any]:
    """Status, Content-Type and body (parsed when JSON) of the answer to ``raw``."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(raw)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    kind = re.search(rb"(?im)^content-type: *(.*?)\r?$", head)
    content_type = kind.group(1).decode() if kind else ""
    if content_type.startswith("application/json"):
        return status, content_type, json.loads(body)
    return status, content_type, body.decode("utf-8", "replace")


class CountingRoute(SingleStepRoute):
    """The route's path, counting the requests it hands to FastAPI."""

    handed_on = 0

    async def __call__(self, app: Any, stream_id: str, *args: Any) -> None:
        scope, receive, send, fallback = args

        async def counted(*request: Any) -> None:
            self.handed_on += 1
            await fallback(*request)

        await super().__call__(app, stream_id, scope, receive, send, counted)


@pytest.fixture
def apps(model_dir: Path, tmp_path: Path) -> tuple[FastAPI, FastAPI]:
    """Two apps of one model: with the single-step path (counting) and without it."""
    fast = create_app(serve_config(model_dir, tmp_path / "fast", max_body_bytes=LIMIT))
    route = fast.single_step
    assert route is not None
    counting = CountingRoute(
        body_model=route.body_model,
        expected=route.expected,
        hosts=route.hosts,
        max_body_bytes=route.max_body_bytes,
    )
    fast.single_step = counting
    plain = create_app(serve_config(model_dir, tmp_path / "plain", max_body_bytes=LIMIT))
    plain.single_step = None
    return fast, plain


@pytest.fixture
def pair(apps: tuple[FastAPI, FastAPI]) -> Iterator[tuple[str, str, CountingRoute]]:
    """The two apps on real servers: their URLs, and the counting path."""
    fast, plain = apps
    with serving(fast) as fast_url, serving(plain) as plain_url:
        yield fast_url, plain_url, fast.single_step


def step(path: str = "/v1/streams/a/steps", **body: Any) -> bytes:
    return request(path, json.dumps(body).encode())


# (what it is, the raw request, answered by the path itself: True; handed to FastAPI: False;
# not a POST to the route, so FastAPI's from the start: None)
CASES: list[tuple[str, bytes, bool | None]] = [
    ("first step", step(values=[21.5], seq=0), True),
    ("next step", step(values=[21.0], seq=1), True),
    ("resent step", step(values=[21.0], seq=1), True),
    ("a gap", step(values=[22.0], seq=5), True),
    ("k steps", step("/v1/streams/b/steps", values=[[20.0], [20.5], [21.0]]), True),
    ("a start", step("/v1/streams/b/steps", values=[19.0], start=True), True),
    ("an end", step("/v1/streams/b/steps", values=[19.5], end=True), True),
    ("an integer value", step("/v1/streams/c/steps", values=[20]), True),
    ("NaN (the service refuses it)", request(body=b'{"values": [NaN]}'), True),
    ("a row too wide", step(values=[1.0, 2.0]), True),
    ("no values", step(values=[]), False),
    ("a step of no values", step(values=[[]]), False),
    ("unicode id", step("/v1/streams/caf%C3%A9/steps", values=[20.0]), True),
    ("charset given", request(headers={"Content-Type": "application/json; charset=utf-8"}), True),
    ("+json type", request(headers={"Content-Type": "application/vnd.pump+json"}), True),
    ("host with a port", request(headers={"Host": "localhost:8000"}), True),
    ("text value", step(values=["55"]), False),
    ("true value", step(values=[True]), False),
    ("an extra field", step(values=[1.0], sequence=3), False),
    ("negative seq", step(values=[1.0], seq=-1), False),
    ("a seq of false", step(values=[1.0], seq=False), False),
    ("end as 0", step(values=[1.0], end=0), False),
    ("seq past 2^63", step(values=[1.0], seq=2**63), False),
    ("a JSON list", request(body=b"[1, 2]"), False),
    ("not JSON", request(body=b'{"values": [1.0'), False),
    ("not UTF-8", request(body=b'{"values":[20.0],"\xff":1}'), False),
    ("UTF-16", request(body="{}".encode("utf-16")), False),
    ("no token", request(headers={"Authorization": ""}), False),
    ("wrong token", request(headers={"Authorization": "Bearer wrong"}), False),
    ("token, lower case", request(headers={"Authorization": f"bearer {TOKEN}"}), False),
    ("two tokens", request(extra=(("Authorization", "Bearer wrong"),)), False),
    ("text/plain", request(headers={"Content-Type": "text/plain"}), False),
    ("no content type", request(headers={"Content-Type": ""}), False),
    ("two content types", request(extra=(("Content-Type", "text/plain"),)), False),
    ("a foreign host", request(headers={"Host": "evil.example"}), False),
    ("declared past the limit", request(headers={"Content-Length": str(LIMIT + 1)}), False),
    ("chunked", request(chunked=True), False),
    ("chunked past the limit", request(body=b" " * (LIMIT + 10) + GOOD, chunked=True), False),
    ("trailing slash", request("/v1/streams/a/steps/"), None),
    ("empty id", request("/v1/streams//steps"), None),
    ("encoded slash in the id", request("/v1/streams/a%2Fb/steps"), None),
    ("id too long", request(f"/v1/streams/{'x' * 257}/steps"), False),
    ("control character in the id", request("/v1/streams/a%01/steps"), False),
    ("a newline after the path", request("/v1/streams/a/steps%0A"), None),
    ("GET", request(method="GET"), None),
    ("PUT", request(method="PUT"), None),
]


def test_the_path_answers_as_the_route_does_good_and_hostile(
    pair: tuple[str, str, CountingRoute],
) -> None:
    fast, plain, route = pair
    codes = []
    for what, raw, _ in CASES:
        answer = send(fast, raw)
        assert answer == send(plain, raw), what
        codes.append(answer[0])
    handed_on = sum(answered_here is False for _, _, answered_here in CASES)
    assert route.handed_on == handed_on
    # the same state and the same request metrics
    for stream in ("a", "b", "c", "café"):
        held = [httpx.get(f"{url}/v1/streams/{stream}", headers=AUTH).json() for url in pair[:2]]
        for answer in held:  # when each server stepped it: its own clock's reading
            answer.pop("last_seen", None)
        assert held[0] == held[1]
    assert _requests(fast) == _requests(plain)
    assert send(fast, request("/v1/streams/z/steps%0A"))[0] == 422  # no stream z came of it
    assert httpx.get(fast + "/v1/streams/z", headers=AUTH).status_code == 404
    assert _requests(fast)[("/v1/streams/{stream_id}/steps", "200")] == codes.count(200) > 10


def _requests(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(url + "/metrics", headers=AUTH).text
    line = r'^stateline_requests_total\{code="(\d+)",route="([^"]*)"\} (\S+)$'
    found = re.findall(line, text, re.M)
    assert found, text[:2000]
    return {(path, code): float(count) for code, path, count in found if path != "/metrics"}


values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.text(max_size=3),
    st.none(),
)
bodies = st.dictionaries(
    st.sampled_from(["values", "seq", "start", "end", "stream"]),
    st.one_of(
        values,
        st.lists(values, max_size=3),
        st.lists(st.lists(values, min_size=1, max_size=2), max_size=3),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, stream=st.sampled_from(["a", "b", "ü-7", "x" * 256]))
def test_any_json_body_gets_the_same_answer_both_ways(
    pair: tuple[str, str, CountingRoute], body: dict[str, Any], stream: str
) -> None:
    fast, plain, _ = pair
    raw = request(f"/v1/streams/{stream}/steps", json.dumps(body).encode())
    assert send(fast, raw) == send(plain, raw)


def test_an_answer_json_cannot_carry_is_the_same_500_both_ways(
    apps: tuple[FastAPI, FastAPI],
    pair: tuple[str, str, CountingRoute],
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def not_json(event: Any) -> dict[str, Any]:  # NaN: not JSON (the service never
        return {"stream": event.stream, "status": "ok", "level": math.nan}  # answers it)

    for app in apps:
        app.state.single_steps.step = not_json
    fast, plain, _ = pair
    answers = [send(url, request()) for url in (fast, plain)]
    assert answers[0] == answers[1]
    assert answers[0][0] == 500 and answers[0][2]["detail"].startswith("ValueError: Out of range")
    assert _requests(fast) == _requests(plain)
    logged = [r for r in caplog.records if r.name == "stateline.serve" and "500" in r.message]
    assert len(logged) == 2 and all(r.exc_info for r in logged)  # each 500 with its traceback


def test_a_token_past_ascii_is_read_as_the_route_reads_it(model_dir: Path, tmp_path: Path) -> None:
    token = "tök"  # the route reads the header as Latin-1 text and compares its UTF-8 bytes
    config = dataclasses.replace(serve_config(model_dir, tmp_path / "fast"), token=token)
    fast = create_app(config)
    plain = create_app(dataclasses.replace(config, snapshot_dir=str(tmp_path / "plain")))
    plain.single_step = None
    utf8, latin1 = f"Bearer {token}".encode(), f"Bearer {token}".encode("latin-1")
    with serving(fast) as fast_url, serving(plain) as plain_url:
        for seq, sent in enumerate((utf8, latin1, b"Bearer tok")):
            raw = request(
                body=b'{"values": [21.5], "seq": %d}' % seq,
                headers={"Authorization": sent.decode("latin-1")},
            )
            assert send(fast_url, raw) == send(plain_url, raw), sent


def test_with_fastapi_telemetry_on_every_step_goes_through_fastapi(
    apps: tuple[FastAPI, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    spans: list[str] = []

    class Tracer(trace.NoOpTracer):
        def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
            spans.append(f"{name} {(kwargs.get('attributes') or {}).get('url.path')}")
            return super().start_span(name, *args, **kwargs)

    class Provider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
            return Tracer()

    monkeypatch.setattr(trace, "get_tracer_provider", Provider)  # as a configured SDK would
    fast, _ = apps
    with serving(fast) as url:
        answer = httpx.post(url + "/v1/streams/a/steps", json={"values": [21.5]}, headers=AUTH)
    assert answer.status_code == 200
    assert spans[0] == "POST /v1/streams/a/steps", spans  # then its operation spans
