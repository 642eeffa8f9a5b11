"""``stateline lanes``: how a table packs into stateful lanes."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ..data import load_table


def run_lanes(args: argparse.Namespace) -> None:
    """Load the table named by ``args`` and print its lane layout."""
    table = load_table(
        args.path,
        time=args.time,
        features=args.features,
        targets=None if args.targets is None else list(args.targets),
        group=args.group,
        sep=args.sep,
    )
    layout = table.pack(lanes=args.lanes, chunk=args.chunk, split=args.split)
    report = Table(title=f"{args.path}: {len(table)} sequence(s)")
    report.add_column("quantity")
    report.add_column("value", justify="right")
    for name, value in (
        ("features", ", ".join(table.feature_names)),
        ("targets", ", ".join(table.target_names) or "-"),
        ("shortest / longest sequence", f"{min(table.lengths)} / {max(table.lengths)}"),
        ("real time steps", f"{layout.steps:,}"),
        ("lanes x chunk", f"{layout.lanes} x {layout.chunk}"),
        ("chunks (batches per epoch)", f"{len(layout):,}"),
        ("slots incl. padding", f"{layout.slots:,}"),
        ("efficiency", f"{layout.efficiency:.1%}"),
    ):
        report.add_row(name, value)
    Console().print(report)
