"""The model a service serves: loaded from a ``stateline train`` directory or a ``.keras`` file,
with the scaling between the wire's units and the model's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..data import Scaler
from ..train import Forecaster

__all__ = ["ServedModel"]


@dataclass(frozen=True)
class ServedModel:
    """A model in eval mode, its sizes and its scalers (none for a Keras file).

    ``forecasts_inputs``: its outputs forecast its leading inputs, so the
    service can score each step against the forecast made before it.
    """

    model: Any
    inputs: int
    targets: int
    horizon: int
    forecasts_inputs: bool
    columns: tuple[str, ...] = ()
    scaler: Scaler | None = None
    covariate_scaler: Scaler | None = None

    @classmethod
    def load(cls, path: Path) -> ServedModel:
        """A directory written by :meth:`Forecaster.save`, or a Keras 3 ``.keras`` file."""
        if path.suffix == ".keras":
            from ..keras import from_keras

            model = from_keras(path).eval()
            config = model.config
            return cls(
                model=model,
                inputs=config.inputs,
                targets=config.outputs,
                horizon=1,
                forecasts_inputs=config.outputs <= config.inputs,
            )
        forecaster = Forecaster.load(path)
        assert forecaster.model_ is not None
        names = path / "columns.json"
        document = json.loads(names.read_text()) if names.is_file() else {}
        columns = (*document.get("target", []), *document.get("features", []))
        return cls(
            model=forecaster.model_.eval(),
            inputs=forecaster.model_.config.inputs,
            targets=forecaster.targets_,
            horizon=forecaster.config.horizon,
            forecasts_inputs=True,
            columns=tuple(str(name) for name in columns),
            scaler=forecaster.scaler_,
            covariate_scaler=forecaster.covariate_scaler_,
        )

    def scale(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Original units ``(..., inputs)`` -> the model's inputs (targets, then covariates)."""
        if self.scaler is None:
            return values
        flat = values.reshape(-1, values.shape[-1])
        parts = [self.scaler.transform(flat[:, : self.targets])]
        if self.covariate_scaler is not None:
            parts.append(self.covariate_scaler.transform(flat[:, self.targets :]))
        return np.concatenate(parts, axis=1).reshape(values.shape)

    def unscale(self, predictions: NDArray[Any]) -> NDArray[np.float64]:
        """Model outputs ``(..., horizon * targets)`` -> ``(..., horizon, targets)`` in units.

        NaN (events that were not applied) stays NaN.
        """
        shaped = np.asarray(predictions, dtype=np.float64).reshape(
            *predictions.shape[:-1], self.horizon, self.targets
        )
        scaler = self.scaler
        if scaler is None:
            return shaped
        assert scaler.mean_ is not None and scaler.scale_ is not None
        result: NDArray[np.float64] = shaped * scaler.scale_ + scaler.mean_
        return result
