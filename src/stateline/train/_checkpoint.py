"""Checkpoints: weights, the model's config as JSON, and optionally a carry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._errors import DataError, describe
from .._files import write_atomically
from ..nn import Carry, ModelConfig, Seq2Seq, Seq2SeqConfig, SequenceModel

__all__ = ["load_checkpoint", "save_checkpoint"]

_MODELS: dict[str, tuple[type[nn.Module], type[Any]]] = {
    "SequenceModel": (SequenceModel, ModelConfig),
    "Seq2Seq": (Seq2Seq, Seq2SeqConfig),
}


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    *,
    carry: Carry | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``config.json``, ``weights.pt`` and (if given) ``carry.pt`` to ``directory``.

    Each file is written to a temporary name and renamed, so a crash never
    leaves a half-written checkpoint behind.
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    kind = type(model).__name__
    if kind not in _MODELS:
        raise DataError(
            describe("model", f"one of {sorted(_MODELS)}", kind, problem="cannot be checkpointed.")
        )
    config = getattr(model, "config").to_dict()  # noqa: B009 - any model with a config
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    document = {
        "format": 1,
        "model": kind,
        "config": config,
        "dtype": dtype,
        "metadata": metadata or {},
    }
    write_atomically(
        folder / "config.json", lambda f: f.write(json.dumps(document, indent=2).encode("utf-8"))
    )
    state = {name: value.detach().cpu() for name, value in model.state_dict().items()}
    write_atomically(folder / "weights.pt", lambda f: torch.save(state, f))
    if carry is not None:
        parts = [part.detach().cpu() for part in carry]
        write_atomically(folder / "carry.pt", lambda f: torch.save(parts, f))
    return folder


def load_checkpoint(
    directory: str | Path, *, device: str = "cpu"
) -> tuple[nn.Module, Carry | None, dict[str, Any]]:
    """Load ``(model, carry or None, metadata)`` written by :func:`save_checkpoint`."""
    folder = Path(directory)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise DataError(
            describe(
                "directory",
                "a checkpoint folder with config.json",
                str(folder),
                problem="is not a checkpoint.",
            )
        )
    document = json.loads(config_path.read_text(encoding="utf-8"))
    model_class, config_class = _MODELS[document["model"]]
    model = model_class(config_class(**document["config"]))
    model.to(getattr(torch, document.get("dtype", "float32")))
    state = torch.load(folder / "weights.pt", map_location=device, weights_only=True)
    model.load_state_dict(state)
    model.to(device)
    model.eval()
    carry_path = folder / "carry.pt"
    carry = None
    if carry_path.is_file():
        carry = tuple(torch.load(carry_path, map_location=device, weights_only=True))
    return model, carry, dict(document.get("metadata", {}))
