"""The HTTP API on a real server: writes need the token, bad input gets a clear 4xx."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .conftest import AUTH, REFERENCE, TOKEN, serve_config, serving


def post(url: str, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=kwargs.pop("headers", AUTH), timeout=30)


def test_steps_answer_forecasts_scores_and_flags(server: str) -> None:
    rng = np.random.default_rng(0)
    values = 50 + 5 * np.sin(np.arange(REFERENCE + 20) / 4) + rng.normal(size=REFERENCE + 20)
    for seq, value in enumerate(values):
        answer = post(server, "/v1/streams/pump-1/steps", {"values": [value], "seq": seq})
        assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok" and body["seq"] == len(values) - 1
    assert len(body["forecast"]) == 1 and 30 < body["forecast"][0][0][0] < 70
    assert body["scores"][0] is not None and body["level"] is not None
    again = post(server, "/v1/streams/pump-1/steps", {"values": [values[-1]], "seq": seq}).json()
    assert again["status"] == "duplicate" and again["forecast"] == body["forecast"]
    assert again["scores"] == body["scores"]
    stale = post(server, "/v1/steps", {"events": [{"stream": "pump-1", "values": [1.0], "seq": 3}]})
    assert stale.status_code == 200, stale.text
    assert stale.json()["results"][0]["status"] == "stale"
    assert stale.json()["results"][0]["forecast"] == [[[None]]]
    state = httpx.get(server + "/v1/streams/pump-1", headers=AUTH).json()
    assert state["seq"] == seq and state["calibrated"] and len(state["history"]) == len(values)
    assert httpx.delete(server + "/v1/streams/pump-1", headers=AUTH).status_code == 204
    assert httpx.get(server + "/v1/streams/pump-1", headers=AUTH).status_code == 404


def test_batch_of_many_streams_with_k_steps_and_one_bad_event(server: str) -> None:
    events = [
        {"stream": "a", "values": [[50.0], [51.0], [52.0]], "seq": 0},
        {"stream": "b", "values": [50.0, 1.0]},  # the model has one input
        {"stream": "c", "values": [49.0], "start": True},
    ]
    results = post(server, "/v1/steps", {"events": events}).json()["results"]
    assert [r["status"] for r in results] == ["ok", "error", "ok"]
    assert len(results[0]["forecast"]) == 3 and results[0]["seq"] == 2
    assert "Expected: 1 numbers per step" in results[1]["error"]
    rows = httpx.get(server + "/v1/streams", headers=AUTH).json()["streams"]
    assert sorted(r["stream"] for r in rows) == ["a", "c"]


def test_writes_need_the_token(server: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = post(server, "/v1/streams/a/steps", {"values": [1.0]}, headers=headers)
        assert answer.status_code == 401 and "bearer token" in answer.json()["detail"]
    assert httpx.delete(server + "/v1/streams/a").status_code == 401
    assert httpx.get(server + "/healthz").status_code == 200  # reads are open


def test_bad_requests_get_clear_4xx_and_the_server_lives_on(server: str) -> None:
    wrong_type = post(server, "/v1/streams/a/steps", {"values": "many"})
    assert wrong_type.status_code == 422 and "values" in wrong_type.text
    extra = post(server, "/v1/streams/a/steps", {"values": [1.0], "sequence": 3})
    assert extra.status_code == 422 and "sequence" in extra.text
    big = post(server, "/v1/steps", {"events": [{"stream": "a", "values": [1.0]}] * 2000})
    assert big.status_code == 413 and "too large" in big.json()["detail"]
    nan = httpx.post(
        server + "/v1/streams/a/steps",
        content=b'{"values": [NaN]}',
        headers={**AUTH, "content-type": "application/json"},
    )
    assert nan.status_code == 422 and "finite" in nan.json()["detail"]  # #15, finding 11
    for value in ("55", True):  # not numbers, though lax parsing would read them as 55.0, 1.0
        refused = post(server, "/v1/streams/a/steps", {"values": [value]})
        assert refused.status_code == 422 and "values" in refused.text
    # not UTF-8, not JSON, not declared JSON: 422 naming the body, never a 500 or an echo
    for body, kind in (
        (b'{"values":[20.0],"\xff":1}', "application/json"),
        ("{}".encode("utf-16"), "application/json"),
        (b"\xff" * 1000, "application/json"),
        (b'{"values": [20.0]}', "text/plain"),
        (b'{"values": [20.0]}', ""),
    ):
        headers = {**AUTH, "content-type": kind} if kind else AUTH
        odd = httpx.post(server + "/v1/streams/a/steps", content=body, headers=headers)
        assert odd.status_code == 422 and odd.json()["detail"][0]["loc"][0] == "body", odd.text
        assert "\\xff" * 10 not in odd.text and len(odd.text) < 1000
    assert httpx.get(server + "/healthz").json()["status"] == "ok"


def test_metrics_health_and_schema(server: str) -> None:
    post(server, "/v1/steps", {"events": [{"stream": "m", "values": [1.0]}]})
    text = httpx.get(server + "/metrics", headers=AUTH).text
    for name in (
        "stateline_requests_total",
        "stateline_batch_events_bucket",
        "stateline_request_latency_seconds_bucket",
        "stateline_active_streams 1.0",
        "stateline_evictions_total 0.0",
        'stateline_steps_total{status="ok"} 1.0',
    ):
        assert name in text
    health = httpx.get(server + "/healthz").json()
    assert health["columns"] == ["temp"] and health["reference"] == REFERENCE
    paths = httpx.get(server + "/openapi.json").json()["paths"]
    assert {"/v1/steps", "/v1/streams/{stream_id}/steps", "/v1/streams/{stream_id}"} <= set(paths)
    assert "<canvas" in httpx.get(server + "/").text


def test_websocket_ingest(server: str) -> None:
    url = server.replace("http", "ws") + "/v1/ws"
    with pytest.raises(InvalidStatus, match="403"):  # closed before the handshake completes
        connect(url)
    with connect(url + f"?token={TOKEN}") as socket:
        for seq in range(5):
            socket.send(json.dumps({"events": [{"stream": "w", "values": [50.0], "seq": seq}]}))
            answer = json.loads(socket.recv(timeout=10))
            assert answer["results"][0]["status"] == "ok"
            assert answer["results"][0]["seq"] == seq
        socket.send("not json")
        assert "error" in json.loads(socket.recv(timeout=10))


def test_every_bad_event_of_a_batch_is_answered_alone(server: str) -> None:
    """#15, findings 8 and 9: schema errors, a huge seq, a lone surrogate and a non-object are
    each answered with an error naming the field; the good events of the batch still apply."""
    body = (
        '{"events": ['
        '{"stream": "good", "values": [50.0], "seq": 0},'
        '{"stream": "text", "values": ["55"]},'
        '{"stream": "", "values": [50.0]},'
        '{"stream": "huge", "values": [50.0], "seq": 9223372036854775808},'
        '{"stream": "\\ud800", "values": [50.0]},'
        "7,"
        '{"stream": "good", "values": [51.0], "seq": 1}'
        "]}"
    )
    answer = httpx.post(
        server + "/v1/steps",
        content=body.encode(),
        headers={**AUTH, "content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [
        "ok",
        "error",
        "error",
        "error",
        "error",
        "error",
        "ok",
    ]
    assert "events[1].values" in results[1]["error"]
    assert "events[2].stream" in results[2]["error"]
    assert "events[3].seq" in results[3]["error"]
    assert "events[4].stream" in results[4]["error"]
    assert results[4]["stream"] is None and results[6]["seq"] == 1
    single = post(server, "/v1/streams/a/steps", {"values": [1.0], "seq": 2**64})
    assert single.status_code == 422 and "seq" in single.text


def test_websocket_survives_unreadable_binary_frames_and_deep_json(server: str) -> None:
    """#15, finding 8: a binary frame that is not Arrow columns (#16) and nesting too deep
    get an error message naming the problem; the connection and the server keep going."""
    url = server.replace("http", "ws") + f"/v1/ws?token={TOKEN}"
    with connect(url) as socket:
        socket.send("[" * 9_000 + "]" * 9_000)  # under the size limit, far too deep
        assert "error" in json.loads(socket.recv(timeout=10))
        socket.send(json.dumps({"events": [{"stream": "w2", "values": [50.0]}, 5]}))
        statuses = [r["status"] for r in json.loads(socket.recv(timeout=10))["results"]]
        assert statuses == ["ok", "error"]
        socket.send(b"\x00\x01binary")
        assert "Arrow IPC stream" in json.loads(socket.recv(timeout=10))["error"]
        socket.send(json.dumps({"events": [{"stream": "w2", "values": [51.0]}]}))
        assert json.loads(socket.recv(timeout=10))["results"][0]["status"] == "ok"
    assert httpx.get(server + "/healthz").json()["status"] == "ok"


def test_the_body_limit_counts_the_bytes_actually_read(server: str) -> None:
    """#15, finding 6: a chunked body (no Content-Length) past --max-body-bytes gets 413 and
    applies nothing; a WebSocket message past it closes the connection (1009)."""
    event = json.dumps({"stream": "chunked", "values": [50.0]})

    def chunks() -> object:
        yield b'{"events": ['
        for position in range(2000):  # about 80 kB, in pieces of 40 bytes
            yield (event + ("," if position < 1999 else "")).encode()
        yield b"]}"

    answer = httpx.post(
        server + "/v1/steps",
        content=chunks(),
        headers={**AUTH, "content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413 and "too large" in answer.json()["detail"]
    assert (
        httpx.get(server + "/v1/streams/chunked", headers=AUTH).status_code == 404
    )  # nothing applied
    url = server.replace("http", "ws") + f"/v1/ws?token={TOKEN}"
    with connect(url) as socket:
        socket.send(json.dumps({"events": [{"stream": "w3", "values": [50.0]}] * 2000}))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert httpx.get(server + "/healthz").json()["status"] == "ok"


def test_one_stream_id_grammar_for_every_endpoint(server: str) -> None:
    """#15, finding 10: ids a batch can create can also be read and deleted; others are refused
    everywhere alike (a '/', undecodable bytes, more than 256 characters)."""
    results = post(server, "/v1/steps", {"events": [{"stream": "a/b", "values": [50.0]}]})
    assert results.json()["results"][0]["status"] == "error"
    assert "events[0].stream" in results.json()["results"][0]["error"]
    for bad in ("%FF", "%FE", "x" * 300, "a%C2%85b"):  # the last: U+0085, a C1 control
        for method in ("GET", "DELETE"):
            answer = httpx.request(method, f"{server}/v1/streams/{bad}", headers=AUTH)
            assert answer.status_code == 422 and "stream_id" in answer.text, (method, bad)
        step = post(server, f"/v1/streams/{bad}/steps", {"values": [50.0]})
        assert step.status_code == 422
    created = post(server, "/v1/steps", {"events": [{"stream": "ünï çødé", "values": [50.0]}]})
    assert created.json()["results"][0]["status"] == "ok"
    assert httpx.get(f"{server}/v1/streams/ünï çødé", headers=AUTH).status_code == 200
    assert httpx.delete(f"{server}/v1/streams/ünï çødé", headers=AUTH).status_code == 204


def test_the_stream_list_comes_in_pages(server: str) -> None:
    """#15, finding 13: GET /v1/streams returns a page (default 100, at most 1000)."""
    events = [{"stream": f"page-{i:03d}", "values": [50.0]} for i in range(250)]
    assert post(server, "/v1/steps", {"events": events}).status_code == 200
    first = httpx.get(server + "/v1/streams", headers=AUTH).json()
    assert len(first["streams"]) == 100 and first["total"] >= 250 and first["next"] == 100
    seen = [row["stream"] for row in first["streams"]]
    offset = first["next"]
    while offset is not None:
        page = httpx.get(server + f"/v1/streams?offset={offset}&limit=1000", headers=AUTH).json()
        seen += [row["stream"] for row in page["streams"]]
        offset = page["next"]
    assert len(seen) == len(set(seen)) == first["total"]
    assert {f"page-{i:03d}" for i in range(250)} <= set(seen)
    assert httpx.get(server + "/v1/streams?limit=5000", headers=AUTH).status_code == 422
    far = httpx.get(server + f"/v1/streams?offset={2**63 - 1}", headers=AUTH)  # found by fuzzing
    assert far.status_code == 200 and far.json()["streams"] == []


