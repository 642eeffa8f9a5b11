"""``StreamService``: a served model, its state store, engine and detector, behind one lock.

Everything the HTTP app does goes through this class, which speaks plain
Python: the app only parses requests and renders answers. The jobs around
stepping live in their own modules: the model and its units
(:mod:`._served_model`), event checks (:mod:`._events`), the answer shape
(:mod:`._answers`), the dashboard's memory (:mod:`._history`), snapshots
(:mod:`._snapshots`) and online learning's weights and gauges
(:mod:`._online_serving`).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, DataError, describe
from ..online import OnlineLearner
from ..stream import StateStore, Status, StreamDetector, StreamEngine, model_fingerprint
from ..stream._engine import RESTARTED, STATUS_NAMES
from ..stream._grouping import event_rounds, id_array, plan_calls
from ._answers import blank_answer, json_number, json_seq, nullable
from ._columns import ColumnAnswer, ColumnBatch
from ._config import ServeConfig
from ._events import Event, event_values
from ._history import StreamHistory
from ._metrics import Registry
from ._online_serving import (
    load_online_weights,
    online_failing,
    online_health,
    online_metrics,
    online_weights,
)
from ._served_model import ServedModel
from ._single import step_single
from ._snapshots import Snapshots

__all__ = ["StreamService"]

_ENGINE_ARGUMENT = re.compile(r"^x\[\d+\]")

SINGLES = 8
"""At most this many events of one call go one at a time (:meth:`StreamService._singles`):
about 0.1 ms each on the single-step path; one call of more is cheaper per event."""


class StreamService:
    """Load a model directory written by :meth:`Forecaster.save` and serve its streams.

    ``step(events)`` scales the values with the forecaster's scalers, steps
    the streams through a :class:`StreamDetector`, and returns per event the
    forecast of the next step(s) in original units, the anomaly score, the
    flag and the threshold. The store is restored from ``state_dir`` if a
    snapshot is there.
    """

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.served = ServedModel.load(Path(config.model))
        self.model = self.served.model
        self.metrics = Registry()
        self.store = StateStore(
            self.model,
            capacity=config.capacity,
            ttl=config.ttl,
            on_evict=lambda stream, carry: self.metrics.evictions.inc(),
        )
        self.engine = StreamEngine(self.model, self.store)
        self.detector = (
            StreamDetector(
                self.engine, config.detector, targets=self.served.targets, learn=config.learn
            )
            if self.served.forecasts_inputs
            else None
        )
        self.lock = threading.RLock()
        self._snapshot_writing = threading.Lock()  # one snapshot write at a time
        self.single_fast_path = True
        """Whether one event of a held stream takes :func:`~._single.step_single` (the same
        answers; off only to compare with the batch path)."""
        self.history = StreamHistory(points=config.history, streams=config.history_streams)
        self.snapshots = Snapshots(config.state_dir, self.metrics)
        self.started = time.time()
        self.restored = 0
        self.learner: OnlineLearner | None = None
        self.base_fingerprint = model_fingerprint(self.model)
        """The served model's own weights (online learning changes the live ones)."""
        if config.online is not None:
            self.learner = OnlineLearner(
                self.engine, config.online, targets=self.served.targets, lock=self.lock
            )
            online_metrics(self.learner, self.metrics)
        held = (config.state_dir / "state.pt").is_file()
        snapshot = self.store.read_snapshot(config.state_dir) if held else None
        # Weights learned online first: the store's snapshot names the weights it was made
        # with (without --online, the store then refuses the snapshot's learning buffers).
        if load_online_weights(
            self.model, self.learner, snapshot, config.state_dir, self.base_fingerprint
        ):
            self.engine.refresh()  # its kernels read the weights
        if snapshot is not None:
            self.restored = self.store.restore_state(snapshot, config.state_dir / "state.pt")
        self.metrics.gauge(
            "stateline_active_streams", "Streams in the state store.", lambda: len(self.store)
        )

    # ------------------------------------------------------------------ public
    def step(self, events: Sequence[Event], *, now: float | None = None) -> list[dict[str, Any]]:
        """Apply events in order; one answer per event (bad events answer with an error)."""
        self.check_event_count(len(events))
        answers: list[dict[str, Any] | None] = [None] * len(events)
        valid: list[tuple[int, NDArray[np.float64]]] = []
        for index, event in enumerate(events):
            values, problem = event_values(
                event, inputs=self.served.inputs, max_steps=self.config.max_event_steps
            )
            if values is None:
                answers[index] = blank_answer(event.stream, Status.ERROR, error=problem)
            else:
                valid.append((index, values))
        self._refuse_oversized(events, valid)
        if self._singles(events):  # each event alone; single steps of held streams: no arrays
            for index, values in valid:
                answer = step_single(self, events[index], values, now)
                if answer is not None:
                    answers[index] = answer
                    continue
                with self.lock:
                    self._step_group(events, [(index, values)], answers, now)
            valid = []
        # As few engine calls as keep every stream's events in order (plan_calls).
        calls = plan_calls(
            [events[index].stream for index, _ in valid],
            [(len(values), events[index].seq is None) for index, values in valid],
        )
        for call in calls:  # the lock is let go between calls: other clients get turns
            with self.lock:
                self._step_group(events, [valid[position] for position in call], answers, now)
        with self.lock:
            self.metrics.batch.observe(len(events))
            for status, count in Counter(a["status"] for a in answers if a).items():
                self.metrics.steps.inc(status, amount=count)
        return [answer for answer in answers if answer is not None]

    def check_event_count(self, count: int) -> None:
        """Refuse a call of more than ``--max-events`` events (a DataError), before any of
        them is read: callers that check events one by one ask first."""
        if count > self.config.max_events:
            raise DataError(
                describe(
                    "events",
                    f"at most {self.config.max_events} per call",
                    f"{count}",
                    problem="are too many.",
                    fix="Split the batch.",
                )
            )

    def step_columns(self, batch: ColumnBatch, *, now: float | None = None) -> ColumnAnswer:
        """Apply a batch of columns; the answer row for row (refused rows answer ``error``).

        The same checks, limits, order and idempotency as :meth:`step`, with
        no Python work per event: a stream's repeated rows go to successive
        engine calls in order; a row with NaN/inf values, a refused row or a
        row whose seq is out of range is refused alone.
        """
        count, steps = len(batch), batch.values.shape[1]
        self._refuse_columns(batch)
        errors = dict(batch.refused)
        finite = np.asarray(np.isfinite(batch.values).all(axis=(1, 2)), dtype=bool)
        for row in np.flatnonzero(~finite).tolist():  # only the bad rows
            errors.setdefault(
                row, describe("values", "finite numbers", "NaN or inf", problem="hold NaN or inf.")
            )
        good = finite
        if batch.refused:
            good = finite.copy()
            good[list(batch.refused)] = False
        rows = np.flatnonzero(good)
        rounds = event_rounds(batch.stream, rows)
        streams = len(rounds[0]) if rounds else 0  # round 0 holds every stream once
        if streams > self.store.capacity:
            self._refuse_oversized_streams(streams)
        if len(rounds) == 1 and len(rows) == count:  # the common case: every row, one call
            with self.lock:
                answer = self._step_arrays(
                    batch.stream, batch.values, seq=batch.seq, start=batch.start,
                    end=batch.end, now=now,
                )  # fmt: skip
            errors.update(answer.errors)
            rounds = []
        else:
            answer = ColumnAnswer.empty(
                batch.stream, steps, self.served.horizon, self.served.targets
            )
        for members in rounds:
            with self.lock:  # let go between rounds: other clients get turns
                stepped = self._step_arrays(
                    batch.stream[members],
                    batch.values[members],
                    seq=None if batch.seq is None else batch.seq[members],
                    start=batch.start[members],
                    end=batch.end[members],
                    now=now,
                )
            answer.status[members] = stepped.status
            answer.seq[members] = stepped.seq
            answer.forecast[members] = stepped.forecast
            answer.scores[members] = stepped.scores
            answer.flags[members] = stepped.flags
            answer.anomaly_scores[members] = stepped.anomaly_scores
            answer.level[members] = stepped.level
            for position, error in stepped.errors.items():
                errors[int(members[position])] = error
        answer.errors.update(errors)
        with self.lock:
            self.metrics.batch.observe(count)
            for code, number in enumerate(np.bincount(answer.status, minlength=len(STATUS_NAMES))):
                if number:
                    self.metrics.steps.inc(STATUS_NAMES[code], amount=float(number))
        return answer

    def stream(self, stream_id: str) -> dict[str, Any]:
        """What the service holds for one stream (UnknownStreamError if none)."""
        with self.lock:
            slot = self.store.slot_of(stream_id)
            prediction = self.store.last_output[slot]
            seen = 0 if self.detector is None else int(self.detector.columns.seen[slot])
            return {
                **self._row(stream_id, slot),
                "forecast": nullable(self.served.unscale(prediction[None])[0]),
                "calibrated": seen >= self.config.detector.reference,
                "history": self.history.points(stream_id, slot),
            }

    def streams(self, *, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """A page of rows (id, last seq, scores, flag, level, last seen), in the store's order.

        Only the page's rows are built: reading it costs ``offset + limit``
        steps of iteration, not a row per held stream.
        """
        with self.lock:
            total = len(self.store)
            ids = list(itertools.islice(iter(self.store), offset, min(offset + limit, total)))
            rows = [self._row(str(i), self.store.slot_of(i)) for i in ids]
        following = offset + len(rows)
        return {
            "streams": rows,
            "total": total,
            "offset": offset,
            "limit": limit,
            "next": following if following < total else None,
        }

    def delete(self, stream_id: str) -> None:
        with self.lock:
            slot = self.store.slot_of(stream_id)
            self.store.delete(stream_id)
            self.history.forget(stream_id, slot)

    @property
    def column_bounds(self) -> dict[str, int]:
        """The limits an Arrow body of columns is checked against before it is decoded
        (``max_rows``, ``max_values``: keywords of :func:`~stateline.serve._wire.arrow_request`)."""
        config = self.config
        return {
            "max_rows": config.max_events,
            "max_values": config.max_steps * self.served.inputs,
        }

    def learn_in_background(
        self, name: str, *, join_timeout: float | None = None
    ) -> Callable[[], None]:
        """Run the online learner (if any) in a daemon thread; returns what stops it.

        Updates train outside the lock and swap inside it. The returned function
        stops the thread and waits for it (at most ``join_timeout`` seconds); it does
        nothing without a learner.
        """
        learner = self.learner
        if learner is None:
            return lambda: None
        stop = threading.Event()
        thread = threading.Thread(target=learner.run, args=(stop,), name=name, daemon=True)
        thread.start()

        def stop_learning() -> None:
            stop.set()
            thread.join(timeout=join_timeout)

        return stop_learning

    def snapshot(self, *, meta: dict[str, Any] | None = None) -> Path:
        """Write the state store (carries, sequence numbers, detector state) atomically,
        with ``meta`` in the same file (:meth:`StateStore.snapshot`).

        With online learning the current weights go into the same file (the
        store's snapshot names the weights it was made with: one file, so a
        crash cannot leave the weights of one snapshot beside the state of another). Steps wait
        only while the state is copied, not while it is written and flushed to
        disk; snapshots are written one at a time, in the order they were taken. A snapshot
        waits while an online update recomputes carries (a few streams at a time), so that
        it never holds new weights beside carries the old ones made.
        """
        learner = self.learner

        def take() -> Callable[[Path], Path]:
            while True:  # not while an update recomputes: its carries are half old, half new
                if learner is not None:
                    learner.settled()
                with self.lock:
                    if learner is None or not learner.recomputing:
                        state = self.store.snapshot_state(meta=meta)
                        if learner is not None:  # in the same file: a crash cannot part them
                            state["online"] = online_weights(learner, self.base_fingerprint)
                        break

            def write(directory: Path) -> Path:
                return self.store.write_snapshot(directory, state)

            return write

        with self._snapshot_writing:
            return self.snapshots.write_taken(take)

    def expire(self) -> int:
        with self.lock:
            return self.store.expire()

    def health(self) -> dict[str, Any]:
        served = self.served
        return {
            "status": "degraded"
            if self.snapshots.failing or online_failing(self.learner)
            else "ok",
            "snapshot": self.snapshots.health(),
            "streams": len(self.store),
            "model": Path(self.config.model).name,  # no server paths
            "inputs": served.inputs,
            "columns": list(served.columns),
            "targets": served.targets,
            "horizon": served.horizon,
            "reference": self.config.detector.reference,
            "uptime_seconds": round(time.time() - self.started, 3),
            "last_snapshot": self.snapshots.last,
            "restored_streams": self.restored,
            "online": online_health(self.learner),
        }

    @property
    def flagged_by(self) -> str:
        """Which per-step score ``level`` applies to: ``anomaly_score`` or ``score``."""
        likelihood = self.detector is not None and self.detector.config.threshold == "likelihood"
        return "anomaly_score" if likelihood else "score"

    # --------------------------------------------------------------- internals
    def _singles(self, events: Sequence[Event]) -> bool:
        """Whether to step ``events`` one at a time, each through
        :func:`~._single.step_single` where it can: one event, or a few of distinct streams
        (what the coalescer gathers from single-step requests) with room for all of them in
        the store (one at a time, a new stream could evict another of the call, which one
        call protects).

        One at a time is what the events mean (each stream's in order) and what one step
        per request gives without the coalescer; only float32 rounding differs from one
        call of all of them (the kernel's matrix products round differently by batch size).
        """
        count = len(events)
        if not self.single_fast_path or count > SINGLES:
            return False
        if count == 1:
            return True
        room = len(self.store) + count <= self.store.capacity
        return room and len({event.stream for event in events}) == count

    def _refuse_oversized(
        self, events: Sequence[Event], valid: list[tuple[int, NDArray[np.float64]]]
    ) -> None:
        """Refuse, before anything changes, a batch past ``max_steps`` or ``capacity``."""
        self._refuse_steps(sum(len(values) for _, values in valid))
        streams = len({events[index].stream for index, _ in valid})
        if streams > self.store.capacity:
            self._refuse_oversized_streams(streams)

    def _refuse_columns(self, batch: ColumnBatch) -> None:
        """Refuse, before anything changes, columns past the events or steps limits."""
        count, steps = len(batch), batch.values.shape[1]
        if count > self.config.max_events:
            raise DataError(
                describe(
                    "stream",
                    f"at most --max-events {self.config.max_events} rows per request",
                    f"{count} rows",
                    problem="has too many rows.",
                    fix="Split the batch.",
                )
            )
        if steps > self.config.max_event_steps:
            raise DataError(
                describe(
                    "values",
                    f"at most --max-event-steps {self.config.max_event_steps} steps per row",
                    f"{steps} steps",
                    problem="hold too many steps.",
                    fix="Send fewer steps per row, with consecutive seq.",
                )
            )
        if count and batch.values.shape[2] != self.served.inputs:
            raise DataError(
                describe(
                    "values",
                    f"{self.served.inputs} numbers per step (the model's inputs)",
                    f"{batch.values.shape[2]}",
                    problem="has the wrong shape.",
                )
            )
        self._refuse_steps(count * steps)

    def _refuse_steps(self, steps: int) -> None:
        if steps > self.config.max_steps:
            raise DataError(
                describe(
                    "events",
                    f"at most --max-steps {self.config.max_steps} steps per request",
                    f"{steps} steps",
                    problem="hold too many steps.",
                    fix="Split the batch.",
                )
            )

    def _refuse_oversized_streams(self, streams: int) -> None:
        raise ConfigError(
            describe(
                "events",
                f"at most --capacity {self.store.capacity} streams per request",
                f"{streams} streams",
                problem="name too many streams.",
                fix="Split the batch, or raise --capacity.",
            )
        )

    def _row(self, stream_id: str, slot: int) -> dict[str, Any]:
        detector = self.detector
        columns = None if detector is None else detector.columns
        return {
            "stream": stream_id,
            "seq": json_seq(int(self.store.last_seq[slot])),
            "score": None if columns is None else json_number(float(columns.last_score[slot])),
            "flag": False if columns is None else bool(columns.last_flag[slot]),
            "anomaly_score": (
                None if columns is None else json_number(float(columns.last_anomaly[slot]))
            ),
            "scored_by": self.flagged_by,
            "level": None if columns is None else json_number(float(columns.level[slot])),
            "last_seen": float(self.store.last_seen[slot]),
        }

    def _step_group(
        self,
        events: Sequence[Event],
        members: list[tuple[int, NDArray[np.float64]]],
        answers: list[dict[str, Any] | None],
        now: float | None,
    ) -> None:
        """One engine call of the per-event API: arrays in, answer dicts out."""
        chosen = [events[index] for index, _ in members]
        stepped = self._step_arrays(
            id_array([event.stream for event in chosen]),
            np.stack([values for _, values in members]),
            seq=None if chosen[0].seq is None else np.array([int(e.seq or 0) for e in chosen]),
            start=np.array([event.start for event in chosen]),
            end=np.array([event.end for event in chosen]),
            now=now,
        )
        forecasts = nullable(stepped.forecast)
        scores, anomaly = nullable(stepped.scores), nullable(stepped.anomaly_scores)
        flags, levels = stepped.flags.tolist(), nullable(stepped.level)
        statuses, seqs = stepped.status_names.tolist(), stepped.seq.tolist()
        for position, (index, _) in enumerate(members):
            answer = blank_answer(
                chosen[position].stream, statuses[position], error=stepped.errors.get(position)
            )
            answer["forecast"] = forecasts[position]
            answer["scores"] = scores[position]
            answer["flags"] = flags[position]
            answer["anomaly_scores"] = anomaly[position]
            answer["level"] = levels[position]
            answer["seq"] = json_seq(seqs[position])
            answers[index] = answer

    def _step_arrays(
        self,
        ids: NDArray[np.object_],
        values: NDArray[np.float64],
        *,
        seq: NDArray[np.int64] | None,
        start: NDArray[np.bool_],
        end: NDArray[np.bool_],
        now: float | None,
    ) -> ColumnAnswer:
        """One engine call over arrays (the caller holds the lock): scale, step, score,
        learn, remember; ``values`` is ``(n, k, inputs)`` in original units."""
        served = self.served
        count, steps = values.shape[:2]
        scaled = served.scale(values)
        stepper: StreamDetector | StreamEngine = (
            self.detector if self.detector is not None else self.engine
        )
        ending = self.store.lookup(ids[end]) if end.any() else None  # their slots, for history
        # Every caller splits its events into rounds of distinct streams first.
        result = stepper._step(ids, scaled, seq=seq, start=start, end=end, now=now, distinct=True)
        applied = result.applied
        if self.learner is not None:
            self.learner.observe(ids, scaled, applied=applied, flags=result.flags)
        shape = (count, steps)
        slots = result.slots  # the engine and the detector always give them
        assert slots is not None
        held = slots >= 0
        level = (
            np.full(count, np.nan)
            if self.detector is None
            else np.where(held, self.detector.columns.level[np.maximum(slots, 0)], np.nan)
        )
        stepped = ColumnAnswer(
            stream=ids,
            status=result.codes,
            seq=np.where(held, self.store.last_seq[np.maximum(slots, 0)], -1),
            forecast=served.unscale(result.predictions),
            scores=np.full(shape, np.nan) if result.scores is None else result.scores,
            flags=np.zeros(shape, dtype=bool) if result.flags is None else result.flags,
            anomaly_scores=(
                np.full(shape, np.nan) if result.anomaly_scores is None else result.anomaly_scores
            ),
            level=level,
            # the engine names its own argument, x[position in its call]: here it is the
            # event's values, wherever the event stood in the request
            errors={
                row: _ENGINE_ARGUMENT.sub("values", text, count=1)
                for row, text in result.errors.items()
            },
        )
        self.metrics.flags.inc(amount=float(stepped.flags.sum()))
        if applied.any():
            history_slots = slots.copy()
            if ending is not None:
                history_slots[end] = ending
            self.history.record(
                ids[applied],
                history_slots[applied],
                seq=stepped.seq[applied],
                targets=values[applied, :, : served.targets],
                next=stepped.forecast[applied, :, 0],
                scores=stepped.scores[applied],
                flags=stepped.flags[applied],
                anomaly=stepped.anomaly_scores[applied],
                level=level[applied],
                start=(start | (result.codes == RESTARTED))[applied],  # its state is lost
                end=end[applied],
            )
        return stepped
