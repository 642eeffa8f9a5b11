"""Real data sets that ship inside installed packages and load offline."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .._errors import ConfigError, StatelineError, describe

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["hourly_temperatures", "japanese_vowels", "taylor_electricity"]


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


def _missing(package: str, error: ImportError) -> StatelineError:
    return StatelineError(
        f"This data set ships inside the {package} package, which is not installed.\n"
        f"  Fix: pip install 'stateline[datasets]' (or pip install {package})"
    )


def taylor_electricity() -> NDArray[np.float64]:
    """Half-hourly electricity demand of England and Wales, June to August 2000 (MW).

    4,032 readings (12 weeks; daily season 48, weekly season 336) from Taylor
    (2003), bundled inside the ``pmdarima`` package (MIT licence) and read
    offline. Needs the ``datasets`` extra.
    """
    try:
        from pmdarima.datasets import load_taylor
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise _missing("pmdarima", error) from error
    return np.asarray(load_taylor(as_series=False), dtype=np.float64)


def japanese_vowels(split: str = "train") -> tuple[list[NDArray[np.float64]], list[str]]:
    """The JapaneseVowels speaker-recognition set: variable-length sequences to a speaker.

    Nine speakers utter two Japanese vowels; each utterance is a sequence of
    7 to 29 frames of 12 LPC cepstrum coefficients. The standard split has 270
    training and 370 test sequences (UCI / UEA archive), bundled inside the
    ``sktime`` package (BSD-3-Clause) and read offline. Needs the ``datasets`` extra.

    Returns ``(sequences, labels)``: a list of ``(frames, 12)`` arrays and the
    speaker of each, ``"1"`` to ``"9"``.
    """
    if split not in ("train", "test"):
        raise ConfigError(
            describe("split", "'train' or 'test'", repr(split), problem="is invalid.")
        )
    try:
        from sktime.datasets import load_japanese_vowels
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise _missing("sktime", error) from error
    frame, labels = load_japanese_vowels(split=split, return_X_y=True, return_type="nested_univ")
    sequences = [
        np.stack(
            [
                np.asarray(frame.iloc[row, column], dtype=np.float64)
                for column in range(frame.shape[1])
            ],
            axis=1,
        )
        for row in range(len(frame))
    ]
    return sequences, [str(label) for label in labels]
