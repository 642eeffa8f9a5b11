"""The state store and the streaming engine: many live streams, one step at a time."""

from ._batcher import EventResult as EventResult
from ._batcher import MicroBatcher as MicroBatcher
from ._detector import StreamDetector as StreamDetector
from ._engine import Status as Status
from ._engine import StepResult as StepResult
from ._engine import StreamEngine as StreamEngine
from ._fingerprint import model_fingerprint as model_fingerprint
from ._store import Column as Column
from ._store import SnapshotMismatchError as SnapshotMismatchError
from ._store import StateStore as StateStore
from ._store import UnknownStreamError as UnknownStreamError

__all__ = [
    "Column",
    "EventResult",
    "MicroBatcher",
    "SnapshotMismatchError",
    "StateStore",
    "Status",
    "StepResult",
    "StreamDetector",
    "StreamEngine",
    "UnknownStreamError",
    "model_fingerprint",
]
