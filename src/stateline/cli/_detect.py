"""``stateline detect``: per-step anomaly scores and flags for a table, with a plot and summary."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rich.console import Console

from .._errors import DataError, describe
from ..anomaly import (
    DetectorConfig,
    ForecastDetector,
    flag_report,
    ranges,
    standardise,
)
from ..data import load_table


def run_detect(args: argparse.Namespace) -> Path:
    """Run detection as ``args`` say; returns the output folder."""
    table = _table(args)
    warmup = min(50, max(0, args.reference // 8))
    config = DetectorConfig(
        predictor=args.predictor,
        threshold=args.threshold,
        hidden=args.hidden,
        epochs=args.epochs,
        seed=args.seed,
        reference=args.reference,
        warmup=warmup,
        progress=True,
    )
    for key, values in zip(table.groups, table.features, strict=True):
        if len(values) <= args.reference:
            raise DataError(
                describe(
                    f"stream {key!r}",
                    f"more than --reference {args.reference} steps",
                    f"{len(values)} steps",
                    problem="is too short.",
                    fix="Lower --reference or pass a longer series.",
                )
            )
    detector = ForecastDetector(config).fit([v[: args.reference] for v in table.features])
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    frames, detections = [], []
    for index, (key, values) in enumerate(zip(table.groups, table.features, strict=True)):
        detection = detector.detect(values)
        detections.append(detection)
        frame = pd.DataFrame(
            {
                "step": np.arange(len(values)),
                "score": detection.scores,
                "threshold": detection.level,
                "flag": detection.flags.astype(int),
            }
        )
        if table.times is not None:
            frame.insert(0, args.time, table.times[index])
        if args.group:
            frame.insert(0, args.group, key)
        if table.targets is not None:
            frame["label"] = table.targets[index].astype(int)
        frames.append(frame)
    pd.concat(frames).to_csv(output / "scores.csv", index=False)
    _plot(table, detections, output / "detect.png", args.reference)
    summary = _summary(args, table, detections)
    (output / "summary.md").write_text(summary)
    Console().print(summary)
    return output


def _table(args: argparse.Namespace) -> Any:
    path = Path(args.path)
    if not path.is_file():
        raise DataError(
            describe(
                "path", "an existing .csv or .parquet file", str(path), problem="does not exist."
            )
        )
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, sep=args.sep)
    dropped = [c for c in args.ignore if c in frame.columns]
    unknown = [c for c in args.ignore if c not in frame.columns]
    if unknown:
        raise DataError(
            describe(
                "--ignore",
                f"columns of the table: {list(frame.columns)}",
                str(unknown),
                problem="names unknown columns.",
            )
        )
    frame = frame.drop(columns=dropped)
    return load_table(
        frame, time=args.time, features=args.features, targets=args.label, group=args.group
    )


def _plot(table: Any, detections: list[Any], path: Path, reference: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = min(len(detections), 4)
    figure, axes = plt.subplots(2 * shown, 1, figsize=(12, 4.5 * shown), squeeze=False)
    for row in range(shown):
        values, detection = table.features[row], detections[row]
        steps = np.arange(len(values))
        top, bottom = axes[2 * row, 0], axes[2 * row + 1, 0]
        top.plot(steps, standardise(values, values[:reference]), linewidth=0.7)
        top.set_title(f"{table.groups[row]}: sensors (standardised by the normal part)")
        bottom.plot(steps, detection.scores, color="black", linewidth=0.8, label="score")
        if np.isfinite(detection.level):
            bottom.axhline(detection.level, color="red", linestyle="--", label="threshold")
        for axis in (top, bottom):
            axis.axvspan(0, reference, color="green", alpha=0.08)
            for start, end in ranges(detection.flags).tolist():
                axis.axvspan(start, end, color="red", alpha=0.2)
            if table.targets is not None:
                for start, end in ranges(table.targets[row] > 0.5).tolist():
                    axis.axvspan(start, end, ymin=0.0, ymax=0.05, color="blue", alpha=0.6)
        bottom.set_yscale("symlog")
        bottom.legend(loc="upper left")
        bottom.set_title("anomaly score; red: flagged, blue bar: labelled, green: normal part")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _summary(args: argparse.Namespace, table: Any, detections: list[Any]) -> str:
    lines = [
        f"# Anomaly detection: {args.path}",
        "",
        f"Predictor `{args.predictor}`, threshold `{args.threshold}`, calibrated on the first "
        f"{args.reference} steps of each stream (assumed normal). Files: `scores.csv`, "
        "`detect.png`.",
        "",
        "| stream | steps | flagged steps | flagged ranges | threshold |",
        "|---|---|---|---|---|",
    ]
    for key, detection in zip(table.groups, detections, strict=True):
        lines.append(
            f"| {key} | {len(detection.flags)} | {int(detection.flags.sum())} | "
            f"{len(ranges(detection.flags))} | {detection.level:.4g} |"
        )
    if table.targets is not None:
        labels: list[NDArray[np.bool_]] = [t > 0.5 for t in table.targets]
        report = flag_report(labels, [d.flags for d in detections], nab_on="onsets")
        found = [d for d in report.delays if d is not None]
        lines += [
            "",
            f"## Against the labels in `{args.label}`",
            "",
            "| metric | value |",
            "|---|---|",
            f"| F1 (point-wise) | {report.binary.f1:.3f} |",
            f"| false-alarm rate | {report.binary.false_alarm_rate:.2f} % |",
            f"| missed-alarm rate | {report.binary.missed_alarm_rate:.2f} % |",
            f"| point-adjusted F1 | {report.point_adjusted_f1:.3f} |",
            f"| range precision / recall | {report.range_precision:.3f} / "
            f"{report.range_recall:.3f} |",
            f"| NAB (standard; flagged-range onsets vs labelled ranges) | "
            f"{report.nab.normalised:.2f} |",
            f"| labelled ranges found | {len(found)} of {len(report.delays)} |",
            f"| mean detection delay | {np.mean(found) if found else float('nan'):.1f} steps |",
        ]
    return "\n".join(lines) + "\n"
