"""A damaged or foreign checkpoint is named, never a bare torch or JSON error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stateline import (
    ConfigError,
    DataError,
    Forecaster,
    ForecasterConfig,
    SequenceClassifier,
)
from stateline.nn import ModelConfig, SequenceModel
from stateline.train import TrainConfig, fit, load_checkpoint, save_checkpoint


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    model = SequenceModel(ModelConfig(inputs=2, hidden=4, layers=2))
    return save_checkpoint(tmp_path / "model", model, carry=model.initial_carry(3))


def test_a_checkpoint_loads_whole_and_leaves_the_random_generators(saved: Path) -> None:
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    model, carry, _ = load_checkpoint(saved)
    assert torch.equal(torch.rand(1), expected)  # building the model drew nothing of the caller's
    assert carry is not None and tuple(carry[0].shape) == (2, 3, 4)
    assert not model.training


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda d: (d / "config.json").write_text('{"model": "SequenceM'), "config.json"),
        (lambda d: (d / "config.json").write_text('{"model": "Transformer"}'), "config.json"),
        (lambda d: _edit(d, dtype="float77"), "config.json"),
        (lambda d: _edit(d, config={"inputs": 2, "colour": "red"}), "config.json"),
        (lambda d: (d / "weights.pt").unlink(), "lacks a file"),
        (lambda d: _truncate(d / "weights.pt"), "weights.pt"),
        (lambda d: _edit(d, config={"inputs": 2, "hidden": 5, "layers": 2}), "weights.pt"),
        (lambda d: torch.save([torch.zeros(2, 3, 4)], d / "carry.pt"), "carry.pt"),
        (lambda d: torch.save([torch.zeros(2, 3, 7)] * 2, d / "carry.pt"), "carry.pt"),
        (lambda d: _truncate(d / "carry.pt"), "carry.pt"),
    ],
)
def test_damage_is_named(saved: Path, damage, named: str) -> None:  # type: ignore[no-untyped-def]
    damage(saved)
    with pytest.raises(DataError, match=named):
        load_checkpoint(saved)


def _edit(folder: Path, **fields: object) -> None:
    document = json.loads((folder / "config.json").read_text())
    document.update(fields)
    (folder / "config.json").write_text(json.dumps(document))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def test_estimators_load_only_their_own_folders(tmp_path: Path, saved: Path) -> None:
    series = np.sin(np.arange(80.0) / 4)
    forecaster = Forecaster(ForecasterConfig(hidden=3, chunk=10, epochs=1, progress=False))
    forecaster.fit(series).save(tmp_path / "forecaster")
    with pytest.raises(DataError, match="is not a SequenceClassifier"):
        SequenceClassifier.load(tmp_path / "forecaster")
    with pytest.raises(DataError, match="is not a Forecaster"):
        Forecaster.load(saved)
    (tmp_path / "forecaster" / "carry.pt").unlink()
    with pytest.raises(DataError, match=r"carry\.pt"):
        Forecaster.load(tmp_path / "forecaster")


def test_resuming_a_run_of_other_settings_or_a_damaged_state_is_named(tmp_path: Path) -> None:
    import stateline

    rng = np.random.default_rng(0)
    layout = stateline.pack_lanes(
        [rng.normal(size=(12, 2))], targets=[rng.normal(size=12)], lanes=1, chunk=4
    )
    config = TrainConfig(epochs=1, progress=False, checkpoint_dir=str(tmp_path / "run"))
    fit(SequenceModel(ModelConfig(inputs=2, hidden=3)), layout, config=config)
    again = TrainConfig(epochs=2, progress=False, checkpoint_dir=str(tmp_path / "run"), resume=True)
    with pytest.raises(ConfigError, match="does not fit this run"):
        fit(SequenceModel(ModelConfig(inputs=2, hidden=5)), layout, config=again)
    (tmp_path / "run" / "training.pt").write_bytes(b"")
    with pytest.raises(DataError, match=r"training\.pt"):
        fit(SequenceModel(ModelConfig(inputs=2, hidden=3)), layout, config=again)
