"""One contract suite over every model that speaks the carry contract.

A new model joins by adding a factory to ``MODELS``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from stateline.keras import KerasModelConfig, KerasSequenceModel, LayerSpec
from stateline.nn import (
    ModelConfig,
    RecurrentStack,
    Seq2Seq,
    Seq2SeqConfig,
    SequenceModel,
    check_carry_contract,
)


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return build()

    return make


MODELS: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "SequenceModel lstm": (
        _seeded(lambda: SequenceModel(ModelConfig(inputs=3, outputs=2, hidden=5))),
        3,
    ),
    "SequenceModel gru 2 layers": (
        _seeded(
            lambda: SequenceModel(ModelConfig(cell="gru", inputs=2, outputs=1, hidden=4, layers=2))
        ),
        2,
    ),
    "RecurrentStack": (
        _seeded(lambda: RecurrentStack(cell="lstm", inputs=2, hidden=3, layers=3)),
        2,
    ),
    "Seq2Seq encoder": (
        _seeded(lambda: Seq2Seq(Seq2SeqConfig(inputs=3, targets=1, hidden=6, layers=2)).encoder),
        3,
    ),
    "KerasSequenceModel lstm+gru+dense": (
        _seeded(
            lambda: KerasSequenceModel(
                KerasModelConfig(
                    inputs=2,
                    layers=(
                        LayerSpec("lstm", 4),
                        LayerSpec("gru", 3, reset_after=False),
                        LayerSpec("dense", 2, activation="tanh"),
                    ),
                )
            )
        ),
        2,
    ),
    "KerasSequenceModel with Masking": (
        _seeded(
            lambda: KerasSequenceModel(
                KerasModelConfig(
                    inputs=1, layers=(LayerSpec("gru", 3), LayerSpec("dense", 1)), mask_value=0.0
                )
            )
        ),
        1,
    ),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("seed", [0, 1])
def test_every_model_keeps_the_carry_contract(name: str, seed: int) -> None:
    build, inputs = MODELS[name]
    check_carry_contract(build(), inputs=inputs, seed=seed)


def test_the_check_catches_a_model_that_outputs_at_masked_steps() -> None:
    class LeakyMask(SequenceModel):  # the bug KerasSequenceModel had: real outputs where masked
        def forward(self, xs, carry=None, *, reset=None, mask=None):  # type: ignore[no-untyped-def]
            hidden, carry = self.stack(xs, carry, reset=reset, mask=mask)
            return self.head(hidden), carry

    with pytest.raises(AssertionError, match="masked steps must output zeros"):
        check_carry_contract(LeakyMask(ModelConfig(inputs=1, outputs=1, hidden=2)), inputs=1)


def test_the_check_catches_a_model_that_ignores_reset() -> None:
    class NoReset(SequenceModel):
        def forward(self, xs, carry=None, *, reset=None, mask=None):  # type: ignore[no-untyped-def]
            return super().forward(xs, carry, mask=mask)

    with pytest.raises(AssertionError, match="reset rows must start from zeros"):
        check_carry_contract(NoReset(ModelConfig(inputs=1, outputs=1, hidden=2)), inputs=1)


def test_the_check_leaves_the_model_and_the_global_generator_alone() -> None:
    model = SequenceModel(ModelConfig(inputs=2, outputs=1, hidden=3)).train()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    state = torch.random.get_rng_state()
    check_carry_contract(model, inputs=2)
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), state)
