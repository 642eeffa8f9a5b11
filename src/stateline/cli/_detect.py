"""``stateline detect``: per-step anomaly scores and flags for a table, with a plot and summary."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from rich.console import Console

from .._errors import ConfigError, DataError, describe
from ..anomaly import (
    DetectorConfig,
    ForecastDetector,
    flag_report,
    ranges,
    standardise,
)
from ..data import calendar_features, calendar_periods, load_table, time_disorder

MIN_REFERENCE = 10
"""The fewest reference steps a stream is calibrated on."""


def run_detect(args: argparse.Namespace) -> Path:
    """Run detection as ``args`` say; returns the output folder."""
    console = Console()
    table = _table(args)
    disorder = _time_disorder(args, table, console)
    references = [
        _reference(args, key, len(values))
        for key, values in zip(table.groups, table.features, strict=True)
    ]
    calendar = _calendar_periods(args, table, references)
    covariates = (
        None if not calendar else [calendar_features(times, calendar) for times in table.times]
    )
    # Every stream passes its own reference, so its warmup is min(50, reference // 8) whatever
    # the other streams are; the config's own reference only has to admit that warmup.
    longest = max(references)
    config = DetectorConfig(
        predictor=args.predictor,
        threshold=args.threshold,
        hidden=args.hidden,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        reference=longest,
        warmup=50 if longest > 51 else longest // 8,
        alarm=args.alarm,
        progress=True,
    )
    detector = ForecastDetector(config).fit(
        [v[:r] for v, r in zip(table.features, references, strict=True)],
        covariates=None
        if covariates is None
        else [c[:r] for c, r in zip(covariates, references, strict=True)],
    )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    frames, detections = [], []
    for index, (key, values) in enumerate(zip(table.groups, table.features, strict=True)):
        detection = detector.detect(
            values,
            covariates=None if covariates is None else covariates[index],
            reference=references[index],
        )
        detections.append(detection)
        frame = pd.DataFrame(
            {
                "step": np.arange(len(values)),
                "score": detection.scores,
                "anomaly_score": detection.anomaly_scores,
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
    _plot(table, detections, output / "detect.png", references, args.threshold)
    summary = _summary(args, table, detections, references, calendar, disorder)
    (output / "summary.md").write_text(summary)
    console.print(summary)
    return output


def _reference(args: argparse.Namespace, key: Any, steps: int) -> int:
    """Leading normal steps of one stream: ``--reference`` N, or P% of its steps (NAB: 15%)."""
    text = str(args.reference).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100.0
            if not 0.0 < share < 1.0:
                raise ValueError(text)
            reference = math.floor(share * steps)
        else:
            reference = int(text)
            if reference < 1:
                raise ValueError(text)
    except ValueError:
        raise ConfigError(
            describe(
                "--reference",
                "a number of steps >= 1 (400) or a share of each stream in (0, 100) % (15%)",
                repr(text),
                problem="is invalid.",
            )
        ) from None
    if not text.endswith("%") and reference < MIN_REFERENCE:
        raise ConfigError(
            describe(
                "--reference",
                f"at least {MIN_REFERENCE} steps to calibrate on",
                repr(text),
                problem="is too small.",
            )
        )
    if args.max_reference is not None:
        if args.max_reference < MIN_REFERENCE:
            raise ConfigError(
                describe(
                    "--max-reference",
                    f"at least {MIN_REFERENCE} steps",
                    repr(args.max_reference),
                    problem="is too small.",
                )
            )
        reference = min(reference, args.max_reference)
    if reference < MIN_REFERENCE or steps <= reference:
        raise DataError(
            describe(
                f"stream {key!r}",
                f"at least {MIN_REFERENCE} reference steps and more steps than that "
                f"(--reference {text})",
                f"{steps} steps, {reference} of them reference",
                problem="is too short.",
                fix="Change --reference, or pass a longer series.",
            )
        )
    return reference


def _time_disorder(args: argparse.Namespace, table: Any, console: Console) -> dict[Any, int]:
    """Repeated or backward time stamps per stream; a warning for each stream that has some."""
    if table.times is None:
        return {}
    for key, times in zip(table.groups, table.times, strict=True):
        missing = np.flatnonzero(pd.isna(times))
        if len(missing):
            where = f" in stream {key!r}" if args.group else ""
            raise DataError(
                describe(
                    f"column {args.time!r}",
                    f"a time stamp on every row{where}",
                    f"{len(missing)} missing, the first at row {int(missing[0])} of the stream",
                    problem="has gaps.",
                    fix="Fill or drop the rows without a time stamp, or leave out --time.",
                )
            )
    counts = {
        key: time_disorder(times) for key, times in zip(table.groups, table.times, strict=True)
    }
    for key, count in counts.items():
        if count:
            where = f" in stream {key!r}" if args.group else ""
            console.print(
                f"[yellow]warning:[/] {count} time stamp(s){where} repeat or step back; "
                "rows are taken in file order."
            )
    return counts


def _calendar_periods(
    args: argparse.Namespace, table: Any, references: list[int]
) -> tuple[str, ...]:
    """Calendar inputs; ``auto``: the cycles every stream's reference part covers twice."""
    choice = args.calendar
    if choice == "none" or args.predictor != "lstm":
        return ()
    numeric = table.times is None or any(
        np.asarray(times).dtype.kind in "biufc" for times in table.times
    )
    if numeric and choice != "auto":
        raise ConfigError(
            describe(
                "--calendar",
                "a --time column of dates and times",
                "no --time column" if table.times is None else "a time column of numbers",
                problem="needs time stamps.",
                fix="Pass --time naming a date/time column, or --calendar none.",
            )
        )
    if numeric:
        return ()
    if choice != "auto":
        return tuple(choice.split("+"))
    covered = [
        set(calendar_periods(times[:reference]))
        for times, reference in zip(table.times, references, strict=True)
    ]
    common = set.intersection(*covered)
    return tuple(name for name in ("day", "week") if name in common)


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
    features = args.features or _numeric_columns(frame, args)
    return load_table(
        frame,
        time=args.time,
        features=features,
        targets=args.label,
        group=args.group,
        time_order="file",
    )


