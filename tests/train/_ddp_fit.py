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


def review_cases(out: Path) -> dict[str, Any]:
    """From a review of the distributed fit: dropout across a resume, a parameter no loss
    reaches, and checkpoint folders that are not shared."""
    from stateline import ConfigError

    rank = torch.distributed.get_rank()
    layout, _ = layouts("uneven")
    results: dict[str, Any] = {}

    def dropout_run(epochs: int, folder: Path, resume: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = SequenceModel(ModelConfig(inputs=1, hidden=8, layers=2, dropout=0.3))
        config = TrainConfig(
            epochs=epochs, progress=False, seed=0, learning_rate=0.01,
            checkpoint_dir=str(folder), resume=resume,
        )  # fmt: skip
        fit(model, layout, config=config)
        return model.state_dict()

    straight = dropout_run(3, out / "dropout-straight", resume=False)
    dropout_run(2, out / "dropout-resumed", resume=False)
    resumed = dropout_run(3, out / "dropout-resumed", resume=True)
    results["dropout_resume_equal"] = all(torch.equal(straight[k], resumed[k]) for k in straight)

    class WithSpare(SequenceModel):  # a parameter the loss never reaches
        def __init__(self) -> None:
            super().__init__(ModelConfig(inputs=1, hidden=8))
            self.spare = torch.nn.Parameter(torch.ones(4))

    torch.manual_seed(0)
    spare = WithSpare()
    fit(spare, layout, config=TrainConfig(epochs=2, progress=False, weight_decay=0.5))
    results["spare_untouched"] = bool(torch.equal(spare.spare.detach(), torch.ones(4)))

    own = out / f"own-{rank}"  # each rank its own folder: rank 0 alone writes training.pt
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=8))
    fit(model, layout, config=TrainConfig(epochs=1, progress=False, checkpoint_dir=str(own)))
    try:
        config = TrainConfig(epochs=2, progress=False, checkpoint_dir=str(own), resume=True)
        fit(model, layout, config=config)
        results["unshared"] = "no error"
    except ConfigError as error:
        results["unshared"] = str(error)
    return results


if __name__ == "__main__":
    out, case = Path(sys.argv[1]), sys.argv[2]
    if case == "review":  # a process group the caller made, which fit then uses
        torch.distributed.init_process_group("gloo")
        results = review_cases(out)
        torch.save(results, out / f"rank{torch.distributed.get_rank()}.pt")
        torch.distributed.barrier()  # ours to end, together: we made it
        torch.distributed.destroy_process_group()
    else:  # fit makes the process group from torchrun's environment
        weights, history = train(case, out)
        saved = {"weights": weights, "history": history}
        torch.save(saved, out / f"rank{torch.distributed.get_rank()}.pt")
