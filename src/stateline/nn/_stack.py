"""LSTM/GRU stacks that take and return the carry, with per-row reset and mask."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._errors import ConfigError, ShapeError, describe
from ._carry import Carry, keep_where, reset_carry

__all__ = ["RecurrentStack"]

CellKind = Literal["lstm", "gru"]

_FUSED_GROUPS = 3
"""Masks with at most this many distinct row lengths run as fused calls per length."""


class RecurrentStack(nn.Module):
    """A stack of LSTM or GRU layers whose state is an explicit carry.

    ``forward(xs, carry, reset=..., mask=...)`` runs a ``(batch, time, inputs)``
    chunk. ``reset`` (``(batch,)`` bool) zeroes the carry of flagged rows
    before the chunk; ``mask`` (``(batch, time)`` bool) marks real steps: a
    masked step leaves that row's carry unchanged and outputs zeros. The fused
    ``torch.nn.LSTM``/``GRU`` (cuDNN on GPU) runs whenever the mask allows it:
    no mask or all real steps directly, real steps followed by padding (the
    lane layout) as a packed sequence, anything else step by step.

    >>> stack = RecurrentStack(cell="lstm", inputs=3, hidden=8, layers=2)
    >>> xs = torch.randn(4, 10, 3)
    >>> hs, carry = stack(xs, stack.initial_carry(4))
    >>> hs.shape, [part.shape for part in carry]
    (torch.Size([4, 10, 8]), [torch.Size([2, 4, 8]), torch.Size([2, 4, 8])])
    """

    def __init__(
        self, *, cell: CellKind, inputs: int, hidden: int, layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if cell not in ("lstm", "gru"):
            raise ConfigError(
                describe("cell", "'lstm' or 'gru'", repr(cell), problem="is invalid.")
            )
        self.cell: CellKind = cell
        self.inputs = inputs
        self.hidden = hidden
        self.layers = layers
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            inputs,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
        )

    def initial_carry(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Carry:
        """The zero carry of ``batch`` rows."""
        weight = next(self.rnn.parameters())
        zeros = torch.zeros(
            self.layers,
            batch,
            self.hidden,
            device=device or weight.device,
            dtype=dtype or weight.dtype,
        )
        return (zeros, zeros.clone()) if self.cell == "lstm" else (zeros,)

    def forward(
        self,
        xs: Tensor,
        carry: Carry | None = None,
        *,
        reset: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Carry]:
        """Run a chunk; returns ``(outputs (batch, time, hidden), carry)``."""
        self._check_inputs(xs, carry, mask, reset)
        batch = xs.shape[0]
        carry = (
            self.initial_carry(batch, device=xs.device, dtype=xs.dtype)
            if carry is None
            else reset_carry(carry, reset)
        )
        if mask is None or bool(mask.all()):
            return self._fused(xs, carry)
        mask = mask.to(torch.bool)
        lengths = mask.sum(dim=1)
        is_prefix = bool(
            (
                mask
                == (torch.arange(mask.shape[1], device=mask.device)[None, :] < lengths[:, None])
            ).all()
        )
        if is_prefix:
            return self._packed(xs, carry, lengths)
        return self._stepwise(xs, carry, mask)

    def step(self, carry: Carry, x: Tensor) -> tuple[Carry, Tensor]:
        """One time step for every row: ``x`` is ``(batch, inputs)``."""
        if x.ndim != 2 or x.shape[1] != self.inputs:
            raise ShapeError(
                describe(
                    "x",
                    f"(batch, {self.inputs}): one step of every row",
                    f"shape {tuple(x.shape)}",
                    problem="has the wrong shape.",
                )
            )
        outputs, carry = self._fused(x[:, None, :], carry)
        return carry, outputs[:, 0]

    def _fused(self, xs: Tensor, carry: Carry) -> tuple[Tensor, Carry]:
        state = carry if self.cell == "lstm" else carry[0]
        outputs, new_state = self.rnn(xs, state)
        return outputs, tuple(new_state) if self.cell == "lstm" else (new_state,)

    def _packed(self, xs: Tensor, carry: Carry, lengths: Tensor) -> tuple[Tensor, Carry]:
        active = torch.nonzero(lengths > 0).flatten()
        outputs = xs.new_zeros(xs.shape[0], xs.shape[1], self.hidden)
        if active.numel() == 0:
            return outputs, carry
        active_lengths = lengths.index_select(0, active).cpu()
        distinct = torch.unique(active_lengths)
        if len(distinct) <= _FUSED_GROUPS:
            # Few lengths (lanes ending together, empty lanes): one fused call per length.
            new_carry = carry
            for length_tensor in distinct:
                length = int(length_tensor)
                rows = active.index_select(
                    0, torch.nonzero(active_lengths == length).flatten().to(active.device)
                )
                group_outputs, group_carry = self._fused(
                    xs.index_select(0, rows)[:, :length],
                    tuple(part.index_select(1, rows) for part in carry),
                )
                outputs[:, :length] = outputs[:, :length].index_copy(0, rows, group_outputs)
                new_carry = tuple(
                    part.index_copy(1, rows, new)
                    for part, new in zip(new_carry, group_carry, strict=True)
                )
            return outputs, new_carry
        sub_carry = tuple(part.index_select(1, active) for part in carry)
        packed = pack_padded_sequence(
            xs.index_select(0, active),
            active_lengths,
            batch_first=True,
            enforce_sorted=False,
        )
        state = sub_carry if self.cell == "lstm" else sub_carry[0]
        packed_out, new_state = self.rnn(packed, state)
        sub_outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=xs.shape[1])
        outputs = outputs.index_copy(0, active, sub_outputs)
        new_parts = tuple(new_state) if self.cell == "lstm" else (new_state,)
        return outputs, tuple(
            part.index_copy(1, active, new) for part, new in zip(carry, new_parts, strict=True)
        )

    def _stepwise(self, xs: Tensor, carry: Carry, mask: Tensor) -> tuple[Tensor, Carry]:
        outputs = []
        for position in range(xs.shape[1]):
            new_carry, output = self.step(carry, xs[:, position])
            real = mask[:, position]
            carry = keep_where(real, new_carry, carry)
            outputs.append(output * real[:, None].to(output.dtype))
        return torch.stack(outputs, dim=1), carry

    def _check_inputs(
        self, xs: Tensor, carry: Carry | None, mask: Tensor | None, reset: Tensor | None = None
    ) -> None:
        for name, value in (("xs", xs), ("mask", mask), ("reset", reset)):
            if value is not None and not isinstance(value, Tensor):
                raise ShapeError(
                    describe(
                        name,
                        "a torch.Tensor",
                        type(value).__name__,
                        problem="is not a tensor.",
                        fix=f"Pass torch.as_tensor({name}).",
                    )
                )
        if xs.ndim != 3 or xs.shape[2] != self.inputs or xs.shape[1] == 0:
            raise ShapeError(
                describe(
                    "xs",
                    f"(batch, time >= 1, {self.inputs})",
                    f"shape {tuple(xs.shape)}",
                    problem="has the wrong shape.",
                )
            )
        weight = next(self.rnn.parameters())
        if xs.dtype != weight.dtype and not torch.is_autocast_enabled(xs.device.type):
            raise ShapeError(
                describe(
                    "xs",
                    f"the model's dtype, {weight.dtype}",
                    f"dtype {xs.dtype}",
                    problem="has the wrong dtype.",
                    fix=f"Pass xs.to({weight.dtype}), or convert the model (model.to(xs.dtype)).",
                )
            )
        if reset is not None and tuple(reset.shape) != (xs.shape[0],):
            raise ShapeError(
                describe(
                    "reset",
                    f"one flag per row: shape ({xs.shape[0]},)",
                    f"shape {tuple(reset.shape)}",
                    problem="has the wrong shape.",
                )
            )
        expected_parts = 2 if self.cell == "lstm" else 1
        shape = (self.layers, xs.shape[0], self.hidden)
        if carry is not None and (
            len(carry) != expected_parts or any(tuple(part.shape) != shape for part in carry)
        ):
            raise ShapeError(
                describe(
                    "carry",
                    f"{expected_parts} tensor(s) of shape {shape}",
                    str([tuple(part.shape) for part in carry]),
                    fix="Create it with initial_carry(batch).",
                    problem="has the wrong shape.",
                )
            )
        if mask is not None and tuple(mask.shape) != tuple(xs.shape[:2]):
            raise ShapeError(
                describe(
                    "mask",
                    f"(batch, time) = {tuple(xs.shape[:2])}",
                    f"shape {tuple(mask.shape)}",
                    problem="has the wrong shape.",
                )
            )
