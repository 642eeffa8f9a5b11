from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stateline import ConfigError, ShapeError, pack_lanes
from stateline.nn import ModelConfig, SequenceModel, detach_carry
from stateline.train import (
    TrainConfig,
    evaluate,
    fit,
    last_step_mask,
    load_checkpoint,
    run_layout,
    save_checkpoint,
    tbptt_chunk,
)


def model_for(seed: int = 0, **kwargs: object) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(ModelConfig(inputs=2, hidden=6, **kwargs)).double()  # type: ignore[arg-type]


def toy_layout(rng: np.random.Generator, lanes: int = 3, chunk: int = 4):
    sequences = [rng.normal(size=(n, 2)) for n in (9, 4, 13, 6, 2)]
    targets = [np.cumsum(s[:, 0]) for s in sequences]
    return pack_lanes(sequences, lanes=lanes, chunk=chunk, targets=targets)


def test_gradients_stop_exactly_at_chunk_boundaries() -> None:
    model = model_for()
    xs = torch.randn(2, 8, 2, dtype=torch.float64, requires_grad=True)
    no_reset = torch.zeros(2, dtype=torch.bool)
    everything = torch.ones(2, 4, dtype=torch.bool)
    _, carry = tbptt_chunk(model, model.initial_carry(2), xs[:, :4], no_reset, everything)
    out, _ = tbptt_chunk(model, carry, xs[:, 4:], no_reset, everything)
    out.sum().backward()
    assert xs.grad is not None
    assert torch.count_nonzero(xs.grad[:, :4]) == 0
    assert torch.count_nonzero(xs.grad[:, 4:]) > 0
    truncated = [p.grad.clone() for p in model.parameters()]

    # The same gradient as running the second chunk from a constant carry.
    model.zero_grad()
    out, _ = model(xs.detach()[:, 4:], detach_carry(carry))
    out.sum().backward()
    for a, p in zip(truncated, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)

    # Full BPTT would have sent gradient into the first chunk.
    xs.grad = None
    full, _ = model(xs)
    full[:, 4:].sum().backward()
    assert torch.count_nonzero(xs.grad[:, :4]) > 0


