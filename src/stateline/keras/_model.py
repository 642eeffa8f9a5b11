"""``KerasSequenceModel``: a Keras stack of Masking, LSTM, GRU, Dense and Activation layers
rebuilt in PyTorch with an explicit carry, computing what Keras computes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._errors import ConfigError, describe
from ..nn import Carry, keep_where, reset_carry

__all__ = ["ACTIVATIONS", "KerasModelConfig", "KerasSequenceModel", "LayerSpec"]


def _hard_sigmoid(x: Tensor) -> Tensor:
    return torch.nn.functional.relu6(x + 3.0) / 6.0


ACTIVATIONS: dict[str, Any] = {
    "linear": lambda x: x,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "elu": torch.nn.functional.elu,
    "selu": torch.selu,
    "softplus": torch.nn.functional.softplus,
    "softsign": torch.nn.functional.softsign,
    "silu": torch.nn.functional.silu,
    "swish": torch.nn.functional.silu,
    "gelu": lambda x: torch.nn.functional.gelu(x, approximate="none"),
    "exponential": torch.exp,
    "hard_sigmoid": _hard_sigmoid,
    "softmax": lambda x: torch.softmax(x, dim=-1),
}
"""Keras activation names this module computes, with their PyTorch forms."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` is ``lstm``, ``gru``, ``dense`` or ``activation``."""

    kind: str
    units: int = 0
    activation: str = "linear"
    recurrent_activation: str = "sigmoid"
    return_sequences: bool = True
    reset_after: bool = True
    use_bias: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("lstm", "gru", "dense", "activation"):
            raise ConfigError(
                describe(
                    "kind", "lstm, gru, dense or activation", repr(self.kind), problem="is unknown."
                )
            )
        for name in (self.activation, self.recurrent_activation):
            if name not in ACTIVATIONS:
                raise ConfigError(
                    describe(
                        "activation",
                        f"one of {sorted(ACTIVATIONS)}",
                        repr(name),
                        problem="is not supported.",
                    )
                )


