"""Losses masked to real time steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

from .._errors import ShapeError, describe

__all__ = ["masked_loss"]


def masked_loss(task: str, outputs: Tensor, targets: Tensor, weight: Tensor | None) -> Tensor:
    """Mean loss over the steps where ``weight`` (``(batch, time)`` bool) is True.

    ``outputs`` is ``(batch, time, outputs)``. Regression and binary targets are
    ``(batch, time)`` or ``(batch, time, outputs)``; multiclass targets are
    class ids ``(batch, time)``. Padding never contributes. ``weight=None``
    means every step counts (the fast path for chunks without padding).

    >>> out = torch.tensor([[[1.0], [5.0]]])
    >>> masked_loss("regression", out, torch.tensor([[0.0, 0.0]]), torch.tensor([[True, False]]))
    tensor(1.)
    """
    targets = _fitted(task, outputs, targets)
    if weight is None:
        return _unmasked_loss(task, outputs, targets)
    steps = weight.sum()
    if task == "multiclass":
        labels = torch.where(weight, targets.long(), 0)  # what is not counted may hold anything
        per_step = F.cross_entropy(outputs.flatten(0, 1), labels.flatten(), reduction="none").view(
            weight.shape
        )
        return (per_step * weight).sum() / steps.clamp(min=1)
    targets = targets.to(outputs.dtype)
    if task == "binary":
        per_value = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none")
    else:
        per_value = (outputs - targets) ** 2
    total = (per_value * weight[..., None]).sum()
    return total / (steps * outputs.shape[-1]).clamp(min=1)


def _unmasked_loss(task: str, outputs: Tensor, targets: Tensor) -> Tensor:
    if task == "multiclass":
        return F.cross_entropy(outputs.flatten(0, 1), targets.flatten().long())
    targets = targets.to(outputs.dtype)
    if task == "binary":
        return F.binary_cross_entropy_with_logits(outputs, targets)
    return F.mse_loss(outputs, targets)


def _fitted(task: str, outputs: Tensor, targets: Tensor) -> Tensor:
    """``targets`` shaped as ``outputs`` (a last axis of one added), or a ShapeError: the
    losses would broadcast a mismatch into a loss that trains on the wrong thing."""
    if task == "multiclass":
        if targets.shape != outputs.shape[:-1]:
            raise _mismatch("class ids (batch, time)", tuple(outputs.shape[:-1]), targets)
        return targets
    if targets.ndim == outputs.ndim - 1:
        targets = targets.unsqueeze(-1)
    if targets.shape != outputs.shape:
        raise _mismatch("targets", tuple(outputs.shape), targets)
    return targets


def _mismatch(what: str, shape: tuple[int, ...], targets: Tensor) -> ShapeError:
    return ShapeError(
        describe(
            "targets",
            f"{what} of shape {shape}, as the model's outputs",
            f"shape {tuple(targets.shape)}",
            problem="do not fit the model's outputs.",
            fix="Give the model as many outputs as the targets have columns.",
        )
    )


def device_for(name: str) -> torch.device:
    """``"auto"`` picks CUDA when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
