"""The stateful layout: sequences packed into lanes of fixed-size chunks.

A stateful recurrent model keeps one carry per row of a batch. For the carry to
mean anything, row ``j`` of chunk ``k`` must continue row ``j`` of chunk
``k - 1``. :func:`pack_lanes` builds that layout: each *lane* is one batch row
over time; sequences are laid end to end in lanes, each starting on a chunk
boundary, so a single ``reset`` flag per lane and chunk says when a carry must
be zeroed.
"""

from __future__ import annotations

import heapq
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._errors import ConfigError, ShapeError, describe
from ._checks import (
    as_array,
    check_features,
    positive_int,
    require_finite,
    require_ndim,
    require_nonempty,
)

__all__ = ["Chunk", "LaneLayout", "LanePlan", "Placement", "pack_lanes", "place_lanes"]


@dataclass(frozen=True, eq=False)
class Chunk:
    """One step of truncated BPTT: ``chunk`` time steps of every lane.

    Attributes:
        x: ``(lanes, chunk, features)`` inputs, zero (``pad_value``) on padding.
        y: ``(lanes, chunk, ...)`` targets, or ``None`` without targets.
        mask: ``(lanes, chunk)`` bool, True on real time steps.
        reset: ``(lanes,)`` bool, True where the lane starts a new sequence in
            this chunk: zero that lane's carry before running the chunk.
        index: position of this chunk in the layout.
    """

    x: NDArray[Any]
    y: NDArray[Any] | None
    mask: NDArray[np.bool_]
    reset: NDArray[np.bool_]
    index: int


@dataclass(frozen=True)
class Placement:
    """Where one piece of a sequence lies: lane, first chunk, and which steps."""

    sequence: int
    """Position of the sequence in the input list."""
    start: int
    """First time step of the piece within its sequence (non-zero only when split)."""
    length: int
    """Number of real time steps in the piece."""
    lane: int
    first_chunk: int


class LaneLayout:
    """Sequences packed into ``lanes`` rows of ``chunk``-step chunks.

    Iterate it for :class:`Chunk` objects in order, or use the stacked arrays
    ``x``, ``y``, ``mask`` and ``reset`` (leading axis: chunk) directly.
    :meth:`unpack` maps per-chunk model outputs back to one array per input
    sequence, in input order. A layout packed from :meth:`LanePlan.block` holds
    one block of the lanes: its placements keep the sequences' positions in the
    whole input, and it cannot be unpacked (pieces of its sequences lie elsewhere).

    >>> layout = pack_lanes([np.ones((5, 2)), np.ones((3, 2))], lanes=2, chunk=2)
    >>> len(layout), layout.x.shape, layout.efficiency
    (3, (3, 2, 2, 2), 0.6666666666666666)
    >>> [chunk.reset.tolist() for chunk in layout]
    [[True, True], [False, False], [False, False]]
    """

    def __init__(
        self,
        *,
        x: NDArray[Any],
        y: NDArray[Any] | None,
        mask: NDArray[np.bool_],
        reset: NDArray[np.bool_],
        placements: tuple[Placement, ...],
        lengths: tuple[int, ...],
    ) -> None:
        self.x = x
        self.y = y
        self.mask = mask
        self.reset = reset
        self.placements = placements
        self.lengths = lengths

    @property
    def lanes(self) -> int:
        """Number of lanes (the batch size of every chunk)."""
        return int(self.mask.shape[1])

    @property
    def chunk(self) -> int:
        """Time steps per chunk (the truncation length of BPTT)."""
        return int(self.mask.shape[2])

    @property
    def steps(self) -> int:
        """Real (unpadded) time steps in the layout."""
        return int(np.count_nonzero(self.mask))

    @property
    def slots(self) -> int:
        """All time-step slots, padding included: chunks x lanes x chunk."""
        return int(self.mask.size)

    @property
    def efficiency(self) -> float:
        """Share of slots that hold real steps: ``steps / slots``."""
        return self.steps / self.slots

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def __getitem__(self, index: int) -> Chunk:
        position = range(len(self))[index]
        return Chunk(
            x=self.x[position],
            y=None if self.y is None else self.y[position],
            mask=self.mask[position],
            reset=self.reset[position],
            index=position,
        )

    def __iter__(self) -> Iterator[Chunk]:
        for position in range(len(self)):
            yield self[position]

    def __repr__(self) -> str:
        return (
            f"LaneLayout(sequences={len(self.lengths)}, lanes={self.lanes}, chunk={self.chunk}, "
            f"chunks={len(self)}, efficiency={self.efficiency:.3f})"
        )

    def unpack(self, outputs: ArrayLike | Sequence[ArrayLike]) -> list[NDArray[Any]]:
        """Map per-chunk outputs back to one array per input sequence.

        Args:
            outputs: ``(chunks, lanes, chunk, ...)``, or a list of per-chunk
                ``(lanes, chunk, ...)`` arrays, as a model returns them.

        Returns:
            One ``(length_i, ...)`` array per input sequence, in input order;
            padding is left out.

        >>> layout = pack_lanes(np.arange(10.0)[:, None], lanes=3, chunk=2, split=True)
        >>> layout.unpack(layout.x)[0][:, 0].tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
        """
        if isinstance(outputs, (list, tuple)):
            stacked = np.stack([np.asarray(item) for item in outputs])
        else:
            stacked = np.asarray(outputs)
        expected = (len(self), self.lanes, self.chunk)
        if stacked.ndim < 3 or stacked.shape[:3] != expected:
            raise ShapeError(
                describe(
                    "outputs",
                    f"leading axes (chunks, lanes, chunk) = {expected}",
                    f"shape {stacked.shape}",
                    fix="Collect one (lanes, chunk, ...) output per chunk, in order.",
                    problem="has the wrong shape.",
                )
            )
        covered = [0] * len(self.lengths)
        for placement in self.placements:
            covered[placement.sequence] += placement.length
        if covered != list(self.lengths):
            raise ShapeError(
                describe(
                    "layout",
                    "a layout of whole sequences (pack_lanes, or LanePlan.pack)",
                    "a layout of one block of the lanes (LanePlan.block)",
                    problem="cannot be unpacked.",
                    fix="Unpack the outputs of the whole layout.",
                )
            )
        timeline = _lane_timeline(stacked)
        pieces: list[list[tuple[int, NDArray[Any]]]] = [[] for _ in self.lengths]
        for placement in self.placements:
            begin = placement.first_chunk * self.chunk
            pieces[placement.sequence].append(
                (placement.start, timeline[placement.lane, begin : begin + placement.length])
            )
        return [
            np.concatenate([piece for _, piece in sorted(parts, key=lambda item: item[0])])
            for parts in pieces
        ]


