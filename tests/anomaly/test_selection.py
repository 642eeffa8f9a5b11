from __future__ import annotations

import numpy as np
import pytest

from stateline import ConfigError, ShapeError
from stateline.anomaly import binary_scores, leave_one_group_out


def test_each_group_gets_the_setting_best_on_the_other_groups() -> None:
    labels = [[0, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 0, 1]]
    candidates = {
        1.0: [[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 0], [0, 0, 1, 1]],
        2.0: [[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 0]],
    }
    groups = ["a", "a", "b", "c"]
    selection = leave_one_group_out(labels, candidates, groups)
    # by hand: a is chosen on series 2 and 3, b on 0, 1, 3, c on 0, 1, 2
    for group, outside in {"a": [2, 3], "b": [0, 1, 3], "c": [0, 1, 2]}.items():
        f1 = {
            key: binary_scores([labels[i] for i in outside], [flags[i] for i in outside]).f1
            for key, flags in candidates.items()
        }
        assert selection.chosen[group] == max(f1, key=f1.__getitem__)
    assert selection.chosen == {"a": 1.0, "b": 2.0, "c": 2.0}
    for index, group in enumerate(groups):
        expected = np.asarray(candidates[selection.chosen[group]][index], dtype=bool)
        np.testing.assert_array_equal(selection.flags[index], expected)


def test_ties_keep_the_first_candidate() -> None:
    labels = [[1, 0], [0, 1]]
    candidates = {"first": [[1, 0], [0, 1]], "second": [[1, 0], [0, 1]]}
    assert leave_one_group_out(labels, candidates, [0, 1]).chosen == {0: "first", 1: "first"}


def test_errors_name_the_argument() -> None:
    labels = [[1, 0], [0, 1]]
    with pytest.raises(ConfigError, match="2 distinct groups"):
        leave_one_group_out(labels, {"x": [[1, 0], [0, 1]]}, ["g", "g"])
    with pytest.raises(ShapeError, match="groups"):
        leave_one_group_out(labels, {"x": [[1, 0], [0, 1]]}, ["g"])
    with pytest.raises(ShapeError, match=r"candidates\['x'\]"):
        leave_one_group_out(labels, {"x": [[1, 0]]}, ["g", "h"])
    with pytest.raises(ConfigError, match="candidates"):
        leave_one_group_out(labels, {}, ["g", "h"])
