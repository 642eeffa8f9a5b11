"""``StreamEngine``: advance many live streams one (or k) time steps per call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import Tensor, nn

from .._errors import ShapeError, describe
from .._validate import require_positive_int
from ..nn import Carry
from ..nn._modes import inference_mode
from ._fused import FusedStep
from ._grouping import event_rounds, id_array
from ._kernel import StepKernel
from ._sequence import sequence_numbers
from ._store import NO_SEQUENCE, StateStore, StreamId, StreamIds
from ._transfer import DeviceInputs

__all__ = ["Status", "StepResult", "StreamEngine"]


class Status:
    """What happened to one event."""

    OK = "ok"
    """Applied."""
    GAP = "gap"
    """Applied, but its ``seq`` skipped numbers: steps in between never arrived."""
    DUPLICATE = "duplicate"
    """Not applied again: ``seq`` was the last one applied; its earlier prediction is returned."""
    STALE = "stale"
    """Not applied: ``seq`` is older than the last one applied."""
    RESTARTED = "restarted"
    """Applied to a fresh state: the stream had been evicted (capacity or ttl) and its earlier
    state is lost. (Send ``start=True`` to begin a stream anew on purpose.)"""
    ERROR = "error"
    """Rejected; see ``StepResult.errors``. No carry was changed."""


APPLIED = (Status.OK, Status.GAP, Status.RESTARTED)
"""The statuses of events whose steps were applied."""

STATUS_NAMES = (
    Status.OK,
    Status.GAP,
    Status.RESTARTED,
    Status.DUPLICATE,
    Status.STALE,
    Status.ERROR,
)
"""Every status, in the order of their codes (``StepResult.codes``): applied ones first."""
OK, GAP, RESTARTED, DUPLICATE, STALE, ERROR = range(6)
"""The status codes, as ``numpy.int8`` values in ``StepResult.codes``."""
_NAMES = np.array(STATUS_NAMES, dtype=object)
_MAX_SEQ = int(np.iinfo(np.int64).max)


class StepModel(Protocol):
    def step(self, carry: Carry, x: Tensor) -> tuple[Carry, Tensor]: ...

    def __call__(self, xs: Tensor, carry: Carry | None = None) -> tuple[Tensor, Carry]: ...


@dataclass(frozen=True, eq=False)
class StepResult:
    """Per-event outcome of :meth:`StreamEngine.step`.

    ``predictions`` is ``(events, outputs)`` for single steps, ``(events, k,
    outputs)`` for k steps; NaN where nothing was applied (except a duplicate
    of the last event, which gets its earlier prediction back). ``codes``
    holds each event's status as a small integer (an index into
    :data:`STATUS_NAMES`), ``status`` the same as names. ``scores``,
    ``anomaly_scores`` and ``flags`` (``(events,)`` or ``(events, k)``) come
    from a :class:`StreamDetector`; a bare engine leaves them None.
    """

    predictions: NDArray[np.float32]
    codes: NDArray[np.int8]
    errors: dict[int, str] = field(default_factory=dict)
    scores: NDArray[np.float64] | None = None
    flags: NDArray[np.bool_] | None = None
    anomaly_scores: NDArray[np.float64] | None = None
    slots: NDArray[np.int64] | None = None
    """Each event's stream slot in the store after its event (-1: not held; for distinct
    streams what ``store.lookup(ids)`` gives after the call), so callers need not look the
    ids up again."""

    @property
    def status(self) -> list[str]:
        """Each event's status by name (``ok``, ``gap``, ...)."""
        names: list[str] = _NAMES[self.codes].tolist()
        return names

    @property
    def applied(self) -> NDArray[np.bool_]:
        """True for events whose steps were applied (``ok``, ``gap`` or ``restarted``)."""
        applied: NDArray[np.bool_] = self.codes <= RESTARTED
        return applied


