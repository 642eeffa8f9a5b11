"""Every metric of :mod:`stateline.anomaly` for the flags of one or more series, in one call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from .._errors import ShapeError, describe
from ._metrics import (
    BinaryScores,
    binary_scores,
    detection_delays,
    point_adjusted_f1,
    range_precision_recall,
)
from ._nab import NabResult, nab_score
from ._ranges import as_flags, ranges

__all__ = ["FlagReport", "flag_report"]


@dataclass(frozen=True)
class FlagReport:
    """Point-wise scores pooled over the series, range scores averaged, NAB summed."""

    binary: BinaryScores
    point_adjusted_f1: float
    range_precision: float
    range_recall: float
    nab: NabResult
    delays: list[int | None]

    @property
    def found(self) -> int:
        """How many labelled ranges were flagged at least once."""
        return sum(delay is not None for delay in self.delays)


def flag_report(
    labels: Sequence[ArrayLike],
    flags: Sequence[ArrayLike],
    *,
    nab_on: Literal["flags", "onsets"] = "flags",
) -> FlagReport:
    """Score the 0/1 ``flags`` of each series against its 0/1 ``labels``.

    NAB windows are the labelled ranges (no probation); ``nab_on="onsets"``
    scores only the first step of each flagged range, as an alarm that is
    raised once.

    >>> report = flag_report([[0, 1, 1, 0, 0]], [[0, 0, 1, 1, 0]])
    >>> round(report.binary.f1, 2), report.point_adjusted_f1, report.delays
    (0.5, 0.8, [1])
    """
    truths = [as_flags(label, "labels") for label in labels]
    flagged = [as_flags(flag, "flags") for flag in flags]
    if not truths or len(truths) != len(flagged):
        raise ShapeError(
            describe(
                "flags",
                f"one array per labelled series ({len(truths)})",
                f"{len(flagged)}",
                problem="has the wrong shape.",
            )
        )
    nab: NabResult | None = None
    delays: list[int | None] = []
    precisions, recalls = [], []
    for truth, flag in zip(truths, flagged, strict=True):
        alarms = flag
        if nab_on == "onsets":
            alarms = np.diff(np.concatenate([[0], flag.astype(np.int8)])) == 1
        result = nab_score(alarms, ranges(truth), probation=0.0)
        nab = result if nab is None else nab + result
        delays += detection_delays(truth, flag)
        precision, recall = range_precision_recall(truth, flag)
        precisions.append(precision)
        recalls.append(recall)
    assert nab is not None
    return FlagReport(
        binary=binary_scores(truths, flagged),
        point_adjusted_f1=point_adjusted_f1(truths, flagged),
        range_precision=float(np.mean(precisions)),
        range_recall=float(np.mean(recalls)),
        nab=nab,
        delays=delays,
    )
