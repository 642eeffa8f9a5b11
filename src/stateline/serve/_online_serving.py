"""Online learning inside the service: its weights on disk, its health and its metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._files import write_atomically
from ..online import OnlineLearner
from ._metrics import Registry

__all__ = [
    "load_online_weights",
    "online_health",
    "online_metrics",
    "online_weights",
    "save_online_weights",
    "write_online_weights",
]

WEIGHTS = "online.pt"


def save_online_weights(learner: OnlineLearner, directory: Path) -> None:
    """The weights learned so far, their version and time, atomically into ``online.pt``."""
    write_online_weights(online_weights(learner), directory)


def online_weights(learner: OnlineLearner) -> dict[str, Any]:
    """A copy of the weights learned so far, with their version and time, taken now."""
    return {
        "weights": {
            name: value.detach().clone()
            for name, value in learner.engine.model.state_dict().items()
        },
        "version": learner.version,
        "updated_at": learner.updated_at,
    }


def write_online_weights(saved: dict[str, Any], directory: Path) -> None:
    """Write :func:`online_weights` atomically into ``directory/online.pt``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_atomically(directory / WEIGHTS, lambda file: torch.save(saved, file))


def load_online_weights(learner: OnlineLearner, directory: Path) -> bool:
    """Weights learned online in an earlier run, if ``directory`` holds them."""
    path = directory / WEIGHTS
    if not path.is_file():
        return False
    saved = torch.load(path, map_location="cpu", weights_only=True)
    learner.engine.model.load_state_dict(saved["weights"])
    learner.engine.refresh()
    learner.adopt(saved["version"], saved["updated_at"])
    return True


def online_health(learner: OnlineLearner | None) -> dict[str, Any] | None:
    if learner is None:
        return None
    last = learner.history[-1] if learner.history else None
    return {
        "version": learner.version,
        "updated_at": learner.updated_at,
        "pending_steps": learner.pending,
        "learning_share": round(learner.learning_share, 4),
        "last_loss_before": None if last is None else last.loss_before,
        "last_loss_after": None if last is None else last.loss_after,
    }


def online_metrics(learner: OnlineLearner, metrics: Registry) -> None:
    """Gauges of the learner, read at scrape time."""

    def last(name: str) -> Callable[[], float]:
        return lambda: getattr(learner.history[-1], name) if learner.history else float("nan")

    for name, help_text, read in (
        ("stateline_online_updates", "Model updates swapped in (the model version).",
         lambda: float(learner.version)),
        ("stateline_online_last_update_timestamp_seconds",
         "When the model was last updated (0: never).", lambda: learner.updated_at or 0.0),
        ("stateline_online_pending_steps", "Learnable steps since the last update.",
         lambda: float(learner.pending)),
        ("stateline_online_learning_share", "Share of wall time spent learning.",
         lambda: learner.learning_share),
        ("stateline_online_last_loss_before", "Last update's batch loss before training.",
         last("loss_before")),
        ("stateline_online_last_loss_after", "Last update's batch loss after training.",
         last("loss_after")),
        ("stateline_online_last_update_seconds", "How long the last update took.",
         last("seconds")),
    ):  # fmt: skip
        metrics.gauge(name, help_text, read)
