"""What a model is called with is checked: a clear error naming the argument, never torch's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stateline import ShapeError
from stateline.nn import ModelConfig, SequenceModel


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bad_calls_are_named(cell: str) -> None:
    """From a review: each of these was a bare RuntimeError, ValueError or AttributeError."""
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, cell=cell))  # type: ignore[arg-type]
    xs = torch.zeros(2, 3, 2)
    calls = {
        "xs has the wrong shape": lambda: model(torch.zeros(2, 0, 2)),  # no time step
        "reset has the wrong shape": lambda: model(
            xs, model.initial_carry(2), reset=torch.ones(3, dtype=torch.bool)
        ),
        "mask is not a tensor": lambda: model(xs, mask=np.ones((2, 3), bool)),
        "xs is not a tensor": lambda: model(np.zeros((2, 3, 2), np.float32)),
        "xs has the wrong dtype": lambda: model(xs.double()),
        "x has the wrong shape": lambda: model.step(model.initial_carry(2), torch.zeros(2, 5)),
    }
    for said, call in calls.items():
        with pytest.raises(ShapeError, match=said):
            call()
    outputs, carry = model(xs)
    assert outputs.shape == (2, 3, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts inputs itself
        model(xs.to(torch.bfloat16), carry)
