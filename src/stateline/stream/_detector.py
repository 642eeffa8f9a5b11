"""``StreamDetector``: anomaly scores and flags for live streams, next to their predictions."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ..anomaly import DetectorConfig, GaussianThreshold, LikelihoodConfig, QuantileThreshold
from ..anomaly._likelihood import (
    likelihood_calibrate,
    likelihood_step,
    track_range,
)
from ..anomaly._scorers import (
    DEFAULT_FLOOR,
    combine_channels,
    ewma,
    moments_std,
    require_combinable,
    squared_z,
    surprise,
    welford_step,
)
from ._detector_columns import DetectorColumns
from ._detector_one import OneStep, detector_step_one
from ._engine import (
    DUPLICATE,
    StepResult,
    StreamEngine,
    _flags,
)
from ._grouping import event_rounds, id_array
from ._sequence import sequence_numbers
from ._store import StreamId, StreamIds

__all__ = ["StreamDetector"]


class StreamDetector:
    """Score every step of every stream by how far it is from the model's forecast of it.

    Wraps a :class:`StreamEngine` whose model forecasts the next step of its
    first ``targets`` inputs (a :class:`~stateline.Forecaster`'s model, in
    scaled units). For each stream, the error of a step is its observed
    targets minus the prediction made after the previous step (0 for the first
    step), the same errors :class:`~stateline.anomaly.ForecastDetector`
    computes offline. Per stream, and with the offline detector's procedure:

    - the first ``config.reference`` steps calibrate: their errors are kept;
      after the last of them an :class:`~stateline.anomaly.ErrorScorer` learns
      the errors of steps ``warmup .. reference - 1``, scores all reference
      steps, and the configured threshold is fitted on the scores after
      ``warmup``. Steps before that return a NaN score and no flag;
    - every later step is scored (per-channel normalised squared error,
      EWMA-smoothed, combined) and flagged above the threshold's level, and
      gets an ``anomaly_score`` in [0, 1], the anomaly likelihood (see
      :class:`~stateline.anomaly.LikelihoodConfig`), which adapts to each
      stream's recent history at every step, exactly as offline;
    - with ``threshold="likelihood"`` a step is flagged where its anomaly
      score reaches ``alarm``; the likelihood does the adapting and the error
      statistics stay as calibrated, so streamed flags equal offline ones
      (the anomaly score always uses the error statistics as calibrated, so
      it equals the offline one whatever ``learn`` says);
    - otherwise, with ``learn=True`` the error statistics, and a Gaussian
      threshold's score statistics, keep learning from every step that was
      not flagged (also from flagged ones with ``learn_flagged=True``).
      Quantile and dynamic levels stay as calibrated: their online forms keep
      a window of scores, which for very many streams would cost too much
      memory.

    The state lives in the engine's :class:`StateStore` as per-stream columns,
    so it is reset with ``start``, freed with ``end`` or eviction, and saved
    and restored with the carries by ``snapshot`` / ``restore``. Memory: the
    calibration buffer is a column of ``reference x targets`` float64 per slot
    of the store (8 * 400 * 8 bytes = 25.6 kB per stream at the defaults with 8
    channels); lower ``reference`` for very many streams.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> from stateline.stream import StateStore
    >>> model = SequenceModel(ModelConfig(inputs=2, hidden=4, outputs=2))
    >>> engine = StreamEngine(model, StateStore(model))
    >>> detector = StreamDetector(engine, DetectorConfig(reference=20, warmup=5))
    >>> rng = np.random.default_rng(0)
    >>> for t in range(30):
    ...     result = detector.step(["pump"], rng.normal(size=(1, 2)))
    >>> result.scores.shape, bool(np.isfinite(result.scores[0])), result.flags.dtype
    ((1,), True, dtype('bool'))
    """

    def __init__(
        self,
        engine: StreamEngine,
        config: DetectorConfig | None = None,
        *,
        targets: int | None = None,
        learn: bool = True,
        learn_flagged: bool = False,
    ) -> None:
        self.engine = engine
        self.config = config or DetectorConfig()
        store = engine.store
        inputs = engine.inputs or 0
        width = targets if targets is not None else store.outputs
        if not 0 < width <= min(store.outputs, inputs):
            raise ConfigError(
                describe(
                    "targets",
                    f"1 .. {min(store.outputs, inputs)}: the leading inputs the model forecasts "
                    f"(it has {inputs} inputs, {store.outputs} outputs)",
                    repr(width),
                    problem="is invalid.",
                )
            )
        require_combinable(
            self.config.combine,
            width,
            "targets",
            error=ConfigError,
            fix="forecast two or more targets, or use combine='mean'.",
        )
        self.targets = width
        self.learn = learn
        self.learn_flagged = learn_flagged
        self.flagged = 0
        reference = self.config.reference
        self.columns = DetectorColumns.add_to(store, reference=reference, width=width)
        """Typed handles on the detector's per-stream columns in the store."""
        self._likelihoods = (self.config, self.config.likelihood())

    @property
    def _likelihood(self) -> LikelihoodConfig:
        """``config.likelihood()``, made once per config (it validates on creation)."""
        config, likelihood = self._likelihoods
        if config is not self.config:
            likelihood = self.config.likelihood()
            self._likelihoods = (self.config, likelihood)
        return likelihood

    # ------------------------------------------------------------------ public
    def step(
        self,
        stream_ids: StreamIds,
        x: ArrayLike,
        *,
        seq: ArrayLike | None = None,
        start: bool | ArrayLike | None = None,
        end: bool | ArrayLike | None = None,
        now: float | None = None,
    ) -> StepResult:
        """Like :meth:`StreamEngine.step`, plus ``scores`` and ``flags`` per event and step.

        ``x`` is ``(events, inputs)`` or ``(events, k, inputs)`` in the model's
        (scaled) units. A duplicate of a stream's last event gets its earlier
        score and flag back.
        """
        return self._step(stream_ids, x, seq=seq, start=start, end=end, now=now)

    def _step(
        self,
        stream_ids: StreamIds,
        x: ArrayLike,
        *,
        seq: ArrayLike | None = None,
        start: bool | ArrayLike | None = None,
        end: bool | ArrayLike | None = None,
        now: float | None = None,
        distinct: bool = False,
    ) -> StepResult:
        """:meth:`step`; ``distinct``: the caller knows no id repeats (one round, unchecked)."""
        ids = id_array(stream_ids)
        count = len(ids)
        values = np.asarray(x, dtype=np.float64)
        if values.ndim not in (2, 3) or values.shape[0] != count:
            raise ShapeError(
                describe(
                    "x",
                    f"({count}, inputs) or ({count}, k, inputs)",
                    f"shape {values.shape}",
                    fix="Pass one row of features per stream id.",
                    problem="has the wrong shape.",
                )
            )
        single = values.ndim == 2
        steps = values[:, None] if single else values
        seqs, seq_errors = sequence_numbers(seq, count)
        if seq_errors:  # the engine refuses a negative seq: these rows go in as -1, their
            assert seqs is not None  # own reasons go out
            seqs[np.fromiter(seq_errors, dtype=np.int64, count=len(seq_errors))] = -1
        starts = _flags(start, count, "start")
        ends = _flags(end, count, "end")
        k = steps.shape[1]
        predictions = np.full((count, k, max(self.engine.store.outputs, 1)), np.nan, np.float32)
        scores = np.full((count, k), np.nan)
        anomaly = np.full((count, k), np.nan)
        flags = np.zeros((count, k), dtype=bool)
        codes = np.zeros(count, dtype=np.int8)
        slots = np.full(count, -1, dtype=np.int64)
        errors: dict[int, str] = {}
        rows_all = np.arange(count)
        for rows in ([rows_all] if count else []) if distinct else event_rounds(ids, rows_all):
            result = self._round(
                ids if len(rows) == count else ids[rows],
                values[rows],
                steps[rows],
                None if seqs is None else seqs[rows],
                starts[rows],
                ends[rows],
                now,
            )
            predictions[rows] = result.predictions if not single else result.predictions[:, None]
            assert result.scores is not None and result.flags is not None
            assert result.anomaly_scores is not None
            scores[rows], flags[rows] = result.scores, result.flags
            anomaly[rows] = result.anomaly_scores
            codes[rows] = result.codes
            assert result.slots is not None
            slots[rows] = result.slots
            for position, error in result.errors.items():
                errors[int(rows[position])] = error
        errors.update(seq_errors)
        self.flagged += int(flags.sum())
        if single:
            return StepResult(
                predictions[:, 0], codes, errors, scores[:, 0], flags[:, 0], anomaly[:, 0], slots
            )
        return StepResult(predictions, codes, errors, scores, flags, anomaly, slots)

    # --------------------------------------------------------------- internals
    def _step_one(
        self, stream_id: StreamId, row: NDArray[np.float64], seq: int | None, now: float | None
    ) -> OneStep | None:
        """One single-step event of a held stream, ``row`` ``(1, inputs)`` scaled, in Python
        floats with the same numbers as :meth:`_step`; None (nothing changed) where the
        general path must decide (see :mod:`._detector_one`)."""
        return detector_step_one(self, stream_id, row, seq, now)

    def _round(
        self,
        ids: NDArray[np.object_],
        given: NDArray[np.float64],
        steps: NDArray[np.float64],
        seq: NDArray[np.int64] | None,
        start: NDArray[np.bool_],
        end: NDArray[np.bool_],
        now: float | None,
    ) -> StepResult:
        """Distinct streams: step them, then score each applied step against the prediction
        made before it (the stream's last one, then the engine's own for steps 2..k)."""
        store = self.engine.store
        width = self.targets
        before = store.lookup(ids)
        known = np.maximum(before, 0)
        previous = store.last_output[known, :width].astype(np.float64)
        last_score = self.columns.last_score[known]
        last_flag = self.columns.last_flag[known]
        last_anomaly = self.columns.last_anomaly[known]
        result = self.engine._step(ids, given, seq=seq, start=start, now=now, known=before)
        k = steps.shape[1]
        predictions = result.predictions if given.ndim == 3 else result.predictions[:, None]
        scores = np.full((len(ids), k), np.nan)
        anomaly = np.full((len(ids), k), np.nan)
        flags = np.zeros((len(ids), k), dtype=bool)
        if k == 1:
            duplicate = result.codes == DUPLICATE
            scores[duplicate, 0] = last_score[duplicate]
            flags[duplicate, 0] = last_flag[duplicate]
            anomaly[duplicate, 0] = last_anomaly[duplicate]
        applied = np.flatnonzero(result.applied)
        if len(applied):
            # New and started streams hold fresh columns: the store and engine reset them.
            assert result.slots is not None
            slots = result.slots[applied]
            seen_column = self.columns.seen
            for j in range(k):
                seen = seen_column[slots]
                made = previous[applied] if j == 0 else predictions[applied, j - 1, :width]
                observed = steps[applied, j, :width]
                error = np.where((seen > 0)[:, None], observed - made, 0.0)
                scores[applied, j], flags[applied, j], anomaly[applied, j] = self._score(
                    slots, seen, error, observed
                )
                seen_column[slots] = seen + 1
            self.columns.last_score[slots] = scores[applied, -1]
            self.columns.last_flag[slots] = flags[applied, -1]
            self.columns.last_anomaly[slots] = anomaly[applied, -1]
            ended = applied[end[applied]]
            for stream_id in ids[ended].tolist():
                store.delete(stream_id)
            if len(ended):
                result.slots[ended] = -1
        return StepResult(
            result.predictions, result.codes, result.errors, scores, flags, anomaly, result.slots
        )

    def _score(
        self,
        slots: NDArray[np.int64],
        seen: NDArray[np.int64],
        error: NDArray[np.float64],
        observed: NDArray[np.float64],
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
        reference = self.config.reference
        scores = np.full(len(slots), np.nan)
        anomaly = np.full(len(slots), np.nan)
        flags = np.zeros(len(slots), dtype=bool)
        calibrating = np.flatnonzero(seen < reference)
        if len(calibrating):
            where = slots[calibrating]
            self.columns.errors[where, seen[calibrating]] = error[calibrating]
            state = self.columns.likelihood.read(where)
            track_range(state, observed[calibrating])
            self.columns.likelihood.write(where, state)
            done = calibrating[seen[calibrating] == reference - 1]
            if len(done):
                scores[done], flags[done] = self._calibrate(slots[done])
        live = np.flatnonzero(seen >= reference)
        if len(live):
            scores[live], flags[live], anomaly[live] = self._score_live(
                slots[live], error[live], observed[live]
            )
        return scores, flags, anomaly

    def _calibrate(self, slots: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """The offline procedure (an ErrorScorer learning the reference errors after
        ``warmup``, scoring them, the threshold fitted) for every stream whose reference
        just filled, vectorised over the streams; returns their last steps' scores and flags."""
        config = self.config
        columns = self.columns
        errors = columns.errors[slots]  # (streams, reference, width)
        block = errors[:, config.warmup :]
        count = block.shape[1]
        mean = block.mean(axis=1)
        m2 = ((block - mean[:, None]) ** 2).sum(axis=1)
        std = moments_std(count, m2)
        squared = squared_z(errors, mean[:, None], std[:, None], DEFAULT_FLOOR)
        smoothed = ewma(np.swapaxes(squared, 0, 1), config.smoothing)  # (reference, streams, w)
        scores = combine_channels(smoothed, config.combine).T  # (streams, reference)
        state = columns.likelihood.read(slots)
        likelihood_calibrate(
            state, config.likelihood(), surprise(squared, config.combine), config.warmup
        )
        columns.likelihood.write(slots, state)
        columns.count[slots] = count
        columns.mean[slots] = mean
        columns.m2[slots] = m2
        columns.smoothed[slots] = smoothed[-1]
        columns.calibrated_mean[slots] = mean
        columns.calibrated_std[slots] = std
        columns.errors[slots] = 0.0  # no longer needed; keeps snapshots small
        last = scores[:, -1]
        if config.threshold == "likelihood":
            columns.level[slots] = config.alarm
            return last, np.zeros(len(slots), dtype=bool)
        learned = scores[:, config.warmup :]
        if config.threshold == "quantile" and np.isfinite(learned).all():  # all streams at once
            threshold = config.make_threshold()
            assert isinstance(threshold, QuantileThreshold)
            window = learned[:, -threshold.window :]
            levels = np.quantile(window, threshold.quantile, axis=1) * threshold.margin
            columns.level[slots] = levels
            flagged: NDArray[np.bool_] = last > levels
            return last, flagged
        flags = np.zeros(len(slots), dtype=bool)
        for position, slot in enumerate(slots.tolist()):  # other thresholds: fitted per stream
            threshold = config.make_threshold().fit(scores[position, config.warmup :])
            columns.level[slot] = threshold.level
            if isinstance(threshold, GaussianThreshold):
                columns.score_count[slot] = threshold.moments.count
                columns.score_mean[slot] = threshold.moments.mean[0]
                columns.score_m2[slot] = threshold.moments.m2[0]
            flags[position] = bool(last[position] > threshold.level)
        return last, flags

    def _score_live(
        self, slots: NDArray[np.int64], error: NDArray[np.float64], observed: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
        """Score, flag and (optionally) learn, vectorised over streams: ErrorScorer's math,
        and the anomaly likelihood's step."""
        config = self.config
        count = self.columns.count[slots]
        std = moments_std(count[:, None], self.columns.m2[slots])
        squared = squared_z(error, self.columns.mean[slots], std)
        smoothed = (
            config.smoothing * squared + (1.0 - config.smoothing) * self.columns.smoothed[slots]
        )
        self.columns.smoothed[slots] = smoothed
        scores = combine_channels(smoothed, config.combine)
        likelihood = self._likelihood
        state = self.columns.likelihood.read(slots)
        moments_learn = self.learn and config.threshold != "likelihood"
        calibrated = (  # the moments only move from calibration when they learn
            squared_z(
                error, self.columns.calibrated_mean[slots], self.columns.calibrated_std[slots]
            )
            if moments_learn
            else squared
        )
        anomaly = likelihood_step(
            state,
            likelihood,
            surprise(calibrated, config.combine),
            observed,
            likelihood.quiet_steps(config.reference),
        )
        self.columns.likelihood.write(slots, state)
        if config.threshold == "likelihood":
            return scores, anomaly >= config.alarm, anomaly
        flags = scores > self.columns.level[slots]
        if self.learn:
            learning = np.ones(len(slots), dtype=bool) if self.learn_flagged else ~flags
            self._learn(slots[learning], error[learning], scores[learning])
        return scores, flags, anomaly

    def _learn(
        self, slots: NDArray[np.int64], error: NDArray[np.float64], score: NDArray[np.float64]
    ) -> None:
        """Welford updates, as ``RunningMoments.learn_one`` does them, one per stream."""
        if not len(slots):
            return
        count = self.columns.count[slots] + 1
        mean, m2 = welford_step(
            count[:, None], self.columns.mean[slots], self.columns.m2[slots], error
        )
        self.columns.mean[slots], self.columns.m2[slots] = mean, m2
        self.columns.count[slots] = count
        if self.config.threshold != "gaussian":
            return
        count = self.columns.score_count[slots] + 1
        mean, m2 = welford_step(
            count, self.columns.score_mean[slots], self.columns.score_m2[slots], score
        )
        self.columns.score_count[slots] = count
        self.columns.score_mean[slots], self.columns.score_m2[slots] = mean, m2
        self.columns.level[slots] = mean + self.config.k * moments_std(count, m2)