def pack_lanes(
    sequences: ArrayLike | Sequence[ArrayLike],
    *,
    lanes: int,
    chunk: int,
    targets: ArrayLike | Sequence[ArrayLike] | None = None,
    split: bool = False,
    pad_value: float = 0.0,
) -> LaneLayout:
    """Pack one or many variable-length sequences into stateful lanes.

    Each sequence starts on a chunk boundary of some lane; its tail is padded to
    the end of its last chunk and masked out. Sequences are assigned to lanes
    longest first, each to the lane that is then shortest, which keeps the
    padding small (see ``LaneLayout.efficiency``).

    Args:
        sequences: one ``(length, features)`` array, a ``(count, length,
            features)`` array, or a list of ``(length_i, features)`` arrays.
        lanes: rows per chunk (the batch size), >= 1.
        chunk: time steps per chunk (the BPTT truncation length), >= 1.
        targets: per-step targets shaped like ``sequences`` in the first axis:
            one ``(length_i, ...)`` array per sequence.
        split: cut long sequences into contiguous segments of at most
            ``ceil(total steps / lanes)`` steps (rounded up to whole chunks), so
            that one long series fills all ``lanes`` lanes. Each segment starts
            with a reset; ``unpack`` joins the segments again.
        pad_value: value written into padded input slots.

    >>> layout = pack_lanes([np.ones((5, 1)), np.ones((2, 1))], lanes=2, chunk=3,
    ...                     targets=[np.zeros(5), np.zeros(2)])
    >>> chunk0 = layout[0]
    >>> chunk0.x.shape, chunk0.y.shape, chunk0.mask.tolist()
    ((2, 3, 1), (2, 3), [[True, True, True], [True, True, False]])
    """
    arrays = sequence_list(sequences, "sequences")
    check_features(arrays)
    target_arrays = None if targets is None else _target_list(targets, arrays)
    plan = place_lanes([len(array) for array in arrays], lanes=lanes, chunk=chunk, split=split)
    return _pack(
        plan,
        dict(enumerate(arrays)),
        None if target_arrays is None else dict(enumerate(target_arrays)),
        pad_value,
    )


