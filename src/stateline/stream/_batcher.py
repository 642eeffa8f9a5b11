"""``MicroBatcher``: many concurrent single-event requests, one model call."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, describe
from .._validate import require_positive_int
from ._engine import StreamEngine
from ._grouping import plan_calls
from ._store import StreamId

__all__ = ["EventResult", "MicroBatcher"]


@dataclass(frozen=True)
class EventResult:
    """The outcome of one event: its prediction(s), status and error message (if any)."""

    prediction: NDArray[np.float32]
    status: str
    error: str | None = None


@dataclass
class _Pending:
    stream_id: StreamId
    x: NDArray[np.float32]
    seq: int | None
    start: bool
    end: bool
    future: asyncio.Future[EventResult]


class MicroBatcher:
    """Collect concurrent events for up to ``max_events`` or ``max_delay_us`` microseconds.

    Every caller awaits :meth:`step` for its own event; the batcher groups the
    events that arrive together and makes as few :meth:`StreamEngine.step`
    calls as keep every stream's events in arrival order (one call holds
    events with the same number of steps; see
    :func:`~stateline.stream._grouping.plan_calls`). Use it as an async
    context manager.

    >>> import asyncio
    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> from stateline.stream import StateStore
    >>> model = SequenceModel(ModelConfig(inputs=2, hidden=4))
    >>> engine = StreamEngine(model, StateStore(model))
    >>> async def main():
    ...     async with MicroBatcher(engine, max_delay_us=2000) as batcher:
    ...         return await asyncio.gather(*(batcher.step(f"s{i}", [0.0, 1.0]) for i in range(8)))
    >>> results = asyncio.run(main())
    >>> [r.status for r in results][:3], engine.calls
    (['ok', 'ok', 'ok'], 1)
    """

    def __init__(
        self, engine: StreamEngine, *, max_events: int = 1024, max_delay_us: float = 500.0
    ) -> None:
        require_positive_int("max_events", max_events)
        if max_delay_us < 0:
            raise ConfigError(
                describe(
                    "max_delay_us", "microseconds >= 0", repr(max_delay_us), problem="is invalid."
                )
            )
        self.engine = engine
        self.max_events = max_events
        self.max_delay = max_delay_us / 1e6
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def __aenter__(self) -> MicroBatcher:
        self.start()
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Start the collecting task on the running event loop."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish the events already queued, then stop."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def step(
        self,
        stream_id: StreamId,
        x: ArrayLike,
        *,
        seq: int | None = None,
        start: bool = False,
        end: bool = False,
    ) -> EventResult:
        """Submit one event (``x``: ``(features,)`` or ``(k, features)``) and await its result."""
        if self._queue is None:
            raise ConfigError(
                describe(
                    "MicroBatcher",
                    "started (async with MicroBatcher(...))",
                    "not started",
                    problem="is not running.",
                )
            )
        future: asyncio.Future[EventResult] = asyncio.get_running_loop().create_future()
        await self._queue.put(
            _Pending(stream_id, np.asarray(x, dtype=np.float32), seq, start, end, future)
        )
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_delay
            while len(batch) < self.max_events:
                while not queue.empty() and len(batch) < self.max_events:
                    batch.append(queue.get_nowait())
                remaining = deadline - loop.time()
                if remaining <= 0 or len(batch) >= self.max_events:
                    break
                await asyncio.sleep(min(remaining, 0.0002))
            self._process(batch)
            for _ in batch:
                queue.task_done()

    def _process(self, batch: list[_Pending]) -> None:
        kinds = [(event.x.shape[:-1], event.seq is not None) for event in batch]
        for call in plan_calls([event.stream_id for event in batch], kinds):
            events = [batch[index] for index in call]
            has_seq = events[0].seq is not None
            try:
                result = self.engine.step(
                    [e.stream_id for e in events],
                    [e.x for e in events],
                    seq=[int(e.seq or 0) for e in events] if has_seq else None,
                    start=[e.start for e in events],
                    end=[e.end for e in events],
                )
            except Exception as error:  # a whole-call error fails each event of the group
                for event in events:
                    if not event.future.done():
                        event.future.set_exception(error)
                continue
            self.batches += 1
            statuses = result.status
            for position, event in enumerate(events):
                if not event.future.done():
                    event.future.set_result(
                        EventResult(
                            prediction=result.predictions[position],
                            status=statuses[position],
                            error=result.errors.get(position),
                        )
                    )
