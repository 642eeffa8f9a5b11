"""``StreamService``: a saved forecaster, its state store, engine and detector, behind one lock.

Everything the HTTP app does goes through this class, which speaks plain
Python: the app only parses requests and renders answers.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from .._errors import ConfigError, DataError, describe
from .._files import write_atomically
from .._validate import plain_numbers, require_positive_int
from ..anomaly import DetectorConfig
from ..data import Scaler
from ..online import OnlineConfig, OnlineLearner
from ..stream import StateStore, Status, StreamDetector, StreamEngine
from ..stream._engine import APPLIED
from ..stream._grouping import plan_calls
from ..train import Forecaster
from ._metrics import Registry

LOG = logging.getLogger("stateline.serve")

__all__ = ["Event", "ServeConfig", "StreamService"]


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """Settings of ``stateline serve``; every field is a command-line flag.

    ``snapshot_dir`` defaults to ``<model>/state``; the state store is written
    there every ``snapshot_interval`` seconds and on graceful shutdown, and read
    back on start (for a ``.keras`` file: ``<model>.state``). ``model`` is a
    directory from ``stateline train`` or a Keras 3 ``.keras`` file (converted
    with :func:`stateline.keras.from_keras`; values then go in unscaled, and
    scores come only when its outputs forecast its leading inputs). ``token``
    guards every write (``None``: the app refuses to start without one; the
    CLI reads ``STATELINE_TOKEN`` or makes one up). ``online`` (``serve
    --online``) keeps the model learning from its streams
    (:class:`~stateline.online.OnlineLearner`); its weights are written next
    to every snapshot (``online.pt``) and loaded on start, before the store.
    Reads of stream data (``/v1/streams``, ``/metrics``) need the token too
    unless ``public_reads``; ``/healthz`` stays open and names no server path.
    Requests whose ``Host`` header is not the bound address (or ``localhost``)
    or one of ``allowed_hosts`` (comma-separated) are refused, so a web page
    cannot reach the server through DNS rebinding; bound to ``0.0.0.0`` with
    no ``allowed_hosts``, any host is taken.
    ``threads`` is what ``stateline serve`` gives PyTorch and the BLAS library
    for its process (``None``: half the cores, at least 1, leaving the rest to
    the server's own threads and its clients).
    """

    @property
    def compute_threads(self) -> int:
        """The threads ``threads`` stands for on this machine."""
        return self.threads or max(1, (os.cpu_count() or 1) // 2)

    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    snapshot_dir: str | None = None
    snapshot_interval: float = 10.0
    capacity: int = 1_000_000
    ttl: float | None = None
    history: int = 600
    history_streams: int = 1000
    max_body_bytes: int = 1_048_576
    max_events: int = 10_000
    max_steps: int = 65_536
    max_event_steps: int = 4_096
    threads: int | None = None
    public_reads: bool = False
    allowed_hosts: str | None = None
    learn: bool = True
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(reference=200))
    online: OnlineConfig | None = None

    def __post_init__(self) -> None:
        plain_numbers(self)
        for name in ("port", "capacity", "history", "history_streams", "max_body_bytes"):
            require_positive_int(name, getattr(self, name))
        for name in ("max_events", "max_steps", "max_event_steps"):
            require_positive_int(name, getattr(self, name))
        require_positive_int("threads", self.threads, optional=True)
        if not self.snapshot_interval > 0:
            raise ConfigError(
                describe(
                    "snapshot_interval",
                    "seconds > 0",
                    repr(self.snapshot_interval),
                    problem="is invalid.",
                )
            )

    @property
    def state_dir(self) -> Path:
        if self.snapshot_dir:
            return Path(self.snapshot_dir)
        model = Path(self.model)
        return model.with_suffix(".state") if model.suffix == ".keras" else model / "state"


@dataclass(frozen=True)
class Event:
    """One stream's step(s): ``values`` is ``(inputs,)`` or ``(k, inputs)`` in original units."""

    stream: str
    values: Any
    seq: int | None = None
    start: bool = False
    end: bool = False


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
        model, detect = self._load(Path(config.model))
        self.model = model.eval()
        self.metrics = Registry()
        self.store = StateStore(
            self.model,
            capacity=config.capacity,
            ttl=config.ttl,
            on_evict=lambda stream, carry: self.metrics.evictions.inc(),
        )
        self.engine = StreamEngine(self.model, self.store)
        self.inputs = self.model.config.inputs
        self.detector = (
            StreamDetector(self.engine, config.detector, targets=self.targets, learn=config.learn)
            if detect
            else None
        )
        names = Path(config.model) / "columns.json"
        document = json.loads(names.read_text()) if names.is_file() else {}
        self.columns: list[str] = list(document.get("target", [])) + list(
            document.get("features", [])
        )
        self.lock = threading.RLock()
        self.history: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self.started = time.time()
        self.last_snapshot: float | None = None
        self.snapshot_failures = 0
        """Snapshots that failed, in all."""
        self.snapshot_failing = 0
        """Snapshots that failed since the last one that was written."""
        self.last_snapshot_error: str | None = None
        self.restored = 0
        self.learner: OnlineLearner | None = None
        if config.online is not None:
            self.learner = OnlineLearner(
                self.engine, config.online, targets=self.targets, lock=self.lock
            )
            self._load_online_weights()
        if (config.state_dir / "state.pt").is_file():
            self.restored = self.store.restore(config.state_dir)
        self.metrics.gauge("stateline_active_streams", "Streams in the state store.", self.count)
        if self.learner is not None:
            self._online_metrics(self.learner)
        self.metrics.gauge(
            "stateline_last_snapshot_timestamp_seconds",
            "When the last snapshot was written (0: never).",
            lambda: self.last_snapshot or 0.0,
        )
        self.metrics.gauge(
            "stateline_snapshot_failing",
            "Snapshots failed since the last one written (0: durable).",
            lambda: float(self.snapshot_failing),
        )
        self.metrics.last_error(
            "stateline_snapshot_last_error",
            "The last snapshot error, as a label (absent: none).",
            lambda: self.last_snapshot_error,
        )

    # ------------------------------------------------------------------ public
    def count(self) -> float:
        return float(len(self.store))

    def step(self, events: Sequence[Event], *, now: float | None = None) -> list[dict[str, Any]]:
        """Apply events in order; one answer per event (bad events answer with an error)."""
        if len(events) > self.config.max_events:
            raise DataError(
                describe(
                    "events",
                    f"at most {self.config.max_events} per call",
                    f"{len(events)}",
                    problem="are too many.",
                    fix="Split the batch.",
                )
            )
        answers: list[dict[str, Any] | None] = [None] * len(events)
        valid: list[tuple[int, NDArray[np.float64]]] = []
        for index, event in enumerate(events):
            values, problem = self._values(event)
            if problem is not None:
                answers[index] = _answer(event, Status.ERROR, error=problem)
                continue
            assert values is not None
            valid.append((index, values))
        steps = sum(len(values) for _, values in valid)
        if steps > self.config.max_steps:  # refused before anything changes
            raise DataError(
                describe(
                    "events",
                    f"at most --max-steps {self.config.max_steps} steps per request",
                    f"{steps} steps",
                    problem="hold too many steps.",
                    fix="Split the batch.",
                )
            )
        streams = {events[index].stream for index, _ in valid}
        if len(streams) > self.store.capacity:  # refused before anything changes
            raise ConfigError(
                describe(
                    "events",
                    f"at most --capacity {self.store.capacity} streams per request",
                    f"{len(streams)} streams",
                    problem="name too many streams.",
                    fix="Split the batch, or raise --capacity.",
                )
            )
        # As few engine calls as keep every stream's events in order (plan_calls).
        calls = plan_calls(
            [events[index].stream for index, _ in valid],
            [(len(values), events[index].seq is None) for index, values in valid],
        )
        groups = [[valid[position] for position in call] for call in calls]
        for members in groups:  # the lock is let go between calls: other clients get turns
            with self.lock:
                self._step_group(events, members, answers, now)
        with self.lock:
            self.metrics.batch.observe(len(events))
            for status, count in Counter(a["status"] for a in answers if a).items():
                self.metrics.steps.inc(status, amount=count)
        return [answer for answer in answers if answer is not None]

    def stream(self, stream_id: str) -> dict[str, Any]:
        """What the service holds for one stream (UnknownStreamError if none)."""
        with self.lock:
            slot = self.store.slot_of(stream_id)
            prediction = self.store.last_output[slot]
            seen = self._detector_column("seen", slot, 0)
            return {
                **self._row(stream_id, slot),
                "forecast": _nullable(self._unscale(prediction[None])[0]),
                "calibrated": bool(seen >= self.config.detector.reference),
                "history": list(self.history.get(stream_id, [])),
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
            self.store.delete(stream_id)
            self.history.pop(stream_id, None)

    def snapshot(self) -> Path:
        """Write the state store (carries, sequence numbers, detector state) atomically.

        With online learning the current weights go first, into ``online.pt``
        (the store's snapshot names the weights it was made with).
        """
        with self.lock:
            try:
                if self.learner is not None:
                    self._save_online_weights()
                path = self.store.snapshot(self.config.state_dir)
            except Exception as error:
                self.snapshot_failures += 1
                self.snapshot_failing += 1
                self.last_snapshot_error = f"{type(error).__name__}: {error}"
                self.metrics.snapshot_failures.inc()
                LOG.error(
                    "snapshot to %s failed (%d in a row): %s; the state since the last "
                    "snapshot is not durable",
                    self.config.state_dir,
                    self.snapshot_failing,
                    self.last_snapshot_error,
                )
                raise
            self.last_snapshot = time.time()
            self.snapshot_failing = 0
            self.metrics.snapshots.inc()
            return path

    def expire(self) -> int:
        with self.lock:
            return self.store.expire()

    def health(self) -> dict[str, Any]:
        return {
            "status": "degraded" if self.snapshot_failing else "ok",
            "snapshot": {
                "last": self.last_snapshot,
                "failures": self.snapshot_failures,
                "failing": self.snapshot_failing,
                "last_error": self.last_snapshot_error,
            },
            "streams": len(self.store),
            "model": Path(self.config.model).name,  # no server paths
            "inputs": self.inputs,
            "columns": self.columns,
            "targets": self.targets,
            "horizon": self.horizon,
            "reference": self.config.detector.reference,
            "uptime_seconds": round(time.time() - self.started, 3),
            "last_snapshot": self.last_snapshot,
            "restored_streams": self.restored,
            "online": self._online_health(),
        }

    # --------------------------------------------------------------- internals
    def _online_health(self) -> dict[str, Any] | None:
        learner = self.learner
        if learner is None:
            return None
        last = learner.history[-1] if learner.history else None
        return {
            "version": learner.version,
            "updated_at": learner.updated_at,
            "pending_steps": learner.pending,
            "learning_share": round(learner.learning_share, 4),
            "last_loss_before": None if last is None else last.loss_before,
            "last_loss_after": None if last is None else last.loss_after,
        }

    def _online_metrics(self, learner: OnlineLearner) -> None:
        def last(name: str) -> Any:
            return lambda: getattr(learner.history[-1], name) if learner.history else float("nan")

        for name, help_text, read in (
            ("stateline_online_updates", "Model updates swapped in (the model version).",
             lambda: float(learner.version)),
            ("stateline_online_last_update_timestamp_seconds",
             "When the model was last updated (0: never).", lambda: learner.updated_at or 0.0),
            ("stateline_online_pending_steps", "Learnable steps since the last update.",
             lambda: float(learner.pending)),
            ("stateline_online_learning_share", "Share of wall time spent learning.",
             lambda: learner.learning_share),
            ("stateline_online_last_loss_before", "Last update's batch loss before training.",
             last("loss_before")),
            ("stateline_online_last_loss_after", "Last update's batch loss after training.",
             last("loss_after")),
            ("stateline_online_last_update_seconds", "How long the last update took.",
             last("seconds")),
        ):  # fmt: skip
            self.metrics.gauge(name, help_text, read)

    def _save_online_weights(self) -> None:
        assert self.learner is not None
        directory = self.config.state_dir
        directory.mkdir(parents=True, exist_ok=True)
        saved = {
            "weights": self.model.state_dict(),
            "version": self.learner.version,
            "updated_at": self.learner.updated_at,
        }
        write_atomically(directory / "online.pt", lambda file: torch.save(saved, file))

    def _load_online_weights(self) -> None:
        """Weights learned online in an earlier run, if the state directory holds them."""
        assert self.learner is not None
        path = self.config.state_dir / "online.pt"
        if not path.is_file():
            return
        saved = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(saved["weights"])
        self.engine.refresh()
        self.learner.adopt(saved["version"], saved["updated_at"])

    def _load(self, path: Path) -> tuple[Any, bool]:
        """The model, its scalers and sizes; whether its outputs forecast its inputs."""
        self.scaler: Scaler | None = None
        self.covariate_scaler: Scaler | None = None
        if path.suffix == ".keras":
            from ..keras import from_keras

            model = from_keras(path)
            self.targets, self.horizon = model.config.outputs, 1
            return model, model.config.outputs <= model.config.inputs
        forecaster = Forecaster.load(path)
        assert forecaster.model_ is not None
        self.scaler, self.covariate_scaler = forecaster.scaler_, forecaster.covariate_scaler_
        self.targets, self.horizon = forecaster.targets_, forecaster.config.horizon
        return forecaster.model_, True

    def _row(self, stream_id: str, slot: int) -> dict[str, Any]:
        return {
            "stream": stream_id,
            "seq": _seq(int(self.store.last_seq[slot])),
            "score": _number(float(self._detector_column("last_score", slot, np.nan))),
            "flag": bool(self._detector_column("last_flag", slot, False)),
            "anomaly_score": _number(float(self._detector_column("last_anomaly", slot, np.nan))),
            "scored_by": self.flagged_by,
            "level": _number(float(self._detector_column("level", slot, np.nan))),
            "last_seen": float(self.store.last_seen[slot]),
        }

    @property
    def flagged_by(self) -> str:
        """Which per-step score ``level`` applies to: ``anomaly_score`` or ``score``."""
        likelihood = self.detector is not None and self.detector.config.threshold == "likelihood"
        return "anomaly_score" if likelihood else "score"

    def _detector_column(self, name: str, slots: Any, default: Any) -> Any:
        if self.detector is None:
            return np.full(np.shape(slots), default)
        return self.detector.column(name)[slots]

    def _values(self, event: Event) -> tuple[NDArray[np.float64] | None, str | None]:
        try:
            values = np.asarray(event.values, dtype=np.float64)
        except (TypeError, ValueError):
            return None, describe(
                "values", "numbers", repr(event.values)[:80], problem="are not numbers."
            )
        if values.ndim == 1:
            values = values[None]
        if values.ndim != 2 or values.shape[1] != self.inputs or len(values) == 0:
            return None, describe(
                "values",
                f"{self.inputs} numbers per step (or a list of such steps)",
                f"shape {tuple(np.shape(event.values))}",
                problem="has the wrong shape.",
            )
        if not np.isfinite(values).all():
            return None, describe(
                "values", "finite numbers", "NaN or inf", problem="hold NaN or inf."
            )
        if len(values) > self.config.max_event_steps:
            return None, describe(
                "values",
                f"at most --max-event-steps {self.config.max_event_steps} steps per event",
                f"{len(values)} steps",
                problem="hold too many steps.",
                fix="Split the event into several with consecutive seq.",
            )
        return values, None

    def _scale(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Original units -> the model's inputs (targets, then covariates)."""
        if self.scaler is None:
            return values
        flat = values.reshape(-1, values.shape[-1])
        parts = [self.scaler.transform(flat[:, : self.targets])]
        if self.covariate_scaler is not None:
            parts.append(self.covariate_scaler.transform(flat[:, self.targets :]))
        return np.concatenate(parts, axis=1).reshape(values.shape)

    def _unscale(self, predictions: NDArray[Any]) -> NDArray[np.float64]:
        """Model outputs ``(..., horizon * targets)`` -> ``(..., horizon, targets)`` units."""
        scaler = self.scaler
        shaped = np.asarray(predictions, dtype=np.float64).reshape(
            *predictions.shape[:-1], self.horizon, self.targets
        )
        if scaler is None:
            return shaped
        assert scaler.mean_ is not None and scaler.scale_ is not None
        # Not Scaler.inverse_transform: events that were not applied keep NaN (-> null).
        result: NDArray[np.float64] = shaped * scaler.scale_ + scaler.mean_
        return result

    def _step_group(
        self,
        events: Sequence[Event],
        members: list[tuple[int, NDArray[np.float64]]],
        answers: list[dict[str, Any] | None],
        now: float | None,
    ) -> None:
        chosen = [events[index] for index, _ in members]
        values = np.stack([v for _, v in members])
        stepper: Any = self.detector if self.detector is not None else self.engine
        scaled = self._scale(values)
        result = stepper.step(
            [event.stream for event in chosen],
            scaled,
            seq=None if chosen[0].seq is None else [int(e.seq or 0) for e in chosen],
            start=[event.start for event in chosen],
            end=[event.end for event in chosen],
            now=now,
        )
        if self.learner is not None:
            self.learner.observe(
                [event.stream for event in chosen],
                scaled,
                applied=result.applied,
                flags=result.flags,
            )
        shape = (len(chosen), len(members[0][1]))
        scores = np.full(shape, np.nan) if result.scores is None else result.scores
        flags = np.zeros(shape, dtype=bool) if result.flags is None else result.flags
        anomaly = np.full(shape, np.nan) if result.anomaly_scores is None else result.anomaly_scores
        forecasts = self._unscale(result.predictions)
        if forecasts.ndim == 3:  # one step per event: (events, horizon, targets)
            forecasts = forecasts[:, None]
        forecast_lists = _nullable(forecasts)
        score_lists = _nullable(scores.reshape(len(chosen), -1))
        flag_lists = flags.reshape(len(chosen), -1).tolist()
        anomaly_lists = _nullable(anomaly.reshape(len(chosen), -1))
        slots = self.store.lookup([event.stream for event in chosen])
        held = slots >= 0
        levels = _nullable(np.where(held, self._detector_column("level", slots, np.nan), np.nan))
        seqs = np.where(held, self.store.last_seq[slots], -1).tolist()
        self.metrics.flags.inc(amount=float(flags.sum()))
        for position, (index, raw) in enumerate(members):
            event = chosen[position]
            status = result.status[position]
            answer = _answer(event, status, error=result.errors.get(position))
            answer["forecast"] = forecast_lists[position]
            answer["scores"] = score_lists[position]
            answer["flags"] = flag_lists[position]
            answer["anomaly_scores"] = anomaly_lists[position]
            answer["level"] = levels[position]
            answer["seq"] = _seq(seqs[position])
            if status in APPLIED:
                self._remember(event, raw, answer)
            answers[index] = answer

    def _remember(self, event: Event, raw: NDArray[np.float64], answer: dict[str, Any]) -> None:
        """Keep the last ``history`` points of the latest ``history_streams`` streams."""
        if event.end:
            self.history.pop(event.stream, None)
            return
        points = self.history.get(event.stream)
        if points is None or event.start:
            points = deque(maxlen=self.config.history)
            self.history[event.stream] = points
            if len(self.history) > self.config.history_streams:
                self.history.popitem(last=False)
        self.history.move_to_end(event.stream)
        first = answer["seq"]
        first = None if first is None else first - len(raw) + 1
        values = raw[:, : self.targets].tolist()
        for j, row in enumerate(values):
            previous = points[-1]["next"] if points else None
            points.append(
                {
                    "seq": None if first is None else first + j,
                    "values": row,
                    "forecast": previous,
                    "next": answer["forecast"][j][0],
                    "score": answer["scores"][j],
                    "flag": answer["flags"][j],
                    "anomaly_score": answer["anomaly_scores"][j],
                    "level": answer["level"],
                }
            )


def _answer(event: Event, status: str, *, error: str | None = None) -> dict[str, Any]:
    return blank_answer(event.stream, status, error=error)


def blank_answer(stream: str | None, status: str, *, error: str | None = None) -> dict[str, Any]:
    """An answer with nothing applied yet (the shape of every answer of the API)."""
    answer: dict[str, Any] = {
        "stream": stream,
        "status": status,
        "seq": None,
        "forecast": [],
        "scores": [],
        "flags": [],
        "anomaly_scores": [],
        "level": None,
    }
    if error is not None:
        answer["error"] = error
    return answer


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else value


def _nullable(array: NDArray[Any]) -> list[Any]:
    """``array.tolist()`` with NaN and inf as None (JSON null), for a whole group at once."""
    values = np.asarray(array, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        result: list[Any] = values.tolist()
        return result
    boxed = values.astype(object)
    boxed[~finite] = None
    listed: list[Any] = boxed.tolist()
    return listed


def _seq(value: int) -> int | None:
    return None if value < 0 else value
