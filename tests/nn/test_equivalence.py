"""The master equivalence properties: whole sequence = chunked = step by step = lanes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import pack_lanes
from stateline.nn import ModelConfig, SequenceModel
from stateline.train import run_layout

TOLERANCE = {"atol": 1e-10, "rtol": 1e-9}

model_configs = st.builds(
    lambda cell, inputs, hidden, layers, outputs: ModelConfig(
        cell=cell, inputs=inputs, hidden=hidden, layers=layers, outputs=outputs
    ),
    cell=st.sampled_from(["lstm", "gru"]),
    inputs=st.integers(1, 4),
    hidden=st.integers(1, 12),
    layers=st.integers(1, 3),
    outputs=st.integers(1, 3),
)


def make_model(config: ModelConfig, seed: int) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(config).double().eval()


@settings(max_examples=40, deadline=None)
@given(
    config=model_configs,
    length=st.integers(1, 40),
    chunk=st.integers(1, 12),
    batch=st.integers(1, 4),
    seed=st.integers(0, 1000),
)
def test_chunked_and_stepwise_equal_the_whole_sequence(
    config: ModelConfig, length: int, chunk: int, batch: int, seed: int
) -> None:
    model = make_model(config, seed)
    xs = torch.randn(
        batch,
        length,
        config.inputs,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(seed),
    )
    with torch.no_grad():
        whole, whole_carry = model(xs, model.initial_carry(batch))

        carry = model.initial_carry(batch)
        chunks = []
        for begin in range(0, length, chunk):
            out, carry = model(xs[:, begin : begin + chunk], carry)
            chunks.append(out)
        torch.testing.assert_close(torch.cat(chunks, dim=1), whole, **TOLERANCE)
        for a, b in zip(carry, whole_carry, strict=True):
            torch.testing.assert_close(a, b, **TOLERANCE)

        carry = model.initial_carry(batch)
        steps = []
        for position in range(length):
            carry, y = model.step(carry, xs[:, position])
            steps.append(y)
        torch.testing.assert_close(torch.stack(steps, dim=1), whole, **TOLERANCE)
        for a, b in zip(carry, whole_carry, strict=True):
            torch.testing.assert_close(a, b, **TOLERANCE)


@settings(max_examples=40, deadline=None)
@given(
    config=model_configs,
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=8),
    lanes=st.integers(1, 4),
    chunk=st.integers(1, 10),
    seed=st.integers(0, 1000),
)
def test_lanes_with_resets_equal_each_sequence_run_alone(
    config: ModelConfig, lengths: list[int], lanes: int, chunk: int, seed: int
) -> None:
    model = make_model(config, seed)
    rng = np.random.default_rng(seed)
    sequences = [rng.normal(size=(n, config.inputs)) for n in lengths]
    layout = pack_lanes(sequences, lanes=lanes, chunk=chunk)
    outputs, _ = run_layout(model, layout)
    # run_layout returns float32 for transport; compare at float32 precision.
    for sequence, streamed in zip(sequences, layout.unpack(outputs), strict=True):
        with torch.no_grad():
            alone, _ = model(torch.as_tensor(sequence)[None])
        np.testing.assert_allclose(streamed, alone[0].numpy(), atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    config=model_configs,
    batch=st.integers(1, 5),
    length=st.integers(1, 12),
    seed=st.integers(0, 1000),
)
def test_any_mask_leaves_masked_rows_unchanged(
    config: ModelConfig, batch: int, length: int, seed: int
) -> None:
    """Arbitrary masks (not only padded tails) match a per-step reference."""
    model = make_model(config, seed)
    generator = torch.Generator().manual_seed(seed)
    xs = torch.randn(batch, length, config.inputs, dtype=torch.float64, generator=generator)
    mask = torch.rand(batch, length, generator=generator) < 0.6
    reset = torch.rand(batch, generator=generator) < 0.5
    start = tuple(
        torch.randn(part.shape, dtype=torch.float64, generator=generator)
        for part in model.initial_carry(batch)
    )
    with torch.no_grad():
        outputs, carry = model(xs, start, reset=reset, mask=mask)
        for row in range(batch):
            state = tuple(part[:, row : row + 1].clone() for part in start)
            if reset[row]:
                state = tuple(torch.zeros_like(part) for part in state)
            for position in range(length):
                if mask[row, position]:
                    state, y = model.step(state, xs[row : row + 1, position])
                    torch.testing.assert_close(outputs[row, position], y[0], **TOLERANCE)
            for a, b in zip(carry, state, strict=True):
                torch.testing.assert_close(a[:, row], b[:, 0], **TOLERANCE)


def test_padded_tail_uses_the_packed_fused_path_and_zero_outputs() -> None:
    model = make_model(ModelConfig(inputs=2, hidden=4), 0)
    xs = torch.randn(3, 5, 2, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        hidden, carry = model.stack(xs, model.initial_carry(3), mask=mask)
        _alone, alone_carry = model.stack(xs[:1, :3])
    assert hidden[0, 3:].abs().sum() == 0 and hidden[2].abs().sum() == 0
    torch.testing.assert_close(carry[0][:, 0], alone_carry[0][:, 0])
    assert carry[0][:, 2].abs().sum() == 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("lengths", [[5, 5, 0, 5], [5, 3, 3, 0], [1, 2, 3, 4, 5, 0]])
def test_padded_tails_of_any_lengths_equal_each_row_alone(cell: str, lengths: list[int]) -> None:
    """Covers the per-length fused groups (<= 3 lengths) and the packed path (more)."""
    model = make_model(ModelConfig(cell=cell, inputs=2, hidden=4, layers=2), 1)
    batch = len(lengths)
    xs = torch.randn(batch, 5, 2, dtype=torch.float64)
    mask = torch.arange(5)[None, :] < torch.tensor(lengths)[:, None]
    start = tuple(
        torch.randn(part.shape, dtype=torch.float64) for part in model.initial_carry(batch)
    )
    with torch.no_grad():
        outputs, carry = model(xs, start, mask=mask)
        for row, length in enumerate(lengths):
            row_carry = tuple(part[:, row : row + 1] for part in start)
            if length:
                alone, row_carry = model(xs[row : row + 1, :length], row_carry)
                torch.testing.assert_close(outputs[row, :length], alone[0], **TOLERANCE)
            for a, b in zip(carry, row_carry, strict=True):
                torch.testing.assert_close(a[:, row], b[:, 0], **TOLERANCE)
