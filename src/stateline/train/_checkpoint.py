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
from ._seeding import kept_random_state

__all__ = ["load_checkpoint", "load_estimator", "read_tensors", "save_checkpoint"]

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
    """Load ``(model, carry or None, metadata)`` written by :func:`save_checkpoint`.

    A damaged or foreign file is a :class:`~stateline.DataError` naming it, and
    the caller's random generators are left as they were (the model is built
    with random weights before the saved ones replace them).
    """
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
    document = _document(config_path)
    with kept_random_state():
        model = _model(document, config_path)
    state = read_tensors(folder / "weights.pt", device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        expected = "the weights of the model config.json describes"
        raise _damaged(folder / "weights.pt", expected, error) from error
    model.to(device)
    model.eval()
    carry_path = folder / "carry.pt"
    carry = None
    if carry_path.is_file():
        parts = read_tensors(carry_path, device)
        carry = _checked_carry(model, parts, carry_path)
    return model, carry, dict(document.get("metadata", {}))


def load_estimator(
    directory: str | Path, estimator: str, *, needs_carry: bool = False
) -> tuple[nn.Module, Carry | None, dict[str, Any]]:
    """:func:`load_checkpoint` of a folder ``estimator.save`` wrote (a DataError otherwise)."""
    model, carry, metadata = load_checkpoint(directory)
    found = metadata.get("estimator")
    if found != estimator:
        raise DataError(
            describe(
                str(directory),
                f"a folder {estimator}.save wrote",
                "a plain checkpoint" if found is None else f"a folder {found}.save wrote",
                problem=f"is not a {estimator}.",
                fix=f"Load it with {found}.load." if found else "Load it with load_checkpoint.",
            )
        )
    if needs_carry and carry is None:
        raise DataError(
            describe(
                str(directory),
                "a file carry.pt (the streams' state after fitting)",
                "none",
                problem="lacks a file.",
                fix="Save the fitted estimator again, or restore the folder from a copy.",
            )
        )
    return model, carry, metadata


def read_tensors(path: Path, device: str | torch.device = "cpu") -> Any:
    """``torch.load`` of a file this package wrote, or a DataError naming it."""
    if not path.is_file():
        raise DataError(
            describe(str(path.parent), f"a file {path.name}", "none", problem="lacks a file.")
        )
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch's own errors say nothing of which file
        raise _damaged(path, "a file torch.save wrote, whole", error) from error


def _document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise _damaged(path, "JSON written by save_checkpoint", error) from error
    if not isinstance(document, dict) or document.get("model") not in _MODELS:
        kind = document.get("model") if isinstance(document, dict) else document
        raise DataError(
            describe(
                str(path),
                f"a checkpoint's config with 'model' one of {sorted(_MODELS)}",
                f"model {kind!r:.80}",
                problem="is not a checkpoint config stateline can load.",
            )
        )
    return document


def _model(document: dict[str, Any], path: Path) -> nn.Module:
    model_class, config_class = _MODELS[document["model"]]
    dtype = getattr(torch, str(document.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise _damaged(path, "'dtype' a torch dtype name, e.g. 'float32'", document.get("dtype"))
    try:
        model = model_class(config_class(**document["config"]))
    except (TypeError, KeyError, ValueError) as error:
        raise _damaged(path, f"'config' the fields of {config_class.__name__}", error) from error
    return model.to(dtype)


def _checked_carry(model: nn.Module, parts: Any, path: Path) -> Carry:
    """The saved carry, when its parts fit the model (any number of rows)."""
    if (
        isinstance(parts, list | tuple)
        and parts
        and all(isinstance(p, torch.Tensor) for p in parts)
    ):
        zero = getattr(model, "initial_carry")(1)  # noqa: B009 - every checkpointed model has one
        fits = len(parts) == len(zero) and all(
            part.ndim == 3 and part.shape[0] == z.shape[0] and part.shape[2] == z.shape[2]
            for part, z in zip(parts, zero, strict=True)
        )
        if fits and len({part.shape[1] for part in parts}) == 1:
            return tuple(parts)
    listed = parts if isinstance(parts, list | tuple) else [parts]
    shapes = [tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__ for p in listed]
    raise _damaged(path, "the carry of the model config.json describes", f"parts {shapes}")


def _damaged(path: Path, expected: str, received: object) -> DataError:
    what = f"{type(received).__name__}: {received}" if isinstance(received, Exception) else received
    return DataError(
        describe(
            str(path),
            expected,
            f"{what}"[:300],
            problem="is damaged or is not this checkpoint's.",
            fix="Save the model again, or restore the folder from a copy.",
        )
    )
