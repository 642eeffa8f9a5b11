"""StreamService in plain Python: streamed forecasts equal the offline forecaster's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, DataError, Forecaster
from stateline.anomaly import DetectorConfig, ForecastDetector
from stateline.serve import Event, StreamService

from .conftest import REFERENCE, WARMUP, serve_config


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_streamed_forecasts_equal_offline_whole_series(
    seed: int, model_dir: Path, temperatures_csv: Path, tmp_path_factory: object
) -> None:
    """Both sensors, random batch compositions and k-step events, in original units."""
    frame = pd.read_csv(temperatures_csv)
    series = {c: frame.loc[frame.city == c, "temp"].to_numpy()[:150] for c in frame.city.unique()}
    forecaster = Forecaster.load(model_dir)
    expected = {c: forecaster.predict(v).values[:, 0, 0] for c, v in series.items()}
    state = Path(str(tmp_path_factory.mktemp("state")))  # type: ignore[attr-defined]
    service = StreamService(serve_config(model_dir, state))
    rng = np.random.default_rng(seed)
    done = dict.fromkeys(series, 0)
    got = {c: np.full(len(v), np.nan) for c, v in series.items()}
    while any(done[c] < len(v) for c, v in series.items()):
        events, spans = [], []
        for name, values in series.items():
            if done[name] < len(values) and rng.random() < 0.7:
                k = int(min(rng.integers(1, 5), len(values) - done[name]))
                chunk = values[done[name] : done[name] + k]
                events.append(Event(name, chunk[:, None].tolist(), done[name]))
                spans.append((name, done[name], k))
                done[name] += k
        for answer, (name, first, k) in zip(service.step(events), spans, strict=True):
            assert answer["status"] == "ok"
            got[name][first : first + k] = [step[0][0] for step in answer["forecast"]]
    for name in series:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5)


def test_anomaly_scores_equal_the_offline_detector(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    """threshold='likelihood': the service's anomaly scores and flags are the offline ones.

    Offline, ``score_errors`` gets the same forecasts' errors in original units
    (z-scores and the range rule do not change with the scaler's units).
    """
    frame = pd.read_csv(temperatures_csv)
    series = {c: frame.loc[frame.city == c, "temp"].to_numpy()[:200] for c in frame.city.unique()}
    series["spiky"] = series[next(iter(series))].copy()
    series["spiky"][150:154] += 25.0  # a sensor fault the detector should raise an alarm for
    forecaster = Forecaster.load(model_dir)
    config = DetectorConfig(threshold="likelihood", reference=REFERENCE, warmup=WARMUP)
    service = StreamService(dataclasses.replace(serve_config(model_dir, tmp_path), detector=config))
    got = {name: [] for name in series}
    for step in range(200):
        events = [Event(name, [[float(v[step])]], step) for name, v in series.items()]
        for answer, name in zip(service.step(events), series, strict=True):
            got[name].append((answer["anomaly_scores"][0], answer["flags"][0]))
    offline = ForecastDetector(config)
    for name, values in series.items():
        predictions = forecaster.predict(values).values[:, 0, 0]
        errors = np.zeros(len(values))
        errors[1:] = values[1:] - predictions[:-1]
        expected = offline.score_errors(errors[:, None], values=values[:, None])
        scores = np.array([np.nan if s is None else s for s, _ in got[name]])
        np.testing.assert_allclose(scores, expected.anomaly_scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal([f for _, f in got[name]], expected.flags)
    assert any(flag for _, flag in got["spiky"][150:155])


@settings(max_examples=15, deadline=None)
@given(
    spec=st.lists(
        st.tuples(st.sampled_from(["Seattle", "San Francisco"]), st.integers(1, 3)),
        min_size=1,
        max_size=12,
    )
)
def test_a_batch_answers_what_one_event_at_a_time_answers(
    spec: list[tuple[str, int]], model_dir: Path, temperatures_csv: Path, tmp_path_factory: object
) -> None:
    """Mixed step counts and a stream several times in one batch: every answer (status, seq,
    forecast) is what sending the events one by one gives (#15, findings 1 and 5)."""
    frame = pd.read_csv(temperatures_csv)
    series = {c: frame.loc[frame.city == c, "temp"].to_numpy() for c in frame.city.unique()}
    done = dict.fromkeys(series, 0)
    events = []
    for city, k in spec:
        chunk = series[city][done[city] : done[city] + k]
        events.append(Event(city, chunk[:, None].tolist(), done[city]))
        done[city] += k
    folders = [Path(str(tmp_path_factory.mktemp("state"))) for _ in range(2)]  # type: ignore[attr-defined]
    batch = StreamService(serve_config(model_dir, folders[0])).step(events)
    single = StreamService(serve_config(model_dir, folders[1]))
    alone = [single.step([event])[0] for event in events]
    for got, want, event in zip(batch, alone, events, strict=True):
        assert got["status"] == want["status"] == "ok"
        assert got["seq"] == want["seq"] == event.seq + len(event.values) - 1
        np.testing.assert_allclose(got["forecast"], want["forecast"], rtol=1e-6)


def test_a_request_refused_for_capacity_changes_nothing(model_dir: Path, tmp_path: Path) -> None:
    """#15, finding 3: a batch naming more streams than --capacity is refused whole, up front."""
    service = StreamService(serve_config(model_dir, tmp_path, capacity=3))
    service.step([Event("a", [[50.0]], 0), Event("b", [[51.0]], 0)])
    before = {key: service.stream(key)["seq"] for key in ("a", "b")}
    # a twice: two engine calls, each within capacity on its own, four streams in all
    batch = [Event("a", [[52.0]], 1), Event("w", [[50.0]], 0), Event("x", [[50.0]], 0)]
    batch += [Event("a", [[53.0]], 2), Event("y", [[50.0]], 0)]
    with pytest.raises(ConfigError, match="too many streams"):
        service.step(batch)
    assert {key: service.stream(key)["seq"] for key in ("a", "b")} == before
    assert sorted(map(str, service.store)) == ["a", "b"]


def test_steps_are_bounded_per_event_and_per_request(model_dir: Path, tmp_path: Path) -> None:
    """#15, finding 7: --max-event-steps refuses one event alone, --max-steps a request whole."""
    service = StreamService(serve_config(model_dir, tmp_path, max_event_steps=5, max_steps=12))
    long_event = Event("a", [[50.0]] * 6, 0)
    answers = service.step([long_event, Event("b", [[50.0]] * 5, 0)])
    assert answers[0]["status"] == "error" and "--max-event-steps 5" in answers[0]["error"]
    assert answers[1]["status"] == "ok"
    with pytest.raises(DataError, match="--max-steps 12"):
        service.step([Event(key, [[50.0]] * 5, 5) for key in ("b", "c", "d")])
    assert sorted(map(str, service.store)) == ["b"]  # nothing of the refused request applied


def test_dashboard_history_begins_anew_after_delete_end_or_a_lost_state(
    model_dir: Path, tmp_path: Path
) -> None:
    """Found in review of the history ring (#16): a deleted or ended stream's points came back
    when one of them had start=True; the oldest shown point lost its forecast once a stream
    had more than --history points; a stream that came back `restarted` kept its lost
    state's points, or not, depending on the slot it got."""
    service = StreamService(serve_config(model_dir, tmp_path / "a", history=3, capacity=2))
    service.step([Event("a", [1.0], 0, start=True)])
    service.delete("a")
    service.step([Event("a", [2.0], 0)])
    assert [p["values"] for p in service.stream("a")["history"]] == [[2.0]]
    service.step([Event("b", [3.0], 0, start=True, end=True)])
    service.step([Event("b", [4.0], 0)])
    assert [p["values"] for p in service.stream("b")["history"]] == [[4.0]]
    for seq in range(1, 5):  # a: 5 points, 3 shown; the first shown has its forecast
        service.step([Event("a", [float(seq)], seq)])
    points = service.stream("a")["history"]
    assert [p["seq"] for p in points] == [2, 3, 4] and points[0]["forecast"] is not None
    service.step([Event("c", [5.0], 0)])  # capacity 2: the least recently seen stream goes
    gone = "a" if "a" not in service.store else "b"
    answer = service.step([Event(gone, [6.0], 9)])[0]
    assert answer["status"] == "restarted"
    assert [p["values"] for p in service.stream(gone)["history"]] == [[6.0]]


def test_an_integer_past_any_float_is_refused_alone(model_dir: Path, tmp_path: Path) -> None:
    """From a review of the Kafka worker: 10**400 raised OverflowError out of the service."""
    service = StreamService(serve_config(model_dir, tmp_path / "state"))
    answers = service.step([Event("a", [10**400]), Event("b", [20.0])])
    assert [a["status"] for a in answers] == ["error", "ok"]
    assert "values are not numbers" in answers[0]["error"]
