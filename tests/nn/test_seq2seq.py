from __future__ import annotations

import pytest
import torch

from stateline import ConfigError, ShapeError
from stateline.nn import Seq2Seq, Seq2SeqConfig


def model(cell: str = "lstm") -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(inputs=3, targets=2, hidden=5, layers=2, cell=cell)).double()  # type: ignore[arg-type]


def unroll(net: Seq2Seq, carry, start, targets, use_truth) -> torch.Tensor:
    """Reference decoder: one step at a time, choosing each input by hand."""
    outputs, previous = [], start
    for k in range(targets.shape[1]):
        carry, hidden = net.decoder.step(carry, previous)
        y = net.head(hidden)
        outputs.append(y)
        previous = torch.where(use_truth[:, k : k + 1], targets[:, k], y)
    return torch.stack(outputs, dim=1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("probability", [0.0, 0.5, 1.0])
def test_teacher_forcing_and_scheduled_sampling_match_a_step_by_step_reference(
    cell: str, probability: float
) -> None:
    net = model(cell)
    xs = torch.randn(4, 7, 3, dtype=torch.float64)
    start = torch.randn(4, 2, dtype=torch.float64)
    targets = torch.randn(4, 5, 2, dtype=torch.float64)
    with torch.no_grad():
        ys, carry = net(
            xs,
            start=start,
            horizon=5,
            targets=targets,
            teacher_forcing=probability,
            generator=torch.Generator().manual_seed(9),
        )
        draws = torch.Generator().manual_seed(9)
        use_truth = torch.cat(
            [torch.rand(4, 1, generator=draws) < probability for _ in range(5)], dim=1
        )
        expected = unroll(net, carry, start, targets, use_truth)
    torch.testing.assert_close(ys, expected)


def test_free_running_needs_no_targets_and_the_encoder_is_stateful() -> None:
    net = model()
    xs = torch.randn(2, 10, 3, dtype=torch.float64)
    start = torch.zeros(2, 2, dtype=torch.float64)
    with torch.no_grad():
        whole, carry_whole = net(xs, start=start, horizon=3)
        _, carry = net(xs[:, :6], start=start, horizon=3)
        chunked, carry = net(xs[:, 6:], carry, start=start, horizon=3)
    torch.testing.assert_close(whole, chunked)
    for a, b in zip(carry, carry_whole, strict=True):
        torch.testing.assert_close(a, b)


def test_bad_arguments() -> None:
    net = model()
    xs = torch.zeros(2, 4, 3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="teacher_forcing"):
        net(xs, start=torch.zeros(2, 2, dtype=torch.float64), horizon=2, teacher_forcing=0.5)
    with pytest.raises(ShapeError, match="start"):
        net(xs, start=torch.zeros(2, 3, dtype=torch.float64), horizon=2)
    with pytest.raises(ConfigError, match="horizon"):
        net(xs, start=torch.zeros(2, 2, dtype=torch.float64), horizon=0)
    with pytest.raises(ShapeError, match="targets"):
        net(
            xs,
            start=torch.zeros(2, 2, dtype=torch.float64),
            horizon=2,
            targets=torch.zeros(2, 3, 2, dtype=torch.float64),
            teacher_forcing=1.0,
        )