def _numeric_columns(frame: pd.DataFrame, args: argparse.Namespace) -> list[str]:
    """The sensors when --features is left out: every numeric column but the time, group and
    label; the text ones are named on the way (a decimal comma makes numbers text)."""
    reserved = {args.time, args.group, args.label} - {None}
    rest = [str(column) for column in frame.columns if column not in reserved]
    numeric = [name for name in rest if pd.api.types.is_numeric_dtype(frame[name])]
    text = [name for name in rest if name not in numeric]
    if not numeric:
        raise DataError(
            describe(
                "--features",
                "numeric sensor columns",
                f"only text columns {text}",
                problem="cannot be chosen: no column holds numbers.",
                fix="Name them with --features; numbers written with a decimal comma read as "
                "text (convert them, e.g. pandas.read_csv(..., decimal=','), and save again).",
            )
        )
    if text:
        print(f"not sensors (text, left out): {text}; --features chooses, --ignore drops")
    return numeric


def _plot(
    table: Any, detections: list[Any], path: Path, references: list[int], threshold: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = min(len(detections), 4)
    figure, axes = plt.subplots(2 * shown, 1, figsize=(12, 4.5 * shown), squeeze=False)
    for row in range(shown):
        values, detection = table.features[row], detections[row]
        reference = references[row]
        steps = np.arange(len(values))
        top, bottom = axes[2 * row, 0], axes[2 * row + 1, 0]
        top.plot(steps, standardise(values, values[:reference]), linewidth=0.7)
        top.set_title(f"{table.groups[row]}: sensors (standardised by the normal part)")
        likelihood = threshold == "likelihood"
        shown_scores = detection.anomaly_scores if likelihood else detection.scores
        label = "anomaly score" if likelihood else "score"
        bottom.plot(steps, shown_scores, color="black", linewidth=0.8, label=label)
        if np.isfinite(detection.level):
            bottom.axhline(detection.level, color="red", linestyle="--", label="threshold")
        for axis in (top, bottom):
            axis.axvspan(0, reference, color="green", alpha=0.08)
            for start, end in ranges(detection.flags).tolist():
                axis.axvspan(start, end, color="red", alpha=0.2)
            if table.targets is not None:
                for start, end in ranges(table.targets[row] > 0.5).tolist():
                    axis.axvspan(start, end, ymin=0.0, ymax=0.05, color="blue", alpha=0.6)
        if not likelihood:
            bottom.set_yscale("symlog")
        bottom.legend(loc="upper left")
        bottom.set_title(
            f"{label}; red: flagged, blue bar: labelled, green: normal part (reference)"
        )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _summary(
    args: argparse.Namespace,
    table: Any,
    detections: list[Any],
    references: list[int],
    calendar: tuple[str, ...],
    disorder: dict[Any, int],
) -> str:
    inputs = f"time of {' and '.join(calendar)} as inputs" if calendar else "no calendar inputs"
    lines = [
        f"# Anomaly detection: {args.path}",
        "",
        f"Predictor `{args.predictor}` ({inputs}), threshold `{args.threshold}`, calibrated on "
        f"the first `--reference {args.reference}` steps of each stream (assumed normal). "
        "`anomaly_score` (in [0, 1], empty over the reference part) is the anomaly "
        "likelihood, which keeps adapting to each stream. Files: `scores.csv`, `detect.png`.",
        "",
        "| stream | steps | reference steps | out-of-order time stamps | flagged steps | "
        "flagged ranges | threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, detection, reference in zip(table.groups, detections, references, strict=True):
        lines.append(
            f"| {key} | {len(detection.flags)} | {reference} | {disorder.get(key, 0)} | "
            f"{int(detection.flags.sum())} | {len(ranges(detection.flags))} | "
            f"{detection.level:.4g} |"
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
            "| mean detection delay | "
            + (f"{np.mean(found):.1f} steps |" if found else "none found (no delay to give) |"),
        ]
        if not report.delays:
            lines += ["", f"No step is labelled anomalous in `{args.label}`: F1 and recall are 0 "
                      "by definition, the false-alarm rate is what there is to read."]  # fmt: skip
        inside = sum(int(t[:r].sum()) for t, r in zip(labels, references, strict=True))
        if inside:
            lines += ["", f"{inside} labelled step(s) lie in the reference parts, which are "
                      "assumed normal and never flagged: they count as missed here (a shorter "
                      "--reference scores them)."]  # fmt: skip
    return "\n".join(lines) + "\n"
