"""Model configurations: frozen, keyword-only, validated on creation."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_positive_int

__all__ = ["ModelConfig", "Seq2SeqConfig", "require_task"]

Task = Literal["regression", "binary", "multiclass"]


def require_task(task: object) -> None:
    """Raise ConfigError unless ``task`` is one of :data:`Task`'s (the model's, or the one
    ``fit`` is told to train for)."""
    if task not in ("regression", "binary", "multiclass"):
        raise ConfigError(
            describe(
                "task", "'regression', 'binary' or 'multiclass'", repr(task), problem="is invalid."
            )
        )


def _dropout(value: object) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ConfigError(
            describe("dropout", "a number in [0, 1)", repr(value), problem="is invalid.")
        )


def _cell(value: object) -> None:
    if value not in ("lstm", "gru"):
        raise ConfigError(describe("cell", "'lstm' or 'gru'", repr(value), problem="is invalid."))


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A recurrent stack with a per-step output head.

    ``task`` picks what the head's outputs mean: ``"regression"`` values,
    ``"binary"`` one logit per output, ``"multiclass"`` one logit per class
    (``outputs`` = number of classes).

    >>> ModelConfig(inputs=3, hidden=0)
    Traceback (most recent call last):
    ...
    stateline._errors.ConfigError: hidden is invalid.
      Expected: an integer >= 1
      Received: 0
    """

    inputs: int
    outputs: int = 1
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    task: Task = "regression"

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("inputs", "outputs", "hidden", "layers"):
            require_positive_int(name, getattr(self, name))
        _cell(self.cell)
        _dropout(self.dropout)
        require_task(self.task)
        if self.task == "multiclass" and self.outputs < 2:
            raise ConfigError(
                describe(
                    "outputs",
                    "the number of classes (>= 2) for multiclass",
                    repr(self.outputs),
                    problem="is invalid.",
                )
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class Seq2SeqConfig:
    """An encoder-decoder: the encoder reads inputs, the decoder unrolls targets."""

    inputs: int
    targets: int = 1
    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("inputs", "targets", "hidden", "layers"):
            require_positive_int(name, getattr(self, name))
        _cell(self.cell)
        _dropout(self.dropout)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
