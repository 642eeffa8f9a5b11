from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.nn import ModelConfig, SequenceModel
from stateline.stream._fused import FusedStep, cache_rows


@settings(max_examples=40, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 3),
    hidden=st.integers(1, 9),
    outputs=st.integers(1, 3),
    stored=st.integers(1, 12),
    rows=st.integers(1, 5),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    data=st.data(),
)
def test_fused_step_over_store_slots_equals_the_model_step(
    cell: str,
    layers: int,
    hidden: int,
    outputs: int,
    stored: int,
    rows: int,
    dtype: torch.dtype,
    data: st.DataObject,
) -> None:
    """Chunks of ``rows`` slots in any order: stepped slots change as the model says, others not."""
    seed = data.draw(st.integers(0, 1000))
    torch.manual_seed(seed)
    config = ModelConfig(cell=cell, inputs=3, hidden=hidden, layers=layers, outputs=outputs)  # type: ignore[arg-type]
    model = SequenceModel(config).to(dtype).eval()
    step = FusedStep.from_model(model, device=torch.device("cpu"), dtype=dtype, rows=rows)
    assert step is not None
    active = data.draw(
        st.permutations(range(stored)).map(lambda p: p[: data.draw(st.integers(1, stored))])
    )
    slots = torch.tensor(active, dtype=torch.int64)
    parts = [torch.randn(part.shape, dtype=dtype) for part in model.initial_carry(stored)]
    before = [part.clone() for part in parts]
    x = torch.randn(len(active), 3, dtype=dtype)

    with torch.no_grad():
        want_carry, want = model.step(tuple(part[:, slots] for part in before), x)
        got = step(parts, slots, x)

    tolerance = 1e-12 if dtype == torch.float64 else 2e-6
    torch.testing.assert_close(got, want, atol=tolerance, rtol=tolerance)
    untouched = [slot for slot in range(stored) if slot not in active]
    for part, old, new in zip(parts, before, want_carry, strict=True):
        torch.testing.assert_close(part[:, slots], new, atol=tolerance, rtol=tolerance)
        assert torch.equal(part[:, untouched], old[:, untouched])


def test_models_the_fused_step_does_not_cover_and_chunk_sizes() -> None:
    assert (
        FusedStep.from_model(torch.nn.Linear(2, 2), device=torch.device("cpu"), dtype=torch.float32)
        is None
    )
    assert cache_rows(64) == 4096 and cache_rows(256) == 2048 and cache_rows(512) == 1024
    assert cache_rows(100_000) == 256


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_saturated_gates_stay_finite_and_exact(cell: str) -> None:
    """Large pre-activations: the sigmoid form of tanh saturates to +-1 like tanh."""
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(cell=cell, inputs=2, hidden=4)).eval()  # type: ignore[arg-type]
    step = FusedStep.from_model(model, device=torch.device("cpu"), dtype=torch.float32)
    assert step is not None
    parts = [torch.zeros(part.shape) for part in model.initial_carry(3)]
    x = torch.tensor([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]])
    slots = torch.arange(3)
    with torch.no_grad():
        _, want = model.step(tuple(part.clone() for part in parts), x)
        got = step(parts, slots, x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_building_the_step_leaves_the_model_weights_alone() -> None:
    """One hidden unit and one output make the kernel's transposes views of the weights."""
    model = SequenceModel(ModelConfig(inputs=3, hidden=1, outputs=1)).eval()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    FusedStep.from_model(model, device=torch.device("cpu"), dtype=torch.float32)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
