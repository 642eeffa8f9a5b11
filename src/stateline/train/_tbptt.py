"""Truncated backpropagation through time over a :class:`~stateline.LaneLayout`."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from .._errors import ConfigError, ShapeError, describe
from ..data import LaneLayout
from ..nn import Carry, CarryModel, detach_carry
from ..nn._config import require_task
from ..nn._modes import inference_mode
from ._checkpoint import save_checkpoint
from ._config import TrainConfig
from ._distributed import Ranks
from ._loss import device_for, masked_loss
from ._seeding import seeded
from ._targets import check_targets, model_outputs
from ._training_state import (
    EpochRecord,
    History,
    load_training_state,
    same_start,
    save_training_state,
    training_state_path,
)

__all__ = ["EpochRecord", "History", "evaluate", "fit", "run_layout", "tbptt_chunk"]

TargetAt = Literal["every", "last"]


@dataclass(frozen=True)
class _Tensors:
    x: Tensor
    y: Tensor | None
    mask: Tensor
    reset: Tensor
    weight: Tensor
    steps: int
    # Per chunk, known on the host so the loop never waits on the device:
    chunk_steps: list[int]
    full: list[bool]
    any_reset: list[bool]


def _tensors(
    layout: LaneLayout,
    device: torch.device,
    dtype: torch.dtype,
    task: str,
    target_at: TargetAt,
    outputs: int | None,
    name: str = "layout",
) -> _Tensors:
    if layout.y is None:
        raise ShapeError(
            describe(
                "layout",
                "a LaneLayout with targets (pack_lanes(..., targets=...))",
                "a layout without targets",
                problem="has no targets.",
            )
        )
    y_dtype = torch.long if task == "multiclass" else dtype
    weight = layout.mask if target_at == "every" else last_step_mask(layout)
    check_targets(layout.y, weight, task=task, outputs=outputs, name=f"{name}.y")
    return _Tensors(
        x=torch.as_tensor(layout.x, dtype=dtype, device=device),
        y=torch.as_tensor(layout.y, device=device).to(y_dtype),
        mask=torch.as_tensor(layout.mask, device=device),
        reset=torch.as_tensor(layout.reset, device=device),
        weight=torch.as_tensor(weight, device=device),
        steps=int(weight.sum()),
        chunk_steps=[int(n) for n in weight.sum(axis=(1, 2))],
        full=np.asarray(layout.mask.all(axis=(1, 2))).tolist(),
        any_reset=np.asarray(layout.reset.any(axis=1)).tolist(),
    )


def _lanes_of(tensors: _Tensors, lanes: slice, device: torch.device) -> _Tensors:
    """The same chunks, for a block of lanes only (one rank's share), on ``device``."""
    weight = tensors.weight[:, lanes]
    mask = tensors.mask[:, lanes]
    per_chunk = weight.sum(dim=(1, 2)).cpu().numpy()
    return _Tensors(
        x=tensors.x[:, lanes].to(device),
        y=None if tensors.y is None else tensors.y[:, lanes].to(device),
        mask=mask.to(device),
        reset=tensors.reset[:, lanes].to(device),
        weight=weight.to(device),
        steps=int(per_chunk.sum()),
        chunk_steps=[int(n) for n in per_chunk],
        full=mask.flatten(1).all(dim=1).cpu().numpy().tolist(),
        any_reset=tensors.reset[:, lanes].any(dim=1).cpu().numpy().tolist(),
    )


def _own_lanes(
    ranks: Ranks,
    layout: LaneLayout,
    validation: LaneLayout | None,
    device: torch.device,
    dtype: torch.dtype,
    task: str,
    target_at: TargetAt,
    shuffle_chunks: bool,
    outputs: int | None,
) -> tuple[_Tensors, _Tensors | None, list[int], int]:
    """This rank's own training and validation lanes on its device, each chunk's real steps
    over all the ranks and all the real steps (``rank_layouts=True``)."""
    train = _tensors(layout, device, dtype, task, target_at, outputs)
    held = (
        None
        if validation is None
        else _tensors(validation, device, dtype, task, target_at, outputs, "validation")
    )
    independent = not shuffle_chunks or _chunks_independent(layout)
    mine = (len(layout), layout.steps, validation is not None, independent)
    shared = cast(list[tuple[int, int, bool, bool]], ranks.gather(mine))
    chunks = [entry[0] for entry in shared]
    if len(set(chunks)) > 1:
        raise ConfigError(
            describe(
                "layout",
                "one block of one LanePlan on every process (the same number of chunks)",
                f"chunks per process {chunks}",
                problem="differs between the processes.",
            )
        )
    if not all(entry[3] for entry in shared):
        raise _shuffle_error()
    if held is None and any(entry[2] for entry in shared):
        held = _no_lanes(train)  # it still takes part in reducing the validation loss
    steps = ranks.sum(torch.tensor(train.chunk_steps, dtype=torch.float64, device=device))
    real = sum(entry[1] for entry in shared)
    return train, held, [int(n) for n in steps.tolist()], real


def _no_lanes(like: _Tensors) -> _Tensors:
    """No lanes at all, shaped like ``like`` (a rank without validation lanes)."""
    assert like.y is not None
    return _Tensors(
        x=like.x[:0, :0],
        y=like.y[:0, :0],
        mask=like.mask[:0, :0],
        reset=like.reset[:0, :0],
        weight=like.weight[:0, :0],
        steps=0,
        chunk_steps=[],
        full=[],
        any_reset=[],
    )


def last_step_mask(layout: LaneLayout) -> NDArray[np.bool_]:
    """``(chunks, lanes, chunk)``: True at the last step of every whole sequence."""
    flat = np.zeros((layout.lanes, len(layout) * layout.chunk), dtype=bool)
    for placement in layout.placements:
        if placement.start + placement.length == layout.lengths[placement.sequence]:
            flat[placement.lane, placement.first_chunk * layout.chunk + placement.length - 1] = True
    return np.ascontiguousarray(
        np.swapaxes(flat.reshape(layout.lanes, len(layout), layout.chunk), 0, 1)
    )


def tbptt_chunk(
    model: CarryModel, carry: Carry, x: Tensor, reset: Tensor | None, mask: Tensor | None
) -> tuple[Tensor, Carry]:
    """Run one chunk of truncated BPTT: the incoming carry is cut from the graph.

    Gradients of this chunk's loss reach the weights through this chunk's steps
    only; the carry's *value* still comes from all earlier chunks.
    """
    return model(x, detach_carry(carry), reset=reset, mask=mask)


def fit(
    model: nn.Module,
    layout: LaneLayout,
    *,
    config: TrainConfig | None = None,
    validation: LaneLayout | None = None,
    task: str | None = None,
    target_at: TargetAt = "every",
    shuffle_chunks: bool = False,
    rank_layouts: bool = False,
) -> History:
    """Train ``model`` by truncated BPTT over the chunks of ``layout``.

    Each epoch starts every lane from a zero carry, runs the chunks in order,
    passes the carry on (cut from the graph at chunk boundaries), zeroes it
    where ``reset`` flags a new sequence, and averages the loss over real
    steps only (``target_at="last"``: only the last step of each sequence,
    for many-to-one models). Validation runs on its own carry after each epoch.

    ``shuffle_chunks=True`` visits the chunks in a new seeded order each epoch;
    it is only allowed when no carry crosses a chunk boundary (every lane that
    holds data in a chunk starts a sequence there), as with independent
    sequences no longer than ``chunk``.

    Returns the :class:`History`; with ``patience`` the best weights are restored.
    The targets must fit the model and the task (as many columns as the model's
    outputs; labels in [0, 1] for ``"binary"``; class ids below the outputs for
    ``"multiclass"``), and the model's train/eval mode is left as it was.

    Launched under ``torchrun`` (or in a process group the caller made), it
    trains on all the processes: each takes a block of the lanes and keeps
    their carries, and the gradients are summed over the processes after each
    chunk, each process's loss weighted by its share of the chunk's real
    steps, so every process takes the step one process would take on all the
    lanes (without dropout: each process draws its own dropout masks). Losses
    and validation are reduced over the processes, so early stopping and the
    schedule decide alike; only rank 0 shows progress and writes checkpoints.

    ``rank_layouts=True``: each process passes only its own lanes instead, as
    :meth:`~stateline.data.LanePlan.block` packs them (every process's training
    layout with the same number of chunks), and its own validation layout, or
    ``None`` where it holds none; each process then never holds the others' data.
    Alone, it changes nothing.
    """
    config = config or TrainConfig()
    task = task or str(getattr(getattr(model, "config", None), "task", "regression"))
    if target_at not in ("every", "last"):
        raise ConfigError(
            describe("target_at", "'every' or 'last'", repr(target_at), problem="is invalid.")
        )
    require_task(task)
    if shuffle_chunks and not rank_layouts and not _chunks_independent(layout):
        raise _shuffle_error()
    was_training = model.training
    try:
        with seeded(config.seed):
            return _fit(
                model, layout, config, validation, task, target_at, shuffle_chunks, rank_layouts
            )
    finally:
        model.train(was_training)  # the caller's mode, as it was


def _shuffle_error() -> ConfigError:
    return ConfigError(
        describe(
            "shuffle_chunks",
            "False for layouts whose carry crosses chunk boundaries",
            "True",
            problem="would break the carry.",
            fix="Use a chunk at least as long as the longest sequence, or keep the order.",
        )
    )


def _fit(
    model: nn.Module,
    layout: LaneLayout,
    config: TrainConfig,
    validation: LaneLayout | None,
    task: str,
    target_at: TargetAt,
    shuffle_chunks: bool,
    rank_layouts: bool,
) -> History:
    ranks = Ranks.current(device_for(config.device))
    device = ranks.device(device_for(config.device))
    order_generator = np.random.default_rng(config.seed)
    model.to(device)
    ranks.same_weights(model)
    dtype = next(model.parameters()).dtype
    declared = model_outputs(model)  # outputs per step, when the model's config says
    if rank_layouts and ranks.world > 1:
        train, held, all_steps, real_steps = _own_lanes(
            ranks, layout, validation, device, dtype, task, target_at, shuffle_chunks, declared
        )
    else:
        # Over several ranks the whole layout stays on the host; a rank's lanes go to its device.
        host = device if ranks.world == 1 else torch.device("cpu")
        everything = _tensors(layout, host, dtype, task, target_at, declared)
        all_steps, real_steps = everything.chunk_steps, layout.steps
        train = everything
        if ranks.world > 1:
            train = _lanes_of(everything, ranks.lanes(layout.lanes), device)
        held = (
            None
            if validation is None
            else _tensors(validation, host, dtype, task, target_at, declared, "validation")
        )
        if validation is not None and held is not None and ranks.world > 1:
            held = _lanes_of(held, ranks.lanes(validation.lanes, allow_empty=True), device)
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config)
    history = History()
    best_state: dict[str, Any] | None = None
    waited = 0
    first = 1
    carry_model: CarryModel = model  # type: ignore[assignment]
    saved = training_state_path(config)
    if config.resume and saved is not None and saved.is_file():
        resumed = load_training_state(
            saved, model, optimizer, scheduler, order_generator, ranks.rank
        )
        history, best_state, waited = resumed
        first = history.epochs[-1].epoch + 1 if history.epochs else 1
        if history.stopped_early:
            first = config.epochs + 1
    if ranks.world > 1:
        same_start(ranks, first, saved)

    with _progress(config.progress and ranks.main) as progress:
        left = max(config.epochs - first + 1, 0)
        task_id = (
            progress.add_task("training", total=left * len(layout), loss="-", rate="-")
            if progress
            else None
        )
        for epoch in range(first, config.epochs + 1):
            started = time.perf_counter()
            model.train()
            carry = carry_model.initial_carry(train.x.shape[1], device=device, dtype=dtype)
            counted = 0
            order = (
                order_generator.permutation(len(layout)) if shuffle_chunks else range(len(layout))
            )
            running = torch.zeros((), device=device, dtype=torch.float64)
            for position, k in enumerate(order):
                outputs, carry = tbptt_chunk(
                    carry_model,
                    carry,
                    train.x[k],
                    train.reset[k] if train.any_reset[k] else None,
                    None if train.full[k] else train.mask[k],
                )
                assert train.y is not None
                steps = all_steps[k]  # of all the lanes, on every rank
                if steps:
                    mine = train.chunk_steps[k]
                    every_step = train.full[k] and target_at == "every"
                    weight = None if every_step else train.weight[k]
                    loss: Tensor = (
                        masked_loss(task, outputs, train.y[k], weight) * (mine / steps)
                        if mine
                        else outputs.sum() * 0.0  # no real step here: zero gradients
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    ranks.sum_gradients(model)
                    if config.clip_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
                    optimizer.step()
                    running += loss.detach().double() * steps
                    counted += steps
                if config.progress:  # the same condition on every rank: the sum is collective
                    # Reading the loss waits for the device: do it now and then only.
                    show = position % 32 == 31 or position == len(layout) - 1
                    shown = float(ranks.sum(running.clone())) if show else 0.0
                    if progress is not None and task_id is not None:
                        loss_text = f"{shown / max(counted, 1):.4f}" if show else None
                        update = {"loss": loss_text} if show else {}
                        progress.update(task_id, advance=1, **update)
            seconds = time.perf_counter() - started
            total = float(ranks.sum(running))
            train_loss = total / max(counted, 1)
            validation_loss = (
                None if held is None else _evaluate(carry_model, held, task, ranks=ranks)
            )
            monitored = validation_loss if validation_loss is not None else train_loss
            record = EpochRecord(
                epoch=epoch,
                train_loss=train_loss,
                validation_loss=validation_loss,
                learning_rate=optimizer.param_groups[0]["lr"],
                seconds=seconds,
                steps_per_second=real_steps / seconds,
            )
            history.epochs.append(record)
            if progress is not None and task_id is not None:
                progress.update(
                    task_id,
                    rate=f"{record.steps_per_second:,.0f}",
                    description=f"epoch {epoch}/{config.epochs}",
                )
            if monitored < history.best_loss - config.min_delta:
                history.best_loss, history.best_epoch, waited = monitored, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
                if config.checkpoint_dir is not None and ranks.main:
                    save_checkpoint(
                        Path(config.checkpoint_dir),
                        model,
                        metadata={"epoch": epoch, "loss": monitored},
                    )
            else:
                waited += 1
            _step_scheduler(scheduler, monitored)
            if config.patience is not None and waited >= config.patience:
                history.stopped_early = True
            if saved is not None:
                random_states = ranks.gather(torch.get_rng_state())  # each rank's dropout
                if ranks.main:
                    save_training_state(
                        saved, model, optimizer, scheduler, order_generator, history,
                        best_state, waited, random_states,
                    )  # fmt: skip
            if history.stopped_early:
                break
    if config.patience is not None and best_state is not None:
        model.load_state_dict(best_state)
    return history


def _chunks_independent(layout: LaneLayout) -> bool:
    occupied = layout.mask.any(axis=2)
    return bool((occupied <= layout.reset).all() and (layout.mask[:, :, 0] >= occupied).all())


def evaluate(
    model: nn.Module,
    layout: LaneLayout,
    *,
    task: str | None = None,
    target_at: TargetAt = "every",
    device: str = "cpu",
) -> float:
    """Mean masked loss of ``model`` over ``layout``, on a fresh carry."""
    task = task or str(getattr(getattr(model, "config", None), "task", "regression"))
    require_task(task)
    torch_device = device_for(device)
    dtype = next(model.parameters()).dtype
    tensors = _tensors(layout, torch_device, dtype, task, target_at, model_outputs(model))
    carry_model: CarryModel = model  # type: ignore[assignment]
    return _evaluate(carry_model, tensors, task)


def _evaluate(
    model: CarryModel, tensors: _Tensors, task: str, *, ranks: Ranks | None = None
) -> float:
    """Mean masked loss over the chunks of ``tensors``, starting from a zero carry (summed
    over ``ranks``, each holding its block of the lanes)."""
    assert tensors.y is not None
    total = 0.0
    lanes = tensors.x.shape[1]
    with torch.no_grad(), inference_mode(model):  # type: ignore[arg-type]
        carry = model.initial_carry(lanes, device=tensors.x.device, dtype=tensors.x.dtype)
        for k, steps in enumerate(tensors.chunk_steps if lanes else []):
            outputs, carry = model(
                tensors.x[k], carry, reset=tensors.reset[k], mask=tensors.mask[k]
            )
            if steps:
                total += float(masked_loss(task, outputs, tensors.y[k], tensors.weight[k])) * steps
    if ranks is None or ranks.world == 1:
        return total / max(tensors.steps, 1)
    sums = ranks.sum(
        torch.tensor([total, float(tensors.steps)], dtype=torch.float64, device=tensors.x.device)
    )
    return float(sums[0]) / max(float(sums[1]), 1.0)


def run_layout(
    model: nn.Module, layout: LaneLayout, *, carry: Carry | None = None, device: str = "cpu"
) -> tuple[NDArray[np.float32], Carry]:
    """Run ``model`` over every chunk (no gradients); returns stacked outputs and the carry.

    The outputs are ``(chunks, lanes, chunk, outputs)``, ready for
    ``layout.unpack``. ``carry`` continues from an earlier state (per lane).
    """
    torch_device = device_for(device)
    model.to(torch_device)
    dtype = next(model.parameters()).dtype
    carry_model: CarryModel = model  # type: ignore[assignment]
    outputs = []
    with torch.no_grad(), inference_mode(model):  # the caller's mode back after
        state = (
            carry
            if carry is not None
            else carry_model.initial_carry(layout.lanes, device=torch_device, dtype=dtype)
        )
        for chunk in layout:
            ys, state = carry_model(
                torch.as_tensor(chunk.x, dtype=dtype, device=torch_device),
                state,
                reset=torch.as_tensor(chunk.reset, device=torch_device),
                mask=torch.as_tensor(chunk.mask, device=torch_device),
            )
            outputs.append(ys.float().cpu().numpy())
    return np.stack(outputs), state


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel where PyTorch supports it (CPU and CUDA floats)."""
    parameters = list(model.parameters())
    try:
        return torch.optim.AdamW(
            parameters, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
        )
    except (RuntimeError, ValueError):
        return torch.optim.AdamW(
            parameters, lr=config.learning_rate, weight_decay=config.weight_decay
        )


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> Any:
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
    return None


def _step_scheduler(scheduler: Any, monitored: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def _progress(show: bool) -> Any:
    if not show:
        return _NoProgress()
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} steps/s"),
        TimeRemainingColumn(),
    )
