"""Host-to-device inputs of an engine call in one copy: slots and values through one buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

__all__ = ["DeviceInputs"]


class DeviceInputs:
    """Puts a call's slots ``(n,)`` and values ``(n, k, inputs)`` on a device in one copy.

    On the CPU the arrays are wrapped without copying. On another device
    (CUDA) both are written into one reusable staging buffer of bytes (pinned
    when CUDA is available, so the copy runs asynchronously) and viewed back on
    the device as ``int64`` slots and ``dtype`` values: one host-to-device
    copy per call instead of two. The engine reads its outputs back with one
    device-to-host copy, which also orders the next call's reuse of the buffer.

    >>> inputs = DeviceInputs(torch.device("cpu"), torch.float32, pack=True)
    >>> rows, values = inputs(np.array([3, 1]), np.ones((2, 1, 2)))
    >>> rows.tolist(), values.dtype, tuple(values.shape), inputs.copies
    ([3, 1], torch.float32, (2, 1, 2), 1)
    """

    def __init__(
        self, device: torch.device, dtype: torch.dtype, *, pack: bool | None = None
    ) -> None:
        self.device, self.dtype = device, dtype
        self.pack = device.type != "cpu" if pack is None else pack
        self.copies = 0
        """Host-to-device copies made (one per packed call)."""
        self._staging: Tensor | None = None
        try:
            self._numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            self._wire_dtype = dtype
        except TypeError:  # bfloat16 and others NumPy lacks: travel as float32, cast there
            self._numpy_dtype, self._wire_dtype = np.dtype(np.float32), torch.float32

    def __call__(self, slots: NDArray[np.int64], values: NDArray[Any]) -> tuple[Tensor, Tensor]:
        index = np.ascontiguousarray(slots, dtype=np.int64)
        data = np.ascontiguousarray(values, dtype=self._numpy_dtype)
        if not self.pack:
            return (
                torch.from_numpy(index).to(self.device),
                torch.from_numpy(data).to(self.device, self.dtype),
            )
        head, size = index.nbytes, index.nbytes + data.nbytes
        staging = self._buffer(size)
        view = staging.numpy()
        view[:head] = index.view(np.uint8)
        view[head:size] = data.reshape(-1).view(np.uint8)
        moved = staging[:size].to(self.device, non_blocking=True)
        self.copies += 1
        inputs = moved[head:size].view(self._wire_dtype).reshape(data.shape).to(self.dtype)
        return moved[:head].view(torch.int64), inputs

    def _buffer(self, size: int) -> Tensor:
        if self._staging is None or len(self._staging) < size:
            capacity = max(size, 2 * len(self._staging) if self._staging is not None else 4096)
            pinned = torch.cuda.is_available() and self.device.type == "cuda"
            self._staging = torch.empty(capacity, dtype=torch.uint8, pin_memory=pinned)
        return self._staging
