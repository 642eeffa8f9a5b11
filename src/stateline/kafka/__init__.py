"""Scale-out streaming on Apache Kafka: ``stateline worker`` and its helpers.

A worker consumes events keyed by stream id, keeps each input partition's
streams in their own checkpointed state, and produces one answer per event
(see docs/scaling.md). Needs ``pip install 'stateline[kafka]'``.
"""

from ._config import WorkerConfig as WorkerConfig
from ._messages import OFFSET as OFFSET
from ._messages import PARTITION as PARTITION
from ._messages import ROW as ROW
from ._messages import ROWS as ROWS
from ._messages import encode_event as encode_event
from ._messages import partition_of as partition_of
from ._messages import produce_columns as produce_columns
from ._messages import split_columns as split_columns
from ._mock import MockCluster as MockCluster
from ._reader import Answer as Answer
from ._reader import AnswerReader as AnswerReader
from ._reader import RepeatFilter as RepeatFilter
from ._worker import Worker as Worker

__all__ = [
    "OFFSET",
    "PARTITION",
    "ROW",
    "ROWS",
    "Answer",
    "AnswerReader",
    "MockCluster",
    "RepeatFilter",
    "Worker",
    "WorkerConfig",
    "encode_event",
    "partition_of",
    "produce_columns",
    "split_columns",
]
