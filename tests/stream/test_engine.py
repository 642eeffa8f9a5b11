from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ShapeError
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import StateStore, Status, StreamEngine


def make_model(cell: str = "lstm", layers: int = 1, seed: int = 0) -> SequenceModel:
    torch.manual_seed(seed)
    config = ModelConfig(cell=cell, inputs=3, hidden=5, layers=layers, outputs=2)  # type: ignore[arg-type]
    return SequenceModel(config).double().eval()


class CustomModel(torch.nn.Module):
    """A user's own model speaking the carry contract, which no engine fast path covers."""

    def __init__(self, inner: SequenceModel) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def initial_carry(self, batch: int, **kwargs: object) -> tuple[torch.Tensor, ...]:
        return self.inner.initial_carry(batch, **kwargs)  # type: ignore[arg-type]

    def step(self, carry: tuple[torch.Tensor, ...], x: torch.Tensor) -> tuple[object, torch.Tensor]:
        return self.inner.step(carry, x)

    def forward(
        self, xs: torch.Tensor, carry: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, object]:
        return self.inner(xs, carry)


def offline(model: SequenceModel, series: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out, _ = model(torch.as_tensor(series)[None])
    return out[0].numpy()


@settings(max_examples=30, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 2),
    lengths=st.lists(st.integers(1, 12), min_size=1, max_size=7),
    seed=st.integers(0, 10_000),
    max_batch=st.integers(1, 5),
    kernel_batch=st.sampled_from([0, 2, 256]),
    custom=st.booleans(),
)
def test_streamed_predictions_equal_offline_whole_sequences(
    cell: str,
    layers: int,
    lengths: list[int],
    seed: int,
    max_batch: int,
    kernel_batch: int,
    custom: bool,
) -> None:
    """Many interleaved streams, random arrival order and batch composition.

    ``kernel_batch`` 0 forces the fused PyTorch step, 256 the NumPy kernel, 2 a
    mix; ``custom`` wraps the model so that neither covers it and the engine
    calls the model's own ``step``.
    """
    model = make_model(cell, layers, seed % 7)
    rng = np.random.default_rng(seed)
    series = {f"s{i}": rng.normal(size=(n, 3)) for i, n in enumerate(lengths)}
    stepped = CustomModel(model) if custom else model
    engine = StreamEngine(
        stepped,
        StateStore(stepped, initial_slots=2),
        max_batch=max_batch,
        kernel_batch=kernel_batch,
        cache_rows=int(rng.integers(1, 4)),
    )
    position = dict.fromkeys(series, 0)
    streamed = {key: [] for key in series}
    while any(position[k] < len(series[k]) for k in series):
        waiting = [k for k in series if position[k] < len(series[k])]
        chosen = list(
            rng.choice(waiting, size=int(rng.integers(1, len(waiting) + 1)), replace=False)
        )
        # Sometimes the same stream sends two steps in one call: they apply in order.
        if rng.random() < 0.3 and position[chosen[0]] + 1 < len(series[chosen[0]]):
            chosen.append(chosen[0])
        rows, seqs, order = [], [], []
        for key in chosen:
            rows.append(series[key][position[key]])
            seqs.append(position[key])
            order.append(key)
            position[key] += 1
        result = engine.step(order, np.stack(rows), seq=seqs)
        assert set(result.status) <= {Status.OK}
        for key, prediction in zip(order, result.predictions, strict=True):
            streamed[key].append(prediction)
    for key, values in series.items():
        np.testing.assert_allclose(
            np.stack(streamed[key]), offline(model, values), atol=1e-5, rtol=1e-5
        )


def test_k_steps_per_event_equal_single_steps() -> None:
    model = make_model()
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(4, 6, 3))
    engine = StreamEngine(model, StateStore(model))
    first = engine.step(list("abcd"), xs[:, :4], seq=[0, 0, 0, 0])
    second = engine.step(list("abcd"), xs[:, 4:], seq=[4, 4, 4, 4])
    assert first.predictions.shape == (4, 4, 2)
    for row in range(4):
        expected = offline(model, xs[row])
        np.testing.assert_allclose(first.predictions[row], expected[:4], atol=1e-5)
        np.testing.assert_allclose(second.predictions[row], expected[4:], atol=1e-5)
    assert engine.store.last_seq[engine.store.slot_of("a")] == 5


def test_sequence_numbers_make_events_idempotent() -> None:
    model = make_model()
    engine = StreamEngine(model, StateStore(model))
    x = np.ones((1, 3))
    first = engine.step(["a"], x, seq=[0])
    carry = engine.store.carry_of("a")
    again = engine.step(["a"], x, seq=[0])
    assert again.status == [Status.DUPLICATE]
    np.testing.assert_array_equal(again.predictions, first.predictions)
    assert all(torch.equal(a, b) for a, b in zip(carry, engine.store.carry_of("a"), strict=True))
    engine.step(["a"], x, seq=[1])
    stale = engine.step(["a"], x, seq=[0])
    assert stale.status == [Status.STALE] and np.isnan(stale.predictions).all()
    gap = engine.step(["a"], x, seq=[5])
    assert gap.status == [Status.GAP] and not np.isnan(gap.predictions).any()
    overlap = engine.step(["a"], np.ones((1, 2, 3)), seq=[5])
    assert overlap.status == [Status.ERROR] and "overlaps" in overlap.errors[0]


