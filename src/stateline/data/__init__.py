"""The framework-free data layer: windows, stateful lanes, scaling and tables.

Everything here is NumPy (pandas for tables, pyarrow for Parquet datasets); importing it
never imports a deep-learning framework, so data can be prepared on machines without one.
"""

from ._calendar import calendar_features as calendar_features
from ._calendar import calendar_periods as calendar_periods
from ._calendar import calendar_times as calendar_times
from ._datasets import hourly_temperatures as hourly_temperatures
from ._datasets import japanese_vowels as japanese_vowels
from ._datasets import taylor_electricity as taylor_electricity
from ._lanes import Chunk as Chunk
from ._lanes import LaneLayout as LaneLayout
from ._lanes import LanePlan as LanePlan
from ._lanes import Placement as Placement
from ._lanes import pack_lanes as pack_lanes
from ._lanes import place_lanes as place_lanes
from ._parquet import ParquetSeries as ParquetSeries
from ._parquet import scan_parquet as scan_parquet
from ._scaler import Moments as Moments
from ._scaler import Scaler as Scaler
from ._table import SequenceSet as SequenceSet
from ._table import load_table as load_table
from ._table import time_disorder as time_disorder
from ._windows import Windows as Windows
from ._windows import windows as windows

__all__ = [
    "Chunk",
    "LaneLayout",
    "LanePlan",
    "Moments",
    "ParquetSeries",
    "Placement",
    "Scaler",
    "SequenceSet",
    "Windows",
    "calendar_features",
    "calendar_periods",
    "calendar_times",
    "hourly_temperatures",
    "japanese_vowels",
    "load_table",
    "pack_lanes",
    "place_lanes",
    "scan_parquet",
    "taylor_electricity",
    "time_disorder",
    "windows",
]
