"""One rank of a distributed fit, for tests/train/test_distributed.py (run under torchrun).

``python -m torch.distributed.run --nproc_per_node 2 tests/train/_ddp_fit.py OUT CASE`` trains
the same small model on the same layout as :func:`train` does in one process, and writes each
rank's weights and loss history to ``OUT/rank<r>.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stateline.data import LaneLayout, pack_lanes
from stateline.nn import ModelConfig, SequenceModel
from stateline.train import TrainConfig, fit


def layouts(case: str) -> tuple[LaneLayout, LaneLayout]:
    """Training and validation layouts: equal sequences, or uneven ones with resets."""
    rng = np.random.default_rng(7)
    if case == "even":
        lengths, lanes, chunk = [64] * 8, 4, 16
    else:  # uneven lengths: padding, resets inside lanes, 5 lanes over 2 ranks (3 + 2)
        lengths, lanes, chunk = [int(n) for n in rng.integers(9, 70, size=13)], 5, 8
    series = [
        np.sin(np.arange(n + 1) / (3 + i % 4) + i)[:, None] + 0.1 * rng.standard_normal((n + 1, 1))
        for i, n in enumerate(lengths)
    ]
    xs = [s[:-1].astype(np.float32) for s in series]
    ys = [s[1:].astype(np.float32) for s in series]
    train = pack_lanes(xs, lanes=lanes, chunk=chunk, targets=ys)
    held = pack_lanes(xs[:3], lanes=2, chunk=chunk, targets=ys[:3])
    return train, held


def train(case: str, folder: Path | None = None) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Three epochs; ``resume``: two, then a restart that resumes from the checkpoint to three
    (on the uneven layout)."""
    layout, held = layouts("uneven" if case == "resume" else case)

    def run(epochs: int, resume: bool) -> tuple[dict[str, torch.Tensor], list[Any]]:
        torch.manual_seed(0)
        model = SequenceModel(ModelConfig(inputs=1, hidden=8))
        config = TrainConfig(
            epochs=epochs, progress=False, seed=0, schedule="plateau", learning_rate=0.01,
            checkpoint_dir=None if folder is None else str(folder / "checkpoint"), resume=resume,
        )  # fmt: skip
        history = fit(model, layout, config=config, validation=held)
        return model.state_dict(), [(r.train_loss, r.validation_loss) for r in history.epochs]

    if case == "resume":
        run(2, resume=False)
        return run(3, resume=True)
    return run(3, resume=False)


if __name__ == "__main__":
    out, case = Path(sys.argv[1]), sys.argv[2]
    weights, history = train(case, out)
    rank = torch.distributed.get_rank()
    torch.save({"weights": weights, "history": history}, out / f"rank{rank}.pt")
