from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stateline import ConfigError, ShapeError
from stateline.nn import ModelConfig, SequenceModel
from stateline.online import OnlineConfig, OnlineLearner
from stateline.stream import StateStore, StreamEngine

INPUTS, TARGETS = 2, 1


def make_learner(config: OnlineConfig, seed: int = 0) -> OnlineLearner:
    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(inputs=INPUTS, hidden=6, outputs=TARGETS)).eval()
    return OnlineLearner(StreamEngine(model, StateStore(model, initial_slots=2)), config)


def series(rng: np.random.Generator, steps: int, phase: float = 0.0) -> np.ndarray:
    t = np.arange(steps) / 5 + phase
    return np.stack([np.sin(t), np.cos(t)], axis=1) + 0.05 * rng.normal(size=(steps, INPUTS))


def test_buffers_keep_the_last_steps_in_order_and_are_bounded(rng: np.random.Generator) -> None:
    learner = make_learner(OnlineConfig(buffer=16, min_steps=4))
    values = series(rng, 40)
    for t in range(40):
        learner.step(["a"], values[t : t + 1], seq=[t])
    learner.step(["a"], values[39:40], seq=[39])  # a duplicate is not recorded again
    x, ok = learner.buffered("a")
    np.testing.assert_array_equal(x, values[-16:].astype(np.float32))
    assert ok.all()
    assert learner.store.column("online.x").shape[1:] == (16, INPUTS)
    assert int(learner.store.column("online.count")[learner.store.slot_of("a")]) == 40


def test_k_step_events_and_flags(rng: np.random.Generator) -> None:
    learner = make_learner(OnlineConfig(buffer=8, min_steps=2))
    values = series(rng, 6)
    learner.engine.step(["a"], values[None, :3])
    learner.observe(["a"], values[None, :3], flags=[[False, True, False]])
    x, ok = learner.buffered("a")
    np.testing.assert_array_equal(x, values[:3].astype(np.float32))
    assert ok.tolist() == [True, False, True]
    assert learner.pending == 2
    keen = make_learner(OnlineConfig(buffer=8, min_steps=2, learn_flagged=True))
    keen.engine.step(["a"], values[None, :3])
    keen.observe(["a"], values[None, :3], flags=[[False, True, False]])
    assert keen.buffered("a")[1].all()
    with pytest.raises(ShapeError, match="x"):
        learner.observe(["a"], np.zeros((1, 3)))


def test_flagged_targets_are_left_out_of_the_loss(rng: np.random.Generator) -> None:
    values = series(rng, 60)
    flags = np.zeros(60, dtype=bool)
    flags[20:30] = True
    values[20:30, 0] += 50.0  # an anomaly: huge errors if learned from
    losses = {}
    for learn_flagged in (False, True):
        learner = make_learner(OnlineConfig(min_steps=8, learn_flagged=learn_flagged))
        learner.engine.step(["a"], values[None])
        learner.observe(["a"], values[None], flags=flags[None])
        report = learner.update()
        assert report is not None
        losses[learn_flagged] = report.loss_before
    assert losses[False] < 5 < 100 < losses[True]


def test_update_swaps_the_shadow_weights_into_the_live_model(rng: np.random.Generator) -> None:
    learner = make_learner(OnlineConfig(min_steps=8, chunk=10, epochs=3, carry="keep"))
    before = {k: v.clone() for k, v in learner.engine.model.state_dict().items()}
    assert learner.update() is None  # nothing buffered yet: nothing changes
    for t, row in enumerate(series(rng, 50)):
        learner.step(["a", "b"], np.stack([row, -row]), seq=[t, t])
    report = learner.update()
    assert report is not None and report.version == learner.version == 1
    assert report.streams == 2 and report.steps == 2 * 49 and report.recomputed == 0
    assert report.loss_after < report.loss_before
    live, shadow = learner.engine.model.state_dict(), learner._shadow.state_dict()
    for name, tensor in live.items():
        torch.testing.assert_close(tensor, shadow[name])
        assert not torch.equal(tensor, before[name])
    assert learner.updated_at is not None and learner.pending == 0


