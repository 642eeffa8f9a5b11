"""A fused PyTorch single step that reads and writes the state store in place.

For large active sets the engine's time goes to four things: gathering the
streams' carries, the gate matrix products, the gate nonlinearities and
scattering the carries back. :class:`FusedStep` does all four per *chunk* of
rows sized so that the gate buffer stays in cache, into work buffers that are
allocated once and reused, with in-place element-wise operations:

- ``index_select(..., out=buffer)`` gathers a chunk's carries;
- ``addmm`` computes the gates (input and hidden products into one buffer);
- every squashing function is a logistic sigmoid: ``tanh(a) = 2 * sigmoid(2a) - 1``,
  with the factor 2 folded into the weights of the ``tanh`` gates once, because
  PyTorch's CPU sigmoid is several times faster than its tanh;
- ``index_copy_`` scatters the new carries back; the linear head reads the top
  layer's new ``h``.

The result equals :meth:`SequenceModel.step` up to float rounding (tests compare
them). The weights are copied when the step is built: rebuild it (the engine's
``refresh()``) after the model's weights change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ._kernel import StepKernel

__all__ = ["FusedStep", "cache_rows"]


def cache_rows(hidden: int) -> int:
    """Rows per chunk so that a chunk's gates (rows x 4 hidden floats) stay near 2 MiB."""
    return max(256, min(4096, 2**19 // max(hidden, 1)))


@dataclass(frozen=True)
class _FusedLayer:
    w_input: Tensor  # (inputs, gates * hidden), tanh-gate columns doubled
    w_hidden: Tensor  # (hidden, gates * hidden), tanh-gate columns doubled
    bias: Tensor  # (gates * hidden,): as the NumPy kernel's, tanh-gate part doubled
    bias_hidden_new: Tensor | None  # GRU only: 2 * b_hn


class FusedStep:
    """One step of an LSTM/GRU stack plus linear head over store slots, chunk by chunk."""

    def __init__(
        self,
        cell: str,
        hidden: int,
        layers: list[_FusedLayer],
        head_weight: Tensor,
        head_bias: Tensor,
        rows: int,
    ) -> None:
        self.cell = cell
        self.hidden = hidden
        self.layers = layers
        self.head_weight = head_weight
        self.head_bias = head_bias
        self.rows = rows
        self._buffers: dict[str, Tensor] = {}

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        device: torch.device,
        dtype: torch.dtype,
        rows: int | None = None,
    ) -> FusedStep | None:
        """Build the step, or None for models it does not cover (the engine then calls the model).

        ``rows`` is the chunk size; by default :func:`cache_rows` on the CPU and
        one chunk for the whole call on other devices.
        """
        weights = StepKernel.from_model(model)
        if weights is None:
            return None
        hidden = weights.hidden
        gates = 4 if weights.cell == "lstm" else 3
        tanh_columns = slice(2 * hidden, 3 * hidden)  # LSTM g and GRU n are the third gate

        def tensor(array: object) -> Tensor:
            # A copy: the kernel's arrays may share memory with the model's parameters,
            # and the tanh-gate columns are scaled in place below.
            return torch.tensor(array, device=device, dtype=dtype)

        layers = []
        for layer in weights.layers:
            w_input, w_hidden, bias = (
                tensor(layer.w_input),
                tensor(layer.w_hidden),
                tensor(layer.bias),
            )
            assert w_input.shape[1] == gates * hidden
            w_input[:, tanh_columns] *= 2
            w_hidden[:, tanh_columns] *= 2
            bias[tanh_columns] *= 2
            new = None if layer.bias_hidden_new is None else tensor(layer.bias_hidden_new) * 2
            layers.append(_FusedLayer(w_input, w_hidden, bias, new))
        if rows is None:
            rows = cache_rows(hidden) if device.type == "cpu" else 1 << 30
        return cls(
            weights.cell,
            hidden,
            layers,
            tensor(weights.head_weight),
            tensor(weights.head_bias),
            rows,
        )

    def __call__(self, parts: list[Tensor], slots: Tensor, x: Tensor) -> Tensor:
        """Advance ``slots`` of the store's carry ``parts`` by one step of inputs ``x``.

        ``parts`` are the store's tensors ``(layers, slots, hidden)``, updated in
        place; ``x`` is ``(len(slots), inputs)``. Returns the head's outputs.
        """
        count = len(slots)
        outputs = torch.empty(
            (count, self.head_weight.shape[1]), device=x.device, dtype=self.head_weight.dtype
        )
        for begin in range(0, count, self.rows):
            end = min(begin + self.rows, count)
            top = self._chunk(parts, slots[begin:end], x[begin:end])
            torch.addmm(self.head_bias, top, self.head_weight, out=outputs[begin:end])
        return outputs

    # --------------------------------------------------------------- internals
    def _buffer(self, name: str, rows: int, width: int, like: Tensor) -> Tensor:
        """A reusable work buffer ``(rows, width)``; grown when a larger one is needed."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape[0] < rows:
            size = rows if buffer is None else max(rows, min(2 * buffer.shape[0], self.rows))
            buffer = torch.empty((size, width), device=like.device, dtype=like.dtype)
            self._buffers[name] = buffer
        return buffer[:rows]

    def _chunk(self, parts: list[Tensor], slots: Tensor, x: Tensor) -> Tensor:
        rows, hidden = len(slots), self.hidden
        inputs = x.to(parts[0].dtype)
        for index, layer in enumerate(self.layers):
            h = self._buffer(f"h{index}", rows, hidden, parts[0])
            torch.index_select(parts[0][index], 0, slots, out=h)
            if self.cell == "lstm":
                inputs = self._lstm(parts, index, layer, slots, inputs, h)
            else:
                inputs = self._gru(parts, index, layer, slots, inputs, h)
        return inputs

    def _lstm(
        self,
        parts: list[Tensor],
        index: int,
        layer: _FusedLayer,
        slots: Tensor,
        inputs: Tensor,
        h: Tensor,
    ) -> Tensor:
        rows, hidden = len(slots), self.hidden
        c = self._buffer(f"c{index}", rows, hidden, parts[1])
        torch.index_select(parts[1][index], 0, slots, out=c)
        z = self._buffer("gates", rows, 4 * hidden, h)
        torch.addmm(layer.bias, inputs, layer.w_input, out=z)
        z.addmm_(h, layer.w_hidden)
        z.sigmoid_()
        cell_input = z[:, 2 * hidden : 3 * hidden].mul_(2).sub_(1)  # tanh of the g gate
        c.mul_(z[:, hidden : 2 * hidden]).addcmul_(z[:, :hidden], cell_input)
        new_h = h  # the gathered h is no longer needed: reuse its buffer
        torch.mul(c, 2, out=new_h)
        new_h.sigmoid_().mul_(2).sub_(1).mul_(z[:, 3 * hidden :])  # o * tanh(c)
        parts[0][index].index_copy_(0, slots, new_h)
        parts[1][index].index_copy_(0, slots, c)
        return new_h

    def _gru(
        self,
        parts: list[Tensor],
        index: int,
        layer: _FusedLayer,
        slots: Tensor,
        inputs: Tensor,
        h: Tensor,
    ) -> Tensor:
        rows, hidden = len(slots), self.hidden
        assert layer.bias_hidden_new is not None
        from_input = self._buffer("gates", rows, 3 * hidden, h)
        from_hidden = self._buffer("hidden_gates", rows, 3 * hidden, h)
        torch.addmm(layer.bias, inputs, layer.w_input, out=from_input)
        torch.mm(h, layer.w_hidden, out=from_hidden)
        gates = from_input[:, : 2 * hidden].add_(from_hidden[:, : 2 * hidden]).sigmoid_()
        reset, update = gates[:, :hidden], gates[:, hidden:]
        candidate = from_input[:, 2 * hidden :]
        candidate.addcmul_(reset, from_hidden[:, 2 * hidden :].add_(layer.bias_hidden_new))
        candidate.sigmoid_().mul_(2).sub_(1)  # tanh of the n gate
        new_h = h.sub_(candidate).mul_(update).add_(candidate)  # n + z * (h - n)
        parts[0][index].index_copy_(0, slots, new_h)
        return new_h
