"""Choosing a detector setting with labels, without scoring a series by its own labels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ._metrics import binary_scores

__all__ = ["GroupSelection", "leave_one_group_out"]

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, eq=False)
class GroupSelection(Generic[Key]):
    """Flags per series, each from the candidate chosen on the other groups' labels."""

    flags: list[NDArray[np.bool_]]
    chosen: dict[Hashable, Key]


def leave_one_group_out(
    labels: Sequence[ArrayLike],
    candidates: Mapping[Key, Sequence[ArrayLike]],
    groups: Sequence[Hashable],
) -> GroupSelection[Key]:
    """Pick a setting per group by the pooled F1 of all *other* groups' series.

    ``candidates`` maps each setting (for example a threshold margin) to its
    flags for every series; ``groups`` names each series' group (for SKAB its
    folder: valve1, valve2, other). For every group the setting with the best
    pooled F1 (:func:`binary_scores`) on the series outside the group is
    chosen (the first one on ties) and that group's series take its flags, so
    no series is flagged with a setting chosen by its own labels.

    >>> labels = [[0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0]]
    >>> candidates = {
    ...     "low": [[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 0]],
    ...     "high": [[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]],
    ... }
    >>> selection = leave_one_group_out(labels, candidates, ["a", "a", "b"])
    >>> selection.chosen
    {'a': 'low', 'b': 'high'}
    >>> [flags.astype(int).tolist() for flags in selection.flags][2]
    [1, 0, 0, 0]
    """
    label_list = [np.asarray(label).astype(bool) for label in labels]
    names = list(groups)
    if len(names) != len(label_list):
        raise ShapeError(
            describe(
                "groups",
                f"one per series ({len(label_list)})",
                f"{len(names)}",
                problem="has the wrong shape.",
            )
        )
    distinct = list(dict.fromkeys(names))
    if len(distinct) < 2:
        raise ConfigError(
            describe("groups", "at least 2 distinct groups", repr(distinct), problem="is too few.")
        )
    if not candidates:
        raise ConfigError(
            describe("candidates", "at least one setting", "none", problem="is empty.")
        )
    flag_sets: dict[Key, list[NDArray[np.bool_]]] = {}
    for key, flags in candidates.items():
        arrays = [np.asarray(flag).astype(bool) for flag in flags]
        if len(arrays) != len(label_list):
            raise ShapeError(
                describe(
                    f"candidates[{key!r}]",
                    f"flags for {len(label_list)} series",
                    f"{len(arrays)}",
                    problem="has the wrong shape.",
                )
            )
        flag_sets[key] = arrays
    chosen: dict[Hashable, Key] = {}
    result: list[NDArray[np.bool_]] = [np.zeros(0, dtype=bool)] * len(label_list)
    for group in distinct:
        inside = [index for index, name in enumerate(names) if name == group]
        outside = [index for index, name in enumerate(names) if name != group]
        best = max(
            flag_sets,
            key=lambda key: (
                binary_scores(
                    [label_list[i] for i in outside], [flag_sets[key][i] for i in outside]
                ).f1
            ),
        )
        chosen[group] = best
        for index in inside:
            result[index] = flag_sets[best][index]
    return GroupSelection(flags=result, chosen=chosen)
