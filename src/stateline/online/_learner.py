"""``OnlineLearner``: a deployed model keeps learning from its streams while it serves them."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ..nn._modes import inference_mode
from ..stream import StateStore, StepResult, StreamDetector, StreamEngine
from ..stream._store import StreamId, StreamIds
from ._config import OnlineConfig

__all__ = ["OnlineLearner", "UpdateReport"]

_PREFIX = "online."

LEARNABLE_BOUND = 1e12
"""Buffered steps past this (in the model's units: scaled for a trained model, raw for a
Keras one) are kept out of learning and clipped as inputs: one sensor's 1e39 overflowed an
update into NaN weights for every stream. Far above any real reading, in either units (a
bound of 1e4 stopped learning for a Keras model of readings in watts); counted in
:attr:`OnlineLearner.excluded`."""

RECOMPUTE_HOLD = 0.02
"""About how long, in seconds, recomputing carries after an update holds the lock at once."""


@dataclass(frozen=True)
class UpdateReport:
    """What one :meth:`OnlineLearner.update` did."""

    version: int
    streams: int
    steps: int
    loss_before: float
    loss_after: float
    seconds: float
    recomputed: int
    rejected: str | None = None
    """Why the weights were not swapped in (not finite after training), or None."""


class OnlineLearner:
    """Keep the engine's model learning from the streams it serves, one-step-ahead.

    Every applied step of every stream goes into that stream's ring buffer
    (a store column, so it starts over with the stream and travels with
    snapshots) with a learnable flag (False for steps the detector flagged,
    unless ``learn_flagged``). :meth:`update` trains a *shadow copy* of the
    model on the buffered steps of up to ``lanes`` streams (truncated BPTT,
    targets = the next step's leading ``targets`` inputs, flagged targets left
    out of the loss, Adam state kept across updates), then swaps the new
    weights into the live model under ``lock``: a step answered while an
    update trains uses the old weights throughout, the next one the new
    weights throughout. After the swap the carries of live streams follow
    ``config.carry`` (``"recompute"`` by default: each stream's carry and last
    output become the new model's over its last buffered steps, from a fresh
    carry). :meth:`step` steps streams (through the detector, if given) and
    records them in one locked call; :meth:`run` updates in a loop within
    ``config.cpu_share`` of the time.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> _ = torch.manual_seed(0)
    >>> model = SequenceModel(ModelConfig(inputs=1, hidden=8))
    >>> engine = StreamEngine(model, StateStore(model))
    >>> learner = OnlineLearner(engine, OnlineConfig(update_every=50, lanes=4, chunk=25))
    >>> for t in range(60):
    ...     result = learner.step(["a", "b"], [[np.sin(t / 4)], [np.cos(t / 4)]])
    >>> report = learner.update()
    >>> report.version, report.streams, report.loss_after < report.loss_before
    (1, 2, True)
    """

    def __init__(
        self,
        engine: StreamEngine,
        config: OnlineConfig | None = None,
        *,
        detector: StreamDetector | None = None,
        targets: int | None = None,
        lock: Any = None,
    ) -> None:
        self.engine = engine
        self.detector = detector
        self.config = config or OnlineConfig()
        store = engine.store
        inputs = engine.inputs or 0
        width = targets if targets is not None else store.outputs
        if not 0 < width <= inputs or store.outputs != width:
            raise ConfigError(
                describe(
                    "targets",
                    f"the model's outputs ({store.outputs}), which must forecast its leading "
                    f"inputs (it has {inputs})",
                    repr(width),
                    problem="does not fit online learning.",
                )
                + "\n  Fix: online learning needs a one-step forecaster of its leading inputs."
            )
        self.inputs, self.targets = inputs, width
        self.lock = lock if lock is not None else threading.RLock()
        self.version = 0
        self.pending = 0
        self.rejected = 0
        """Updates whose weights were not swapped in (not finite after training)."""
        self.excluded = 0
        """Steps kept out of learning for a value past :data:`LEARNABLE_BOUND`."""
        self.history: list[UpdateReport] = []
        self.learning_seconds = 0.0
        self.updated_at: float | None = None
        self._started = time.monotonic()
        self._rng = np.random.default_rng(self.config.seed)
        self._recomputing = 0  # updates whose carries are being recomputed
        self._settled = threading.Event()  # set while none is
        self._settled.set()
        self._stopping: threading.Event | None = None
        self._shadow = copy.deepcopy(engine.model).train()
        self._optimizer = torch.optim.Adam(self._shadow.parameters(), lr=self.config.learning_rate)
        buffer = self.config.buffer
        self._x = store.add_column(_PREFIX + "x", (buffer, inputs), dtype=np.float32, fill=0.0)
        self._ok = store.add_column(_PREFIX + "ok", (buffer,), dtype=np.bool_, fill=False)
        self._count = store.add_column(_PREFIX + "count", (), dtype=np.int64, fill=0)

    # ------------------------------------------------------------------ public
    @property
    def store(self) -> StateStore:
        return self.engine.store

    def step(
        self,
        stream_ids: StreamIds,
        x: ArrayLike,
        **kwargs: Any,
    ) -> StepResult:
        """Step streams (through the detector when there is one) and record the applied steps."""
        with self.lock:
            stepper: Any = self.detector if self.detector is not None else self.engine
            values = np.asarray(x, dtype=np.float32)
            result: StepResult = stepper.step(stream_ids, values, **kwargs)
            self.observe(stream_ids, values, applied=result.applied, flags=result.flags)
            return result

    def observe(
        self,
        stream_ids: StreamIds,
        x: ArrayLike,
        *,
        applied: ArrayLike | None = None,
        flags: ArrayLike | None = None,
    ) -> None:
        """Record steps ``(events, inputs)`` or ``(events, k, inputs)`` of known streams.

        Call it (holding ``lock``) after the engine applied them; ``applied``
        (default: all) skips events that were not applied (duplicates, stale,
        errors); ``flags`` ``(events,)`` or ``(events, k)`` marks steps not to
        learn from.
        """
        values = np.asarray(x, dtype=np.float32)
        if values.ndim == 2:
            values = values[:, None]
        if values.ndim != 3 or values.shape[0] != len(stream_ids) or values.shape[2] != self.inputs:
            raise ShapeError(
                describe(
                    "x",
                    f"({len(stream_ids)}, {self.inputs}) or ({len(stream_ids)}, k, {self.inputs})",
                    f"shape {np.shape(x)}",
                    problem="has the wrong shape.",
                )
            )
        events, steps = values.shape[:2]
        keep = np.ones(events, dtype=bool) if applied is None else np.asarray(applied, dtype=bool)
        learnable = np.ones((events, steps), dtype=bool)
        if flags is not None and not self.config.learn_flagged:
            learnable = ~np.asarray(flags, dtype=bool).reshape(events, steps)
        slots = self.store.lookup(list(stream_ids))
        keep &= slots >= 0
        if not keep.any():
            return
        slots, values, learnable = slots[keep], values[keep], learnable[keep]
        extreme = ~(np.abs(values) <= LEARNABLE_BOUND).all(axis=2)  # NaN too
        if extreme.any():
            self.excluded += int(extreme.sum())
            learnable = learnable & ~extreme
            values = np.clip(np.nan_to_num(values), -LEARNABLE_BOUND, LEARNABLE_BOUND)
        buffer, count, ok = self._x.values, self._count.values, self._ok.values
        for step in range(steps):
            position = count[slots] % self.config.buffer
            buffer[slots, position] = values[:, step]
            ok[slots, position] = learnable[:, step]
            count[slots] += 1
        self.pending += int(learnable.sum())

    def update(self) -> UpdateReport | None:
        """Train on recent steps of up to ``lanes`` streams and swap the weights in.

        Returns None (and changes nothing) while no stream has ``min_steps``
        buffered steps.
        """
        config = self.config
        with self.lock:
            batch = self._sample()
            self.pending = 0
        if batch is None:
            return None
        started = time.perf_counter()
        x, valid, ok = (torch.from_numpy(part) for part in batch)
        steps = int((valid[:, 1:] & ok[:, 1:]).sum())
        if not steps:
            return None  # no learnable target in the batch: nothing to learn, no new version
        loss_before = self._train(x, valid, ok)
        loss_after = self._loss(self._shadow, x, valid, ok)
        new_state = {k: v.detach().clone() for k, v in self._shadow.state_dict().items()}
        finite = all(bool(torch.isfinite(v).all()) for v in new_state.values())
        losses = (loss_before, loss_after)
        if not (finite and np.isfinite(loss_after)):
            return self._reject(int(x.shape[0]), steps, losses, started)
        with self.lock:
            self.engine.model.load_state_dict(new_state)
            self.engine.refresh()
            self.version += 1
            version, self.updated_at = self.version, time.time()
            waiting = self._buffered_slots(1) if config.carry == "recompute" else None
            if waiting is not None:
                self._recomputing += 1
                self._settled.clear()
        try:
            recomputed, rested = (0, 0.0) if waiting is None else self._recompute(waiting)
        finally:
            if waiting is not None:
                with self.lock:
                    self._recomputing -= 1
                    if not self._recomputing:
                        self._settled.set()
        with self.lock:
            report = self._record(
                int(x.shape[0]), steps, losses, started, recomputed, rested=rested, version=version
            )
            self.learning_seconds += report.seconds
        return report

    def _reject(
        self, streams: int, steps: int, losses: tuple[float, float], started: float
    ) -> UpdateReport:
        """Keep the live weights: training left them not finite. The shadow model and the
        optimizer start again from the live model (their state is spoiled too)."""
        with self.lock:
            self._shadow.load_state_dict(self.engine.model.state_dict())
            self._optimizer = torch.optim.Adam(
                self._shadow.parameters(), lr=self.config.learning_rate
            )
            self.rejected += 1
            why = (
                f"the weights were not finite after training (loss {losses[0]:.3g} -> "
                f"{losses[1]:.3g}); the live weights were kept"
            )
            return self._record(streams, steps, losses, started, 0, rejected=why)

    def _record(
        self,
        streams: int,
        steps: int,
        losses: tuple[float, float],
        started: float,
        recomputed: int,
        *,
        rejected: str | None = None,
        rested: float = 0.0,
        version: int | None = None,
    ) -> UpdateReport:
        """The report of the update that ends now, kept in :attr:`history` (the last 100);
        its seconds leave out the ``rested`` ones; ``version``: the one it swapped in
        (default: the current one)."""
        report = UpdateReport(
            version=self.version if version is None else version,
            streams=streams,
            steps=steps,
            loss_before=losses[0],
            loss_after=losses[1],
            seconds=time.perf_counter() - started - rested,
            recomputed=recomputed,
            rejected=rejected,
        )
        self.history.append(report)
        del self.history[:-100]
        return report

    def run(self, stop: threading.Event, *, poll: float = 0.05) -> None:
        """Update whenever ``update_every`` learnable steps arrived, until ``stop`` is set.

        After an update that took ``s`` seconds it rests ``s (1 / cpu_share - 1)``
        seconds, so learning takes at most ``cpu_share`` of the time.
        """
        self._stopping = stop  # a recompute then rests no more
        while not stop.is_set():
            if self.pending < self.config.update_every:
                stop.wait(poll)
                continue
            report = self.update()
            if report is not None:
                stop.wait(report.seconds * (1.0 / self.config.cpu_share - 1.0))

    def adopt(self, version: int, updated_at: float | None = None) -> None:
        """Take the live model's current weights as this learner's (after loading saved ones)."""
        with self.lock:
            self._shadow.load_state_dict(self.engine.model.state_dict())
            self.version, self.updated_at = int(version), updated_at

    def buffered(self, stream_id: StreamId) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
        """A stream's buffered steps, oldest first, and their learnable flags."""
        with self.lock:
            slot = self.store.slot_of(stream_id)
            x, ok, _ = self._windows(np.array([slot]), self.config.buffer)
            return x[0], ok[0]

    def settled(self, timeout: float | None = None) -> bool:
        """Wait until no update is recomputing carries (at most ``timeout`` seconds);
        whether none is. Check :attr:`recomputing` under the lock to be sure."""
        return self._settled.wait(timeout)

    @property
    def recomputing(self) -> bool:
        """Whether an update swapped its weights in and is recomputing carries: the store
        then holds some carries of the old weights beside the new weights."""
        return self._recomputing > 0

    @property
    def learning_share(self) -> float:
        """The share of wall-clock time spent in updates since the learner was made."""
        return self.learning_seconds / max(time.monotonic() - self._started, 1e-9)

    # --------------------------------------------------------------- internals
    def _windows(
        self, slots: NDArray[np.int64], steps: int
    ) -> tuple[NDArray[np.float32], NDArray[np.bool_], NDArray[np.int64]]:
        """The last ``steps`` buffered steps of each slot, left-aligned, with lengths."""
        buffer = self.config.buffer
        count = self._count[slots]
        lengths = np.minimum(count, min(steps, buffer))
        width = int(lengths.max()) if len(lengths) else 0
        start = count - lengths
        offsets = (start[:, None] + np.arange(width)[None, :]) % buffer
        x = self._x[slots[:, None], offsets]
        ok = self._ok[slots[:, None], offsets]
        valid = np.arange(width)[None, :] < lengths[:, None]
        x = np.where(valid[..., None], x, 0.0).astype(np.float32)
        return x, ok & valid, lengths

    def _buffered_slots(self, at_least: int) -> NDArray[np.int64]:
        """Slots of the held streams with at least ``at_least`` steps recorded."""
        held = self.store.held_slots()
        enough: NDArray[np.int64] = held[self._count.values[held] >= at_least]
        return enough

    def _sample(self) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]] | None:
        """Copy the training batch out of the store (under the lock)."""
        ready = self._buffered_slots(self.config.min_steps)
        if not len(ready):
            return None
        if len(ready) > self.config.lanes:
            ready = np.sort(self._rng.choice(ready, size=self.config.lanes, replace=False))
        x, ok, lengths = self._windows(ready, self.config.buffer)
        valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
        return x, valid, ok

    def _train(self, x: torch.Tensor, valid: torch.Tensor, ok: torch.Tensor) -> float:
        """Truncated BPTT over the batch, ``epochs`` passes; the first pass's mean loss."""
        model, config = self._shadow, self.config
        model.train()
        first: list[float] = []
        for epoch in range(config.epochs):
            carry = None
            for begin in range(0, x.shape[1] - 1, config.chunk):
                end = min(begin + config.chunk, x.shape[1] - 1)
                out, carry = model(x[:, begin:end], carry)
                weight = (valid[:, begin + 1 : end + 1] & ok[:, begin + 1 : end + 1]).float()
                error = (out - x[:, begin + 1 : end + 1, : self.targets]) ** 2
                total = weight.sum()
                carry = tuple(part.detach() for part in carry)
                if total == 0:
                    continue
                loss = (error.mean(dim=2) * weight).sum() / total
                self._optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                self._optimizer.step()
                if epoch == 0:
                    first.append(float(loss.detach()))
        model.eval()
        return float(np.mean(first)) if first else float("nan")

    def _loss(self, model: Any, x: torch.Tensor, valid: torch.Tensor, ok: torch.Tensor) -> float:
        with torch.no_grad():
            out, _ = model(x[:, :-1])
            weight = (valid[:, 1:] & ok[:, 1:]).float()
            error = ((out - x[:, 1:, : self.targets]) ** 2).mean(dim=2)
            return float((error * weight).sum() / weight.sum().clamp(min=1.0))

    def _recompute(self, slots: NDArray[np.int64]) -> tuple[int, float]:
        """The new model's carry and last output for the streams at ``slots``, a few at a
        time, each few under the lock, and the seconds spent outside the lock meanwhile.

        The lock is let go between turns for as long as the last turn held it, so steps wait
        at most about :data:`RECOMPUTE_HOLD` seconds and get at least half of the lock's
        time while carries are recomputed (in one hold, as before, a step waited 9.5-9.8 s
        during an update over 20,000 streams with full 256-step buffers; now 31-42 ms,
        ``bench/online_stall.py``). A turn takes as many buffered steps (not streams: their
        buffers differ) as the last turn's time per step fits in the hold. A stream still
        waiting its turn steps on with the new weights from the carry it had, as with
        ``carry="keep"``; at its turn, its carry becomes the new model's over its buffer as
        it is then. Slots let go of in the meantime are skipped; a slot taken by another
        stream is that stream's. Once :meth:`run`'s ``stop`` is set it rests no more."""
        steps = self.config.recompute_steps or self.config.buffer
        # each stream's steps as the swap left them: the turns' sizes go by these
        with self.lock:
            work = np.cumsum(np.minimum(self._count.values[slots], steps))
        budget, done, first, held = float(steps), 0, 0, 0.0
        began = time.perf_counter()
        while first < len(slots):
            before = float(work[first - 1]) if first else 0.0
            end = max(first + 1, int(np.searchsorted(work, before + budget, side="right")))
            with self.lock:
                turn = time.perf_counter()
                chosen = slots[first:end]
                still = chosen[self.store.held(chosen) & (self._count.values[chosen] > 0)]
                done += self._recompute_now(still, steps)
                took = time.perf_counter() - turn
            held += took
            # as many steps next time as fit in the hold, measured on these
            fit = (float(work[end - 1]) - before) * RECOMPUTE_HOLD / max(took, 1e-6)
            budget = min(max(fit, 1.0), 4.0 * budget, 4096.0 * steps)
            first = end
            stopping = self._stopping is not None and self._stopping.is_set()
            if first < len(slots) and not stopping:
                time.sleep(took)  # waiting steps take the lock meanwhile
        return done, time.perf_counter() - began - held

    def _recompute_now(self, slots: NDArray[np.int64], steps: int) -> int:
        """Recompute the carries at ``slots`` (the caller holds the lock)."""
        store, model = self.store, self.engine.model
        x, _, lengths = self._windows(slots, steps)
        for length in np.unique(lengths).tolist():
            chosen = slots[lengths == length]
            inputs = torch.from_numpy(x[lengths == length, :length]).to(store.device)
            with torch.no_grad(), inference_mode(model):
                out, carry = model(inputs.to(store.dtype))
            index = torch.from_numpy(chosen).to(store.device)
            store.scatter(index, carry)
            store.last_output[chosen] = out[:, -1].float().cpu().numpy()
        return len(slots)
