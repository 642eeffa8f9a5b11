"""Anomaly detection: scores from prediction errors, thresholds, baselines, evaluation.

Scoring is kept apart from deciding: an :class:`ErrorScorer` turns prediction
errors into a smoothed score, a threshold (:class:`QuantileThreshold`,
:class:`GaussianThreshold`, :class:`DynamicThreshold`) turns scores into
flags. Both learn and score one step at a time (``learn_one`` /
``score_one`` / ``flag_one``) or in bulk. :class:`ForecastDetector` puts an
LSTM forecaster (or the :class:`MovingAverage` baseline) in front of them and
adds the anomaly likelihood (:class:`LikelihoodConfig`), one ``anomaly_score``
in [0, 1] per step that adapts to each stream's new normal;
:class:`OnlineDetector` runs scorer and threshold on a live stream. The
metrics (:func:`binary_scores`, :func:`nab_score`, :func:`point_adjusted_f1`,
:func:`range_precision_recall`, :func:`detection_delays`) evaluate any
detector's flags against labels; :func:`load_nab`, :func:`nab_sweep` and
:func:`nab_corpus_score` score anomaly scores over a NAB checkout as NAB
does; :func:`leave_one_group_out` chooses a setting (such as a threshold
margin) by labels without scoring any series by its own.
"""

from ._arrays import standardise as standardise
from ._baselines import MovingAverage as MovingAverage
from ._baselines import WindowedGaussian as WindowedGaussian
from ._detector import Detection as Detection
from ._detector import DetectorConfig as DetectorConfig
from ._detector import ForecastDetector as ForecastDetector
from ._detector import OnlineDetector as OnlineDetector
from ._likelihood import LikelihoodConfig as LikelihoodConfig
from ._metrics import BinaryScores as BinaryScores
from ._metrics import binary_scores as binary_scores
from ._metrics import detection_delays as detection_delays
from ._metrics import point_adjusted_f1 as point_adjusted_f1
from ._metrics import range_precision_recall as range_precision_recall
from ._nab import NAB_PROFILES as NAB_PROFILES
from ._nab import NabProfile as NabProfile
from ._nab import NabResult as NabResult
from ._nab import nab_optimise as nab_optimise
from ._nab import nab_score as nab_score
from ._nab import nab_windows as nab_windows
from ._nab_corpus import NAB_CATEGORIES_WITH_ANOMALIES as NAB_CATEGORIES_WITH_ANOMALIES
from ._nab_corpus import NabCorpusResult as NabCorpusResult
from ._nab_corpus import NabSeries as NabSeries
from ._nab_corpus import load_nab as load_nab
from ._nab_corpus import nab_corpus_score as nab_corpus_score
from ._nab_corpus import nab_probation as nab_probation
from ._nab_corpus import nab_sweep as nab_sweep
from ._nab_corpus import read_nab_results as read_nab_results
from ._ranges import ranges as ranges
from ._report import FlagReport as FlagReport
from ._report import flag_report as flag_report
from ._scorers import ErrorScorer as ErrorScorer
from ._scorers import RunningMoments as RunningMoments
from ._selection import GroupSelection as GroupSelection
from ._selection import leave_one_group_out as leave_one_group_out
from ._thresholds import DynamicThreshold as DynamicThreshold
from ._thresholds import GaussianThreshold as GaussianThreshold
from ._thresholds import QuantileThreshold as QuantileThreshold
from ._thresholds import Threshold as Threshold

__all__ = [
    "NAB_CATEGORIES_WITH_ANOMALIES",
    "NAB_PROFILES",
    "BinaryScores",
    "Detection",
    "DetectorConfig",
    "DynamicThreshold",
    "ErrorScorer",
    "FlagReport",
    "ForecastDetector",
    "GaussianThreshold",
    "GroupSelection",
    "LikelihoodConfig",
    "MovingAverage",
    "NabCorpusResult",
    "NabProfile",
    "NabResult",
    "NabSeries",
    "OnlineDetector",
    "QuantileThreshold",
    "RunningMoments",
    "Threshold",
    "WindowedGaussian",
    "binary_scores",
    "detection_delays",
    "flag_report",
    "leave_one_group_out",
    "load_nab",
    "nab_corpus_score",
    "nab_optimise",
    "nab_probation",
    "nab_score",
    "nab_sweep",
    "nab_windows",
    "point_adjusted_f1",
    "range_precision_recall",
    "ranges",
    "read_nab_results",
    "standardise",
]
