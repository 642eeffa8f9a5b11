"""Durability of the served state: snapshots, their failures, and how they show."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._files import remove_leftovers
from ._metrics import Registry

LOG = logging.getLogger("stateline.serve")

__all__ = ["Snapshots"]


class Snapshots:
    """Writes a store's snapshots into ``directory`` and keeps count of how that goes.

    It starts by removing the temporary files of writes a killed process left there.

    A failure is logged, counted (``stateline_snapshot_failures_total``), kept
    as the last error, and makes ``failing`` (failures since the last written
    snapshot) non-zero, which turns ``/healthz`` degraded until one succeeds.
    """

    def __init__(self, directory: Path, metrics: Registry) -> None:
        self.directory = directory
        self.metrics = metrics
        left = remove_leftovers(directory)  # of writes a kill -9 cut short (each state-sized)
        if left:
            LOG.warning(
                "removed %d temporary file(s) that a killed process left in %s: %s",
                len(left),
                directory,
                ", ".join(path.name for path in left),
            )
        self.last: float | None = None
        """When the last snapshot was written (None: never, in this process)."""
        self.failures = 0
        """Snapshots that failed, in all."""
        self.failing = 0
        """Snapshots that failed since the last one that was written."""
        self.last_error: str | None = None
        metrics.gauge(
            "stateline_last_snapshot_timestamp_seconds",
            "When the last snapshot was written (0: never).",
            lambda: self.last or 0.0,
        )
        metrics.gauge(
            "stateline_snapshot_failing",
            "Snapshots failed since the last one written (0: durable).",
            lambda: float(self.failing),
        )
        metrics.last_error(
            "stateline_snapshot_last_error",
            "The last snapshot error, as a label (absent: none).",
            lambda: self.last_error,
        )

    def write_taken(self, take: Callable[[], Callable[[Path], Path]]) -> Path:
        """``take()`` copies the state (under the caller's lock) and returns its writer,
        which then writes it into the directory; a failure of either is counted and raised.

        The caller holds its lock inside ``take`` only: the disk (flush, ``fsync``,
        rename) is not waited for by the steps.
        """
        try:
            path = take()(self.directory)
        except Exception as error:
            self.failures += 1
            self.failing += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self.metrics.snapshot_failures.inc()
            LOG.error(
                "snapshot to %s failed (%d in a row): %s; the state since the last "
                "snapshot is not durable",
                self.directory,
                self.failing,
                self.last_error,
            )
            raise
        self.last = time.time()
        self.failing = 0
        self.metrics.snapshots.inc()
        return path

    def health(self) -> dict[str, Any]:
        return {
            "last": self.last,
            "failures": self.failures,
            "failing": self.failing,
            "last_error": self.last_error,
        }
