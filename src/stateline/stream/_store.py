"""``StateStore``: the carries of very many streams in contiguous slots."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from .._errors import ConfigError, DataError, StatelineError, describe
from .._files import write_atomically
from .._validate import require_positive_int
from ..nn import Carry, CarryModel
from ._fingerprint import model_fingerprint

__all__ = ["Column", "SnapshotMismatchError", "StateStore", "UnknownStreamError"]

StreamId = str | int
StreamIds = Sequence[StreamId] | NDArray[np.object_] | NDArray[np.integer[Any]]
"""Stream ids: a list, or a 1-D NumPy array (object or integer)."""
EvictionCallback = Callable[[StreamId, Carry], None]

NO_SEQUENCE = -1


class UnknownStreamError(StatelineError, KeyError):
    """A stream id that the store does not hold."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class SnapshotMismatchError(StatelineError, ValueError):
    """A snapshot taken with another model (or layout) than the one restoring it."""


class Column:
    """A typed handle on one per-stream column of a :class:`StateStore`; index it like the array.

    :meth:`StateStore.add_column` returns one. The handle outlives the store's
    growth (which replaces the array), so keep the handle, not the array.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> store = StateStore(SequenceModel(ModelConfig(inputs=1, hidden=2)), initial_slots=2)
    >>> total = store.add_column("total", dtype=np.int64)
    >>> slots = store.slots(["a", "b", "c"], create=True)  # grows past 2 slots
    >>> total[slots] += 1
    >>> total.name, total.values.shape, int(total[slots].sum())
    ('total', (4,), 3)
    """

    __slots__ = ("_store", "name")

    def __init__(self, store: StateStore, name: str) -> None:
        self._store, self.name = store, name

    @property
    def values(self) -> NDArray[Any]:
        """The whole per-slot array now (growth replaces it: fetch it on every use)."""
        return self._store._columns[self.name][0]

    def __getitem__(self, index: Any) -> Any:
        return self._store._columns[self.name][0][index]

    def __setitem__(self, index: Any, value: Any) -> None:
        self._store._columns[self.name][0][index] = value

    def __repr__(self) -> str:
        return f"Column({self.name!r})"


