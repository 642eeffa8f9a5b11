"""A NumPy single-step kernel for small batches on the CPU.

PyTorch's fused RNN pays a fixed cost of about 150 microseconds per call,
which dominates when one stream (or a few) steps at a time. This kernel holds
the same weights as NumPy arrays and computes one LSTM/GRU step of a stack
plus the linear head with a handful of BLAS calls. It is exact up to float
rounding (tests compare it with the model) and is rebuilt from the model's
weights with :meth:`StepKernel.from_model` whenever they change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

__all__ = ["StepKernel"]

Array = NDArray[Any]


@dataclass(frozen=True)
class _Layer:
    w_input: Array  # (inputs, gates * hidden)
    w_hidden: Array  # (hidden, gates * hidden)
    bias: Array  # (gates * hidden,): LSTM b_ih + b_hh; GRU b_ih with the r, z parts of b_hh
    bias_hidden_new: Array | None  # GRU only: b_hn, applied inside r * (...)


@dataclass(frozen=True)
class StepKernel:
    """One recurrent step of a :class:`~stateline.nn.SequenceModel` in NumPy."""

    cell: str
    hidden: int
    layers: tuple[_Layer, ...]
    head_weight: Array  # (hidden, outputs)
    head_bias: Array  # (outputs,)

    @classmethod
    def from_model(cls, model: nn.Module) -> StepKernel | None:
        """Build the kernel, or None for models it does not cover (then torch is used)."""
        stack = getattr(model, "stack", None)
        head = getattr(model, "head", None)
        rnn = getattr(stack, "rnn", None)
        if not isinstance(rnn, (nn.LSTM, nn.GRU)) or not isinstance(head, nn.Linear):
            return None
        if rnn.bidirectional or int(getattr(rnn, "proj_size", 0)) or not rnn.bias:
            return None
        cell = "lstm" if isinstance(rnn, nn.LSTM) else "gru"
        hidden = rnn.hidden_size
        layers = []
        with torch.no_grad():
            for index in range(rnn.num_layers):
                w_ih = getattr(rnn, f"weight_ih_l{index}").detach().cpu().numpy()
                w_hh = getattr(rnn, f"weight_hh_l{index}").detach().cpu().numpy()
                b_ih = getattr(rnn, f"bias_ih_l{index}").detach().cpu().numpy()
                b_hh = getattr(rnn, f"bias_hh_l{index}").detach().cpu().numpy()
                if cell == "lstm":
                    bias, new = b_ih + b_hh, None
                else:
                    bias = b_ih.copy()
                    bias[: 2 * hidden] += b_hh[: 2 * hidden]
                    new = b_hh[2 * hidden :].copy()
                layers.append(
                    _Layer(np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias, new)
                )
            head_weight = np.ascontiguousarray(head.weight.detach().cpu().numpy().T)
            head_bias = head.bias.detach().cpu().numpy().copy()
        return cls(cell, hidden, tuple(layers), head_weight, head_bias)

    def step(self, parts: list[Array], x: Array) -> tuple[list[Array], Array]:
        """One step: ``parts`` are the carry tensors ``(layers, batch, hidden)`` as arrays.

        Returns the new carry parts and the outputs ``(batch, outputs)``.
        """
        hidden = self.hidden
        inputs = x
        new_h = np.empty_like(parts[0])
        new_c = np.empty_like(parts[1]) if self.cell == "lstm" else None
        for index, layer in enumerate(self.layers):
            h = parts[0][index]
            if self.cell == "lstm":
                c = parts[1][index]
                z = inputs @ layer.w_input
                z += h @ layer.w_hidden
                z += layer.bias
                gates = _sigmoid(z)
                cell_input = np.tanh(z[:, 2 * hidden : 3 * hidden])
                c_next = gates[:, hidden : 2 * hidden] * c
                c_next += gates[:, :hidden] * cell_input
                assert new_c is not None
                new_c[index] = c_next
                new_h[index] = gates[:, 3 * hidden :] * np.tanh(c_next)
            else:
                assert layer.bias_hidden_new is not None
                from_input = inputs @ layer.w_input
                from_input += layer.bias
                from_hidden = h @ layer.w_hidden
                gates = _sigmoid(from_input[:, : 2 * hidden] + from_hidden[:, : 2 * hidden])
                reset, update = gates[:, :hidden], gates[:, hidden:]
                candidate = np.tanh(
                    from_input[:, 2 * hidden :]
                    + reset * (from_hidden[:, 2 * hidden :] + layer.bias_hidden_new)
                )
                new_h[index] = candidate + update * (h - candidate)
            inputs = new_h[index]
        outputs = inputs @ self.head_weight
        outputs += self.head_bias
        new_parts = [new_h] if new_c is None else [new_h, new_c]
        return new_parts, outputs


def _sigmoid(z: Array) -> Array:
    # 0.5 * (1 + tanh(z / 2)) is the logistic function without overflow in exp.
    out = np.tanh(z * 0.5)
    out += 1.0
    out *= 0.5
    return out