@pytest.mark.parametrize("recompute_steps", [None, 12])
def test_recompute_policy_gives_the_new_models_carry_over_the_buffer(
    rng: np.random.Generator, recompute_steps: int | None
) -> None:
    """After a swap each stream's carry is the new model's over its last buffered steps."""
    config = OnlineConfig(buffer=20, min_steps=8, recompute_steps=recompute_steps)
    learner = make_learner(config)
    streams = {"a": series(rng, 45), "b": series(rng, 9, 1.0), "c": series(rng, 30, 2.0)}
    for name, values in streams.items():
        for t, row in enumerate(values):
            learner.step([name], row[None], seq=[t])
    report = learner.update()
    assert report is not None and report.recomputed == 3
    model, store = learner.engine.model, learner.store
    window = recompute_steps or 20
    following = rng.normal(size=(3, INPUTS))
    for position, (name, values) in enumerate(streams.items()):
        recent = torch.as_tensor(values[-window:], dtype=torch.float32)[None]
        with torch.no_grad():
            out, carry = model(recent)
        for got, expected in zip(store.carry_of(name), carry, strict=True):
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(
            store.last_output[store.slot_of(name)], out[0, -1].numpy(), atol=1e-6
        )
        # and the stream goes on from there with the new weights
        step = learner.step([name], following[position : position + 1])
        with torch.no_grad():
            continued, _ = model(
                torch.as_tensor(following[position], dtype=torch.float32)[None, None], carry
            )
        np.testing.assert_allclose(step.predictions[0], continued[0, 0].numpy(), atol=1e-5)


