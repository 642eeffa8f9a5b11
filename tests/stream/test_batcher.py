from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from stateline import ConfigError
from stateline.nn import ModelConfig, SequenceModel
from stateline.stream import MicroBatcher, StateStore, Status, StreamEngine


def make_engine() -> StreamEngine:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=2, hidden=6, outputs=1)).eval()
    return StreamEngine(model, StateStore(model))


def test_concurrent_clients_get_what_sequential_calls_give() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(30, 6, 2)).astype(np.float32)
    reference = make_engine()
    expected = np.stack(
        [reference.step([f"s{i}" for i in range(30)], data[:, t]).predictions for t in range(6)],
        axis=1,
    )

    engine = make_engine()

    async def client(batcher: MicroBatcher, index: int) -> list[np.ndarray]:
        out = []
        for t in range(6):  # each client sends its stream's steps in order
            result = await batcher.step(f"s{index}", data[index, t], seq=t)
            assert result.status == Status.OK
            out.append(result.prediction)
        return out

    async def main() -> list[list[np.ndarray]]:
        async with MicroBatcher(engine, max_events=64, max_delay_us=1000) as batcher:
            return await asyncio.gather(*(client(batcher, i) for i in range(30)))

    streamed = np.array(asyncio.run(main()))
    np.testing.assert_allclose(streamed, expected, atol=1e-6)
    assert engine.calls < 30 * 6 / 4  # events were batched


def test_events_of_one_stream_in_one_batch_keep_their_order_and_errors_stay_local() -> None:
    engine = make_engine()
    reference = make_engine()
    xs = np.arange(8, dtype=np.float32).reshape(4, 2)

    async def main() -> list:
        async with MicroBatcher(engine, max_delay_us=5000) as batcher:
            return await asyncio.gather(
                *(batcher.step("a", xs[t], seq=t) for t in range(4)),
                batcher.step("b", [np.nan, 1.0]),
                batcher.step("c", np.ones((3, 2))),  # k = 3 steps: its own group
            )

    results = asyncio.run(main())
    expected = reference.step(["a"] * 4, xs).predictions
    np.testing.assert_allclose(np.stack([r.prediction for r in results[:4]]), expected, atol=1e-6)
    assert results[4].status == Status.ERROR and "NaN" in (results[4].error or "")
    assert results[5].prediction.shape == (3, 1)


def test_settings_and_use_before_start() -> None:
    with pytest.raises(ConfigError, match="max_events"):
        MicroBatcher(make_engine(), max_events=0)
    batcher = MicroBatcher(make_engine())
    with pytest.raises(ConfigError, match="not running"):
        asyncio.run(batcher.step("a", [0.0, 0.0]))
