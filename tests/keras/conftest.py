"""Keras runs on its torch backend here (installed with stateline's dev extra)."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