class StateStore:
    """Carries, sequence numbers and last-seen times of up to ``capacity`` streams.

    Each stream owns a *slot*: row ``slot`` of every carry tensor, which is
    shaped ``(layers, slots, hidden)`` like a batch carry, so a batch of streams
    is one ``index_select`` (gather) and one ``index_copy_`` (scatter). Storage
    grows by doubling up to ``capacity``; past it the least recently used
    streams are evicted. Streams idle for more than ``ttl`` seconds are evicted
    by :meth:`expire`. ``on_evict(stream_id, carry)`` is called for every
    eviction, so no state is lost silently.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> model = SequenceModel(ModelConfig(inputs=2, hidden=4))
    >>> store = StateStore(model, capacity=2)
    >>> slots = store.slots(["a", "b"], create=True)
    >>> len(store), sorted(store)
    (2, ['a', 'b'])
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        capacity: int = 1_000_000,
        ttl: float | None = None,
        on_evict: EvictionCallback | None = None,
        device: str | None = None,
        initial_slots: int = 1024,
        clock: Callable[[], float] = time.time,
        remember_lost: int = 100_000,
    ) -> None:
        require_positive_int("capacity", capacity)
        require_positive_int("remember_lost", remember_lost)
        if ttl is not None and ttl <= 0:
            raise ConfigError(
                describe("ttl", "None or seconds > 0", repr(ttl), problem="is invalid.")
            )
        self.model = model
        self.capacity = capacity
        self.ttl = ttl
        self.on_evict = on_evict
        self.clock = clock
        parameter = next(model.parameters())
        self.device = torch.device(device) if device is not None else parameter.device
        self.dtype = parameter.dtype
        carry_model: CarryModel = model  # type: ignore[assignment]
        template = carry_model.initial_carry(1, device=self.device, dtype=self.dtype)
        self._template_shapes = [(part.shape[0], part.shape[2]) for part in template]
        outputs = getattr(getattr(model, "config", None), "outputs", None)
        self.outputs = int(outputs) if isinstance(outputs, int) else 0
        self._slots = 0
        self._parts: list[Tensor] = []
        self._views: list[NDArray[Any]] | None = None
        self._slot_of: dict[StreamId, int] = {}
        self._id_of: list[StreamId | None] = []
        self._free: list[int] = []
        self.last_seq = np.zeros(0, dtype=np.int64)
        self.last_seen = np.zeros(0, dtype=np.float64)
        self.last_output = np.zeros((0, self.outputs), dtype=np.float32)
        self._columns: dict[str, tuple[NDArray[Any], Any]] = {}
        self.evictions = 0
        self.snapshot_meta: dict[str, Any] = {}
        """The ``meta`` of the last snapshot :meth:`restore` read (empty: none read)."""
        self.remember_lost = remember_lost
        self._lost: OrderedDict[StreamId, int] = OrderedDict()
        self._grow(min(capacity, max(1, initial_slots)))

    # ----------------------------------------------------------------- mapping
    def __len__(self) -> int:
        return len(self._slot_of)

    def __iter__(self) -> Iterator[StreamId]:
        return iter(list(self._slot_of))

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._slot_of

    def slot_of(self, stream_id: StreamId) -> int:
        """The slot of a known stream; raises UnknownStreamError otherwise."""
        try:
            return self._slot_of[stream_id]
        except KeyError:
            raise UnknownStreamError(
                describe(
                    "stream_id",
                    "a stream the store holds",
                    repr(stream_id),
                    problem="is unknown.",
                    fix="Send its first step with start=True, or check the id.",
                )
            ) from None

    def held_slots(self) -> NDArray[np.int64]:
        """The slots of every stream the store holds, in ascending order."""
        return np.sort(np.fromiter(self._slot_of.values(), dtype=np.int64, count=len(self)))

    def held(self, slots: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Whether each of ``slots`` holds a stream now."""
        ids, size = self._id_of, len(self._id_of)
        return np.fromiter(
            (0 <= slot < size and ids[slot] is not None for slot in slots.tolist()),
            dtype=np.bool_,
            count=len(slots),
        )

    def lookup(self, stream_ids: StreamIds) -> NDArray[np.int64]:
        """Slots of the given streams, -1 for streams the store does not hold."""
        found = map(self._slot_of.get, stream_ids, repeat(-1))
        return np.fromiter(found, dtype=np.int64, count=len(stream_ids))

    def slots(
        self,
        stream_ids: StreamIds,
        *,
        create: bool,
        looked_up: NDArray[np.int64] | None = None,
    ) -> NDArray[np.int64]:
        """Slots of the given streams, creating missing ones (zero carry) if ``create``.

        ``looked_up`` is this call's :meth:`lookup` of the same ids, when the
        caller already has it.
        """
        out = self.lookup(stream_ids) if looked_up is None else looked_up.copy()
        missing = np.flatnonzero(out < 0).tolist()
        if not missing:
            return out
        if not create:
            self.slot_of(stream_ids[missing[0]])
        new_ids = list(dict.fromkeys(stream_ids[p] for p in missing))
        protected = set(out[out >= 0].tolist())
        created = self._allocate(new_ids, protected)
        for position in missing:
            out[position] = created[stream_ids[position]]
        return out

    def lost(self, stream_ids: StreamIds) -> NDArray[np.bool_]:
        """Which of ``stream_ids`` were evicted (capacity or ttl) and are not held again.

        The store remembers the last ``remember_lost`` evicted ids (not those
        deleted on purpose), so an engine can tell a stream that lost its state
        from a new one.
        """
        return np.fromiter((i in self._lost for i in stream_ids), dtype=bool, count=len(stream_ids))

    # ---------------------------------------------------------------- carries
    def gather(self, slots: Tensor) -> Carry:
        """The carries of ``slots`` as a batch carry ``(layers, len(slots), hidden)``."""
        return tuple(part.index_select(1, slots) for part in self._parts)

    def scatter(self, slots: Tensor, carry: Carry) -> None:
        """Write a batch carry back into ``slots``."""
        for part, new in zip(self._parts, carry, strict=True):
            part.index_copy_(1, slots, new.to(part.dtype))

    def carry_tensors(self) -> list[Tensor]:
        """The carry storage itself, ``(layers, slots, hidden)`` per part, for in-place kernels."""
        return self._parts

    def numpy_parts(self) -> list[NDArray[Any]]:
        """Zero-copy NumPy views of the carry storage (CPU stores only)."""
        if self._views is None:
            self._views = [part.numpy() for part in self._parts]
        return self._views

    # ----------------------------------------------------------------- columns
    def add_column(
        self, name: str, shape: tuple[int, ...] = (), *, dtype: Any = np.float64, fill: Any = 0
    ) -> Column:
        """Keep one more per-stream array: ``shape`` per slot, ``fill`` for a new stream.

        Columns grow with the store, are reset to ``fill`` when a slot is given
        to a new stream (and when the engine restarts one, ``start=True``), and
        travel with :meth:`snapshot` / :meth:`restore`; a component that keeps
        per-stream state (the anomaly detector's error statistics, say) adds
        its columns so that state is never lost apart from the carry. Returns
        the column's typed :class:`Column` handle (growth replaces the array;
        the handle always reaches the current one).

        >>> from stateline.nn import ModelConfig, SequenceModel
        >>> store = StateStore(SequenceModel(ModelConfig(inputs=1, hidden=2)), initial_slots=4)
        >>> count = store.add_column("count", dtype=np.int64)
        >>> count[store.slots(["a"], create=True)] += 1
        >>> count.values.shape, int(count.values.sum())
        ((4,), 1)
        """
        if name in self._columns:
            raise ConfigError(
                describe("name", "a column name not yet used", repr(name), problem="is taken.")
            )
        array = np.full((self._slots, *shape), fill, dtype=dtype)
        self._columns[name] = (array, fill)
        return Column(self, name)

    def column(self, name: str) -> NDArray[Any]:
        """The per-slot array of a column added with :meth:`add_column`, by name
        (components keep the :class:`Column` handle ``add_column`` returned)."""
        try:
            return self._columns[name][0]
        except KeyError:
            raise ConfigError(
                describe(
                    "name",
                    f"one of the store's columns {sorted(self._columns)}",
                    repr(name),
                    problem="is unknown.",
                )
            ) from None

    def fill_columns(self, slots: NDArray[np.int64]) -> None:
        """Set every column of ``slots`` back to its fill value (a stream starts over)."""
        for array, fill in self._columns.values():
            array[slots] = fill

    def carry_of(self, stream_id: StreamId) -> Carry:
        """A copy of one stream's carry, ``(layers, 1, hidden)`` per part."""
        slot = torch.tensor([self.slot_of(stream_id)], device=self.device)
        return tuple(part.clone() for part in self.gather(slot))

    def reset(self, stream_id: StreamId) -> None:
        """Zero a stream's carry (its sequence number is kept)."""
        self._zero(np.array([self.slot_of(stream_id)]))

    def delete(self, stream_id: StreamId) -> None:
        """Forget a stream and free its slot (no eviction callback: this is on purpose)."""
        slot = self.slot_of(stream_id)
        self._release([slot])

    # ---------------------------------------------------------------- eviction
    def expire(self, now: float | None = None) -> int:
        """Evict streams idle for more than ``ttl`` seconds; returns how many."""
        if self.ttl is None or not self._slot_of:
            return 0
        now = self.clock() if now is None else now
        used = self.held_slots()
        idle = used[now - self.last_seen[used] > self.ttl]
        self._evict(idle)
        return len(idle)

    # --------------------------------------------------------------- snapshots
    def snapshot(self, directory: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write every carry, sequence number and last-seen time to ``directory/state.pt``.

        The file is written to a temporary name, flushed to disk and renamed, so
        a crash leaves either the previous snapshot or the new one. It records the
        evicted ids the store remembers (a restart still answers them `restarted`),
        the fingerprint of the model's weights, and ``meta`` (plain numbers and
        strings: say, the input offset the state covers), written in the same
        file so that the two cannot disagree; :meth:`restore` puts it in
        :attr:`snapshot_meta`. It is :meth:`snapshot_state` then
        :meth:`write_snapshot`: a caller that guards the store with a lock holds it
        for the first (copies in memory) and lets go for the second (the disk).
        """
        return self.write_snapshot(directory, self.snapshot_state(meta=meta))

    def snapshot_state(self, *, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """A copy of everything :meth:`snapshot` writes, taken now; later steps do not change it."""
        ids = list(self._slot_of)
        slots = torch.tensor([self._slot_of[i] for i in ids], dtype=torch.long, device=self.device)
        rows = slots.cpu().numpy()
        return {
            "format": 1,
            "fingerprint": model_fingerprint(self.model),
            "ids": [str(i) for i in ids],
            "id_is_int": [isinstance(i, int) for i in ids],
            "carry": [part.cpu().clone() for part in self.gather(slots)],
            "last_seq": torch.from_numpy(self.last_seq[rows].copy()),
            "last_seen": torch.from_numpy(self.last_seen[rows].copy()),
            "last_output": torch.from_numpy(self.last_output[rows].copy()),
            "columns": {
                name: torch.from_numpy(array[rows].copy())
                for name, (array, _) in self._columns.items()
            },
            "meta": dict(meta or {}),
            "lost": {  # evicted ids a restart must still answer `restarted`
                "ids": [str(i) for i in self._lost],
                "id_is_int": [isinstance(i, int) for i in self._lost],
                "last_seq": torch.tensor(list(self._lost.values()), dtype=torch.int64),
            },
        }

    @staticmethod
    def write_snapshot(directory: str | Path, state: dict[str, Any]) -> Path:
        """Write a :meth:`snapshot_state` into ``directory/state.pt`` (flushed, renamed)."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "state.pt"
        write_atomically(target, lambda file: torch.save(state, file))
        return target

    def restore(self, directory: str | Path) -> int:
        """Load a snapshot written by :meth:`snapshot`; returns the number of streams.

        Refuses (SnapshotMismatchError) a snapshot taken with other weights, or
        one holding columns this store does not keep (their state would be
        lost). Columns the snapshot lacks keep their fill values. Streams in the
        store that the snapshot does not hold are kept.
        """
        return self.restore_state(self.read_snapshot(directory), Path(directory) / "state.pt")

    @staticmethod
    def read_snapshot(directory: str | Path) -> dict[str, Any]:
        """The snapshot in ``directory/state.pt`` as :meth:`snapshot_state` made it (a caller
        may read what it keeps beside the store's state before :meth:`restore_state`)."""
        path = Path(directory) / "state.pt"
        if not path.is_file():
            raise DataError(
                describe(
                    "directory",
                    "a folder holding state.pt from snapshot()",
                    str(directory),
                    problem="holds no snapshot.",
                )
            )
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return state

    def restore_state(self, state: dict[str, Any], path: str | Path = "the snapshot") -> int:
        """:meth:`restore` of a snapshot already read (:meth:`read_snapshot`)."""
        expected = model_fingerprint(self.model)
        if state["fingerprint"] != expected:
            raise SnapshotMismatchError(
                describe(
                    "snapshot",
                    f"state saved with this model (weights fingerprint {expected[:12]})",
                    f"a snapshot of another model (fingerprint {state['fingerprint'][:12]})",
                    problem="does not belong to this model.",
                    fix="Restore it with the model it was taken with, or start without it.",
                )
            )
        saved_columns: dict[str, Tensor] = state.get("columns", {})
        unknown = sorted(set(saved_columns) - set(self._columns))
        if unknown:
            raise SnapshotMismatchError(
                describe(
                    "snapshot",
                    f"columns this store keeps ({sorted(self._columns)})",
                    f"columns {unknown} as well",
                    problem="holds per-stream state this store would drop.",
                    fix="Add the same columns (e.g. attach the same detector) before restoring.",
                )
            )
        self.snapshot_meta = dict(state.get("meta", {}))
        ids: list[StreamId] = [
            int(i) if is_int else i
            for i, is_int in zip(state["ids"], state["id_is_int"], strict=True)
        ]
        self._restore_lost(state.get("lost"), set(ids))
        if not ids:
            return 0
        if len(ids) > self.capacity:
            raise ConfigError(
                describe(
                    "capacity",
                    f"room for the {len(ids)} streams of the snapshot in {path}",
                    f"capacity {self.capacity}",
                    problem="is too small for the snapshot.",
                    fix=f"Start with a capacity of at least {len(ids)} (--capacity), or without "
                    "this snapshot (its streams then start over).",
                )
            )
        slots = self.slots(ids, create=True)
        index = torch.as_tensor(slots, device=self.device)
        self.scatter(index, tuple(part.to(self.device) for part in state["carry"]))
        self.last_seq[slots] = state["last_seq"].numpy()
        self.last_seen[slots] = state["last_seen"].numpy()
        self.last_output[slots] = state["last_output"].numpy()
        for name, values in saved_columns.items():
            self._columns[name][0][slots] = values.numpy()
        return len(ids)

    # ---------------------------------------------------------------- internals
    def _restore_lost(self, lost: dict[str, Any] | None, held: set[StreamId]) -> None:
        """The evicted ids a snapshot remembers (older snapshots: none), but those it holds."""
        if not lost:
            return
        seqs = lost["last_seq"].tolist()
        for name, is_int, seq in zip(lost["ids"], lost["id_is_int"], seqs, strict=True):
            stream_id: StreamId = int(name) if is_int else name
            if stream_id not in held and stream_id not in self._slot_of:
                self._lost[stream_id] = int(seq)
                self._lost.move_to_end(stream_id)
        while len(self._lost) > self.remember_lost:
            self._lost.popitem(last=False)

    def _grow(self, slots: int) -> None:
        old = self._slots
        new_parts = [
            torch.zeros(layers, slots, hidden, device=self.device, dtype=self.dtype)
            for layers, hidden in self._template_shapes
        ]
        for new, part in zip(new_parts, self._parts, strict=False):
            new[:, :old] = part
        self._parts = new_parts
        self._views = None
        self.last_seq = np.concatenate(
            [self.last_seq, np.full(slots - old, NO_SEQUENCE, dtype=np.int64)]
        )
        self.last_seen = np.concatenate([self.last_seen, np.zeros(slots - old)])
        self.last_output = np.concatenate(
            [self.last_output, np.full((slots - old, self.outputs), np.nan, dtype=np.float32)]
        )
        for name, (array, fill) in self._columns.items():
            grown = np.full((slots, *array.shape[1:]), fill, dtype=array.dtype)
            grown[:old] = array
            self._columns[name] = (grown, fill)
        self._id_of.extend([None] * (slots - old))
        self._free.extend(range(slots - 1, old - 1, -1))
        self._slots = slots

    def _allocate(self, ids: list[StreamId], protected: set[int]) -> dict[StreamId, int]:
        if len(ids) + len(protected) > self.capacity:  # refuse before evicting anything
            raise ConfigError(
                describe(
                    "capacity",
                    f"at least {len(ids) + len(protected)} slots for the streams of one call",
                    str(self.capacity),
                    problem="is too small.",
                    fix="Send fewer new streams per call, or raise the capacity.",
                )
            )
        needed = len(ids) - len(self._free)
        if needed > 0 and self._slots < self.capacity:
            target = self._slots
            while target - self._slots < needed and target < self.capacity:
                target = min(self.capacity, target * 2)
            self._grow(target)
        needed = len(ids) - len(self._free)
        if needed > 0:  # enough can go: checked above
            self._evict_least_recent(needed, protected)
        now = self.clock()
        created: dict[StreamId, int] = {}
        for stream_id in ids:
            self._lost.pop(stream_id, None)
            slot = self._free.pop()
            self._slot_of[stream_id] = slot
            self._id_of[slot] = stream_id
            self.last_seq[slot] = NO_SEQUENCE
            self.last_output[slot] = np.nan
            self.last_seen[slot] = now
            created[stream_id] = slot
        fresh = np.fromiter(created.values(), dtype=np.int64)
        self._zero(fresh)
        self.fill_columns(fresh)
        return created

    def _evict_least_recent(self, count: int, protected: set[int]) -> None:
        used = np.fromiter(
            (s for s in self._slot_of.values() if s not in protected), dtype=np.int64
        )
        if len(used) == 0:
            return
        count = min(count, len(used))
        oldest = used[np.argpartition(self.last_seen[used], count - 1)[:count]]
        self._evict(oldest)

    def _evict(self, slots: NDArray[np.int64]) -> None:
        if len(slots) == 0:
            return
        if self.on_evict is not None:
            index = torch.as_tensor(slots, device=self.device)
            carries = self.gather(index)
            for position, slot in enumerate(slots.tolist()):
                stream_id = self._id_of[slot]
                assert stream_id is not None
                self.on_evict(
                    stream_id, tuple(part[:, position : position + 1].clone() for part in carries)
                )
        self.evictions += len(slots)
        for slot in slots.tolist():  # remembered, so a return is told apart from a new stream
            stream_id = self._id_of[slot]
            self._lost[stream_id] = int(self.last_seq[slot])
            self._lost.move_to_end(stream_id)
        while len(self._lost) > self.remember_lost:
            self._lost.popitem(last=False)
        self._release(slots.tolist())

    def _release(self, slots: list[int]) -> None:
        for slot in slots:
            stream_id = self._id_of[slot]
            if stream_id is not None:
                del self._slot_of[stream_id]
            self._id_of[slot] = None
            self.last_seq[slot] = NO_SEQUENCE
            self._free.append(slot)

    def _zero(self, slots: NDArray[np.int64]) -> None:
        index = torch.as_tensor(slots, device=self.device)
        for part in self._parts:
            part.index_fill_(1, index, 0.0)