@dataclass(frozen=True)
class LanePlan:
    """Where :func:`pack_lanes` puts sequences, decided from their lengths alone.

    A process that trains on one block of the lanes takes :meth:`block`, reads
    only the sequences it names (:attr:`sequences`) and packs them: the block
    holds exactly those lanes of the whole layout, with the whole layout's
    number of chunks.

    >>> plan = place_lanes([7, 3, 5, 2], lanes=2, chunk=2)
    >>> plan.chunks, plan.block(slice(1, 2)).sequences
    (5, (1, 2))
    >>> plan.block(slice(1, 2)).pack({1: np.ones((3, 1)), 2: np.ones((5, 1))}).x.shape
    (5, 1, 2, 1)
    """

    lengths: tuple[int, ...]
    """The length of every sequence of the whole input."""
    placements: tuple[Placement, ...]
    """Where each piece lies (lanes counted from the block's first lane)."""
    lanes: int
    chunks: int
    chunk: int

    @property
    def sequences(self) -> tuple[int, ...]:
        """The positions of the sequences with a piece in these lanes, in input order."""
        return tuple(sorted({placement.sequence for placement in self.placements}))

    @property
    def starts(self) -> tuple[int, ...]:
        """The positions of the sequences whose first piece lies in these lanes (each
        sequence starts in exactly one block), in input order."""
        return tuple(sorted({p.sequence for p in self.placements if p.start == 0}))

    def block(self, lanes: slice) -> LanePlan:
        """The plan of lanes ``lanes.start`` to ``lanes.stop`` only (the same chunks)."""
        first, stop, _ = lanes.indices(self.lanes)
        return LanePlan(
            lengths=self.lengths,
            placements=tuple(
                Placement(
                    sequence=p.sequence,
                    start=p.start,
                    length=p.length,
                    lane=p.lane - first,
                    first_chunk=p.first_chunk,
                )
                for p in self.placements
                if first <= p.lane < stop
            ),
            lanes=max(stop - first, 0),
            chunks=self.chunks,
            chunk=self.chunk,
        )

    def pack(
        self,
        sequences: Sequence[ArrayLike] | Mapping[int, ArrayLike],
        *,
        targets: Sequence[ArrayLike] | Mapping[int, ArrayLike] | None = None,
        pad_value: float = 0.0,
    ) -> LaneLayout:
        """Pack the sequences of this plan: a list of all of them, or a mapping from the
        position of each one in :attr:`sequences` (others are ignored) to its array."""
        arrays = self._arrays(sequences, "sequences")
        check_features(list(arrays.values()))
        target_arrays = None if targets is None else self._arrays(targets, "targets", arrays)
        return _pack(self, arrays, target_arrays, pad_value)

    def _arrays(
        self,
        given: Sequence[ArrayLike] | Mapping[int, ArrayLike],
        argument: str,
        inputs: dict[int, NDArray[Any]] | None = None,
    ) -> dict[int, NDArray[Any]]:
        needed = self.sequences
        if not needed:
            raise ConfigError(
                describe(
                    "plan",
                    "lanes that hold at least one sequence",
                    f"{self.lanes} lane(s) without any",
                    problem="is empty.",
                    fix="Place fewer lanes than sequences.",
                )
            )
        mapping = given if isinstance(given, Mapping) else dict(enumerate(given))
        missing = [index for index in needed if index not in mapping]
        if missing:
            raise ShapeError(
                describe(
                    argument,
                    f"the sequences at positions {list(needed)}",
                    f"none for positions {missing[:10]}",
                    problem="are missing.",
                )
            )
        arrays: dict[int, NDArray[Any]] = {}
        for index in needed:
            name = f"{argument}[{index}]"
            array = as_array(mapping[index], name)
            if inputs is None:
                require_ndim(array, name, (2,), "a 2-D array (length, features)")
            if array.ndim == 0 or len(array) != self.lengths[index]:
                raise ShapeError(
                    describe(
                        name,
                        f"{self.lengths[index]} steps, as planned",
                        f"shape {array.shape}",
                        problem="has the wrong shape.",
                    )
                )
            require_finite(array, name)
            arrays[index] = array
        return arrays


