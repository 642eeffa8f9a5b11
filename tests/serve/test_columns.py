"""The columnar path (#16): columns in, columns out, in-process, over HTTP (JSON and Arrow)
and WebSocket; the same answers, idempotency and isolation as the per-event API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import DataError, Forecaster
from stateline.serve import ColumnAnswer, ColumnBatch, ColumnClient, Event, StreamService
from stateline.serve._wire import (
    ARROW,
    answer_from_arrow,
    answer_from_json,
    answer_to_arrow,
    answer_to_json,
    batch_from_arrow,
    batch_from_json,
    batch_to_arrow,
)

from .conftest import AUTH, TOKEN, serve_config


def _series(temperatures_csv: Path, length: int = 120) -> dict[str, np.ndarray]:
    frame = pd.read_csv(temperatures_csv)
    return {c: frame.loc[frame.city == c, "temp"].to_numpy()[:length] for c in frame.city.unique()}


def _same(columns: dict[str, object], answers: list[dict[str, object]]) -> None:
    """A JSON columns answer equals the per-event answers, row for row (a refused row's
    numbers are NaN in columns, empty lists per event)."""
    for row, answer in enumerate(answers):
        refused = answer["status"] == "error"
        for key in (
            ("stream", "status", "seq")
            if refused
            else (
                "stream",
                "status",
                "seq",
                "forecast",
                "scores",
                "flags",
                "anomaly_scores",
                "level",
            )
        ):
            got, want = columns[key][row], answer[key]  # type: ignore[index]
            if isinstance(want, (list, float)):
                np.testing.assert_allclose(
                    np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-6, atol=1e-9
                )
            else:
                assert got == want, (key, row, got, want)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_columns_answer_what_the_per_event_api_answers(
    seed: int, model_dir: Path, temperatures_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Random batches with repeated streams, resends, gaps, NaN rows and bad ids: the same
    statuses, forecasts, scores, flags, levels and seqs as events one batch at a time."""
    series = _series(temperatures_csv)
    by_events = StreamService(serve_config(model_dir, tmp_path_factory.mktemp("a")))
    by_columns = StreamService(serve_config(model_dir, tmp_path_factory.mktemp("b")))
    rng = np.random.default_rng(seed)
    next_seq = dict.fromkeys(series, 0)
    for _ in range(60):
        ids, values, seqs = [], [], []
        for _ in range(int(rng.integers(1, 6))):
            name = str(rng.choice(list(series)))
            seq = next_seq[name]
            move = rng.random()
            if move < 0.1 and seq:
                seq -= 1  # a resend
            elif move < 0.15:
                seq += 2  # a gap
            value = float(series[name][min(seq, len(series[name]) - 1)])
            if rng.random() < 0.05:
                value = float("nan")
            ids.append(name)
            values.append([value])
            seqs.append(seq)
            next_seq[name] = max(next_seq[name], seq + 1)
        answers = by_events.step(
            [Event(i, v, s) for i, v, s in zip(ids, values, seqs, strict=True)]
        )
        document = {"stream": ids, "values": values, "seq": seqs}
        columns = answer_to_json(by_columns.step_columns(batch_from_json(document)))
        _same(columns, answers)
        errors = {int(row) for row in columns["errors"]}
        assert errors == {row for row, a in enumerate(answers) if a["status"] == "error"}


