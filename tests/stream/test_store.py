from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from stateline import ConfigError, DataError
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import (
    SnapshotMismatchError,
    StateStore,
    StreamEngine,
    UnknownStreamError,
)
from stateline.train import save_checkpoint


def make_model(seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(inputs=2, hidden=4, outputs=1)).eval()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_slots_grow_to_capacity_then_least_recently_used_are_evicted() -> None:
    evicted: list[tuple[object, tuple[torch.Tensor, ...]]] = []
    clock = Clock()
    model = make_model()
    store = StateStore(
        model,
        capacity=3,
        initial_slots=1,
        clock=clock,
        on_evict=lambda key, carry: evicted.append((key, carry)),
    )
    engine = StreamEngine(model, store)
    for key in "abc":
        clock.now += 1
        engine.step([key], np.ones((1, 2)))
    clock.now += 1
    engine.step(["a"], np.ones((1, 2)))  # a is fresh again; b is now the oldest
    carry_b = store.carry_of("b")
    clock.now += 1
    engine.step(["d"], np.ones((1, 2)))
    assert sorted(map(str, store)) == ["a", "c", "d"]
    assert [key for key, _ in evicted] == ["b"]
    assert all(torch.equal(x, y) for x, y in zip(evicted[0][1], carry_b, strict=True))
    assert store.evictions == 1


def test_idle_streams_expire_after_ttl() -> None:
    clock = Clock()
    model = make_model()
    store = StateStore(model, ttl=10.0, clock=clock)
    engine = StreamEngine(model, store)
    engine.step(["old"], np.ones((1, 2)))
    clock.now += 8
    engine.step(["new"], np.ones((1, 2)))
    clock.now += 5
    assert store.expire() == 1
    assert list(store) == ["new"]


def test_reset_delete_len_iter_and_unknown_streams() -> None:
    model = make_model()
    store = StateStore(model)
    engine = StreamEngine(model, store)
    engine.step(["a", 7], np.ones((2, 2)))
    assert len(store) == 2 and set(store) == {"a", 7} and 7 in store
    store.reset("a")
    assert all(part.abs().sum() == 0 for part in store.carry_of("a"))
    assert any(part.abs().sum() > 0 for part in store.carry_of(7))
    store.delete(7)
    assert 7 not in store
    with pytest.raises(UnknownStreamError, match="start=True"):
        store.carry_of(7)
    with pytest.raises(KeyError):
        store.reset("nope")


def test_too_small_capacity_and_bad_settings() -> None:
    model = make_model()
    with pytest.raises(ConfigError, match="capacity"):
        StateStore(model, capacity=0)
    with pytest.raises(ConfigError, match="ttl"):
        StateStore(model, ttl=0)
    engine = StreamEngine(model, StateStore(model, capacity=2))
    with pytest.raises(ConfigError, match="too small"):
        engine.step(list("abc"), np.ones((3, 2)))


def test_a_call_refused_for_capacity_evicts_nothing() -> None:
    """#15, finding 3: more new streams than the capacity allows changes nothing held."""
    model = make_model()
    store = StateStore(model, capacity=4)
    engine = StreamEngine(model, store)
    engine.step(["a", "b", "c"], np.ones((3, 2)), seq=[0, 0, 0])
    carries = {key: store.carry_of(key) for key in "abc"}
    with pytest.raises(ConfigError, match="capacity is too small"):
        engine.step(list("vwxyz"), np.ones((5, 2)))
    assert sorted(map(str, store)) == ["a", "b", "c"] and store.evictions == 0
    for key, carry in carries.items():
        assert all(torch.equal(x, y) for x, y in zip(store.carry_of(key), carry, strict=True))
    assert engine.step(["a"], np.ones((1, 2)), seq=[1]).status == ["ok"]


def test_snapshot_and_restore_bring_back_every_carry_exactly(tmp_path: Path) -> None:
    model = make_model()
    store = StateStore(model)
    engine = StreamEngine(model, store)
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(50)] + list(range(10))
    engine.step(ids, rng.normal(size=(60, 2)), seq=np.arange(60))
    store.snapshot(tmp_path)
    again = StateStore(model)
    assert again.restore(tmp_path) == 60
    for key in ids:
        assert all(
            torch.equal(a, b) for a, b in zip(store.carry_of(key), again.carry_of(key), strict=True)
        )
        assert again.last_seq[again.slot_of(key)] == store.last_seq[store.slot_of(key)]
    other = make_model(seed=1)
    with pytest.raises(SnapshotMismatchError, match="another model"):
        StateStore(other).restore(tmp_path)
    with pytest.raises(DataError, match="no snapshot"):
        StateStore(model).restore(tmp_path / "empty")
    assert not list(tmp_path.glob(".state.*"))  # no temporary files left behind


RESUME = textwrap.dedent("""
    import sys
    import numpy as np
    from stateline.train import load_checkpoint
    from stateline.stream import StateStore, StreamEngine
    model_dir, snapshot_dir, data_path, out_path = sys.argv[1:]
    model, _, _ = load_checkpoint(model_dir)
    store = StateStore(model)
    store.restore(snapshot_dir)
    engine = StreamEngine(model, store)
    data = np.load(data_path)
    ids = [f"stream-{i}" for i in range(data.shape[0])]
    outputs = []
    for t in range(5, data.shape[1]):
        result = engine.step(ids, data[:, t], seq=np.full(len(ids), t))
        assert set(result.status) == {"ok"}, result.status
        outputs.append(result.predictions)
    np.save(out_path, np.stack(outputs, axis=1))
""")