def place_lanes(lengths: Sequence[int], *, lanes: int, chunk: int, split: bool = False) -> LanePlan:
    """The :class:`LanePlan` of :func:`pack_lanes` for sequences of these lengths.

    >>> plan = place_lanes([10], lanes=3, chunk=2, split=True)
    >>> [(p.start, p.length, p.lane) for p in plan.placements], plan.chunks
    ([(0, 4, 0), (4, 4, 1), (8, 2, 2)], 2)
    """
    lanes = positive_int(lanes, "lanes")
    chunk = positive_int(chunk, "chunk")
    if not isinstance(split, bool):
        raise ConfigError(describe("split", "True or False", repr(split), problem="is invalid."))
    sizes = tuple(int(length) for length in lengths)
    if not sizes or min(sizes) < 1:
        raise ShapeError(
            describe(
                "lengths",
                "at least one sequence, each of at least one step",
                f"{list(sizes[:10])}",
                problem="are invalid.",
            )
        )
    _refuse_padding(lanes, 1, chunk, sizes)  # at least one chunk: before lanes are laid out
    if split:
        pieces = _split_pieces(sizes, lanes, chunk)
    else:
        pieces = [(index, 0, length) for index, length in enumerate(sizes)]
    placements, chunks = _assign(pieces, lanes, chunk)
    return LanePlan(
        lengths=sizes, placements=tuple(placements), lanes=lanes, chunks=chunks, chunk=chunk
    )


_PADDED_SLOTS = 1 << 32
_PADDING_RATIO = 64
"""A layout of more than :data:`_PADDED_SLOTS` time slots (tens of GB) and over this many
times its real steps is refused: it is padding (a chunk or a lane count far past the data),
and would ask for memory that only fails late (14.6 TiB for chunk=10**12). Large padded
layouts short of that stay legal: a classifier's chunk is its longest sequence, and
thousands of short ones beside it pad each to it."""


def _refuse_padding(lanes: int, chunks: int, chunk: int, lengths: Sequence[int]) -> None:
    """Refuse a layout that would be mostly padding and large (see :data:`_PADDED_SLOTS`)."""
    slots, steps = chunks * lanes * chunk, sum(lengths)
    if slots > _PADDED_SLOTS and slots > _PADDING_RATIO * steps:
        raise ConfigError(
            describe(
                "chunk" if chunk > max(lengths) else "lanes",
                f"a layout mostly of data (at most {_PADDING_RATIO}x its {steps:,} steps)",
                f"{slots:,} slots ({lanes:,} lanes x {chunks:,} chunks of {chunk:,} steps)",
                problem="would make a layout of padding.",
                fix="Use a chunk no longer than the longest sequence, and fewer lanes than steps.",
            )
        )


def _pack(
    plan: LanePlan,
    arrays: dict[int, NDArray[Any]],
    target_arrays: dict[int, NDArray[Any]] | None,
    pad_value: float,
) -> LaneLayout:
    lanes, chunks, chunk = plan.lanes, plan.chunks, plan.chunk
    if isinstance(pad_value, bool) or not isinstance(pad_value, numbers.Real):
        raise ConfigError(describe("pad_value", "a number", repr(pad_value), problem="is invalid."))
    _refuse_padding(lanes, chunks, chunk, plan.lengths)
    placements = list(plan.placements)
    x = _fill(arrays, placements, lanes, chunks, chunk, pad_value)
    y = None if target_arrays is None else _fill(target_arrays, placements, lanes, chunks, chunk, 0)
    mask = np.zeros((chunks, lanes, chunk), dtype=bool)
    reset = np.zeros((chunks, lanes), dtype=bool)
    for placement in placements:
        _place(mask, np.True_, placement, chunk)
        reset[placement.first_chunk, placement.lane] = True
    return LaneLayout(
        x=x, y=y, mask=mask, reset=reset, placements=plan.placements, lengths=plan.lengths
    )


def sequence_list(sequences: ArrayLike | Sequence[ArrayLike], argument: str) -> list[NDArray[Any]]:
    if isinstance(sequences, (list, tuple)):
        if len(sequences) == 0:
            raise ShapeError(
                describe(argument, "at least one sequence", "an empty list", problem="is empty.")
            )
        arrays = [as_array(item, f"{argument}[{index}]") for index, item in enumerate(sequences)]
    else:
        whole = as_array(sequences, argument)
        require_ndim(
            whole,
            argument,
            (2, 3),
            "a (length, features) array, a (count, length, features) array "
            "or a list of (length_i, features) arrays",
            fix="For one feature use values[:, None].",
        )
        arrays = [whole] if whole.ndim == 2 else list(whole)
    for index, array in enumerate(arrays):
        name = f"{argument}[{index}]"
        require_ndim(
            array,
            name,
            (2,),
            "a 2-D array (length, features)",
            fix="For one feature use values[:, None].",
        )
        require_nonempty(array, name)
        require_finite(array, name)
    return arrays


