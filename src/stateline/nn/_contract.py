"""The carry contract as a check any model can run: one suite for every model that speaks it.

Like scikit-learn's ``check_estimator`` or River's estimator checks: each
property below is what training (chunked TBPTT over lanes), streaming (one
step for many streams) and online learning rely on. A new model joins by
passing :func:`check_carry_contract`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._carry import Carry

__all__ = ["CONTRACT_PROPERTIES", "check_carry_contract"]

CONTRACT_PROPERTIES = (
    "initial carry: a tuple of zero tensors with the batch in dimension 1, on the asked dtype",
    "carry=None runs from the initial carry",
    "chunked calls that pass the carry on equal one call over the whole sequence",
    "step(carry, x) equals a one-step forward (where the model has step)",
    "reset zeroes exactly the flagged rows before the chunk",
    "a masked step keeps that row's carry and outputs zeros; real steps equal the row run alone",
    "rows are independent: a row's outputs do not depend on the other rows",
    "the caller's carry is not changed in place, nor the model's train/eval mode",
    "gradients flow through the carry from one chunk into the previous one",
)
"""What :func:`check_carry_contract` checks, in order."""


def check_carry_contract(
    model: nn.Module,
    *,
    inputs: int,
    batch: int = 3,
    time: int = 9,
    seed: int = 0,
    tolerance: float = 1e-9,
) -> None:
    """Check every property of :data:`CONTRACT_PROPERTIES`; raise ``AssertionError`` naming one.

    Runs a float64 copy of ``model`` in eval mode (``model`` itself is not
    touched) on inputs drawn from a private generator seeded with ``seed``.

    >>> from stateline.nn import ModelConfig, SequenceModel
    >>> check_carry_contract(SequenceModel(ModelConfig(inputs=2, outputs=1, hidden=4)), inputs=2)
    """
    subject = _float64_copy(model)
    generator = torch.Generator().manual_seed(seed)
    xs = torch.randn(batch, time, inputs, dtype=torch.float64, generator=generator)
    for check in (
        _initial_carry,
        _default_carry,
        _chunked,
        _step,
        _reset,
        _mask,
        _rows_independent,
        _no_mutation,
        _gradients,
    ):
        check(subject, xs, generator, tolerance)


def _float64_copy(model: nn.Module) -> nn.Module:
    import copy

    subject = copy.deepcopy(model).double().eval()
    for parameter in subject.parameters():
        parameter.requires_grad_(True)
    return subject


def _equal(name: str, actual: Tensor, expected: Tensor, tolerance: float) -> None:
    try:
        torch.testing.assert_close(actual, expected, atol=tolerance, rtol=tolerance)
    except AssertionError as error:
        raise AssertionError(f"carry contract: {name}.\n{error}") from None


def _equal_carry(name: str, actual: Carry, expected: Carry, tolerance: float) -> None:
    if len(actual) != len(expected):
        raise AssertionError(
            f"carry contract: {name}: {len(actual)} parts, {len(expected)} expected."
        )
    for position, (a, e) in enumerate(zip(actual, expected, strict=True)):
        _equal(f"{name} (carry part {position})", a, e, tolerance)


def _run(
    model: nn.Module, xs: Tensor, carry: Carry | None, **keywords: Tensor
) -> tuple[Tensor, Carry]:
    with torch.no_grad():
        ys, new = model(xs, carry, **keywords)
    return ys, new


def _initial(model: nn.Module, batch: int) -> Carry:
    carry: Carry = model.initial_carry(batch, dtype=torch.float64)  # type: ignore[operator]
    return carry


def _initial_carry(
    model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float
) -> None:
    carry = _initial(model, xs.shape[0])
    if not isinstance(carry, tuple) or not carry:
        raise AssertionError(
            f"carry contract: initial_carry must return a tuple of tensors, got {type(carry)}."
        )
    for position, part in enumerate(carry):
        if (
            part.ndim != 3
            or part.shape[1] != xs.shape[0]
            or part.dtype != torch.float64
            or bool(part.any())
        ):
            raise AssertionError(
                f"carry contract: initial_carry part {position} must be float64 zeros shaped "
                f"(layers, batch={xs.shape[0]}, hidden); got {tuple(part.shape)}, {part.dtype}."
            )


def _default_carry(
    model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float
) -> None:
    ys, carry = _run(model, xs, None)
    ys_zero, carry_zero = _run(model, xs, _initial(model, xs.shape[0]))
    _equal("carry=None must run from initial_carry", ys, ys_zero, tolerance)
    _equal_carry("carry=None must run from initial_carry", carry, carry_zero, tolerance)


def _chunked(model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float) -> None:
    whole, whole_carry = _run(model, xs, _initial(model, xs.shape[0]))
    for cut in _cuts(xs.shape[1], generator):
        carry, pieces = _initial(model, xs.shape[0]), []
        for begin, end in zip((0, *cut), (*cut, xs.shape[1]), strict=True):
            ys, carry = _run(model, xs[:, begin:end], carry)
            pieces.append(ys)
        _equal(
            f"chunks cut at {cut} must equal the whole sequence",
            torch.cat(pieces, 1),
            whole,
            tolerance,
        )
        _equal_carry(f"the carry after chunks cut at {cut}", carry, whole_carry, tolerance)


def _cuts(time: int, generator: torch.Generator) -> list[tuple[int, ...]]:
    every = tuple(range(1, time))
    drawn = tuple(sorted(set(torch.randint(1, max(time, 2), (3,), generator=generator).tolist())))
    return [every, tuple(c for c in drawn if 0 < c < time)]


def _step(model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float) -> None:
    step: Callable[[Carry, Tensor], tuple[Carry, Tensor]] | None = getattr(model, "step", None)
    if step is None:
        return
    whole, whole_carry = _run(model, xs, _initial(model, xs.shape[0]))
    carry, outputs = _initial(model, xs.shape[0]), []
    with torch.no_grad():
        for position in range(xs.shape[1]):
            carry, y = step(carry, xs[:, position])
            outputs.append(y)
    _equal("step by step must equal the whole sequence", torch.stack(outputs, 1), whole, tolerance)
    _equal_carry("the carry after step by step", carry, whole_carry, tolerance)


def _reset(model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float) -> None:
    batch = xs.shape[0]
    _, warm = _run(model, xs, None)
    reset = torch.arange(batch) % 2 == 0
    ys, carry = _run(model, xs, warm, reset=reset)
    fresh_ys, fresh_carry = _run(model, xs, None)
    warm_ys, warm_carry = _run(model, xs, warm)
    expected_ys = torch.where(reset[:, None, None], fresh_ys, warm_ys)
    _equal(
        "reset rows must start from zeros, the others from their carry", ys, expected_ys, tolerance
    )
    for position, (part, fresh, kept) in enumerate(
        zip(carry, fresh_carry, warm_carry, strict=True)
    ):
        expected = torch.where(reset[None, :, None], fresh, kept)
        _equal(f"the carry after a reset (part {position})", part, expected, tolerance)


def _mask(model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float) -> None:
    batch, time = xs.shape[:2]
    _, warm = _run(model, xs, None)
    lengths = torch.tensor([(time, time // 2, 0)[row % 3] for row in range(batch)])
    patterns = [
        torch.rand(batch, time, generator=generator) < 0.6,  # holes anywhere
        torch.arange(time)[None, :] < lengths[:, None],  # real steps then padding (lanes)
    ]
    for mask in patterns:
        ys, carry = _run(model, xs, warm, mask=mask)
        masked = ~mask
        if bool((ys[masked] != 0).any()):
            raise AssertionError("carry contract: masked steps must output zeros.")
        for row in range(batch):
            real = mask[row]
            row_carry = tuple(part.narrow(1, row, 1) for part in warm)
            if bool(real.any()):
                alone, alone_carry = _run(model, xs[row : row + 1, real], row_carry)
                _equal(
                    f"row {row}'s real steps must equal the row run alone",
                    ys[row, real],
                    alone[0],
                    tolerance,
                )
            else:
                alone_carry = row_carry
            _equal_carry(
                f"row {row}'s carry after masked steps",
                tuple(part.narrow(1, row, 1) for part in carry),
                alone_carry,
                tolerance,
            )


def _rows_independent(
    model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float
) -> None:
    ys, _ = _run(model, xs, None)
    other = xs.clone()
    other[1:] = torch.randn(other[1:].shape, dtype=other.dtype, generator=generator)
    ys_other, _ = _run(model, other, None)
    _equal("row 0 must not depend on the other rows", ys_other[0], ys[0], tolerance)


def _no_mutation(
    model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float
) -> None:
    _, warm = _run(model, xs, None)
    before = tuple(part.clone() for part in warm)
    _run(model, xs, warm, reset=torch.ones(xs.shape[0], dtype=torch.bool))
    _run(model, xs, warm, mask=torch.rand(xs.shape[:2], generator=generator) < 0.5)
    _equal_carry("the caller's carry must not change in place", warm, before, 0.0)
    for mode in (True, False):
        model.train(mode)
        _run(model, xs, warm)
        if model.training is not mode:
            raise AssertionError(
                "carry contract: forward must not change the model's train/eval mode."
            )
    model.eval()


def _gradients(model: nn.Module, xs: Tensor, generator: torch.Generator, tolerance: float) -> None:
    first = xs[:, : xs.shape[1] // 2].clone().requires_grad_(True)
    _, carry = model(first, None)
    ys, _ = model(xs[:, xs.shape[1] // 2 :], carry)
    ys.sum().backward()
    if first.grad is None or not bool(first.grad.abs().sum() > 0):
        raise AssertionError(
            "carry contract: gradients must flow through the carry into the previous chunk."
        )
