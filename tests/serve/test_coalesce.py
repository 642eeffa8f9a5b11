"""Single steps that arrive together are stepped as one batch: the same answers as one by one."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from stateline.serve import Event, StreamService
from stateline.serve._coalesce import StepCoalescer

from .conftest import AUTH, serve_config


def _events(rounds: int) -> list[Event]:
    """Three streams, their steps in order, a bad event (NaN) and a gap among them."""
    rng = np.random.default_rng(7)
    events = []
    for seq in range(rounds):
        for stream in ("a", "b", "c"):
            events.append(Event(stream, [float(20 + 3 * rng.standard_normal())], seq=seq))
    events[7] = Event("b", [float("nan")], seq=2)  # refused alone
    events[20] = Event("c", [21.0], seq=12)  # a gap
    return events


async def _together(coalescer: StepCoalescer, events: list[Event]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(coalescer.step(event) for event in events)))


def _same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal answers: the numbers to float tolerance (one call of many steps runs the fused
    batch kernel, one step alone the NumPy kernel)."""
    assert (got["stream"], got["status"], got["seq"]) == (
        want["stream"],
        want["status"],
        want["seq"],
    )
    assert bool(got.get("error")) == bool(want.get("error"))
    for key in ("forecast", "scores", "anomaly_scores", "level"):
        np.testing.assert_allclose(
            np.array(got[key], dtype=float), np.array(want[key], dtype=float), rtol=1e-5
        )
    assert got["flags"] == want["flags"]


def test_steps_that_come_together_answer_as_they_would_one_by_one(
    model_dir: Path, tmp_path: Path
) -> None:
    events = _events(12)
    alone = StreamService(serve_config(model_dir, tmp_path / "alone"))
    expected = [alone.step([event])[0] for event in events]
    together = StreamService(serve_config(model_dir, tmp_path / "together"))
    calls: list[int] = []
    step = together.step

    def counting(batch: list[Event], **kwargs: Any) -> list[dict[str, Any]]:
        calls.append(len(batch))
        return step(batch, **kwargs)

    together.step = counting  # type: ignore[method-assign]
    answers = asyncio.run(_together(StepCoalescer(together), events))
    for got, want in zip(answers, expected, strict=True):
        _same(got, want)
    assert calls == [len(events)]  # one call for everyone who came together
    assert answers[7]["status"] == "error" and answers[20]["status"] == "gap"


def test_a_batch_never_trips_a_limit_that_each_step_alone_would_not(
    model_dir: Path, tmp_path: Path
) -> None:
    """Capacity 2 and three new streams at once: each step alone is fine (an eviction),
    so together they go in calls of at most 2; max_steps bounds the steps per call."""
    service = StreamService(serve_config(model_dir, tmp_path / "s", capacity=2, max_steps=2))
    calls: list[int] = []
    step = service.step

    def counting(batch: list[Event], **kwargs: Any) -> list[dict[str, Any]]:
        calls.append(len(batch))
        return step(batch, **kwargs)

    service.step = counting  # type: ignore[method-assign]
    events = [Event(name, [20.0], seq=0) for name in ("x", "y", "z")]
    events.append(Event("w", [[20.0], [21.0]], seq=0))  # two steps
    answers = asyncio.run(_together(StepCoalescer(service), events))
    assert [a["status"] for a in answers] == ["ok"] * 4
    assert calls == [2, 1, 1]  # capacity 2 per call; then 1 + 2 steps would pass max_steps 2


def test_an_error_in_the_batch_reaches_every_request_of_it(model_dir: Path, tmp_path: Path) -> None:
    service = StreamService(serve_config(model_dir, tmp_path / "s"))

    def broken(batch: list[Event], **kwargs: Any) -> list[dict[str, Any]]:
        raise RuntimeError("disk on fire")

    service.step = broken  # type: ignore[method-assign]

    async def two() -> list[Any]:
        coalescer = StepCoalescer(service)
        steps = [coalescer.step(Event(n, [1.0])) for n in "ab"]
        return list(await asyncio.gather(*steps, return_exceptions=True))

    assert [str(error) for error in asyncio.run(two())] == ["disk on fire"] * 2