def test_a_step_past_the_largest_seq_is_refused_alone_not_wrapped_or_raised() -> None:
    """The store keeps seqs as int64: 2**63 - 1 plus one step must not wrap to a negative
    number (general path) or raise OverflowError (the single-event fast path)."""
    model = make_model()
    engine = StreamEngine(model, StateStore(model))
    largest = 2**63 - 1
    one, two = np.ones((2, 3)), np.ones((2, 2, 3))
    assert engine.step(["a", "b"], one, seq=[largest, 5]).status == ["ok", "ok"]
    alone = engine.step(["a"], np.ones((1, 3)))  # the fast path's case: no seq, one step
    assert alone.status == [Status.ERROR] and "largest sequence number" in alone.errors[0]
    both = engine.step(["a", "b"], one)  # no seq: a would pass it, b goes on
    assert both.status == ["error", "ok"] and engine.store.last_seq[0] == largest
    k = engine.step(["c", "d"], two, seq=[largest, largest - 1])  # k steps: the last one counts
    assert k.status == ["error", "ok"]


def test_start_resets_and_end_frees() -> None:
    model = make_model()
    engine = StreamEngine(model, StateStore(model))
    rng = np.random.default_rng(2)
    history = rng.normal(size=(3, 3))
    engine.step(["a"] * 3, history)  # three steps of one stream in one call
    fresh = engine.step(["a"], history[:1], start=True)
    np.testing.assert_allclose(fresh.predictions[0], offline(model, history[:1])[0], atol=1e-6)
    engine.step(["a"], history[:1], end=True)
    assert "a" not in engine.store


def test_a_bad_event_is_rejected_alone() -> None:
    model = make_model()
    engine = StreamEngine(model, StateStore(model), strict=True)
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(3, 3))
    engine.step(["a", "b", "c"], xs, start=True)
    before = engine.store.carry_of("b")
    bad = xs.copy()
    bad[1, 2] = np.nan
    result = engine.step(["a", "b", "c", "zzz"], np.vstack([bad, xs[:1]]))
    assert result.status == [Status.OK, Status.ERROR, Status.OK, Status.ERROR]
    assert "NaN" in result.errors[1] and "unknown" in result.errors[3]
    assert all(torch.equal(p, q) for p, q in zip(before, engine.store.carry_of("b"), strict=True))
    assert "zzz" not in engine.store
    ragged = engine.step(["a", "b"], [xs[0], xs[1, :2]])
    assert ragged.status == [Status.OK, Status.ERROR] and "3 features" in ragged.errors[1]
    # The good streams went on as if the bad events had never been sent.
    histories = {"a": [xs[0], bad[0], xs[0], xs[0]], "c": [xs[2], bad[2], xs[0]]}
    for key, history in histories.items():
        last = engine.step([key], xs[:1]).predictions[0]
        np.testing.assert_allclose(last, offline(model, np.stack(history))[-1], atol=1e-5)


def test_whole_call_shape_errors() -> None:
    model = make_model()
    engine = StreamEngine(model, StateStore(model))
    with pytest.raises(ShapeError, match="3 features"):
        engine.step(["a"], np.ones((1, 4)))
    with pytest.raises(ShapeError, match="one row of features per stream"):
        engine.step(["a", "b"], np.ones((1, 3)))
    with pytest.raises(ShapeError, match="seq"):
        engine.step(["a"], np.ones((1, 3)), seq=[1, 2])


def test_single_event_fast_path_matches_the_general_path_and_offline() -> None:
    model = make_model("gru", 2)
    rng = np.random.default_rng(5)
    series = rng.normal(size=(12, 3))
    engine = StreamEngine(model, StateStore(model))
    outputs = [engine.step(["a"], series[:1], seq=[0], start=True).predictions[0]]  # general
    for t in range(1, 12):
        if t % 3 == 0:  # a two-event call takes the general path
            result = engine.step(["a", "other"], np.stack([series[t], series[t]]), seq=[t, 0])
        else:  # one known stream, next seq: the fast path
            result = engine.step(["a"], series[t : t + 1], seq=[t])
        assert result.status[0] == Status.OK
        outputs.append(result.predictions[0])
    np.testing.assert_allclose(np.stack(outputs), offline(model, series), atol=1e-6)
    repeat = engine.step(["a"], series[11:12], seq=[11])
    assert repeat.status == [Status.DUPLICATE]
    np.testing.assert_array_equal(repeat.predictions[0], outputs[-1])
    unsequenced = engine.step(["a"], series[:1])
    assert unsequenced.status == [Status.OK]
    assert engine.store.last_seq[engine.store.slot_of("a")] == 12