@dataclass(frozen=True)
class KerasModelConfig:
    """The layers of a converted Keras model, its input width and its output width."""

    inputs: int
    layers: tuple[LayerSpec, ...]
    mask_value: float | None = None
    outputs: int = field(init=False)
    sequence_output: bool = field(init=False)

    def __post_init__(self) -> None:
        width, recurrent_done = self.inputs, False
        for position, layer in enumerate(self.layers):
            if layer.kind in ("lstm", "gru"):
                if recurrent_done:
                    raise ConfigError(
                        describe(
                            f"layers[{position}]",
                            "recurrent layers before the first one with return_sequences=False",
                            f"{layer.kind} after a layer that returns only its last step",
                            problem="needs a RepeatVector, which is not supported.",
                        )
                    )
                recurrent_done = not layer.return_sequences
            if layer.kind != "activation":
                width = layer.units
        object.__setattr__(self, "outputs", width)
        object.__setattr__(self, "sequence_output", not recurrent_done)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "mask_value": self.mask_value,
            "layers": [asdict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KerasModelConfig:
        layers = tuple(LayerSpec(**layer) for layer in data["layers"])
        return cls(inputs=int(data["inputs"]), layers=layers, mask_value=data["mask_value"])


class KerasSequenceModel(nn.Module):
    """Keras layers in PyTorch, one time step at a time, with the carry as a value.

    The carry holds, per recurrent layer, ``(h, c)`` (LSTM) or ``(h,)`` (GRU),
    each ``(1, batch, units)``. A step whose features all equal ``mask_value``
    (a Keras ``Masking`` layer in the data) keeps the carry and repeats the
    previous output, as Keras does. A step masked by the ``mask`` argument
    follows the carry contract of every stateline model
    (:func:`stateline.nn.check_carry_contract`): it keeps the carry and
    outputs zeros. ``forward`` returns the output of every step; a
    Keras model whose last recurrent layer has ``return_sequences=False``
    returns the last of them (see ``config.sequence_output``).

    >>> config = KerasModelConfig(inputs=2, layers=(LayerSpec("lstm", 4), LayerSpec("dense", 1)))
    >>> model = KerasSequenceModel(config)
    >>> carry, y = model.step(model.initial_carry(3), torch.zeros(3, 2))
    >>> [part.shape for part in carry], y.shape
    ([torch.Size([1, 3, 4]), torch.Size([1, 3, 4])], torch.Size([3, 1]))
    """

    def __init__(self, config: KerasModelConfig) -> None:
        super().__init__()
        self.config = config
        self.weights_ = nn.ParameterList()
        self._slots: list[tuple[int, ...]] = []  # parameter indices per layer
        width = config.inputs
        for layer in config.layers:
            shapes: list[tuple[int, ...]] = []
            if layer.kind in ("lstm", "gru"):
                gates = 4 if layer.kind == "lstm" else 3
                shapes = [(width, gates * layer.units), (layer.units, gates * layer.units)]
                if layer.use_bias:
                    two = layer.kind == "gru" and layer.reset_after
                    shapes.append((2, gates * layer.units) if two else (gates * layer.units,))
                width = layer.units
            elif layer.kind == "dense":
                shapes = [(width, layer.units)] + ([(layer.units,)] if layer.use_bias else [])
                width = layer.units
            first = len(self.weights_)
            for shape in shapes:
                parameter = nn.Parameter(torch.empty(shape))
                nn.init.uniform_(parameter, -0.3, 0.3)
                self.weights_.append(parameter)
            self._slots.append(tuple(range(first, len(self.weights_))))

    # ------------------------------------------------------------------ carry
    def initial_carry(
        self,
        batch: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Carry:
        """The zero carry of ``batch`` rows."""
        parameter = self.weights_[0]
        device = device if device is not None else parameter.device
        dtype = dtype if dtype is not None else parameter.dtype
        parts = []
        for layer in self.config.layers:
            count = {"lstm": 2, "gru": 1}.get(layer.kind, 0)
            parts += [torch.zeros(1, batch, layer.units, device=device, dtype=dtype)] * count
        return tuple(part.clone() for part in parts)

    def step(self, carry: Carry, x: Tensor) -> tuple[Carry, Tensor]:
        """One time step: ``x`` ``(batch, inputs)`` to ``(carry, (batch, outputs))``."""
        keep = None
        if self.config.mask_value is not None:
            keep = (x != self.config.mask_value).any(dim=-1, keepdim=True)
        new_parts: list[Tensor] = []
        position = 0
        hidden = x
        for layer, slots in zip(self.config.layers, self._slots, strict=True):
            weights = [self.weights_[i] for i in slots]
            if layer.kind == "lstm":
                h, c = carry[position][0], carry[position + 1][0]
                h_new, c_new = _lstm(layer, weights, hidden, h, c)
                if keep is not None:
                    h_new, c_new = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
                new_parts += [h_new[None], c_new[None]]
                position += 2
                hidden = h_new
            elif layer.kind == "gru":
                h = carry[position][0]
                h_new = _gru(layer, weights, hidden, h)
                if keep is not None:
                    h_new = torch.where(keep, h_new, h)
                new_parts.append(h_new[None])
                position += 1
                hidden = h_new
            elif layer.kind == "dense":
                hidden = hidden @ weights[0]
                if layer.use_bias:
                    hidden = hidden + weights[1]
                hidden = ACTIVATIONS[layer.activation](hidden)
            else:
                hidden = ACTIVATIONS[layer.activation](hidden)
        return tuple(new_parts), hidden

    def forward(
        self,
        xs: Tensor,
        carry: Carry | None = None,
        *,
        reset: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Carry]:
        """``(batch, time, inputs)`` to ``((batch, time, outputs), carry)``."""
        if carry is None:
            carry = self.initial_carry(xs.shape[0], device=xs.device, dtype=xs.dtype)
        carry = reset_carry(carry, reset)
        outputs = []
        for t in range(xs.shape[1]):
            new, y = self.step(carry, xs[:, t])
            if mask is not None:  # the carry contract: a masked step keeps the carry, outputs 0
                real = mask[:, t].to(device=y.device, dtype=torch.bool)
                carry = keep_where(real, new, carry)
                y = y * real[:, None].to(y.dtype)
            else:
                carry = new
            outputs.append(y)
        return torch.stack(outputs, dim=1), carry


def _lstm(
    layer: LayerSpec, weights: list[Tensor], x: Tensor, h: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    gates = x @ weights[0] + h @ weights[1]
    if layer.use_bias:
        gates = gates + weights[2]
    i, f, g, o = gates.chunk(4, dim=-1)
    gate = ACTIVATIONS[layer.recurrent_activation]
    act = ACTIVATIONS[layer.activation]
    c_new = gate(f) * c + gate(i) * act(g)
    return gate(o) * act(c_new), c_new


def _gru(layer: LayerSpec, weights: list[Tensor], x: Tensor, h: Tensor) -> Tensor:
    units = layer.units
    kernel, recurrent = weights[0], weights[1]
    gate = ACTIVATIONS[layer.recurrent_activation]
    act = ACTIVATIONS[layer.activation]
    matrix_x = x @ kernel
    input_bias = recurrent_bias = None
    if layer.use_bias:
        bias = weights[2]
        input_bias, recurrent_bias = (bias[0], bias[1]) if layer.reset_after else (bias, None)
        matrix_x = matrix_x + input_bias
    x_z, x_r, x_h = torch.split(matrix_x, units, dim=-1)
    if layer.reset_after:
        inner = h @ recurrent
        if recurrent_bias is not None:
            inner = inner + recurrent_bias
        r_z, r_r, r_h = torch.split(inner, units, dim=-1)
        z, r = gate(x_z + r_z), gate(x_r + r_r)
        candidate = act(x_h + r * r_h)
    else:
        inner = h @ recurrent[:, : 2 * units]
        r_z, r_r = torch.split(inner, units, dim=-1)
        z, r = gate(x_z + r_z), gate(x_r + r_r)
        candidate = act(x_h + (r * h) @ recurrent[:, 2 * units :])
    new: Tensor = z * h + (1 - z) * candidate
    return new