def test_a_held_lock_sends_the_batch_to_a_thread_and_the_loop_keeps_answering(
    model_dir: Path, tmp_path: Path
) -> None:
    service = StreamService(serve_config(model_dir, tmp_path / "s"))

    async def while_held() -> tuple[dict[str, Any], bool]:
        coalescer = StepCoalescer(service)
        release = threading.Event()
        holder = threading.Thread(target=lambda: (service.lock.acquire(), release.wait(),
                                                  service.lock.release()))  # fmt: skip
        holder.start()
        while service.lock.acquire(blocking=False):  # until the holder has it
            service.lock.release()
            await asyncio.sleep(0.001)
        pending = asyncio.ensure_future(coalescer.step(Event("a", [20.0], seq=0)))
        await asyncio.sleep(0.05)
        loop_free = not pending.done()  # the loop ran this while the step waited
        release.set()
        answer = await pending
        holder.join()
        return answer, loop_free

    answer, loop_free = asyncio.run(while_held())
    assert loop_free and answer["status"] == "ok"


@pytest.mark.parametrize("clients", [6])
def test_concurrent_http_single_steps_are_each_applied_once_in_order(
    server: str, clients: int
) -> None:
    """Real HTTP: clients step their own streams at once; every step is ok, in order."""
    failures: list[str] = []

    def client(number: int) -> None:
        with httpx.Client(base_url=server, headers=AUTH, timeout=30) as http:
            for seq in range(25):
                response = http.post(
                    f"/v1/streams/c{number}/steps", json={"values": [20.0 + seq], "seq": seq}
                )
                if response.status_code != 200 or response.json()["status"] != "ok":
                    failures.append(f"{number}/{seq}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    with httpx.Client(base_url=server, headers=AUTH) as http:
        for number in range(clients):
            assert http.get(f"/v1/streams/c{number}").json()["seq"] == 24


def test_a_long_step_goes_to_a_thread_and_the_loop_keeps_answering(
    model_dir: Path, tmp_path: Path
) -> None:
    """A few steps run on the loop (no thread hop); past INLINE_STEPS they go to a thread,
    so that health checks and other requests are answered meanwhile."""
    import time

    from stateline.serve._coalesce import INLINE_STEPS

    service = StreamService(serve_config(model_dir, tmp_path / "s"))
    step = service.step

    def slow(batch: list[Event], **kwargs: Any) -> list[dict[str, Any]]:
        time.sleep(0.3)
        return step(batch, **kwargs)

    service.step = slow  # type: ignore[method-assign]

    async def ticks_during(event: Event) -> tuple[dict[str, Any], int]:
        coalescer, ticks = StepCoalescer(service), 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        running = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        answer = await coalescer.step(event)
        running.cancel()
        return answer, ticks

    short, short_ticks = asyncio.run(ticks_during(Event("a", [20.0], seq=0)))
    long, long_ticks = asyncio.run(ticks_during(Event("b", [[20.0]] * (INLINE_STEPS + 1), seq=0)))
    assert short["status"] == long["status"] == "ok"
    assert short_ticks <= 3 and long_ticks >= 10, (short_ticks, long_ticks)


def test_with_the_store_nearly_full_steps_go_one_by_one_and_evict_as_alone(
    model_dir: Path, tmp_path: Path
) -> None:
    """Capacity 2 holding c (least recent) and d: a new stream a and c come together. One at
    a time, a evicts c (c answers restarted); a batch of both would have kept c."""

    def primed(name: str) -> StreamService:
        service = StreamService(serve_config(model_dir, tmp_path / name, capacity=2))
        service.step([Event("c", [20.0], seq=0)])
        service.step([Event("d", [20.0], seq=0)])
        return service

    events = [Event("a", [20.0], seq=0), Event("c", [21.0], seq=1)]
    alone = primed("alone")
    expected = [alone.step([event])[0] for event in events]
    answers = asyncio.run(_together(StepCoalescer(primed("together")), events))
    assert [a["status"] for a in answers] == [a["status"] for a in expected] == ["ok", "restarted"]
