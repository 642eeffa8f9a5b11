"""Documented sensor faults spliced into a real series, with their labels (for the demo)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["FAULTS", "Fault", "inject_faults"]


@dataclass(frozen=True)
class Fault:
    """One fault: where it starts (share of the part), how long, and what it does."""

    name: str
    at: float
    hours: int
    size: float

    def apply(self, values: NDArray[np.float64], start: int) -> None:
        end = min(len(values), start + self.hours)
        span = values[start:end]
        if self.name == "spikes":  # a burst of alternating spikes (loose connector)
            span += self.size * np.where(np.arange(len(span)) % 2 == 0, 1.0, -0.5)
        elif self.name == "stuck":  # the sensor repeats its last reading
            span[:] = values[start - 1]
        elif self.name == "level shift":  # an offset (miscalibration after maintenance)
            span += self.size
        elif self.name == "drift":  # a slowly growing offset (fouling, ageing)
            span += self.size * np.linspace(0.0, 1.0, len(span))
        elif self.name == "noise":  # a failing amplifier: much noisier readings
            rng = np.random.default_rng(int(self.at * 1000))
            span += rng.normal(scale=self.size, size=span.shape)


FAULTS = (
    Fault("spikes", at=0.12, hours=6, size=8.0),
    Fault("stuck", at=0.30, hours=36, size=0.0),
    Fault("level shift", at=0.48, hours=48, size=5.0),
    Fault("drift", at=0.66, hours=96, size=8.0),
    Fault("noise", at=0.84, hours=48, size=2.5),
)


def inject_faults(
    values: NDArray[np.float64], faults: tuple[Fault, ...] = FAULTS
) -> tuple[NDArray[np.float64], NDArray[np.bool_], list[tuple[str, int, int]]]:
    """A faulty copy of ``values`` (steps,), its 0/1 labels, and ``(name, start, end)`` ranges.

    >>> faulty, labels, spans = inject_faults(np.zeros(1000))
    >>> [name for name, _, _ in spans], int(labels.sum())
    (['spikes', 'stuck', 'level shift', 'drift', 'noise'], 234)
    """
    faulty = np.array(values, dtype=np.float64, copy=True)
    labels = np.zeros(len(faulty), dtype=bool)
    spans = []
    for fault in faults:
        start = int(fault.at * len(faulty))
        end = min(len(faulty), start + fault.hours)
        fault.apply(faulty, start)
        labels[start:end] = True
        spans.append((fault.name, start, end))
    return faulty, labels, spans
