"""Single steps that arrive together go to the service as one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from ._events import Event, event_steps
from ._service import StreamService

__all__ = ["StepCoalescer", "run_when_free"]

T = TypeVar("T")


INLINE_STEPS = 32
"""Batches of at most this many steps may run on the event loop (about 5 ms on the 2-core
machine); longer ones go to a thread, so the loop keeps answering other requests."""


async def run_when_free(
    service: StreamService, work: Callable[..., T], *args: Any, small: bool = True
) -> T:
    """``work(*args)`` on the event loop when it is ``small`` and the service's lock is free,
    else in a worker thread.

    A step of a few events costs well under a millisecond: handing it to a
    thread costs more than that in waits for the GIL while other requests are
    being parsed. Work that is not small, or a held lock (a snapshot, a long
    batch), must not hold up the loop: the work goes to a thread.
    """
    if small and service.lock.acquire(blocking=False):
        try:
            return work(*args)
        finally:
            service.lock.release()
    return await asyncio.to_thread(work, *args)


class StepCoalescer:
    """One ``service.step`` call for the single-step requests that are waiting at the same time.

    The first request to arrive starts a drain task and every request waits
    for its own answer. The task runs once the event loop has run what was
    ready (every request whose body is in has added its event), then steps all
    waiting events in one call, in the order they came, and again for those
    that came meanwhile, until none wait. A stream's events stay in order, and
    a bad event is answered alone (the per-event API refuses events one by
    one). With four clients sending one step each, the service gets about
    four events per call instead of one (one turn of the lock, one thread hop
    when it is busy); a few single steps of distinct streams it then steps one
    at a time on its float path (:mod:`._single`), which costs less than
    arrays of four rows. A request that goes away does not stop the others'
    batch.

    >>> import asyncio, threading
    >>> from types import SimpleNamespace
    >>> calls = []
    >>> def step(events):
    ...     calls.append(len(events))
    ...     return [{"stream": event.stream} for event in events]
    >>> limits = SimpleNamespace(max_events=100, max_steps=100)
    >>> class Store(list):  # stands in for the state store: its length, its capacity
    ...     capacity = 100
    >>> service = SimpleNamespace(lock=threading.RLock(), step=step, config=limits, store=Store())
    >>> async def three(coalescer):
    ...     return await asyncio.gather(*(coalescer.step(Event(name, [1.0])) for name in "abc"))
    >>> [answer["stream"] for answer in asyncio.run(three(StepCoalescer(service)))], calls
    (['a', 'b', 'c'], [3])
    """

    def __init__(self, service: StreamService) -> None:
        self.service = service
        self._pending: list[tuple[Event, asyncio.Future[dict[str, Any]]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def step(self, event: Event) -> dict[str, Any]:
        """The service's answer to ``event`` (stepped with the others that came with it)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((event, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                await self._step(*self._take())
        finally:
            self._drainer = None

    def _take(self) -> tuple[list[tuple[Event, asyncio.Future[dict[str, Any]]]], int]:
        """The oldest waiting events that one call takes without tripping a batch limit
        (events, steps, distinct streams past capacity) that each alone would not trip,
        and their steps.

        When the store has less room than the waiting events, one event per call: a
        call protects all its streams from eviction, so a batch of them could keep a
        stream that one step at a time would have evicted (and answer it otherwise).
        """
        service = self.service
        config = service.config
        store = service.store
        room = store.capacity - len(store)
        events_limit = max(1, min(config.max_events, store.capacity))
        if room < min(len(self._pending), events_limit):
            events_limit = 1
        taken = steps = 0
        for event, _ in self._pending[:events_limit]:
            size = event_steps(event)
            if taken and steps + size > config.max_steps:
                break
            taken, steps = taken + 1, steps + size
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        return batch, steps

    async def _step(
        self, batch: list[tuple[Event, asyncio.Future[dict[str, Any]]]], steps: int
    ) -> None:
        try:
            events = [event for event, _ in batch]
            small = steps <= INLINE_STEPS
            answers = await run_when_free(self.service, self.service.step, events, small=small)
        except Exception as error:  # every request of the batch gets it (a 500 each)
            for _, waiting in batch:
                if not waiting.done():
                    waiting.set_exception(error)
            return
        for (_, waiting), answer in zip(batch, answers, strict=True):
            if not waiting.done():
                waiting.set_result(answer)