def test_recompute_lets_the_lock_go_between_few_streams_and_each_stream_is_exact(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many streams are recomputed a few at a time, the lock let go between them: a thread
    waiting for the lock gets it before the recompute ends. A stream stepped before its turn
    steps on from the carry it had with the new weights, and at its turn gets the new model's
    carry over its buffer as it is then; a stream let go of before its turn is skipped; a
    snapshot waits for the recompute to end."""
    from stateline.online import _learner

    monkeypatch.setattr(_learner, "RECOMPUTE_HOLD", 0.0)  # one stream at a time
    config = OnlineConfig(buffer=16, min_steps=8, lanes=4)
    learner = make_learner(config)
    names = [f"s{i}" for i in range(12)]
    data = {name: series(rng, 20, i / 3) for i, name in enumerate(names)}
    for t in range(20):
        learner.step(names, np.stack([data[name][t] for name in names]), seq=[t] * 12)
    late, gone = names[-1], names[-2]
    extra = rng.normal(size=(1, INPUTS))
    interleaved: dict[str, object] = {}
    turns: list[int] = []
    entered: list[tuple[int, bool]] = []  # (turns done, recomputing) when the other got in
    original = learner._recompute_now

    def waiting_for_the_lock() -> None:
        with learner.lock:
            entered.append((len(turns), learner.recomputing))

    other = threading.Thread(target=waiting_for_the_lock)

    def first_a_step_and_a_deletion(slots: np.ndarray, steps: int) -> int:
        if not turns:  # before the first stream's turn, holding the lock
            other.start()
            carry = [part.clone() for part in learner.store.carry_of(late)]
            interleaved["carry"] = carry
            interleaved["step"] = learner.step([late], extra, seq=[20])
            learner.store.delete(gone)
        turns.append(len(slots))
        return original(slots, steps)

    monkeypatch.setattr(learner, "_recompute_now", first_a_step_and_a_deletion)
    report = learner.update()
    other.join(timeout=10)
    assert report is not None and report.recomputed == 11  # the deleted stream skipped
    assert len(turns) == 12 and entered and entered[0][1], (turns, entered)
    assert 1 <= entered[0][0] < 12  # between turns, not after the last
    assert learner.settled(0) and not learner.recomputing
    model, store = learner.engine.model, learner.store
    with torch.no_grad():  # the interleaved step: the new weights, from the carry it had
        out, _ = model(torch.as_tensor(extra, dtype=torch.float32)[None], interleaved["carry"])
    np.testing.assert_allclose(interleaved["step"].predictions[0], out[0, 0].numpy(), atol=1e-5)  # type: ignore[attr-defined]
    for name in names:
        if name == gone:
            assert name not in store
            continue
        values = data[name] if name != late else np.concatenate([data[name], extra])
        recent = torch.as_tensor(values[-16:], dtype=torch.float32)[None]
        with torch.no_grad():
            out, carry = model(recent)
        for got, expected in zip(store.carry_of(name), carry, strict=True):
            torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
        np.testing.assert_allclose(
            store.last_output[store.slot_of(name)], out[0, -1].numpy(), atol=1e-6
        )


def test_a_turn_takes_steps_not_streams_and_two_updates_keep_their_versions(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns are sized by buffered steps: after many short buffers, a turn does not take as
    many full ones. Two updates at once each report the version they swapped in."""
    from stateline.online import _learner

    monkeypatch.setattr(_learner, "RECOMPUTE_HOLD", 1e9)  # grow as fast as allowed
    learner = make_learner(OnlineConfig(buffer=64, min_steps=2, lanes=4))
    short = [f"a{i}" for i in range(40)]
    full = [f"b{i}" for i in range(40)]
    for name in short:
        learner.step([name], rng.normal(size=(1, INPUTS)), seq=[0])
        learner.step([name], rng.normal(size=(1, INPUTS)), seq=[1])
    for t in range(64):
        learner.step(full, rng.normal(size=(40, INPUTS)), seq=[t] * 40)
    sizes: list[int] = []
    original = learner._recompute_now

    def counted(slots: np.ndarray, steps: int) -> int:
        sizes.append(int(np.minimum(learner._count[slots], steps).sum()))
        return original(slots, steps)

    monkeypatch.setattr(learner, "_recompute_now", counted)
    report = learner.update()
    assert report is not None and report.recomputed == 80
    # the budget starts at one full buffer and grows at most 4x a turn, in steps
    budget = 64.0
    for size in sizes[:-1]:
        assert size <= budget + 64, (sizes, budget)  # a turn ends past its budget by < a stream
        budget *= 4
    versions: list[int] = []
    again = threading.Thread(target=lambda: versions.append(learner.update().version))  # type: ignore[union-attr]
    for name in full:  # enough new targets for two more updates
        learner.step([name], rng.normal(size=(1, INPUTS)), seq=[64])
    again.start()
    versions.append(learner.update().version)  # type: ignore[union-attr]
    again.join(timeout=30)
    assert sorted(versions) == [2, 3]
    assert sorted(r.version for r in learner.history) == [1, 2, 3]


def test_no_step_is_answered_by_a_half_updated_model(rng: np.random.Generator) -> None:
    """Steps and updates from two threads: every answer is one version's, start to end."""
    learner = make_learner(OnlineConfig(min_steps=8, chunk=16, carry="keep", lanes=3))
    weights = {0: {k: v.clone() for k, v in learner.engine.model.state_dict().items()}}
    names = ["a", "b", "c"]
    values = {
        name: series(rng, 400, phase) for name, phase in zip(names, (0.0, 1.0, 2.0), strict=True)
    }
    record: list[tuple[int, int, np.ndarray]] = []
    done = threading.Event()

    def stepper() -> None:
        for t in range(400):
            with learner.lock:
                result = learner.step(names, np.stack([values[n][t] for n in names]), seq=[t] * 3)
                record.append((t, learner.version, result.predictions.copy()))
            assert result.status == ["ok"] * 3
            time.sleep(0.0005)
        done.set()

    def updater() -> None:
        while not done.is_set():
            if learner.update() is not None:
                with learner.lock:
                    weights[learner.version] = {
                        k: v.clone() for k, v in learner.engine.model.state_dict().items()
                    }
            time.sleep(0.002)

    threads = [threading.Thread(target=stepper), threading.Thread(target=updater)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = sorted({version for _, version, _ in record})
    assert len(versions) >= 3, f"too few swaps during the run: {versions}"
    assert [t for t, _, _ in record] == list(range(400))  # nothing dropped
    replay = SequenceModel(ModelConfig(inputs=INPUTS, hidden=6, outputs=TARGETS)).eval()
    carry = replay.initial_carry(3)
    for t, version, predictions in record:
        replay.load_state_dict(weights[version])
        x = torch.as_tensor(np.stack([values[n][t] for n in names]), dtype=torch.float32)
        with torch.no_grad():
            carry, out = replay.step(carry, x)
        np.testing.assert_allclose(predictions, out.numpy(), atol=1e-5)


def test_run_updates_in_the_background_within_its_share(rng: np.random.Generator) -> None:
    learner = make_learner(OnlineConfig(update_every=50, min_steps=8, cpu_share=0.2))
    stop = threading.Event()
    worker = threading.Thread(target=learner.run, args=(stop,))
    worker.start()
    values = series(rng, 600)
    try:
        for t, row in enumerate(values):
            learner.step(["a"], row[None], seq=[t])
            time.sleep(0.002)
    finally:
        stop.set()
        worker.join()
    assert learner.version >= 2
    # each update is followed by a rest 4x its length: at most ~20% of the time, plus slack
    assert learner.learning_share < 0.35


def test_buffers_travel_with_snapshots(rng: np.random.Generator, tmp_path: Path) -> None:
    learner = make_learner(OnlineConfig(buffer=8, min_steps=4))
    for t, row in enumerate(series(rng, 12)):
        learner.step(["a"], row[None], seq=[t])
    learner.store.snapshot(tmp_path)
    again = make_learner(OnlineConfig(buffer=8, min_steps=4))
    assert again.store.restore(tmp_path) == 1
    for mine, theirs in zip(learner.buffered("a"), again.buffered("a"), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_config_and_model_errors() -> None:
    with pytest.raises(ConfigError, match="min_steps"):
        OnlineConfig(buffer=8, min_steps=9)
    with pytest.raises(ConfigError, match="cpu_share"):
        OnlineConfig(cpu_share=0.0)
    with pytest.raises(ConfigError, match="carry"):
        OnlineConfig(carry="drop")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="learning_rate"):
        OnlineConfig(learning_rate=-1.0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=4, outputs=3)).eval()
    with pytest.raises(ConfigError, match="one-step forecaster"):
        OnlineLearner(StreamEngine(model, StateStore(model)))


def test_one_streams_glitch_cannot_spoil_every_streams_weights() -> None:
    """From a review: a stream sending +-3e38 (finite float32) overflowed an update into NaN
    weights, swapped in for every stream, and written to disk. Such steps are not learnt."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=8)).eval()
    engine = StreamEngine(model, StateStore(model))
    learner = OnlineLearner(engine, OnlineConfig(update_every=10, lanes=8, chunk=25, min_steps=4))
    for t in range(40):
        learner.step(["good", "evil"], [[np.sin(t / 4)], [3e38 if t % 2 else -3e38]])
    report = learner.update()
    assert report is not None and report.rejected is None and report.version == 1
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    after = learner.step(["good", "fresh"], [[0.5], [0.5]])
    assert np.isfinite(after.predictions).all()
    _, learnable = learner.buffered("evil")
    assert not learnable.any() and learner.excluded == 40


def test_large_real_readings_are_learnt_and_a_batch_without_targets_makes_no_update() -> None:
    """From a review: a bound of 1e4 stopped learning, without a word, for a Keras model of
    readings in watts (its inputs are raw) or a sensor re-mounted after a tiny training
    spread; and a batch with nothing to learn from still made a new version."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=4)).eval()
    engine = StreamEngine(model, StateStore(model))
    learner = OnlineLearner(engine, OnlineConfig(update_every=10, lanes=4, chunk=10, min_steps=4))
    for t in range(30):
        learner.step(["meter"], [[20_000.0 + 50 * np.sin(t)]])
    assert learner.excluded == 0 and learner.pending == 30
    report = learner.update()
    assert report is not None and report.steps > 0 and learner.version == 1
    flagged = OnlineLearner(
        StreamEngine(model, StateStore(model)),
        OnlineConfig(update_every=10, lanes=4, chunk=10, min_steps=4),
    )
    for _ in range(10):
        flagged.step(["a"], [[1e13]])  # buffered, none learnable (past the bound)
    assert flagged.buffered("a")[0].shape[0] == 10 and flagged.excluded == 10
    assert flagged.update() is None and flagged.version == 0


def test_an_update_that_is_not_finite_is_not_swapped_in(rng: np.random.Generator) -> None:
    """The safety net behind the bound: whatever makes training diverge, the live weights
    stay, the learner starts again from them, and the report says why."""
    learner = make_learner(OnlineConfig(update_every=10, lanes=4, chunk=10, min_steps=4))
    engine = learner.engine
    for row in series(rng, 30):
        learner.step(["a"], row[None])
    live = {k: v.clone() for k, v in engine.model.state_dict().items()}
    original = learner._train

    def diverging(*args: object) -> float:
        loss = original(*args)  # type: ignore[arg-type]
        with torch.no_grad():
            next(learner._shadow.parameters()).fill_(float("nan"))
        return loss

    learner._train = diverging  # type: ignore[method-assign]
    report = learner.update()
    assert report is not None and report.rejected is not None and "not finite" in report.rejected
    assert learner.rejected == 1 and learner.version == 0
    assert all(torch.equal(v, live[k]) for k, v in engine.model.state_dict().items())
    assert all(bool(torch.isfinite(p).all()) for p in learner._shadow.parameters())
    learner._train = original  # type: ignore[method-assign]
    learner.step(["a"], series(rng, 1))
    assert learner.update() is not None and learner.version == 1  # learning goes on
