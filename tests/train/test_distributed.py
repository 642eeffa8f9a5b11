"""Distributed fit with 2 gloo processes on loopback: both ranks end with the same weights, equal
to one process training on all the lanes (float tolerance), for even and uneven layouts, and
for a run restarted half way that resumes from its checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ..serve.conftest import free_port
from . import _ddp_fit

SCRIPT = Path(_ddp_fit.__file__)


def _launch(case: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GLOO_SOCKET_IFNAME": "lo",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(SCRIPT.parents[2]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
         str(SCRIPT), str(tmp_path), case],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.parametrize("case", ["even", "uneven", "resume"])
def test_two_ranks_train_the_weights_one_process_trains(case: str, tmp_path: Path) -> None:
    _launch(case, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    for name, tensor in ranks[0]["weights"].items():
        assert torch.equal(tensor, ranks[1]["weights"][name]), name  # bit for bit
    assert ranks[0]["history"] == ranks[1]["history"]
    # one process, all the lanes, three epochs in one go
    weights, history = _ddp_fit.train("uneven" if case == "resume" else case)
    for name, tensor in weights.items():
        torch.testing.assert_close(ranks[0]["weights"][name], tensor, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        np.array(ranks[0]["history"], dtype=float), np.array(history, dtype=float), rtol=1e-4
    )


def test_dropout_resumes_per_rank_a_spare_parameter_stays_and_unshared_folders_are_named(
    tmp_path: Path,
) -> None:
    """From a review: each rank's dropout stream comes back on resume; a parameter no loss
    reaches is left alone (no weight decay on zero gradients); ranks that would resume from
    different epochs stop with an error naming checkpoint_dir instead of mixing collectives."""
    _launch("review", tmp_path)
    for rank in range(2):
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert results["dropout_resume_equal"], rank
        assert results["spare_untouched"], rank
        assert "checkpoint_dir is not the same for every process" in results["unshared"], results
