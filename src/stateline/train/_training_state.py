"""What a training run has done, and the state that lets a stopped run go on (``resume``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import ConfigError, describe
from .._files import write_atomically
from ._checkpoint import read_tensors
from ._config import TrainConfig
from ._distributed import Ranks

__all__ = [
    "EpochRecord",
    "History",
    "load_training_state",
    "same_start",
    "save_training_state",
    "training_state_path",
]


@dataclass(frozen=True)
class EpochRecord:
    """Numbers of one epoch."""

    epoch: int
    train_loss: float
    validation_loss: float | None
    learning_rate: float
    seconds: float
    steps_per_second: float


@dataclass
class History:
    """What happened during :func:`fit`."""

    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = math.inf
    stopped_early: bool = False

    @property
    def train_loss(self) -> list[float]:
        return [record.train_loss for record in self.epochs]

    @property
    def validation_loss(self) -> list[float | None]:
        return [record.validation_loss for record in self.epochs]


def training_state_path(config: TrainConfig) -> Path | None:
    return None if config.checkpoint_dir is None else Path(config.checkpoint_dir) / "training.pt"


def save_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order_generator: np.random.Generator,
    history: History,
    best_state: dict[str, Any] | None,
    waited: int,
    random_states: list[Any],
) -> None:
    """What a restart needs to go on as if nothing happened, after a finished epoch (with
    every rank's PyTorch random state: each draws its own dropout masks)."""
    state = {
        "format": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "order": order_generator.bit_generator.state,
        "torch_rng": random_states,
        "history": {
            "epochs": [dataclasses.asdict(record) for record in history.epochs],
            "best_epoch": history.best_epoch,
            "best_loss": history.best_loss,
            "stopped_early": history.stopped_early,
        },
        "best_state": best_state,
        "waited": waited,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda file: torch.save(state, file))


def load_training_state(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order_generator: np.random.Generator,
    rank: int,
) -> tuple[History, dict[str, Any] | None, int]:
    state = read_tensors(path)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            describe(
                str(path),
                "the training state of this model, optimizer and schedule",
                f"{type(error).__name__}: {error}"[:300],
                problem="does not fit this run.",
                fix="Resume with the settings of the run that wrote it, or set resume=False "
                "(or remove the file) to start afresh.",
            )
        ) from error
    order_generator.bit_generator.state = state["order"]
    random_states = state["torch_rng"]
    if rank < len(random_states):  # a run resumed with more processes: those draw afresh
        torch.set_rng_state(random_states[rank])
    saved = state["history"]
    history = History(
        epochs=[EpochRecord(**record) for record in saved["epochs"]],
        best_epoch=saved["best_epoch"],
        best_loss=saved["best_loss"],
        stopped_early=saved["stopped_early"],
    )
    return history, state["best_state"], int(state["waited"])


def same_start(ranks: Ranks, first: int, saved: Path | None) -> None:
    """Every rank must resume from the same epoch (one ``training.pt`` that all of them read):
    ranks that start apart would pair their collectives up wrongly, silently."""
    starts = ranks.gather(first)
    if len(set(starts)) > 1:
        raise ConfigError(
            describe(
                "checkpoint_dir",
                "one folder every process reads (a shared file system on several machines)",
                f"processes resuming at epochs {starts} from {saved}",
                problem="is not the same for every process.",
                fix="Put checkpoint_dir on storage every machine mounts, or start afresh.",
            )
        )