def test_reads_need_the_token_and_the_host_must_be_ours(server: str) -> None:
    """#15, finding 12: stream data and metrics need the token; a foreign Host header (DNS
    rebinding) is refused; health names no server path."""
    post(server, "/v1/steps", {"events": [{"stream": "secret", "values": [50.0]}]})
    for path in ("/v1/streams", "/v1/streams/secret", "/metrics"):
        assert httpx.get(server + path).status_code == 401, path
        assert httpx.get(server + path, headers=AUTH).status_code == 200, path
    health = httpx.get(server + "/healthz").json()
    assert "/" not in health["model"]
    rebound = httpx.get(server + "/healthz", headers={"Host": "evil.example"})
    assert rebound.status_code == 400 and "Host" in rebound.json()["detail"]


def test_a_batch_past_max_events_is_refused_whole_before_any_event_is_read(
    model_dir: Path, tmp_path: Path
) -> None:
    """From a review: only the events that passed their checks were counted, so 500,000
    malformed items in a 1 MB body were each answered (a 99 MB answer, 7 s of CPU)."""
    from stateline.serve._app import create_app

    app = create_app(serve_config(model_dir, tmp_path / "state", max_events=5))
    good = {"stream": "g", "values": [50.0], "seq": 0}
    with serving(app) as server:
        refused = post(server, "/v1/steps", {"events": [good, 0, 0, 0, 0, 0]})
        assert refused.status_code == 422 and "at most 5 per call" in refused.text
        assert httpx.get(server + "/v1/streams/g", headers=AUTH).status_code == 404
        with connect(server.replace("http", "ws") + f"/v1/ws?token={TOKEN}") as socket:
            socket.send(json.dumps({"events": [good, 0, 0, 0, 0, 0]}))
            assert "at most 5 per call" in json.loads(socket.recv(timeout=10))["error"]
        taken = post(server, "/v1/steps", {"events": [good, 0, 0, 0, 0]})
        assert [r["status"] for r in taken.json()["results"]] == ["ok"] + ["error"] * 4


def test_a_body_that_cannot_be_parsed_says_why(server: str) -> None:
    """From a review: FastAPI's "There was an error parsing the body" named neither."""
    for body, why in (
        (b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "nested too deeply"),
        (b'{"events": [{"stream": "\xff", "values": [1.0]}]}', "not UTF-8"),
    ):
        answer = httpx.post(
            server + "/v1/steps",
            content=body,
            headers={**AUTH, "content-type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 400 and answer.json()["detail"].startswith("body: not JSON")
        assert why in answer.json()["detail"]
    refused = httpx.post(server + "/v1/steps", json={"events": []}, timeout=30)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
