"""stateline: stateful recurrent sequence models (LSTM/GRU) for time series.

The public API lives here. The data layer (:mod:`stateline.data`) is NumPy only;
the PyTorch parts are imported lazily, so ``import stateline`` and
``import stateline.data`` never pull in a deep-learning framework.

>>> import numpy as np
>>> import stateline
>>> layout = stateline.pack_lanes(np.zeros((100, 3)), lanes=4, chunk=10, split=True)
>>> layout
LaneLayout(sequences=1, lanes=4, chunk=10, chunks=3, efficiency=0.833)
"""

from importlib.metadata import PackageNotFoundError, version

from ._errors import ConfigError as ConfigError
from ._errors import DataError as DataError
from ._errors import NotFittedError as NotFittedError
from ._errors import ShapeError as ShapeError
from ._errors import StatelineError as StatelineError
from .data import Chunk as Chunk
from .data import LaneLayout as LaneLayout
from .data import Placement as Placement
from .data import Scaler as Scaler
from .data import SequenceSet as SequenceSet
from .data import Windows as Windows
from .data import hourly_temperatures as hourly_temperatures
from .data import load_table as load_table
from .data import pack_lanes as pack_lanes
from .data import windows as windows

# The PyTorch layers load on first use, so the data layer stays framework-free.
_LAZY = {
    "ClassifierConfig": "stateline.train",
    "Forecast": "stateline.train",
    "Forecaster": "stateline.train",
    "ForecasterConfig": "stateline.train",
    "SequenceClassifier": "stateline.train",
    "TrainConfig": "stateline.train",
    "ModelConfig": "stateline.nn",
    "Seq2SeqConfig": "stateline.nn",
    "SequenceModel": "stateline.nn",
    "Seq2Seq": "stateline.nn",
    "MicroBatcher": "stateline.stream",
    "StateStore": "stateline.stream",
    "StreamDetector": "stateline.stream",
    "StreamEngine": "stateline.stream",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stateline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


try:
    __version__ = version("stateline")
except PackageNotFoundError:  # pragma: no cover - only when run from a bare source tree
    __version__ = "0+unknown"

__all__ = [
    "Chunk",
    "ClassifierConfig",
    "ConfigError",
    "DataError",
    "Forecast",
    "Forecaster",
    "ForecasterConfig",
    "LaneLayout",
    "MicroBatcher",
    "ModelConfig",
    "NotFittedError",
    "Placement",
    "Scaler",
    "Seq2Seq",
    "Seq2SeqConfig",
    "SequenceClassifier",
    "SequenceModel",
    "SequenceSet",
    "ShapeError",
    "StateStore",
    "StatelineError",
    "StreamDetector",
    "StreamEngine",
    "TrainConfig",
    "Windows",
    "__version__",
    "hourly_temperatures",
    "load_table",
    "pack_lanes",
    "windows",
]
