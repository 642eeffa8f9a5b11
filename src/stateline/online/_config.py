"""Settings of online learning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_positive_int, require_seed

__all__ = ["OnlineConfig"]


@dataclass(frozen=True, kw_only=True)
class OnlineConfig:
    """How an :class:`OnlineLearner` keeps a deployed model learning; validated on creation.

    Memory: every stream in the store keeps its last ``buffer`` steps
    (``buffer x inputs`` float32 plus one flag per step), so the learner's
    memory is ``capacity x buffer x (4 inputs + 1)`` bytes at most; the buffers
    travel with the store's snapshots. Work: an update trains on the recent
    steps of up to ``lanes`` streams (``epochs`` passes of truncated BPTT in
    chunks of ``chunk`` steps) after every ``update_every`` learnable steps,
    and :meth:`OnlineLearner.run` sleeps so that learning takes at most
    ``cpu_share`` of the wall-clock time. ``carry`` is what happens to live
    streams' carries when new weights are swapped in: ``"recompute"`` runs the
    new model over each stream's last ``recompute_steps`` buffered steps
    (default: all of its buffer) from a fresh carry; ``"keep"`` leaves them as
    the old weights made them. Flagged steps are not learned from unless
    ``learn_flagged``.
    """

    buffer: int = 256
    update_every: int = 1000
    lanes: int = 64
    chunk: int = 64
    epochs: int = 1
    learning_rate: float = 1e-3
    clip_norm: float = 1.0
    min_steps: int = 16
    cpu_share: float = 0.25
    carry: Literal["recompute", "keep"] = "recompute"
    recompute_steps: int | None = None
    learn_flagged: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_seed(self.seed)
        for name in ("buffer", "update_every", "lanes", "chunk", "epochs"):
            require_positive_int(name, getattr(self, name))
        require_positive_int("recompute_steps", self.recompute_steps, optional=True)
        if not 2 <= self.min_steps <= self.buffer:
            raise ConfigError(
                describe(
                    "min_steps",
                    f"2 <= min_steps <= buffer ({self.buffer})",
                    repr(self.min_steps),
                    problem="is invalid.",
                )
            )
        for name, low, high in (
            ("learning_rate", 0.0, float("inf")),
            ("clip_norm", 0.0, float("inf")),
        ):
            if not low < getattr(self, name) < high:
                raise ConfigError(
                    describe(name, "a number > 0", repr(getattr(self, name)), problem="is invalid.")
                )
        if not 0.0 < self.cpu_share <= 1.0:
            raise ConfigError(
                describe(
                    "cpu_share", "a share in (0, 1]", repr(self.cpu_share), problem="is invalid."
                )
            )
        if self.carry not in ("recompute", "keep"):
            raise ConfigError(
                describe("carry", "'recompute' or 'keep'", repr(self.carry), problem="is unknown.")
            )