def reference_tbptt(model: SequenceModel, layout, epochs: int, lr: float) -> None:
    """A hand-written truncated-BPTT loop, the textbook way, to compare fit against."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(epochs):
        h = c = torch.zeros(1, layout.lanes, 6, dtype=torch.float64)  # reset every epoch
        for chunk in layout:
            keep = torch.as_tensor(~chunk.reset, dtype=torch.float64)[None, :, None]
            h, c = h.detach() * keep, c.detach() * keep
            mask = torch.as_tensor(chunk.mask)
            x = torch.as_tensor(chunk.x)
            outputs = []
            for step in range(layout.chunk):
                (h2, c2), y = model.step((h, c), x[:, step])
                real = mask[:, step][None, :, None]
                h, c = torch.where(real, h2, h), torch.where(real, c2, c)
                outputs.append(y)
            out = torch.stack(outputs, dim=1)[..., 0]
            target = torch.as_tensor(chunk.y)
            loss = ((out - target) ** 2 * mask).sum() / mask.sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def test_fit_equals_a_hand_written_tbptt_loop(rng: np.random.Generator) -> None:
    layout = toy_layout(rng)
    ours, theirs = model_for(3), model_for(3)
    fit(
        ours,
        layout,
        config=TrainConfig(epochs=3, learning_rate=0.01, clip_norm=None, progress=False),
    )
    reference_tbptt(theirs, layout, epochs=3, lr=0.01)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-7)


def test_validation_never_disturbs_training(rng: np.random.Generator) -> None:
    layout, held = toy_layout(rng), toy_layout(rng, lanes=2)
    plain, watched = model_for(1), model_for(1)
    config = TrainConfig(epochs=3, progress=False)
    fit(plain, layout, config=config)
    history = fit(watched, layout, config=config, validation=held)
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert all(record.validation_loss is not None for record in history.epochs)


def test_same_seed_same_run(rng: np.random.Generator) -> None:
    layout = toy_layout(rng)
    config = TrainConfig(epochs=2, progress=False, seed=5)
    first = fit(model_for(0, dropout=0.3, layers=2), layout, config=config)
    second = fit(model_for(0, dropout=0.3, layers=2), layout, config=config)
    assert first.train_loss == second.train_loss


def test_training_reduces_loss_and_early_stopping_restores_the_best(
    rng: np.random.Generator,
) -> None:
    layout, held = toy_layout(rng), toy_layout(rng, lanes=2)
    model = model_for(2)
    history = fit(
        model,
        layout,
        validation=held,
        config=TrainConfig(
            epochs=60, learning_rate=0.02, patience=3, schedule="plateau", progress=False
        ),
    )
    assert history.train_loss[-1] < history.train_loss[0]
    assert evaluate(model, held) == pytest.approx(history.best_loss)
    assert len(history.epochs) <= 60


def test_padding_never_reaches_the_loss(rng: np.random.Generator) -> None:
    layout = toy_layout(rng)
    assert layout.y is not None
    poisoned = layout.y.copy()
    poisoned[~layout.mask] = 1e6
    clean_loss = evaluate(model_for(4), layout)
    layout.y[...] = poisoned
    assert evaluate(model_for(4), layout) == pytest.approx(clean_loss)


def test_last_step_mask_marks_each_sequence_end_once(rng: np.random.Generator) -> None:
    layout = toy_layout(rng)
    marks = last_step_mask(layout)
    assert marks.sum() == 5
    assert (marks <= layout.mask).all()


def test_cosine_schedule_and_classification_tasks(rng: np.random.Generator) -> None:
    sequences = [rng.normal(size=(n, 2)) for n in (5, 7, 3, 8)]
    labels = [np.full(len(s), i % 3) for i, s in enumerate(sequences)]
    layout = pack_lanes(sequences, lanes=2, chunk=8, targets=labels)
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=2, outputs=3, hidden=5, task="multiclass"))
    history = fit(
        model,
        layout,
        target_at="last",
        config=TrainConfig(epochs=3, schedule="cosine", progress=False),
    )
    assert history.epochs[-1].learning_rate < history.epochs[0].learning_rate


def test_checkpoint_round_trip_gives_identical_predictions(
    rng: np.random.Generator, tmp_path: Path
) -> None:
    layout = toy_layout(rng)
    model = model_for(6, cell="gru", layers=2)
    fit(
        model,
        layout,
        config=TrainConfig(epochs=2, progress=False, checkpoint_dir=str(tmp_path / "best")),
    )
    outputs, carry = run_layout(model, layout)
    save_checkpoint(tmp_path / "model", model, carry=carry, metadata={"note": "test"})
    loaded, loaded_carry, metadata = load_checkpoint(tmp_path / "model")
    again, _ = run_layout(loaded, layout)
    np.testing.assert_array_equal(outputs, again)
    assert loaded_carry is not None and torch.equal(loaded_carry[0], carry[0])
    assert metadata == {"note": "test"}
    _best, _, best_meta = load_checkpoint(tmp_path / "best")
    assert best_meta["epoch"] in (1, 2)


def test_errors_are_clear(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="schedule"):
        TrainConfig(schedule="step")  # type: ignore[arg-type]
    for bad in (
        dict(seed=-1),
        dict(seed=2**70),
        dict(seed=True),
        dict(learning_rate=float("inf")),
        dict(learning_rate=0.0),
        dict(weight_decay=float("nan")),
        dict(clip_norm=float("inf")),
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            TrainConfig(**bad)  # type: ignore[arg-type]
    assert TrainConfig(seed=2**64 - 1).seed == 2**64 - 1  # what torch.manual_seed takes
    with pytest.raises(ShapeError, match="targets"):
        fit(
            model_for(),
            pack_lanes(np.ones((4, 2)), lanes=1, chunk=2),
            config=TrainConfig(progress=False),
        )
    with pytest.raises(ShapeError, match="xs"):
        model_for()(torch.zeros(1, 3, 5, dtype=torch.float64))
    with pytest.raises(ShapeError, match="initial_carry"):
        model_for()(torch.zeros(2, 3, 2, dtype=torch.float64), model_for().initial_carry(3))


@settings(max_examples=25, deadline=None)
@given(
    cell=st.sampled_from(["lstm", "gru"]),
    layers=st.integers(1, 2),
    chunk=st.integers(1, 6),
    chunks=st.integers(2, 4),
    lanes=st.integers(1, 3),
    seed=st.integers(0, 1000),
)
def test_gradients_reach_exactly_the_current_chunk(
    cell: str, layers: int, chunk: int, chunks: int, lanes: int, seed: int
) -> None:
    """For every chunk k, the loss of chunk k has gradient on chunk k's inputs only."""
    torch.manual_seed(seed)
    model = SequenceModel(ModelConfig(cell=cell, inputs=2, hidden=3, layers=layers)).double()  # type: ignore[arg-type]
    xs = torch.randn(lanes, chunk * chunks, 2, dtype=torch.float64, requires_grad=True)
    carry = model.initial_carry(lanes)
    for k in range(chunks):
        xs.grad = None
        part = slice(k * chunk, (k + 1) * chunk)
        out, carry = tbptt_chunk(model, carry, xs[:, part], None, None)
        out.pow(2).sum().backward()
        assert xs.grad is not None
        outside = torch.cat([xs.grad[:, : k * chunk], xs.grad[:, (k + 1) * chunk :]], dim=1)
        assert torch.count_nonzero(outside) == 0
        assert torch.count_nonzero(xs.grad[:, part]) > 0


