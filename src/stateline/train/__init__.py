"""Truncated-BPTT training over lane layouts, checkpoints, and the estimators."""

from ._checkpoint import load_checkpoint as load_checkpoint
from ._checkpoint import save_checkpoint as save_checkpoint
from ._classifier import ClassifierConfig as ClassifierConfig
from ._classifier import SequenceClassifier as SequenceClassifier
from ._config import TrainConfig as TrainConfig
from ._estimator_config import EstimatorConfig as EstimatorConfig
from ._forecaster import Forecast as Forecast
from ._forecaster import Forecaster as Forecaster
from ._forecaster import ForecasterConfig as ForecasterConfig
from ._tbptt import evaluate as evaluate
from ._tbptt import fit as fit
from ._tbptt import last_step_mask as last_step_mask
from ._tbptt import run_layout as run_layout
from ._tbptt import tbptt_chunk as tbptt_chunk
from ._training_state import EpochRecord as EpochRecord
from ._training_state import History as History

__all__ = [
    "ClassifierConfig",
    "EpochRecord",
    "EstimatorConfig",
    "Forecast",
    "Forecaster",
    "ForecasterConfig",
    "History",
    "SequenceClassifier",
    "TrainConfig",
    "evaluate",
    "fit",
    "last_step_mask",
    "load_checkpoint",
    "run_layout",
    "save_checkpoint",
    "tbptt_chunk",
]
