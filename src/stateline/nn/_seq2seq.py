"""Encoder-decoder for multi-step forecasts, with teacher forcing and scheduled sampling."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._errors import ConfigError, ShapeError, describe
from .._validate import require_positive_int
from ._carry import Carry
from ._config import Seq2SeqConfig
from ._stack import RecurrentStack

__all__ = ["Seq2Seq"]


class Seq2Seq(nn.Module):
    """An encoder stack whose carry starts a decoder stack that unrolls ``horizon`` steps.

    The encoder is stateful like any stateline model: pass its carry from
    chunk to chunk. The decoder starts from the encoder's carry and reads, at
    each step, the previous target: the true one with probability
    ``teacher_forcing`` (1.0 = teacher forcing, 0.0 = free running, in between
    = scheduled sampling, drawn per row and step from ``generator``), else its
    own previous prediction. ``start`` is the decoder's first input, usually
    the last observed target.

    >>> model = Seq2Seq(Seq2SeqConfig(inputs=3, targets=1, hidden=8))
    >>> ys, carry = model(torch.zeros(2, 10, 3), start=torch.zeros(2, 1), horizon=4)
    >>> ys.shape
    torch.Size([2, 4, 1])
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = RecurrentStack(
            cell=config.cell,
            inputs=config.inputs,
            hidden=config.hidden,
            layers=config.layers,
            dropout=config.dropout,
        )
        self.decoder = RecurrentStack(
            cell=config.cell,
            inputs=config.targets,
            hidden=config.hidden,
            layers=config.layers,
            dropout=config.dropout,
        )
        self.head = nn.Linear(config.hidden, config.targets)

    def initial_carry(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Carry:
        """The zero carry of the encoder."""
        return self.encoder.initial_carry(batch, device=device, dtype=dtype)

    def forward(
        self,
        xs: Tensor,
        carry: Carry | None = None,
        *,
        start: Tensor,
        horizon: int,
        reset: Tensor | None = None,
        mask: Tensor | None = None,
        targets: Tensor | None = None,
        teacher_forcing: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Carry]:
        """Encode ``xs``, then decode ``horizon`` steps; returns ``(ys, encoder carry)``."""
        _, carry = self.encoder(xs, carry, reset=reset, mask=mask)
        return self.decode(
            carry,
            start,
            horizon,
            targets=targets,
            teacher_forcing=teacher_forcing,
            generator=generator,
        ), carry

    def decode(
        self,
        carry: Carry,
        start: Tensor,
        horizon: int,
        *,
        targets: Tensor | None = None,
        teacher_forcing: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Unroll the decoder from ``carry``; returns ``(batch, horizon, targets)``."""
        self._check(start, horizon, targets, teacher_forcing)
        if targets is not None and teacher_forcing >= 1.0:
            inputs = torch.cat([start[:, None, :], targets[:, :-1]], dim=1)
            hidden, _ = self.decoder(inputs, carry)
            forced: Tensor = self.head(hidden)
            return forced
        outputs = []
        previous = start
        for position in range(horizon):
            carry, hidden = self.decoder.step(carry, previous)
            prediction = self.head(hidden)
            outputs.append(prediction)
            previous = prediction
            if targets is not None and teacher_forcing > 0.0:
                draw = torch.rand(
                    start.shape[0],
                    1,
                    generator=generator,
                    device=generator.device if generator else start.device,
                )
                previous = torch.where(
                    draw.to(start.device) < teacher_forcing, targets[:, position], prediction
                )
        return torch.stack(outputs, dim=1)

    def _check(
        self, start: Tensor, horizon: int, targets: Tensor | None, teacher_forcing: float
    ) -> None:
        require_positive_int("horizon", horizon)
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ConfigError(
                describe(
                    "teacher_forcing",
                    "a probability in [0, 1]",
                    repr(teacher_forcing),
                    problem="is invalid.",
                )
            )
        if start.ndim != 2 or start.shape[1] != self.config.targets:
            raise ShapeError(
                describe(
                    "start",
                    f"(batch, {self.config.targets})",
                    f"shape {tuple(start.shape)}",
                    problem="has the wrong shape.",
                )
            )
        expected = (start.shape[0], horizon, self.config.targets)
        if targets is not None and tuple(targets.shape) != expected:
            raise ShapeError(
                describe(
                    "targets",
                    f"(batch, horizon, targets) = {expected}",
                    f"shape {tuple(targets.shape)}",
                    problem="has the wrong shape.",
                )
            )
        if teacher_forcing > 0.0 and targets is None:
            raise ConfigError(
                describe(
                    "targets",
                    "the true targets when teacher_forcing > 0",
                    "None",
                    problem="is missing.",
                )
            )