class StreamEngine:
    """Advance live streams one time step at a time without resending their history.

    ``step(ids, x)`` gathers the carries of the given streams from the
    :class:`StateStore`, runs one batched model step (or ``k`` steps), scatters
    the new carries back and returns the predictions. Events carry an optional
    ``seq`` (sequence number of their first step): a repeat is not applied
    twice, and a skipped number is reported. ``start=True`` resets the stream
    (as the START flag of inference-server sequence batchers), ``end=True``
    frees it after the step. A bad event (NaN/inf, wrong feature count, an
    unknown stream without ``start`` when ``strict``) is rejected alone.

    How a call is computed: small single-step batches (up to ``kernel_batch``
    events) on the CPU go through a NumPy kernel; larger ones through a fused
    PyTorch step that works on the store in place, ``cache_rows`` streams at a
    time (default: about 2 MiB of gates per chunk); calls of more than
    ``max_batch`` events are split. Models the kernels do not cover are
    stepped with their own ``step``. Call :meth:`refresh` after changing the
    model's weights.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> model = SequenceModel(ModelConfig(inputs=2, hidden=4))
    >>> engine = StreamEngine(model, StateStore(model))
    >>> result = engine.step(["a", "b"], np.zeros((2, 2)), seq=[0, 0])
    >>> result.status, result.predictions.shape
    (['ok', 'ok'], (2, 1))
    >>> engine.step(["a"], np.zeros((1, 2)), seq=[0]).status
    ['duplicate']
    """

    def __init__(
        self,
        model: nn.Module,
        store: StateStore,
        *,
        strict: bool = False,
        max_batch: int = 8192,
        kernel_batch: int = 256,
        cache_rows: int | None = None,
    ) -> None:
        require_positive_int("max_batch", max_batch)
        require_positive_int("cache_rows", cache_rows, optional=True)
        self.model = model  # its mode is the caller's: steps run in eval mode (see _torch_step)
        self.store = store
        self.strict = strict
        self.max_batch = max_batch
        config = getattr(model, "config", None)
        self.inputs = int(getattr(config, "inputs", 0)) or None
        self.kernel_batch = kernel_batch
        self.cache_rows = cache_rows
        self.calls = 0
        self.events = 0
        self._kernel: StepKernel | None = None
        self._fused: FusedStep | None = None
        self._device_inputs = DeviceInputs(store.device, store.dtype)
        self.refresh()

    # ------------------------------------------------------------------ public
    def step(
        self,
        stream_ids: StreamIds,
        x: ArrayLike | Sequence[ArrayLike],
        *,
        seq: ArrayLike | None = None,
        start: bool | ArrayLike | None = None,
        end: bool | ArrayLike | None = None,
        now: float | None = None,
    ) -> StepResult:
        """Apply one event per entry of ``stream_ids``; see the class docstring."""
        try:
            return self._step(stream_ids, x, seq=seq, start=start, end=end, now=now)
        except TypeError as error:  # an id a dict cannot hold: name it
            raise (_unhashable(stream_ids) or error) from error

    def _step(
        self,
        stream_ids: StreamIds,
        x: ArrayLike | Sequence[ArrayLike],
        *,
        seq: ArrayLike | None = None,
        start: bool | ArrayLike | None = None,
        end: bool | ArrayLike | None = None,
        now: float | None = None,
        distinct: bool = False,
        known: NDArray[np.int64] | None = None,
    ) -> StepResult:
        """:meth:`step` for callers in this package that know more about the ids.

        ``distinct``: no id repeats (the caller split them into rounds: one
        round here, no second check). ``known``: the ids' slots as
        :meth:`StateStore.lookup` gives them now (implies ``distinct``; the
        round does not look them up again).
        """
        if len(stream_ids) == 1 and not start and not end:
            fast = self._step_one(stream_ids[0], x, seq, now)
            if fast is not None:
                return fast
        ids = id_array(stream_ids)
        count = len(ids)
        values, errors, single = self._inputs(x, count)
        steps = values.shape[1]
        seqs, seq_errors = sequence_numbers(seq, count)
        for index, message in seq_errors.items():
            errors.setdefault(index, message)
        starts = _flags(start, count, "start")
        ends = _flags(end, count, "end")
        outputs = max(self.store.outputs, 1)
        predictions = np.full((count, steps, outputs), np.nan, dtype=np.float32)
        codes = np.zeros(count, dtype=np.int8)
        slots = np.full(count, -1, dtype=np.int64)
        if errors:
            refused = np.fromiter(errors, dtype=np.int64, count=len(errors))
            codes[refused] = ERROR
            slots[refused] = self.store.lookup(ids[refused])  # refused rows: only these
        now = self.store.clock() if now is None else now
        valid = np.flatnonzero(codes != ERROR)
        evictions = self.store.evictions
        distinct = distinct or known is not None
        rounds = ([valid] if len(valid) else []) if distinct else event_rounds(ids, valid)
        for round_indices in rounds:
            self._apply(
                round_indices, ids, values, seqs, starts, ends, now, predictions, codes, errors,
                slots, known,
            )  # fmt: skip
        if self.store.evictions != evictions:  # the store was full: a named stream may be gone
            slots = self.store.lookup(ids)
        self.calls += 1
        self.events += count
        shaped = predictions[:, 0] if single else predictions
        return StepResult(predictions=shaped, codes=codes, errors=errors, slots=slots)

    def refresh(self) -> None:
        """Rebuild the step kernels (NumPy and fused) after the model's weights changed."""
        store = self.store
        on_cpu = store.device.type == "cpu"
        self._kernel = StepKernel.from_model(self.model) if on_cpu else None
        self._fused = FusedStep.from_model(
            self.model, device=store.device, dtype=store.dtype, rows=self.cache_rows
        )

    # --------------------------------------------------------------- internals
    def _step_one(
        self, stream_id: StreamId, x: Any, seq: Any, now: float | None
    ) -> StepResult | None:
        """The common live call without the general machinery, or None to use it.

        Taken only for one known stream, one finite step through the NumPy
        kernel, and a ``seq`` that is absent or the next one: exactly the cases
        where the general path would apply the step with status ``ok``.
        """
        if not isinstance(x, np.ndarray):
            return None
        one_step = x.shape == (1, 1, self.inputs)  # (events, k, inputs) with k = 1
        if x.shape != (1, self.inputs) and not one_step:
            return None
        slot = self.store._slot_of.get(stream_id)
        if slot is None:
            return None
        if seq is not None:
            if np.ndim(seq) != 1 or len(seq) != 1:
                return None
            seq = seq[0]
            if not isinstance(seq, int | np.integer) or isinstance(seq, bool):
                return None  # checked (and refused, if it must be) by the general path
            if not 0 <= seq <= _MAX_SEQ:
                return None
            seq = int(seq)
        prediction = self._step_row(slot, x.reshape(1, -1), seq, now)
        if prediction is None:
            return None
        return StepResult(
            predictions=prediction[:, None] if one_step else prediction,
            codes=np.zeros(1, dtype=np.int8),
            errors={},
            slots=np.array([slot], dtype=np.int64),
        )

    def _step_row(
        self, slot: int, row: NDArray[Any], seq: int | None, now: float | None
    ) -> NDArray[np.float32] | None:
        """Step the held stream in ``slot`` by one row ``(1, inputs)`` exactly as the general
        path would with status ``ok``; its prediction ``(1, outputs)``, or None (nothing
        changed) where that path would do otherwise or is needed: no NumPy kernel, a ``seq``
        that is not the next one, a value that is not finite in float32."""
        store = self.store
        if self._kernel is None or self.kernel_batch < 1:
            return None
        last = int(store.last_seq[slot])
        if seq is None and last >= _MAX_SEQ:  # refused by the general path
            return None
        if seq is not None and last != NO_SEQUENCE and seq != last + 1:
            return None
        with np.errstate(over="ignore"):  # past float32: inf, left to the general path
            row = row.astype(np.float32, copy=False)  # as the general path reads
        if not np.isfinite(row).all():
            return None
        prediction = self._kernel_step(slice(slot, slot + 1), row)
        if store.outputs:
            store.last_output[slot] = prediction[0]
        store.last_seq[slot] = seq if seq is not None else max(last, NO_SEQUENCE) + 1
        store.last_seen[slot] = store.clock() if now is None else now
        self.calls += 1
        self.events += 1
        return prediction

    def _kernel_step(
        self, slots: NDArray[np.int64] | slice, x: NDArray[np.float32]
    ) -> NDArray[Any]:
        """Gather, step with the NumPy kernel, scatter; a slice of slots avoids copies."""
        assert self._kernel is not None
        views = self.store.numpy_parts()
        carry = [view[:, slots] for view in views]
        new_parts, outputs = self._kernel.step(carry, x.astype(views[0].dtype, copy=False))
        for view, new in zip(views, new_parts, strict=True):
            view[:, slots] = new
        return outputs.astype(np.float32, copy=False)

    def _torch_step(self, slots: NDArray[np.int64], x: NDArray[np.float32]) -> NDArray[Any]:
        """Gather, step with PyTorch, scatter: fused for one step of a covered model."""
        store = self.store
        rows, xs = self._device_inputs(slots, x)  # one host-to-device copy off the CPU
        if self._fused is not None and xs.shape[1] == 1:
            with torch.no_grad():
                outputs = self._fused(store.carry_tensors(), rows, xs[:, 0])
            fused: NDArray[Any] = outputs[:, None].float().cpu().numpy()
            return fused
        carry = store.gather(rows)
        model: StepModel = self.model  # type: ignore[assignment]
        with torch.no_grad(), inference_mode(self.model):
            if xs.shape[1] == 1:
                carry, y = model.step(carry, xs[:, 0])
                ys = y[:, None]
            else:
                ys, carry = model(xs, carry)
            store.scatter(rows, carry)
        result: NDArray[Any] = ys.float().cpu().numpy()
        return result

    def _inputs(
        self, x: ArrayLike | Sequence[ArrayLike], count: int
    ) -> tuple[NDArray[np.float32], dict[int, str], bool]:
        """``(values (events, k, features), per-event errors, one step per event)``."""
        errors: dict[int, str] = {}
        if isinstance(x, (list, tuple)):
            with np.errstate(over="ignore"):  # past float32: inf, refused below
                rows = [np.asarray(item, dtype=np.float32) for item in x]
            if len(rows) != count:
                raise ShapeError(
                    describe(
                        "x",
                        f"one entry per stream id: {count}",
                        f"{len(rows)} entries",
                        problem="has the wrong shape.",
                    )
                )
            steps_of = [1 if r.ndim == 1 else (r.shape[0] if r.ndim == 2 else -1) for r in rows]
            steps = max([s for s in steps_of if s > 0], default=1)
            single = all(r.ndim == 1 for r in rows)
            width = self.inputs or (rows[0].shape[-1] if rows else 0)
            values = np.zeros((count, steps, width), dtype=np.float32)
            for index, row in enumerate(rows):
                shaped = row[None] if row.ndim == 1 else row
                if shaped.ndim != 2 or shaped.shape != (steps, width):
                    errors[index] = describe(
                        f"x[{index}]",
                        f"{steps} step(s) of {width} features",
                        f"shape {row.shape}",
                        problem="has the wrong shape.",
                    )
                else:
                    values[index] = shaped
        else:
            with np.errstate(over="ignore"):  # past float32: inf, refused below
                array = np.asarray(x, dtype=np.float32)
            if array.ndim not in (2, 3) or array.shape[0] != count:
                raise ShapeError(
                    describe(
                        "x",
                        f"({count}, features) or ({count}, k, features)",
                        f"shape {array.shape}",
                        fix="Pass one row of features per stream id.",
                        problem="has the wrong shape.",
                    )
                )
            single = array.ndim == 2
            values = array[:, None] if single else array
            steps = values.shape[1]
            width = values.shape[2]
            if steps == 0:
                raise ShapeError(
                    describe(
                        "x",
                        "k >= 1 steps per event",
                        f"shape {array.shape}",
                        problem="holds no steps.",
                    )
                )
            if self.inputs is not None and width != self.inputs:
                raise ShapeError(
                    describe(
                        "x",
                        f"{self.inputs} features per step (the model's inputs)",
                        f"{width} features",
                        problem="has the wrong shape.",
                    )
                )
        finite = np.isfinite(values).all(axis=(1, 2))
        for index in np.nonzero(~finite)[0].tolist():
            errors.setdefault(
                int(index),
                describe(
                    f"x[{index}]",
                    "finite values within float32 range (|x| < 3.4e38, in the model's units)",
                    "NaN, inf or a value past float32",
                    problem="holds NaN or inf.",
                ),
            )
        return values, errors, single

    def _apply(
        self,
        order: NDArray[np.int64],
        ids: NDArray[np.object_],
        values: NDArray[np.float32],
        seqs: NDArray[Any] | None,
        starts: NDArray[np.bool_],
        ends: NDArray[np.bool_],
        now: float,
        predictions: NDArray[np.float32],
        codes: NDArray[np.int8],
        errors: dict[int, str],
        event_slots: NDArray[np.int64],
        current: NDArray[np.int64] | None = None,
    ) -> None:
        """One round of distinct streams: checks, slots, step, bookkeeping, all vectorised;
        ``current``: every id's slot as the store has it now (else looked up here)."""
        store = self.store
        steps = values.shape[1]
        everyone = len(order) == len(ids)  # then order is arange(len(ids))
        round_ids = ids if everyone else ids[order]
        if current is None:
            known_slots = store.lookup(round_ids)
        else:
            known_slots = current if everyone else current[order]
        event_slots[order] = known_slots
        known = known_slots >= 0
        keep = np.ones(len(order), dtype=bool)
        if self.strict:
            for position in np.flatnonzero(~known & ~starts[order]).tolist():
                index = int(order[position])
                keep[position] = False
                codes[index] = ERROR
                errors[index] = describe(
                    "stream_id",
                    "a known stream, or start=True",
                    repr(ids[index]),
                    problem="is unknown.",
                    fix="Send the first step of a stream with start=True.",
                )
        self._refuse_past_max_seq(order, known_slots, known, keep, seqs, steps, codes, errors)
        if seqs is not None:
            self._check_sequence(
                order, known_slots, known, keep, seqs, steps, predictions, codes, errors
            )
        all_kept = bool(keep.all())
        accepted = order if all_kept else order[keep]
        if len(accepted) == 0:
            return
        accepted_ids = round_ids if all_kept else round_ids[keep]
        looked_up = known_slots if all_kept else known_slots[keep]
        returning = (looked_up < 0) & ~starts[accepted]
        if returning.any():  # a stream that lost its state comes back: say so
            picked = np.flatnonzero(returning)
            lost = store.lost(accepted_ids[picked])
            codes[accepted[picked[lost]]] = RESTARTED
        slots = store.slots(accepted_ids, create=True, looked_up=looked_up)
        event_slots[accepted] = slots
        restart = slots[starts[accepted]]
        if len(restart):  # the stream starts over: zero carry, per-stream columns from fill
            store._zero(restart)
            store.fill_columns(restart)
        for begin in range(0, len(accepted), self.max_batch):
            part = accepted[begin : begin + self.max_batch]
            part_slots = slots[begin : begin + self.max_batch]
            if self._kernel is not None and steps == 1 and len(part) <= self.kernel_batch:
                out = self._kernel_step(part_slots, values[part, 0])[:, None]
            else:
                out = self._torch_step(part_slots, values[part])
            predictions[part] = out
            if store.outputs:
                store.last_output[part_slots] = out[:, -1]
        if seqs is not None:
            store.last_seq[slots] = seqs[accepted] + steps - 1
        else:
            store.last_seq[slots] = np.maximum(store.last_seq[slots], NO_SEQUENCE) + steps
        store.last_seen[slots] = now
        ending = ends[accepted]
        if ending.any():
            event_slots[accepted[ending]] = -1
            for stream_id in accepted_ids[ending].tolist():
                store.delete(stream_id)

    def _refuse_past_max_seq(
        self,
        order: NDArray[np.int64],
        known_slots: NDArray[np.int64],
        known: NDArray[np.bool_],
        keep: NDArray[np.bool_],
        seqs: NDArray[Any] | None,
        steps: int,
        codes: NDArray[np.int8],
        errors: dict[int, str],
    ) -> None:
        """Refuse the rows whose last step's seq would pass 2**63 - 1 (the store keeps seqs
        as int64: it would wrap around to negative numbers)."""
        largest = int(np.iinfo(np.int64).max)
        if seqs is not None:
            over = seqs[order] > largest - (steps - 1)
        else:
            last = self.store.last_seq[np.maximum(known_slots, 0)]
            over = known & (last > largest - steps)
        over &= keep
        for position in np.flatnonzero(over).tolist():
            index = int(order[position])
            keep[position] = False
            codes[index] = ERROR
            errors[index] = describe(
                "seq",
                f"steps whose sequence numbers stay within 0 .. 2**63 - 1 ({steps} step(s) here)",
                "a stream already at the largest sequence number"
                if seqs is None
                else f"seq {int(seqs[index])}",
                problem="would pass the largest sequence number.",
                fix="Delete the stream (its sequence numbers go with it), then start it again "
                "from a small seq: start=True resets the carry, not the numbering.",
            )

    def _check_sequence(
        self,
        order: NDArray[np.int64],
        known_slots: NDArray[np.int64],
        known: NDArray[np.bool_],
        keep: NDArray[np.bool_],
        seqs: NDArray[Any],
        steps: int,
        predictions: NDArray[np.float32],
        codes: NDArray[np.int8],
        errors: dict[int, str],
    ) -> None:
        """Vectorised sequence-number checks; marks repeats, overlaps and gaps in place."""
        store = self.store
        first = seqs[order]
        last = np.where(known, store.last_seq[np.maximum(known_slots, 0)], NO_SEQUENCE)
        has_last = known & keep & (last != NO_SEQUENCE)
        final = first + steps - 1
        repeat = has_last & (final <= last)
        overlap = has_last & ~repeat & (first <= last)
        if repeat.any():
            duplicate = repeat & (final == last)
            codes[order[repeat]] = STALE
            codes[order[duplicate]] = DUPLICATE
            if steps == 1 and store.outputs and duplicate.any():
                predictions[order[duplicate], 0] = store.last_output[known_slots[duplicate]]
        for position in np.flatnonzero(overlap).tolist():
            index = int(order[position])
            codes[index] = ERROR
            errors[index] = describe(
                "seq",
                f"> {last[position]} (the last applied) for all {steps} steps",
                f"{first[position]}..{final[position]}",
                problem="overlaps applied steps.",
                fix=f"Resend only the steps after seq {last[position]}.",
            )
        codes[order[has_last & ~repeat & ~overlap & (first > last + 1)]] = GAP
        keep &= ~(repeat | overlap)


