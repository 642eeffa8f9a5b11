"""The settings of ``stateline serve``: every field is a command-line flag."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_positive_int
from ..anomaly import DetectorConfig
from ..online import OnlineConfig

__all__ = ["ServeConfig"]


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Settings of ``stateline serve``; every field is a command-line flag.

    ``snapshot_dir`` defaults to ``<model>/state``; the state store is written
    there every ``snapshot_interval`` seconds and on graceful shutdown, and read
    back on start (for a ``.keras`` file: ``<model>.state``). ``model`` is a
    directory from ``stateline train`` or a Keras 3 ``.keras`` file (converted
    with :func:`stateline.keras.from_keras`; values then go in unscaled, and
    scores come only when its outputs forecast its leading inputs). ``token``
    guards every write (``None``: the app refuses to start without one; the
    CLI reads ``STATELINE_TOKEN`` or makes one up). ``online`` (``serve
    --online``) keeps the model learning from its streams
    (:class:`~stateline.online.OnlineLearner`); its weights are written in
    every snapshot (``state.pt``) and loaded on start, before the store.
    Reads of stream data (``/v1/streams``, ``/metrics``) need the token too
    unless ``public_reads``; ``/healthz`` stays open and names no server path.
    Requests whose ``Host`` header is not the bound address (or ``localhost``)
    or one of ``allowed_hosts`` (comma-separated) are refused, so a web page
    cannot reach the server through DNS rebinding; bound to ``0.0.0.0`` with
    no ``allowed_hosts``, any host is taken.
    ``threads`` is what ``stateline serve`` gives PyTorch and the BLAS library
    for its process (``None``: half the cores, at least 1, leaving the rest to
    the server's own threads and its clients).
    """

    @property
    def compute_threads(self) -> int:
        """The threads ``threads`` stands for on this machine."""
        return self.threads or max(1, (os.cpu_count() or 1) // 2)

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    snapshot_dir: str | None = None
    snapshot_interval: float = 10.0
    capacity: int = 1_000_000
    ttl: float | None = None
    history: int = 600
    history_streams: int = 1000
    max_body_bytes: int = 1_048_576
    max_events: int = 10_000
    max_steps: int = 65_536
    max_event_steps: int = 4_096
    threads: int | None = None
    public_reads: bool = False
    allowed_hosts: str | None = None
    learn: bool = True
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(reference=200))
    online: OnlineConfig | None = None

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("port", "capacity", "history", "history_streams", "max_body_bytes"):
            require_positive_int(name, getattr(self, name))
        for name in ("max_events", "max_steps", "max_event_steps"):
            require_positive_int(name, getattr(self, name))
        require_positive_int("threads", self.threads, optional=True)
        if not self.snapshot_interval > 0:
            raise ConfigError(
                describe(
                    "snapshot_interval",
                    "seconds > 0",
                    repr(self.snapshot_interval),
                    problem="is invalid.",
                )
            )

    @property
    def state_dir(self) -> Path:
        if self.snapshot_dir:
            return Path(self.snapshot_dir)
        model = Path(self.model)
        return model.with_suffix(".state") if model.suffix == ".keras" else model / "state"
