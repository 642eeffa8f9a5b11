"""Training over several processes: each rank owns a fixed block of lanes, gradients travel.

Launched under ``torchrun`` (or with a process group the caller made),
:func:`~stateline.train.fit` splits the layout's lanes into one contiguous
block per rank. Every carry stays on its rank for the whole run; after each
chunk the ranks sum their gradients with one all-reduce, each rank's loss
weighted by its share of the chunk's real steps, so the step every rank
takes is the one a single process would take on all the lanes.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import torch
from torch import nn

from .._errors import ConfigError, StatelineError, describe
from ..data import Moments

T = TypeVar("T")

__all__ = ["Ranks", "flat_dtype"]


def flat_dtype(parameters: Sequence[torch.Tensor]) -> torch.dtype:
    """The dtype of the gradients' flat buffer (the parameters'; float32 if they differ)."""
    kinds = {p.dtype for p in parameters}
    return kinds.pop() if len(kinds) == 1 else torch.float32


def _leave_group() -> None:
    """End the process group fit made, together: every rank waits for the others (at most
    60 s; a rank that died ends the wait at once), then each takes the group down. A rank
    that tore its connections down while a slower one still held them made that one end with
    "terminate called" (exit -6) in the fresh-clone CI runs."""
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        return
    with contextlib.suppress(Exception):  # a peer gone already: nothing to wait for
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
        else:
            dist.barrier()
    dist.destroy_process_group()


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
            if device.type == "cuda":  # one GPU per process on a machine: its local rank's
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            # The group lives on for the caller (a second fit, the rank's own work after it)
            # and is taken down before the interpreter is: left to the interpreter's teardown,
            # gloo's threads ended a process with "terminate called" (exit -6) now and then.
            atexit.register(_leave_group)
        return cls(dist.get_rank(), dist.get_world_size())

    def device(self, device: torch.device) -> torch.device:
        """The device this rank trains on: ``cuda`` means this process's own GPU (the one
        :meth:`current` set, by ``LOCAL_RANK``), never GPU 0 for all."""
        if self.world > 1 and device.type == "cuda" and device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        return device

    def gather(self, value: object) -> list[object]:
        """Every rank's ``value``, in rank order (``[value]`` alone)."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        gathered: list[object] = [None] * self.world
        dist.all_gather_object(gathered, value)
        return gathered

    def together(self, work: Callable[[], T]) -> T:
        """``work()`` on every rank; where it fails on one rank, it fails on all of them.

        A rank that stopped alone (on its own data: a NaN, an unsorted series) would leave
        the others waiting in their next collective until a timeout. The other ranks raise
        the same kind of error, naming the rank that found it.
        """
        failure: Exception | None = None
        try:
            result = work()
        except Exception as error:
            if self.world == 1:
                raise
            failure = error
        if self.world == 1:
            return result
        report = (
            None
            if failure is None
            else failure
            if isinstance(failure, StatelineError)
            else RuntimeError(f"{type(failure).__name__}: {failure}")
        )
        reports = self.gather(report)
        if failure is not None:
            raise failure
        for rank, other in enumerate(reports):
            if isinstance(other, Exception):
                raise type(other)(f"{other}\n  (on process {rank}, which reads those series)")
        return result

    def add(self, moments: Moments) -> Moments:
        """Every rank's :class:`~stateline.data.Moments` added up, in rank order (the same
        numbers on every rank; alone, ``moments`` itself)."""
        if self.world == 1:
            return moments
        parts = cast(list[Moments], self.gather(moments))
        return functools.reduce(lambda total, part: total + part, parts)

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
        """Sum every parameter's gradient over the ranks, in one all-reduce of a flat buffer.

        A parameter without a gradient on some rank counts as zeros there; one without a
        gradient on every rank keeps none (the optimizer then leaves it alone, as it does in
        one process: a zero gradient would still get weight decay and momentum).
        """
        if self.world == 1:
            return
        parameters = [p for p in model.parameters() if p.requires_grad]
        present = [p.grad is not None for p in parameters]
        flat = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                for p in parameters
            ]
            + [torch.tensor(present, dtype=flat_dtype(parameters), device=parameters[0].device)]
        )
        self.sum(flat)
        anywhere = flat[-len(parameters) :] > 0
        offset = 0
        for p, used in zip(parameters, anywhere.tolist(), strict=True):
            size = p.numel()
            p.grad = flat[offset : offset + size].view_as(p).clone() if used else None
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