def _unhashable(stream_ids: Any) -> ShapeError | None:
    """The error naming the first id that cannot be a stream id (None: all can)."""
    for position, stream_id in enumerate(stream_ids):
        try:
            hash(stream_id)
        except TypeError:
            return ShapeError(
                describe(
                    f"stream_ids[{position}]",
                    "a stream id: a str or an int",
                    f"{type(stream_id).__name__} {stream_id!r:.60}",
                    problem="cannot be a stream id.",
                )
            )
    return None


def _per_event(value: Any, count: int, name: str, dtype: Any, default: Any) -> NDArray[Any] | None:
    if value is None:
        return None if default is None else np.full(count, default, dtype=dtype)
    if np.ndim(value) == 0:
        if default is None:
            raise ShapeError(
                describe(
                    name,
                    f"one value per event ({count})",
                    repr(value),
                    problem="has the wrong shape.",
                )
            )
        return np.full(count, value, dtype=dtype)
    array = np.asarray(value, dtype=dtype)
    if array.shape != (count,):
        raise ShapeError(
            describe(
                name,
                f"one value per event: shape ({count},)",
                f"shape {array.shape}",
                problem="has the wrong shape.",
            )
        )
    return array


def _flags(value: Any, count: int, name: str) -> NDArray[np.bool_]:
    flags = _per_event(value, count, name, np.bool_, False)
    assert flags is not None
    return flags
