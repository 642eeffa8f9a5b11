"""Targets that do not fit the model or the task are refused before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stateline import DataError, ShapeError, pack_lanes
from stateline.nn import ModelConfig, SequenceModel
from stateline.train import TrainConfig, evaluate, fit
from stateline.train._loss import masked_loss

QUIET = TrainConfig(epochs=1, progress=False)


def layout_with(targets: list[np.ndarray], rng: np.random.Generator, chunk: int = 4):
    sequences = [rng.normal(size=(len(t), 2)) for t in targets]
    return pack_lanes(sequences, targets=targets, lanes=len(targets), chunk=chunk)


def test_more_target_columns_than_outputs_is_refused(rng: np.random.Generator) -> None:
    layout = layout_with([rng.normal(size=(10, 3))], rng)
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, outputs=1))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ShapeError, match=r"(?s)layout.y does not fit.*Received: 3 targets"):
        fit(model, layout, config=QUIET)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ShapeError, match=r"layout\.y"):
        evaluate(model, layout)


def test_one_target_column_for_several_outputs_is_refused(rng: np.random.Generator) -> None:
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, outputs=2))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 2\) targets per step"):
        fit(model, layout_with([rng.normal(size=10)], rng), config=QUIET)
    validation = layout_with([rng.normal(size=(6, 3))], rng)
    with pytest.raises(ShapeError, match=r"validation\.y"):
        fit(
            model,
            layout_with([rng.normal(size=(10, 2))], rng),
            validation=validation,
            config=QUIET,
        )


def test_binary_labels_outside_zero_one_are_refused(rng: np.random.Generator) -> None:
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, task="binary"))
    with pytest.raises(DataError, match=r"(?s)labels in \[0, 1\].*Received: .*2\.0"):
        fit(model, layout_with([np.array([0, 1, 2, 1, 0, 3.0])], rng), config=QUIET)
    soft = layout_with([np.array([0, 0.25, 1, 0.5, 0, 1.0])], rng)
    assert np.isfinite(fit(model, soft, config=QUIET).train_loss[-1])


def test_multiclass_needs_whole_class_ids_below_the_outputs(rng: np.random.Generator) -> None:
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, outputs=3, task="multiclass"))
    for labels, received in (
        ([0, 1, 2.5, 1], "2.5"),
        ([0, 1, 3, 1], "3.0"),
        ([0, -1, 2, 1], "-1.0"),
    ):
        with pytest.raises(DataError, match=rf"(?s)below 3.*Received: .*{received}"):
            fit(model, layout_with([np.array(labels, dtype=float)], rng), config=QUIET)
    with pytest.raises(ShapeError, match="one class id per step"):
        fit(model, layout_with([np.zeros((4, 2))], rng), config=QUIET)
    fit(model, layout_with([np.array([0, 1, 2, 1])], rng), config=QUIET)


def test_padding_may_hold_anything(rng: np.random.Generator) -> None:
    """Only real steps are read: padded slots of a ragged layout are not labels."""
    model = SequenceModel(ModelConfig(inputs=2, hidden=3, outputs=3, task="multiclass"))
    layout = layout_with([np.array([0, 1, 2]), np.array([2, 1, 0, 1, 2, 0, 1])], rng, chunk=5)
    layout.y[~layout.mask] = 99
    fit(model, layout, config=QUIET)


def test_the_loss_refuses_a_shape_mismatch_for_any_model() -> None:
    """Models that declare no outputs are caught at the loss: no silent broadcast."""
    outputs = torch.zeros(2, 3, 1)
    with pytest.raises(ShapeError, match=r"shape \(2, 3, 1\)"):
        masked_loss("regression", outputs, torch.zeros(2, 3, 4), None)
    with pytest.raises(ShapeError, match=r"shape \(2, 3\)"):
        masked_loss("multiclass", torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), None)
    weight = torch.ones(2, 3, dtype=torch.bool)
    assert float(masked_loss("regression", outputs, torch.ones(2, 3), weight)) == 1.0