@pytest.mark.parametrize("schedule", ["plateau", "constant"])
def test_a_resumed_fit_goes_on_as_if_never_stopped(schedule: str, tmp_path: Path) -> None:
    """Two epochs, a restart with resume=True to four: the weights, the history and the
    shuffled chunk order equal four epochs in one go (dropout's random state included)."""
    rng = np.random.default_rng(3)
    layout = pack_lanes(
        [rng.standard_normal((n, 2)).astype(np.float32) for n in (4, 4, 4, 4, 4, 4)],
        lanes=3,
        chunk=4,
        targets=[rng.standard_normal((4, 1)).astype(np.float32) for _ in range(6)],
    )

    def run(epochs: int, folder: Path, resume: bool) -> tuple[SequenceModel, list[float]]:
        model = model_for(seed=5, dropout=0.2, layers=2)
        config = TrainConfig(
            epochs=epochs, schedule=schedule, progress=False, seed=1, learning_rate=0.01,
            checkpoint_dir=str(folder), resume=resume,
        )  # fmt: skip
        history = fit(model, layout, config=config, validation=layout, shuffle_chunks=True)
        return model, history.train_loss

    straight, straight_losses = run(4, tmp_path / "straight", resume=False)
    run(2, tmp_path / "restarted", resume=False)
    resumed, resumed_losses = run(4, tmp_path / "restarted", resume=True)
    assert resumed_losses == straight_losses
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


@pytest.mark.parametrize("mode", [True, False])
def test_the_callers_model_mode_is_left_as_it_was(rng: np.random.Generator, mode: bool) -> None:
    layout = toy_layout(rng)
    model = model_for(dropout=0.5, layers=2).train(mode)
    fit(model, layout, config=TrainConfig(epochs=1, progress=False))
    assert model.training is mode
    run_layout(model, layout)
    assert model.training is mode
    evaluate(model, layout)
    assert model.training is mode
    with pytest.raises(ShapeError):
        fit(
            model, pack_lanes(np.ones((4, 2)), lanes=1, chunk=2), config=TrainConfig(progress=False)
        )
    assert model.training is mode


def test_an_unknown_task_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="task"):
        fit(model_for(), toy_layout(rng), task="regresion", config=TrainConfig(progress=False))
