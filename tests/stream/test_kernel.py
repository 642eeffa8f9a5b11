from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline.nn import ModelConfig, SequenceModel
from stateline.stream._kernel import StepKernel


@settings(max_examples=40, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 3),
    inputs=st.integers(1, 5),
    hidden=st.integers(1, 9),
    outputs=st.integers(1, 3),
    batch=st.integers(1, 6),
    seed=st.integers(0, 1000),
)
def test_kernel_step_equals_the_model_step(
    cell: str, layers: int, inputs: int, hidden: int, outputs: int, batch: int, seed: int
) -> None:
    torch.manual_seed(seed)
    config = ModelConfig(
        cell=cell,
        inputs=inputs,
        hidden=hidden,
        layers=layers,  # type: ignore[arg-type]
        outputs=outputs,
    )
    model = SequenceModel(config).double().eval()
    kernel = StepKernel.from_model(model)
    assert kernel is not None
    generator = torch.Generator().manual_seed(seed)
    carry = tuple(
        torch.randn(part.shape, dtype=torch.float64, generator=generator)
        for part in model.initial_carry(batch)
    )
    x = torch.randn(batch, inputs, dtype=torch.float64, generator=generator)
    with torch.no_grad():
        expected_carry, expected = model.step(carry, x)
    parts, out = kernel.step([part.numpy() for part in carry], x.numpy())
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-12)
    for got, want in zip(parts, expected_carry, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-12)


def test_models_the_kernel_does_not_cover_fall_back() -> None:
    assert StepKernel.from_model(torch.nn.Linear(2, 2)) is None
