"""Online learning inside the service: its weights on disk, its health and its metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .._errors import ConfigError, describe
from ..online import OnlineLearner
from ._metrics import Registry

__all__ = [
    "load_online_weights",
    "online_failing",
    "online_health",
    "online_metrics",
    "online_weights",
]

WEIGHTS = "online.pt"
"""Where versions before 0.2 kept the online weights (now inside the snapshot, state.pt)."""


def online_weights(learner: OnlineLearner, base: str) -> dict[str, Any]:
    """A copy of the weights learned so far, with their version and time, taken now, and
    ``base``: the fingerprint of the model they were learned from."""
    return {
        "weights": {
            name: value.detach().clone()
            for name, value in learner.engine.model.state_dict().items()
        },
        "version": learner.version,
        "updated_at": learner.updated_at,
        "base": base,
    }


def load_online_weights(
    model: Any,
    learner: OnlineLearner | None,
    snapshot: dict[str, Any] | None,
    directory: Path,
    base: str,
) -> bool:
    """Put the weights learned online in an earlier run into ``model`` (and ``learner``):
    those the snapshot holds (written with it, in one file: a crash cannot part them), else
    an ``online.pt`` of an earlier version. Refused when they were learned from another model
    (a model retrained into the same folder keeps its state folder)."""
    saved = None if snapshot is None else snapshot.get("online")
    legacy = directory / WEIGHTS
    if saved is None and legacy.is_file():
        saved = torch.load(legacy, map_location="cpu", weights_only=True)
    if saved is None:
        return False
    learned_from = saved.get("base")
    if learned_from is not None and learned_from != base:
        raise ConfigError(
            describe(
                "snapshot",
                f"online weights learned from this model (fingerprint {base[:12]})",
                f"weights learned from another model (fingerprint {str(learned_from)[:12]}) "
                f"in {directory}",
                problem="holds what another model learned.",
                fix="Serve the model they were learned from, or start this one with a fresh "
                "--snapshot-dir (its streams then start over).",
            )
        )
    model.load_state_dict(saved["weights"])  # the caller refreshes its engine
    if learner is not None:
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
        "rejected_updates": learner.rejected,
        "excluded_steps": learner.excluded,
        "last_rejection": None if last is None else last.rejected,
        "recomputing": learner.recomputing,
    }


def online_failing(learner: OnlineLearner | None) -> bool:
    """Whether the last update was rejected (learning is not moving: health is degraded)."""
    return (
        learner is not None and bool(learner.history) and learner.history[-1].rejected is not None
    )


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
        ("stateline_online_rejected_updates",
         "Updates not swapped in: the weights were not finite after training.",
         lambda: float(learner.rejected)),
        ("stateline_online_recomputing",
         "1 while an update recomputes carries (snapshots wait for it), else 0.",
         lambda: float(learner.recomputing)),
        ("stateline_online_excluded_steps",
         "Steps kept out of learning for a value past 1e12 (in the model's units).",
         lambda: float(learner.excluded)),
    ):  # fmt: skip
        metrics.gauge(name, help_text, read)
