"""Training configuration: frozen, keyword-only, validated on creation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_number, require_positive_int, require_seed

__all__ = ["TrainConfig"]


def _check(condition: bool, name: str, expected: str, value: object) -> None:
    if not condition:
        raise ConfigError(describe(name, expected, repr(value), problem="is invalid."))


_TINY = math.ulp(0.0)
"""The least number above 0: the bound of options that must be > 0."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """How :func:`stateline.train.fit` trains.

    Attributes:
        epochs: passes over the layout (every lane's carry is reset at each start).
        learning_rate, weight_decay: Adam(W) settings.
        clip_norm: gradient norm clipping; ``None`` disables it.
        schedule: ``"constant"``, ``"cosine"`` (anneal over the epochs) or
            ``"plateau"`` (halve when the monitored loss stops improving).
        patience: stop after this many epochs without improvement of the
            monitored loss (validation if given, else training) and restore
            the best weights; ``None`` trains all epochs.
        min_delta: smallest decrease that counts as an improvement.
        seed: seeds weights' dropout and sampling for reproducible runs.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
        progress: show a rich progress bar with loss and steps/s.
        checkpoint_dir: write the best model there (weights + config JSON), and
            after every epoch the state of the training (``training.pt``).
        resume: continue from ``checkpoint_dir/training.pt`` if there is one (the
            weights, optimizer, schedule, history and random state after its last
            finished epoch), with the same settings otherwise.
    """

    epochs: int = 20
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0
    schedule: Literal["constant", "cosine", "plateau"] = "constant"
    patience: int | None = None
    min_delta: float = 0.0
    seed: int = 0
    device: str = "cpu"
    progress: bool = True
    checkpoint_dir: str | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_positive_int("epochs", self.epochs)
        require_number("learning_rate", self.learning_rate, "a finite number > 0", _TINY, math.inf)
        require_number("weight_decay", self.weight_decay, "a finite number >= 0", 0.0, math.inf)
        if self.clip_norm is not None:
            require_number(
                "clip_norm", self.clip_norm, "None or a finite number > 0", _TINY, math.inf
            )
        require_seed(self.seed)
        _check(
            self.schedule in ("constant", "cosine", "plateau"),
            "schedule",
            "'constant', 'cosine' or 'plateau'",
            self.schedule,
        )
        require_positive_int("patience", self.patience, optional=True)
        require_number("min_delta", self.min_delta, "a finite number >= 0", 0.0, math.inf)
        _check(
            self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:"),
            "device",
            "'cpu', 'cuda', 'cuda:N' or 'auto'",
            self.device,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
