"""Real data sets that ship inside installed packages and load offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import StatelineError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["hourly_temperatures"]


def hourly_temperatures() -> pd.DataFrame:
    """Hourly air temperatures of Seattle and San Francisco through 2010.

    Two real sensor streams of 8,759 hourly readings each (degrees Fahrenheit),
    read from the copy bundled inside the ``vega_datasets`` package (BSD-3-Clause;
    the readings are NOAA public-domain data). Nothing is downloaded.

    Returns a long table with columns ``time``, ``city`` and ``temp``, sorted by
    city and then time.

    >>> frame = hourly_temperatures()
    >>> frame.groupby("city").size().to_dict()
    {'San Francisco': 8759, 'Seattle': 8759}
    """
    try:
        from vega_datasets import local_data
    except ImportError as error:  # pragma: no cover - vega_datasets is a dependency
        raise StatelineError(
            "The bundled temperature data needs the vega_datasets package.\n"
            "  Fix: pip install vega_datasets"
        ) from error
    import pandas as pd

    parts = []
    for city, loader in (
        ("Seattle", local_data.seattle_temps),
        ("San Francisco", local_data.sf_temps),
    ):
        frame = loader().rename(columns={"date": "time"})
        parts.append(frame.assign(city=city)[["time", "city", "temp"]])
    combined: pd.DataFrame = pd.concat(parts, ignore_index=True)
    return combined.sort_values(["city", "time"], kind="stable", ignore_index=True)
