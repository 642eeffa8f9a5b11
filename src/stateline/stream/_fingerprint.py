"""A fingerprint of a model's weights, to tie saved state to the model that made it."""

from __future__ import annotations

import hashlib
import json

import torch
from torch import nn

__all__ = ["model_fingerprint"]


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the config (if any) and every tensor's name, shape, dtype and bytes.

    >>> a = nn.Linear(2, 2)
    >>> model_fingerprint(a) == model_fingerprint(a), len(model_fingerprint(a))
    (True, 64)
    """
    digest = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        digest.update(json.dumps(config.to_dict(), sort_keys=True).encode("utf-8"))
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