def test_streamed_columns_equal_the_offline_forecasts(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    """k-step rows, both sensors in each call: forecasts equal Forecaster.predict's."""
    series = _series(temperatures_csv, 96)
    forecaster = Forecaster.load(model_dir)
    service = StreamService(serve_config(model_dir, tmp_path))
    names = list(series)
    got = {name: [] for name in names}
    for first in range(0, 96, 4):
        values = np.stack([series[name][first : first + 4, None] for name in names])
        answer = service.step_columns(ColumnBatch.of(names, values, seq=[first] * len(names)))
        assert answer.status_names.tolist() == ["ok"] * len(names)
        for row, name in enumerate(names):
            got[name].extend(answer.forecast[row, :, 0, 0])
    for name in names:
        np.testing.assert_allclose(
            got[name], forecaster.predict(series[name]).values[:, 0, 0], rtol=1e-5
        )


def test_a_resent_batch_is_not_applied_twice_and_a_bad_row_is_refused_alone(
    model_dir: Path, tmp_path: Path
) -> None:
    service = StreamService(serve_config(model_dir, tmp_path))
    first = service.step_columns(
        ColumnBatch.of(["a", "b", "c"], [[20.0], [21.0], [22.0]], seq=[0, 0, 0])
    )
    again = service.step_columns(
        ColumnBatch.of(["a", "b", "c"], [[20.0], [21.0], [22.0]], seq=[0, 0, 0])
    )
    assert again.status_names.tolist() == ["duplicate"] * 3
    np.testing.assert_allclose(again.forecast, first.forecast)
    assert service.stream("a")["seq"] == 0
    document = {
        "stream": ["a", "b/x", "c", "d", "e"],
        "values": [[float("nan")], [1.0], ["55"], [True], [23.0]],
        "seq": [1, 0, 1, 0, 0],
    }
    answer = service.step_columns(batch_from_json(document))
    assert answer.status_names.tolist() == ["error", "error", "error", "error", "ok"]
    assert "finite" in answer.errors[0] and "stream id" in answer.errors[1]
    assert "numbers" in answer.errors[2] and "numbers" in answer.errors[3]
    assert service.stream("a")["seq"] == 0 and service.stream("c")["seq"] == 0
    assert "d" not in service.store and service.stream("e")["seq"] == 0
    bad_seq = service.step_columns(
        ColumnBatch.of(["a", "f"], [[1.0], [2.0]], seq=np.array([2**64 - 1, 0], dtype=np.uint64))
    )
    assert bad_seq.status_names.tolist() == ["error", "ok"] and "seq" in bad_seq.errors[0]


def test_oversized_or_malformed_columns_are_refused_before_anything_changes(
    model_dir: Path, tmp_path: Path
) -> None:
    service = StreamService(serve_config(model_dir, tmp_path, max_steps=8, capacity=3))
    with pytest.raises(DataError, match="max-steps"):
        service.step_columns(ColumnBatch.of(["a", "b", "c"], np.ones((3, 3, 1))))
    with pytest.raises(Exception, match="capacity"):
        service.step_columns(ColumnBatch.of(["a", "b", "c", "d"], np.ones((4, 1))))
    with pytest.raises(DataError, match="inputs"):
        service.step_columns(ColumnBatch.of(["a"], np.ones((1, 1, 2))))
    for document in (
        {"stream": ["a"]},
        {"stream": ["a"], "values": [[1.0], [2.0]]},
        [1, 2],
        {"stream": ["a"], "values": [[1.0]], "seq": [True]},
        {"stream": [], "values": [], "end": {}},  # an empty batch's columns are checked too
        {"stream": [], "values": [], "start": [[], [1]]},  # ragged: refused, not a 500
        {"stream": ["a"], "values": [[1.0]], "start": [[True], [True, False]]},
        {"stream": [], "values": [], "seq": [1]},
    ):
        with pytest.raises(DataError):
            batch_from_json(document)
    with pytest.raises(DataError, match="Arrow"):
        batch_from_arrow(b"\x00garbage")
    assert len(service.store) == 0


@settings(max_examples=300, deadline=None)
@given(
    ids=st.lists(
        st.one_of(
            st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
            st.sampled_from(
                [
                    ".",
                    "..",
                    "...",
                    "a/b",
                    "\ufffd",
                    "x" * 256,
                    "x" * 257,
                    "é" * 256,
                    "a\x85",
                    "\x9f",
                ]
            ),
            st.none(),
        ),
        max_size=12,
    ),
    large=st.booleans(),
    cut=st.integers(0, 3),
)
def test_arrow_id_checks_agree_with_the_one_grammar(ids: list, large: bool, cut: int) -> None:
    """The byte scan over Arrow strings refuses exactly what valid_stream_id refuses, for
    string and large_string arrays, sliced or not (a null id is refused)."""
    import pyarrow as pa

    from stateline.serve._wire import bad_arrow_ids, valid_stream_id

    array = pa.array(ids, type=pa.large_string() if large else pa.string())
    array = array.slice(min(cut, len(ids)))
    expected = [value is None or not valid_stream_id(value) for value in ids[min(cut, len(ids)) :]]
    assert bad_arrow_ids(array).tolist() == expected


def test_the_answer_sends_the_request_ids_back_as_they_came() -> None:
    import pyarrow as pa

    from stateline.serve._wire import arrow_request

    body = batch_to_arrow(ColumnBatch.of(["a", "b/c", "d"], np.ones((3, 1)), seq=[0, 1, 2]))
    batch, ids = arrow_request(body)
    assert sorted(batch.refused) == [1] and ids.to_pylist() == ["a", "b/c", "d"]
    answer = answer_from_arrow(
        answer_to_arrow(ColumnAnswer.empty(batch.stream, 1, 2, 1), stream=ids)
    )
    assert answer.stream.tolist() == ["a", "b/c", "d"] and answer.errors == {}
    with pytest.raises(ValueError, match="stream"):
        answer_to_arrow(ColumnAnswer.empty(batch.stream, 1, 2, 1), stream=pa.array(["a"]))


def test_arrow_round_trips_and_checks_ids_without_python_per_row() -> None:
    ids = np.array(["ok-1", "", "a/b", "x" * 257, "\ufffd", "ok-2"], dtype=object)
    batch = batch_from_arrow(
        batch_to_arrow(ColumnBatch.of(ids, np.arange(12.0).reshape(6, 2, 1), seq=np.arange(6)))
    )
    assert sorted(batch.refused) == [1, 2, 3, 4]
    np.testing.assert_array_equal(batch.values, np.arange(12.0).reshape(6, 2, 1))
    from stateline.serve import ColumnAnswer

    answer = ColumnAnswer.empty(ids, 2, 3, 1)
    answer.errors[1] = "bad"
    back = answer_from_arrow(answer_to_arrow(answer))
    assert back.errors == {1: "bad"} and back.forecast.shape == (6, 2, 3, 1)
    again = answer_from_json(json.loads(json.dumps(answer_to_json(answer))))
    assert again.status_names.tolist() == ["error"] * 6 and (again.seq == -1).all()


def test_http_json_and_arrow_columns_and_websocket_binary_frames(server: str) -> None:
    """The real server: JSON columns, Arrow columns, the client helper and WebSocket frames."""
    from websockets.sync.client import connect

    response = httpx.post(
        server + "/v1/columns",
        json={"stream": ["j1", "j2"], "values": [[20.0], [21.0]], "seq": [0, 0]},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == ["ok", "ok"] and response.json()["seq"] == [0, 0]
    refused = httpx.post(
        server + "/v1/columns", json={"stream": ["j1"], "values": [[1.0]], "seq": [1]}
    )
    assert refused.status_code == 401
    with ColumnClient(server, TOKEN) as client:
        answer = client.step(["b1", "b2", "j1"], [[20.0], [21.0], [22.0]], seq=[0, 0, 1])
        assert answer.status_names.tolist() == ["ok", "ok", "ok"]
        resent = client.step(["b1", "b2", "j1"], [[20.0], [21.0], [22.0]], seq=[0, 0, 1])
        assert resent.status_names.tolist() == ["duplicate"] * 3
        np.testing.assert_allclose(resent.forecast, answer.forecast)
        with pytest.raises(DataError, match="422"):
            client.step(["b1"], np.ones((1, 1, 5)), seq=[1])
    with ColumnClient(server, TOKEN, binary=False) as client:
        assert client.step(["c1"], [[20.0]], seq=[0]).status_names.tolist() == ["ok"]
    upper = {**AUTH, "Content-Type": ARROW.upper()}  # media types are case-insensitive
    body = batch_to_arrow(ColumnBatch.of(["u1"], [[20.0]], seq=[0]))
    assert httpx.post(server + "/v1/columns", content=body, headers=upper).status_code == 200
    garbage = httpx.post(
        server + "/v1/columns", content=b"\x00\x01", headers={**AUTH, "Content-Type": ARROW}
    )
    assert garbage.status_code == 422 and "Arrow" in garbage.json()["detail"]
    ws_url = server.replace("http", "ws") + f"/v1/ws?token={TOKEN}"
    with connect(ws_url) as socket:
        socket.send(batch_to_arrow(ColumnBatch.of(["w1", "w/2"], [[20.0], [21.0]], seq=[0, 0])))
        answer = answer_from_arrow(socket.recv(timeout=30))
        assert answer.status_names.tolist() == ["ok", "error"]
        socket.send(b"\x00\x01binary")
        assert "Arrow" in json.loads(socket.recv(timeout=30))["error"]
        import pyarrow as pa

        ids, values = pa.array(["w1"]), pa.FixedSizeListArray.from_arrays(pa.array([1.0]), 1)
        twice = pa.Table.from_arrays([ids, values, ids], names=["stream", "values", "stream"])
        socket.send(_ipc(twice))  # once dropped the connection (no close code)
        assert "repeats a column" in json.loads(socket.recv(timeout=30))["error"]
        socket.send(json.dumps({"events": [{"stream": "w1", "values": [21.0], "seq": 1}]}))
        assert json.loads(socket.recv(timeout=30))["results"][0]["status"] == "ok"


def test_values_past_float32_are_refused_alone_not_a_500(model_dir: Path, tmp_path: Path) -> None:
    """Found by the fuzzer: 1e300 overflowed the engine's float32 cast (HTTP 500)."""
    service = StreamService(serve_config(model_dir, tmp_path))
    answers = service.step([Event("a", [1e300], 0), Event("b", [20.0], 0)])
    assert [a["status"] for a in answers] == ["error", "ok"] and "float32" in answers[0]["error"]
    assert answers[0]["error"].startswith("values holds")  # the event's field, not x[0]
    answer = service.step_columns(ColumnBatch.of(["c", "d"], [[-1e300], [20.0]], seq=[0, 0]))
    assert answer.status_names.tolist() == ["error", "ok"]


def _ipc(table: object, compression: str | None = None) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:  # type: ignore[attr-defined]
        writer.write_table(table)
    return bytes(sink.getvalue())


def test_hostile_arrow_bodies_are_refused_before_they_are_decoded_or_read() -> None:
    """Found by an attack on the running server (each crashed it, ate memory, or gave a 500):
    corrupt string offsets (a segfault), a null-typed or compressed values column (hundreds
    of MB decoded from a few hundred bytes), invalid UTF-8, repeated columns, non-numeric
    or nested values, a null row of integers, absurd steps."""
    import struct

    import pyarrow as pa

    def fixed(values: object, size: int, kind: object = None) -> object:
        return pa.FixedSizeListArray.from_arrays(pa.array(values, type=kind), size)

    good = batch_to_arrow(ColumnBatch.of(["abcdef", "ghijkl"], [[1.0], [2.0]]))
    offsets = struct.pack("<3i", 0, 6, 12)
    assert offsets in good
    corrupt = good.replace(offsets, struct.pack("<3i", 0, 100_000_000, 12))
    ids = pa.array(["a", "b"])
    invalid = pa.py_buffer(b"\xff\xfe")  # not UTF-8
    huge_steps = {"steps": "1" + "0" * 25}
    bodies = {
        "offsets": corrupt,
        "null values": _ipc(
            pa.table({"stream": ["a"], "values": fixed(pa.nulls(1 << 25), 1 << 25)})
        ),
        "compressed": _ipc(pa.table({"stream": ids, "values": fixed([1.0, 2.0], 1)}), "zstd"),
        "utf-8": _ipc(
            pa.table(
                {
                    "stream": pa.Array.from_buffers(
                        pa.string(), 1, [None, pa.py_buffer(struct.pack("<2i", 0, 2)), invalid]
                    ),
                    "values": fixed([1.0], 1),
                }
            )
        ),
        "repeated": _ipc(
            pa.Table.from_arrays(
                [ids, fixed([1.0, 2.0], 1), ids], names=["stream", "values", "stream"]
            )
        ),
        "strings": _ipc(pa.table({"stream": ids, "values": fixed(["abc", "d"], 1)})),
        "nested": _ipc(pa.table({"stream": ["a"], "values": fixed(fixed([1.0], 1), 1)})),
        "booleans": _ipc(pa.table({"stream": ids, "values": fixed([True, False], 1)})),
        "steps": _ipc(
            pa.table({"stream": ids, "values": fixed([1.0, 2.0], 1)}).replace_schema_metadata(
                huge_steps
            )
        ),
        "too many": _ipc(pa.table({"stream": ids, "values": fixed([1.0] * 20, 10)})),
    }
    for name, body in bodies.items():
        with pytest.raises(DataError) as refused:
            batch_from_arrow(body, max_rows=100, max_values=10)
        assert "body" in str(refused.value) or "values" in str(refused.value), name
    nulls = pa.FixedSizeListArray.from_arrays(
        pa.array([1, 2], type=pa.int64()), 1, mask=pa.array([True, False])
    )
    batch = batch_from_arrow(_ipc(pa.table({"stream": ids, "values": nulls})))
    assert sorted(batch.refused) == [0] and batch.values[1, 0, 0] == 2.0
    # integers past 2**53 round as in JSON (a safe cast raised ArrowInvalid: an HTTP 500 and
    # a Kafka worker stopped on every restart)
    past = fixed([2**62, -(2**63), 7], 1, pa.int64())
    batch = batch_from_arrow(_ipc(pa.table({"stream": ["a", "b", "c"], "values": past})))
    assert batch.values[:, 0, 0].tolist() == [2.0**62, -(2.0**63), 7.0]


def test_hostile_json_columns_are_refused_row_by_row(model_dir: Path, tmp_path: Path) -> None:
    """Found by the attack: a huge integer value gave a 500; a boolean among numbers was
    applied as 1.0; a seq past 2**63 refused the whole batch; a refused row lost its id;
    seqs came back through float; '.' and '..' are ids no client can put in a path."""
    service = StreamService(serve_config(model_dir, tmp_path))
    document = {
        "stream": ["a", "b", "c", "d", ".", "f"],
        "values": [[10**400], [True], [1.0], [2.0], [3.0], [4.0]],
        "seq": [0, 0, 2**63, 2**62 + 1, 0, 0],
    }
    answer = service.step_columns(batch_from_json(document))
    assert answer.status_names.tolist() == ["error", "error", "error", "ok", "error", "ok"]
    assert "seq" in answer.errors[2] and "stream id" in answer.errors[4]
    columns = json.loads(json.dumps(answer_to_json(answer)))
    assert columns["stream"][:4] == ["a", "b", "c", "d"] and columns["seq"][3] == 2**62 + 1
    for empty in (
        {"stream": [], "values": []},
        {"stream": [], "values": [], "seq": [], "start": [], "end": None},
    ):
        assert answer_to_json(service.step_columns(batch_from_json(empty)))["status"] == []