def test_restored_in_a_new_process_continues_as_if_never_stopped(tmp_path: Path) -> None:
    model = make_model(seed=3)
    save_checkpoint(tmp_path / "model", model)
    rng = np.random.default_rng(4)
    data = rng.normal(size=(20, 9, 2)).astype(np.float32)
    np.save(tmp_path / "data.npy", data)
    ids = [f"stream-{i}" for i in range(20)]
    store = StateStore(model)
    engine = StreamEngine(model, store)
    for t in range(5):
        engine.step(ids, data[:, t], seq=np.full(20, t))
    store.snapshot(tmp_path / "snapshot")
    uninterrupted = [
        engine.step(ids, data[:, t], seq=np.full(20, t)).predictions for t in range(5, 9)
    ]

    script = tmp_path / "resume.py"
    script.write_text(RESUME, encoding="utf-8")
    subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "model"),
            str(tmp_path / "snapshot"),
            str(tmp_path / "data.npy"),
            str(tmp_path / "out.npy"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    resumed = np.load(tmp_path / "out.npy")
    np.testing.assert_array_equal(resumed, np.stack(uninterrupted, axis=1))


def test_columns_grow_reset_for_new_streams_and_travel_with_snapshots(tmp_path: Path) -> None:
    model = make_model()
    store = StateStore(model, initial_slots=1, capacity=3)
    store.add_column("total", (2,), fill=-1.0)
    first = store.slots(["a"], create=True)
    store.column("total")[first] = [1.0, 2.0]
    more = store.slots(["b", "c"], create=True)  # grows: the array is replaced
    assert store.column("total").shape == (3, 2)
    assert store.column("total")[first].tolist() == [[1.0, 2.0]]
    assert (store.column("total")[more] == -1.0).all()
    store.snapshot(tmp_path)
    store.delete("a")
    reused = store.slots(["d"], create=True)
    assert (store.column("total")[reused] == -1.0).all()  # a new stream starts from fill
    other = StateStore(model)
    other.add_column("total", (2,), fill=-1.0)
    other.restore(tmp_path)
    assert other.column("total")[other.slot_of("a")].tolist() == [1.0, 2.0]
    with pytest.raises(ConfigError, match="taken"):
        other.add_column("total")
    with pytest.raises(ConfigError, match="columns"):
        other.column("missing")


def test_an_evicted_stream_that_returns_is_told_it_restarted() -> None:
    """#15, finding 4: a stream evicted for capacity comes back as ``restarted``, not ``ok``."""
    clock = Clock()
    model = make_model()
    store = StateStore(model, capacity=2, initial_slots=2, clock=clock)
    engine = StreamEngine(model, store)
    fresh = StreamEngine(model, StateStore(model))
    for seq, key in enumerate("abc"):
        clock.now += 1
        engine.step([key], np.ones((1, 2)), seq=[seq])
    assert "a" not in store and store.evictions == 1
    clock.now += 1
    back = engine.step(["a"], np.full((1, 2), 0.5), seq=[10])
    assert back.status == ["restarted"] and back.applied.tolist() == [True]
    np.testing.assert_allclose(
        back.predictions, fresh.step(["a"], np.full((1, 2), 0.5)).predictions, atol=1e-6
    )
    assert engine.step(["a"], np.ones((1, 2)), seq=[11]).status == ["ok"]
    clock.now += 1
    engine.step(["a", "b"], np.ones((2, 2)), seq=[12, 5])  # c is now the oldest: evicted
    assert engine.step(["c"], np.ones((1, 2)), seq=[3], start=True).status == ["ok"]  # on purpose
    assert engine.step(["new"], np.ones((1, 2)), seq=[0]).status == ["ok"]  # never seen before


def test_a_restart_still_tells_an_evicted_stream_it_restarted(tmp_path: Path) -> None:
    """From a review: the evicted ids were not in the snapshot, so after a restart a stream
    evicted before it came back `ok` on a zero carry (its state lost without a word)."""
    clock = Clock()
    model = make_model()
    store = StateStore(model, capacity=2, initial_slots=2, clock=clock)
    engine = StreamEngine(model, store)
    for seq, key in enumerate(["a", "b", 7]):  # "a" evicted; an int id too
        clock.now += 1
        engine.step([key], np.ones((1, 2)), seq=[seq])
    clock.now += 1
    engine.step(["a"], np.ones((1, 2)), seq=[3])  # "b" evicted now (restarted "a" is held)
    store.snapshot(tmp_path)
    again = StateStore(model, capacity=3, clock=clock)
    assert again.restore(tmp_path) == 2
    restarted = StreamEngine(model, again)
    assert restarted.step(["b"], np.ones((1, 2)), seq=[2]).status == ["restarted"]
    assert restarted.step([7], np.ones((1, 2)), seq=[3]).status == ["ok"]  # held: not lost
    small = StateStore(model, capacity=1)
    with pytest.raises(ConfigError, match=r"(?s)too small for the snapshot.*at least 2"):
        small.restore(tmp_path)
