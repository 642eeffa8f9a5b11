"""Settings every estimator shares: the recurrent model and how it is trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .._errors import ConfigError, describe
from .._validate import plain_numbers, require_seed
from ..nn import ModelConfig
from ..nn._config import Task
from ._config import TrainConfig

__all__ = ["EstimatorConfig"]


@dataclass(frozen=True, kw_only=True)
class EstimatorConfig:
    """Model and training fields of the estimators, validated on creation.

    The model fields (``cell``, ``hidden``, ``layers``, ``dropout``) are those of
    :class:`~stateline.nn.ModelConfig`; the training fields those of
    :class:`TrainConfig`. ``validation_share`` is held out for early stopping.
    """

    cell: Literal["lstm", "gru"] = "lstm"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    epochs: int = 100
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0
    schedule: Literal["constant", "cosine", "plateau"] = "plateau"
    patience: int | None = 10
    validation_share: float = 0.1
    seed: int = 0
    device: str = "cpu"
    progress: bool = True

    def __post_init__(self) -> None:
        plain_numbers(self)
        require_seed(self.seed)
        if not 0.0 <= self.validation_share < 0.5:
            raise ConfigError(
                describe(
                    "validation_share",
                    "a share in [0, 0.5)",
                    repr(self.validation_share),
                    problem="is invalid.",
                )
            )
        self.train_config()
        self.model_config(inputs=1, outputs=1)

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` these settings describe."""
        return TrainConfig(
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            weight_decay=self.weight_decay,
            clip_norm=self.clip_norm,
            schedule=self.schedule,
            patience=self.patience,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
        )

    def model_config(self, *, inputs: int, outputs: int, task: Task = "regression") -> ModelConfig:
        """The :class:`~stateline.nn.ModelConfig` for the given sizes and task."""
        return ModelConfig(
            inputs=inputs,
            outputs=outputs,
            cell=self.cell,
            hidden=self.hidden,
            layers=self.layers,
            dropout=self.dropout,
            task=task,
        )
