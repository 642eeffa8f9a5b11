"""Recurrent models with output heads: regression, binary and multiclass."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ._carry import Carry, top_hidden
from ._config import ModelConfig
from ._stack import RecurrentStack

__all__ = ["SequenceModel", "last_step"]


class SequenceModel(nn.Module):
    """A recurrent stack and a linear head applied at every step.

    Many-to-many models use every output; many-to-one models read the output
    at the last real step (:func:`last_step`). Outputs are raw: values for
    regression, logits for classification.

    >>> model = SequenceModel(ModelConfig(inputs=2, outputs=3, hidden=8))
    >>> carry = model.initial_carry(5)
    >>> carry, y = model.step(carry, torch.zeros(5, 2))
    >>> y.shape
    torch.Size([5, 3])
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stack = RecurrentStack(
            cell=config.cell,
            inputs=config.inputs,
            hidden=config.hidden,
            layers=config.layers,
            dropout=config.dropout,
        )
        # A zero-rate Dropout still draws a random mask in training mode: skip it.
        self.dropout: nn.Module = nn.Dropout(config.dropout) if config.dropout else nn.Identity()
        self.head = nn.Linear(config.hidden, config.outputs)

    def initial_carry(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Carry:
        """The zero carry of ``batch`` rows."""
        return self.stack.initial_carry(batch, device=device, dtype=dtype)

    def forward(
        self,
        xs: Tensor,
        carry: Carry | None = None,
        *,
        reset: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Carry]:
        """``(batch, time, inputs)`` to ``((batch, time, outputs), carry)``."""
        hidden, carry = self.stack(xs, carry, reset=reset, mask=mask)
        outputs = self.head(self.dropout(hidden))
        if mask is not None:  # masked steps output zeros (the carry contract), not the bias
            outputs = outputs * mask.to(device=outputs.device, dtype=outputs.dtype)[..., None]
        return outputs, carry

    def step(self, carry: Carry, x: Tensor) -> tuple[Carry, Tensor]:
        """One time step: ``x`` ``(batch, inputs)`` to ``(carry, (batch, outputs))``."""
        carry, hidden = self.stack.step(carry, x)
        return carry, self.head(self.dropout(hidden))

    def readout(self, carry: Carry) -> Tensor:
        """The output for the step that produced ``carry``, read from it alone."""
        output: Tensor = self.head(top_hidden(carry))
        return output


def last_step(outputs: Tensor, mask: Tensor | None) -> Tensor:
    """``(batch, time, ...)`` to ``(batch, ...)``: the output at each row's last real step.

    >>> outputs = torch.arange(6.0).reshape(2, 3, 1)
    >>> last_step(outputs, torch.tensor([[True, True, False], [True, True, True]])).flatten()
    tensor([1., 5.])
    """
    if mask is None:
        return outputs[:, -1]
    lengths = mask.to(torch.long).sum(dim=1).clamp(min=1)
    rows = torch.arange(outputs.shape[0], device=outputs.device)
    return outputs[rows, lengths - 1]