def _target_list(
    targets: ArrayLike | Sequence[ArrayLike], arrays: list[NDArray[Any]]
) -> list[NDArray[Any]]:
    if isinstance(targets, (list, tuple)):
        items = [as_array(item, f"targets[{index}]") for index, item in enumerate(targets)]
    else:
        whole = as_array(targets, "targets")
        if len(arrays) == 1 and (whole.ndim < 2 or len(whole) != 1 or len(arrays[0]) == 1):
            items = [whole]  # one sequence, one target array; its length is checked below
        else:
            items = list(whole)
    if len(items) != len(arrays):
        raise ShapeError(
            describe(
                "targets",
                f"one target array per sequence: {len(arrays)}",
                f"{len(items)} target arrays",
                problem="has the wrong shape.",
            )
        )
    trailing = items[0].shape[1:]
    for index, (item, array) in enumerate(zip(items, arrays, strict=True)):
        name = f"targets[{index}]"
        if item.ndim == 0 or len(item) != len(array):
            raise ShapeError(
                describe(
                    name,
                    f"one target per time step of sequences[{index}]: length {len(array)}",
                    f"shape {item.shape}",
                    problem="has the wrong shape.",
                )
            )
        if item.shape[1:] != trailing:
            raise ShapeError(
                describe(
                    name,
                    f"per-step shape {trailing}, like targets[0]",
                    f"per-step shape {item.shape[1:]}",
                    problem="has the wrong shape.",
                )
            )
        require_finite(item, name)
    return items


def _split_pieces(lengths: tuple[int, ...], lanes: int, chunk: int) -> list[tuple[int, int, int]]:
    """Cut sequences into contiguous segments of about one lane's share of all steps.

    Equal segments of ``ceil(total / lanes)`` steps are used when they fit one
    per lane (all lanes then end together); otherwise segments are rounded up to
    whole chunks, so that a lane holding several segments has no inner padding.
    """
    per_lane = -(-sum(lengths) // lanes)
    equal = _cut(lengths, per_lane)
    if len(equal) <= lanes:
        return equal
    return _cut(lengths, -(-per_lane // chunk) * chunk)


def _cut(lengths: tuple[int, ...], segment: int) -> list[tuple[int, int, int]]:
    return [
        (index, start, min(segment, length - start))
        for index, length in enumerate(lengths)
        for start in range(0, length, segment)
    ]


def _assign(
    pieces: list[tuple[int, int, int]], lanes: int, chunk: int
) -> tuple[list[Placement], int]:
    """Longest-first assignment of pieces to the lane that is shortest so far."""
    order = sorted(range(len(pieces)), key=lambda i: (-pieces[i][2], i))
    heap = [(0, lane) for lane in range(lanes)]
    placements: list[Placement] = []
    for position in order:
        sequence, start, length = pieces[position]
        used, lane = heapq.heappop(heap)
        placements.append(
            Placement(sequence=sequence, start=start, length=length, lane=lane, first_chunk=used)
        )
        heapq.heappush(heap, (used + -(-length // chunk), lane))
    return placements, max(used for used, _ in heap)


def _fill(
    arrays: dict[int, NDArray[Any]],
    placements: list[Placement],
    lanes: int,
    chunks: int,
    chunk: int,
    pad_value: float,
) -> NDArray[Any]:
    """``(chunks, lanes, chunk, ...)``, written in place: no lane-major copy to transpose."""
    values = list(arrays.values())
    dtype = np.result_type(*values)
    out = np.full((chunks, lanes, chunk, *values[0].shape[1:]), pad_value, dtype=dtype)
    for placement in placements:
        source = arrays[placement.sequence][placement.start : placement.start + placement.length]
        _place(out, source, placement, chunk)
    return out


def _place(out: NDArray[Any], source: Any, placement: Placement, chunk: int) -> None:
    """Write a piece's steps (or one value for all of them) at its place: whole chunks at
    once, then the rest of the last one."""
    whole, rest = divmod(placement.length, chunk)
    first, lane = placement.first_chunk, placement.lane
    each = np.ndim(source) > 0
    if whole:
        steps = source[: whole * chunk] if each else source
        shaped = steps.reshape(whole, chunk, *steps.shape[1:]) if each else steps
        out[first : first + whole, lane] = shaped
    if rest:
        out[first + whole, lane, :rest] = source[whole * chunk :] if each else source


def _lane_timeline(stacked: NDArray[Any]) -> NDArray[Any]:
    chunks, lanes, chunk = stacked.shape[:3]
    return np.swapaxes(stacked, 0, 1).reshape(lanes, chunks * chunk, *stacked.shape[3:])
