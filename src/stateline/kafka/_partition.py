"""One input partition's state in a worker: its streams, and how far into the input it is."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .._errors import ConfigError, describe
from ..serve._config import ServeConfig
from ..serve._service import StreamService
from ..stream import SnapshotMismatchError
from ._config import WorkerConfig

__all__ = ["PartitionState"]


class PartitionState:
    """The state store (with its detector) of the streams of one input partition, and its
    online learner with ``--online``.

    Its checkpoint is ``<checkpoint_dir>/<topic>-<partition>/state.pt``: every
    carry, seq and detector column, and the input ``offset`` the state covers
    (the next offset to read), written atomically in one file; with online
    learning, the partition's current weights go into the same file (the
    state names the weights it was made with). A new owner restores both and
    reads the input from that offset.
    """

    def __init__(self, config: WorkerConfig, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition
        self.folder = Path(config.checkpoint_dir) / f"{topic}-{partition}"
        try:
            self.service = StreamService(
                ServeConfig(
                    model=config.model,
                    snapshot_dir=str(self.folder),
                    capacity=config.capacity,
                    history=1,  # no dashboard here
                    history_streams=1,
                    max_events=config.max_events,
                    max_steps=config.max_steps,
                    max_event_steps=config.max_event_steps,
                    detector=config.detector,
                    learn=config.learn,
                    online=config.online,
                )
            )
        except SnapshotMismatchError as error:
            raise ConfigError(
                describe(
                    f"checkpoint of {topic}[{partition}]",
                    f"state written with the model at {config.model}",
                    f"a checkpoint in {self.folder} of another model",
                    problem="does not match the model.",
                    fix="Run the worker with the model the checkpoints were made with, or "
                    "point --checkpoint-dir at a fresh folder (the streams then start over).",
                )
                + f"\n  ({error})"
            ) from None
        meta: dict[str, Any] = self.service.store.snapshot_meta
        if meta and (meta.get("topic"), meta.get("partition")) != (topic, partition):
            raise ConfigError(
                describe(
                    f"checkpoint in {self.folder}",
                    f"the state of {topic}[{partition}]",
                    f"the state of {meta.get('topic')}[{meta.get('partition')}]",
                    problem="belongs to another partition.",
                )
            )
        self.checkpoint_offset: int | None = meta.get("offset")
        """The input offset the restored checkpoint covers (None: no checkpoint)."""
        self.next_offset: int | None = self.checkpoint_offset
        """The next input offset to step (None: nothing read yet and no checkpoint)."""
        self.replay_until = 0
        """Input before this offset was answered by an earlier owner: step it, answer nothing."""
        self.committed_offset: int | None = None
        """The input offset up to which answers are known to be committed."""
        self.checkpointed_at = time.time()
        """When the state was last known durable: checkpointed, or restored (or empty) when
        the partition was taken."""

        self._saved_version = self._version()
        self.close = self.service.learn_in_background(
            f"stateline-online-{topic}-{partition}", join_timeout=60
        )
        """Stop this partition's online learning (if any); its state is dropped after."""

    @property
    def streams(self) -> int:
        return len(self.service.store)

    @property
    def changed(self) -> bool:
        """Whether a checkpoint now would differ from the last: new input, or new weights."""
        if self.next_offset is None:
            return False
        return self.next_offset != self.checkpoint_offset or self._version() != self._saved_version

    def _version(self) -> int:
        learner = self.service.learner
        return 0 if learner is None else learner.version

    def checkpoint(self) -> Path | None:
        """Write the state and the offset it covers (nothing read yet: nothing to write)."""
        if self.next_offset is None:
            return None
        version = self._version()  # the weights written now (online learning)
        path = self.service.snapshot(
            meta={"topic": self.topic, "partition": self.partition, "offset": self.next_offset}
        )
        self.checkpoint_offset = self.next_offset
        self._saved_version = version
        self.checkpointed_at = time.time()
        return path
