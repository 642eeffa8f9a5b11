from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError
from stateline.anomaly import (
    DetectorConfig,
    ErrorScorer,
    ForecastDetector,
    GaussianThreshold,
    OnlineDetector,
)
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import SnapshotMismatchError, StateStore, Status, StreamDetector, StreamEngine

INPUTS, TARGETS = 3, 2
CONFIG = dict(reference=40, warmup=5, smoothing=0.3)


def make_model(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    config = ModelConfig(inputs=INPUTS, hidden=6, outputs=TARGETS)
    return SequenceModel(config).double().eval()


def make_detector(model: SequenceModel, config: DetectorConfig, **kwargs: object) -> StreamDetector:
    engine = StreamEngine(model, StateStore(model, initial_slots=2))
    return StreamDetector(engine, config, **kwargs)  # type: ignore[arg-type]


def make_series(rng: np.random.Generator, steps: int) -> np.ndarray:
    series = rng.normal(size=(steps, INPUTS))
    at = int(rng.integers(CONFIG["reference"] + 5, steps - 5))
    series[at : at + 5, :TARGETS] += rng.uniform(3, 8)  # an anomaly to flag
    return series


def offline_errors(model: SequenceModel, series: np.ndarray) -> np.ndarray:
    """Errors of the whole-sequence forecasts (as float32, like the engine's predictions)."""
    with torch.no_grad():
        out, _ = model(torch.as_tensor(series)[None])
    predictions = out[0].numpy().astype(np.float32).astype(np.float64)
    errors = np.zeros((len(series), TARGETS))
    errors[1:] = series[1:, :TARGETS] - predictions[:-1]
    return errors


def stream_all(
    detector: StreamDetector,
    series: dict[str, np.ndarray],
    rng: np.random.Generator,
    anomaly: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every stream's steps, in random batches of streams and random k, in order per stream.

    Returns scores and flags; fills ``anomaly`` with the anomaly scores when given.
    """
    scores = {name: np.full(len(s), np.nan) for name, s in series.items()}
    flags = {name: np.zeros(len(s), dtype=bool) for name, s in series.items()}
    if anomaly is not None:
        anomaly.update({name: np.full(len(s), np.nan) for name, s in series.items()})
    done = dict.fromkeys(series, 0)
    while any(done[name] < len(s) for name, s in series.items()):
        pending = [name for name, s in series.items() if done[name] < len(s)]
        chosen = list(
            rng.choice(pending, size=int(rng.integers(1, len(pending) + 1)), replace=False)
        )
        k = int(rng.integers(1, 4))
        k = min(k, *(len(series[name]) - done[name] for name in chosen))
        x = np.stack([series[name][done[name] : done[name] + k] for name in chosen])
        seq = [done[name] for name in chosen]
        result = detector.step(chosen, x if k > 1 else x[:, 0], seq=seq)
        assert result.status == [Status.OK] * len(chosen)
        assert result.scores is not None and result.flags is not None
        got_scores = result.scores if k > 1 else result.scores[:, None]
        got_flags = result.flags if k > 1 else result.flags[:, None]
        assert result.anomaly_scores is not None
        got_anomaly = result.anomaly_scores if k > 1 else result.anomaly_scores[:, None]
        for row, name in enumerate(chosen):
            scores[name][done[name] : done[name] + k] = got_scores[row]
            flags[name][done[name] : done[name] + k] = got_flags[row]
            if anomaly is not None:
                anomaly[name][done[name] : done[name] + k] = got_anomaly[row]
            done[name] += k
    return scores, flags


@settings(max_examples=15, deadline=None)
@given(
    threshold=st.sampled_from(["quantile", "gaussian", "dynamic", "likelihood"]),
    combine=st.sampled_from(["mean", "max", "trimmed"]),
    lengths=st.lists(st.integers(55, 90), min_size=1, max_size=4),
    seed=st.integers(0, 10_000),
    likelihood=st.fixed_dictionaries(
        {
            "long": st.sampled_from([0.0, 0.002, 0.05]),
            "range_tolerance": st.sampled_from([None, 0.01, 0.05]),
            "quiet": st.sampled_from([0.0, 0.1, 0.3]),
            "alarm": st.sampled_from([0.3, 0.9]),
            "range_base": st.sampled_from([0.5, 0.8]),
            "cap": st.sampled_from([3.0, 10.0]),
        }
    ),
)
def test_streamed_scores_and_flags_equal_the_offline_detector(
    threshold: str, combine: str, lengths: list[int], seed: int, likelihood: dict[str, object]
) -> None:
    """Every stream gets ForecastDetector's offline scores, anomaly scores and flags.

    (Without learning the error statistics; the likelihood adapts in both.)
    """
    config = DetectorConfig(threshold=threshold, combine=combine, **CONFIG, **likelihood)  # type: ignore[arg-type]
    model = make_model(seed % 5)
    rng = np.random.default_rng(seed)
    series = {f"s{i}": make_series(rng, n) for i, n in enumerate(lengths)}
    anomaly: dict[str, np.ndarray] = {}
    scores, flags = stream_all(make_detector(model, config, learn=False), series, rng, anomaly)
    learned: dict[str, np.ndarray] = {}  # learning the error statistics leaves anomaly scores
    stream_all(
        make_detector(model, config, learn=True), series, np.random.default_rng(seed), learned
    )
    offline = ForecastDetector(config)
    ready = CONFIG["reference"] - 1
    for name, values in series.items():
        expected = offline.score_errors(offline_errors(model, values), values=values[:, :TARGETS])
        assert np.isnan(scores[name][:ready]).all()
        assert not flags[name][:ready].any()
        np.testing.assert_allclose(scores[name][ready:], expected.scores[ready:], rtol=1e-6)
        assert np.isnan(anomaly[name][: ready + 1]).all()
        assert np.isnan(expected.anomaly_scores[: ready + 1]).all()
        got, want = anomaly[name][ready + 1 :], expected.anomaly_scores[ready + 1 :]
        assert ((got >= 0) & (got <= 1)).all()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(learned[name][ready + 1 :], want, rtol=1e-6, atol=1e-9)
        if threshold == "dynamic":  # offline uses Hundman's windowed procedure instead
            continue
        if threshold == "likelihood":
            near = np.isclose(expected.anomaly_scores, config.alarm, rtol=1e-6)[ready:]
            np.testing.assert_array_equal(flags[name][ready:][~near], expected.flags[ready:][~near])
            continue
        near = np.isclose(expected.scores, expected.level, rtol=1e-6)[ready:]
        np.testing.assert_array_equal(flags[name][ready:][~near], expected.flags[ready:][~near])
        assert flags[name].any()


@pytest.mark.parametrize("learn_flagged", [False, True])
def test_learning_is_the_online_detector_per_stream(learn_flagged: bool) -> None:
    """With learning, each stream follows OnlineDetector: flagged steps are not learned from."""
    config = DetectorConfig(threshold="gaussian", k=2.0, **CONFIG)  # type: ignore[arg-type]
    model = make_model(1)
    rng = np.random.default_rng(3)
    series = {f"s{i}": make_series(rng, 120) for i in range(3)}
    detector = make_detector(model, config, learn=True, learn_flagged=learn_flagged)
    scores, flags = stream_all(detector, series, rng)
    reference, warmup = CONFIG["reference"], CONFIG["warmup"]
    for name, values in series.items():
        errors = offline_errors(model, values)
        scorer = ErrorScorer(smoothing=config.smoothing)
        scorer.learn_many(errors[warmup:reference])
        calibration = scorer.score_many(errors[:reference])
        threshold = GaussianThreshold(k=config.k).fit(calibration[warmup:])
        online = OnlineDetector(scorer, threshold, learn=True, learn_flagged=learn_flagged)
        expected = [online.process_one(error) for error in errors[reference:]]
        np.testing.assert_allclose(scores[name][reference:], [s for s, _ in expected], rtol=1e-6)
        np.testing.assert_array_equal(flags[name][reference:], [f for _, f in expected])
        assert flags[name].any()
        learned = int(detector.columns.count[detector.engine.store.slot_of(name)])
        unflagged = int((~flags[name][reference:]).sum())
        extra = len(values) - reference if learn_flagged else unflagged
        assert learned == reference - warmup + extra


def test_snapshot_carries_the_detector_state(tmp_path: Path) -> None:
    config = DetectorConfig(threshold="gaussian", **CONFIG)  # type: ignore[arg-type]
    model = make_model(2)
    rng = np.random.default_rng(0)
    values = make_series(rng, 100)
    whole = make_detector(model, config)
    first = make_detector(model, config)
    expected = [whole.step(["a"], values[t : t + 1]).scores for t in range(100)]
    for t in range(60):
        first.step(["a"], values[t : t + 1])
    first.engine.store.snapshot(tmp_path)
    second = make_detector(model, config)
    assert second.engine.store.restore(tmp_path) == 1
    resumed = [second.step(["a"], values[t : t + 1]).scores for t in range(60, 100)]
    np.testing.assert_allclose(np.concatenate(resumed), np.concatenate(expected[60:]))
    bare = StateStore(model)
    with pytest.raises(SnapshotMismatchError, match="detector"):
        bare.restore(tmp_path)


def test_duplicates_start_and_end() -> None:
    config = DetectorConfig(**CONFIG)  # type: ignore[arg-type]
    detector = make_detector(make_model(), config)
    rng = np.random.default_rng(1)
    values = rng.normal(size=(50, INPUTS))
    for t in range(45):
        last = detector.step(["a"], values[t : t + 1], seq=[t])
    again = detector.step(["a"], values[44:45], seq=[44])
    assert again.status == [Status.DUPLICATE]
    assert again.scores is not None and last.scores is not None
    assert again.scores[0] == last.scores[0] and np.isfinite(again.scores[0])
    slot = detector.engine.store.slot_of("a")
    assert detector.columns.seen[slot] == 45
    restarted = detector.step(["a"], values[45:46], seq=[45], start=True)
    assert restarted.scores is not None and np.isnan(restarted.scores[0])
    assert detector.columns.seen[slot] == 1 and np.isinf(detector.columns.level[slot])
    ended = detector.step(["a"], values[46:47], seq=[46], end=True)
    assert ended.status == [Status.OK] and "a" not in detector.engine.store


def test_rejects_targets_the_model_does_not_forecast() -> None:
    model = make_model()
    engine = StreamEngine(model, StateStore(model))
    with pytest.raises(ConfigError, match="targets"):
        StreamDetector(engine, targets=3)
    with pytest.raises(ConfigError, match="combine='trimmed'"):
        StreamDetector(engine, DetectorConfig(combine="trimmed"), targets=1)


@settings(max_examples=10, deadline=None)
@given(ids=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12))
def test_a_stream_several_times_in_one_call_is_scored_in_order(ids: list[str]) -> None:
    """Repeated ids in one call: what stepping the events one at a time gives (plan_calls)."""
    config = DetectorConfig(threshold="likelihood", reference=5, warmup=1)
    model = make_model(2)
    rng = np.random.default_rng(len(ids))
    warm = rng.normal(size=(8, 3, INPUTS))
    x = rng.normal(size=(len(ids), INPUTS))
    together, alone = make_detector(model, config), make_detector(model, config)
    for detector in (together, alone):
        for t in range(8):
            detector.step(["a", "b", "c"], warm[t])
    result = together.step(ids, x)
    for position, stream in enumerate(ids):
        one = alone.step([stream], x[position : position + 1])
        assert result.status[position] == one.status[0]
        np.testing.assert_allclose(result.predictions[position], one.predictions[0], rtol=1e-6)
        assert result.anomaly_scores is not None and one.anomaly_scores is not None
        np.testing.assert_allclose(result.anomaly_scores[position], one.anomaly_scores[0])
