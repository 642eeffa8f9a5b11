"""Training over several processes: each rank owns a fixed block of lanes, gradients travel.

Launched under ``torchrun`` (or with a process group the caller made),
:func:`~stateline.train.fit` splits the layout's lanes into one contiguous
block per rank. Every carry stays on its rank for the whole run; after each
chunk the ranks sum their gradients with one all-reduce, each rank's loss
weighted by its share of the chunk's real steps, so the step every rank
takes is the one a single process would take on all the lanes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .._errors import ConfigError, describe

__all__ = ["Ranks"]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (``world == 1``: alone)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this rank writes checkpoints and shows progress (rank 0)."""
        return self.rank == 0

    @classmethod
    def current(cls, device: torch.device) -> Ranks:
        """The process group in use: the caller's, or one made from ``torchrun``'s environment
        (gloo on the CPU, NCCL on CUDA); alone otherwise.

        >>> Ranks.current(torch.device("cpu")) == Ranks(0, 1)  # not launched by torchrun
        True
        """
        import torch.distributed as dist

        if not dist.is_available():  # pragma: no cover - every build we ship has it
            return cls()
        if not dist.is_initialized():
            if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
                return cls()
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size())

    def lanes(self, total: int, *, allow_empty: bool = False) -> slice:
        """This rank's block of ``total`` lanes (the first ``total % world`` ranks get one more).

        >>> [Ranks(r, 3).lanes(8) for r in range(3)]
        [slice(0, 3, None), slice(3, 6, None), slice(6, 8, None)]
        """
        if total < self.world and not allow_empty:
            raise ConfigError(
                describe(
                    "lanes",
                    f"at least one lane per process ({self.world} processes)",
                    f"{total} lanes",
                    problem="are too few.",
                    fix="Pack more lanes, or start fewer processes.",
                )
            )
        share, extra = divmod(total, self.world)
        start = self.rank * share + min(self.rank, extra)
        return slice(start, start + share + (1 if self.rank < extra else 0))

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over the ranks (in place; itself when alone)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(value, op=dist.ReduceOp.SUM)
        return value

    def sum_gradients(self, model: nn.Module) -> None:
        """Sum every parameter's gradient over the ranks, in one all-reduce of a flat buffer
        (a parameter without a gradient on some rank counts as zeros there)."""
        if self.world == 1:
            return
        parameters = [p for p in model.parameters() if p.requires_grad]
        flat = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                for p in parameters
            ]
        )
        self.sum(flat)
        offset = 0
        for p in parameters:
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).clone()
            offset += size

    def same_weights(self, model: nn.Module) -> None:
        """Start every rank from rank 0's weights (they are equal when seeded alike; this
        makes sure)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                dist.broadcast(tensor, src=0)