def test_the_engine_leaves_its_callers_model_mode_alone() -> None:
    """#15, finding 17: a model in training mode stays so; steps still run without dropout."""
    torch.manual_seed(0)
    config = ModelConfig(inputs=2, hidden=6, outputs=1, layers=2, dropout=0.5)
    model = SequenceModel(config).train()
    reference = copy.deepcopy(model).eval()
    engine = StreamEngine(model, StateStore(model))
    expected = StreamEngine(reference, StateStore(reference))
    x = np.random.default_rng(0).normal(size=(2, 3, 2)).astype(np.float32)
    for _ in range(2):
        got = engine.step(["a", "b"], x).predictions
        want = expected.step(["a", "b"], x).predictions
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert model.training


def test_inputs_packed_into_one_host_to_device_copy_step_the_same() -> None:
    """#16: off the CPU, slots and values travel in one copy (DeviceInputs); forced on the CPU
    here, the packed path gives exactly what the direct one gives, one copy per call."""
    from stateline.stream._transfer import DeviceInputs

    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=3, hidden=5, outputs=2)).eval()
    direct = StreamEngine(model, StateStore(model), kernel_batch=0)  # the PyTorch path
    packed = StreamEngine(model, StateStore(model), kernel_batch=0)
    packed._device_inputs = DeviceInputs(torch.device("cpu"), torch.float32, pack=True)
    rng = np.random.default_rng(1)
    ids = [f"s{i}" for i in range(40)]
    for step in range(6):
        chosen = list(rng.choice(ids, size=17, replace=False))
        steps = 1 if step % 2 == 0 else 3
        x = rng.normal(size=(17, steps, 3)).astype(np.float32)
        a = direct.step(chosen, x, seq=[step * 3] * 17)
        b = packed.step(chosen, x, seq=[step * 3] * 17)
        np.testing.assert_array_equal(a.predictions, b.predictions)
    for stream in ids[:5]:
        if stream in direct.store:
            for left, right in zip(
                direct.store.carry_of(stream), packed.store.carry_of(stream), strict=True
            ):
                assert torch.equal(left, right)
    assert packed._device_inputs.copies == 6


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_step_results_carry_the_slots_a_lookup_would_give(data: st.DataObject) -> None:
    """#16: StepResult.slots (so callers skip a lookup) is the store's lookup after the call,
    through starts, ends, resends, NaN rows and new streams, for the engine and the detector."""
    from stateline.anomaly import DetectorConfig
    from stateline.stream import StreamDetector

    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=4, outputs=1)).eval()
    engine = StreamEngine(model, StateStore(model, capacity=6))
    detector = StreamDetector(
        StreamEngine(model, StateStore(model)), DetectorConfig(reference=4, warmup=1)
    )
    for _call in range(data.draw(st.integers(1, 6))):
        ids = data.draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=5, unique=True))
        x = np.array(
            data.draw(
                st.lists(
                    st.sampled_from([0.5, -1.0, float("nan")]), min_size=len(ids), max_size=len(ids)
                )
            )
        )[:, None]
        start = data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        end = data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        seq = [data.draw(st.integers(0, 3)) for _ in ids]
        for stepper in (engine, detector):
            result = stepper.step(ids, x, seq=seq, start=start, end=end)
            store = stepper.engine.store if stepper is detector else engine.store
            assert result.slots is not None
            np.testing.assert_array_equal(result.slots, store.lookup(ids))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pack", [False, True])
def test_device_inputs_keep_slots_and_values_for_every_store_dtype(
    dtype: torch.dtype, pack: bool
) -> None:
    """bfloat16 has no NumPy type: its values travel as float32 and are cast on the device."""
    from stateline.stream._transfer import DeviceInputs

    rows, values = DeviceInputs(torch.device("cpu"), dtype, pack=pack)(
        np.array([2, 0]), np.arange(6.0).reshape(2, 1, 3)
    )
    assert rows.tolist() == [2, 0] and values.dtype == dtype
    assert values.float().flatten().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_an_id_that_cannot_be_one_and_events_of_no_steps_are_named() -> None:
    """From a review: a bare TypeError (unhashable type) and torch's sequence-length error."""
    model = SequenceModel(ModelConfig(inputs=1, hidden=3)).eval()
    engine = StreamEngine(model, StateStore(model))
    with pytest.raises(ShapeError, match=r"stream_ids\[1\] cannot be a stream id"):
        engine.step(["a", ["x"], "b"], np.zeros((3, 1)))
    assert len(engine.store) == 0
    with pytest.raises(ShapeError, match="holds no steps"):
        engine.step(["a"], np.zeros((1, 0, 1)))
