"""Distributed training throughput: series-steps/s of `fit` in 1 and 2 processes, and the
all-reduce's share.

The workload: a year of hourly temperatures of Seattle and San Francisco (real, NOAA, bundled
in vega_datasets), both series cut into ``--lanes`` lanes of ``--chunk`` steps (``split``),
one-step-ahead targets, a 64-unit LSTM, ``--epochs`` epochs. Each process count runs under
``torch.distributed.run`` (gloo on loopback, one thread per process); rank 0 reports the
epochs' series-steps/s (of all the lanes: the same work at every process count), and then
times the all-reduce of one chunk's gradients (one flat buffer the size of the model) alone,
so its share of an epoch can be read.

Run: .venv/bin/python bench/train_ranks.py [--processes 1 2] [--epochs 10]
(bench/train.py runs it after its own tables.)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table


def rank_main(args: argparse.Namespace) -> None:
    """One process of a run (under torchrun): train, then time the gradients' all-reduce."""
    import torch.distributed as dist

    from stateline.data import Scaler, hourly_temperatures, pack_lanes
    from stateline.nn import ModelConfig, SequenceModel
    from stateline.train import TrainConfig, fit

    torch.set_num_threads(1)
    frame = hourly_temperatures()
    series = [group["temp"].to_numpy()[:, None] for _, group in frame.groupby("city")]
    scaler = Scaler().fit(series)
    scaled = [scaler.transform(s).astype(np.float32) for s in series]
    layout = pack_lanes(
        [s[:-1] for s in scaled],
        lanes=args.lanes,
        chunk=args.chunk,
        targets=[s[1:] for s in scaled],
        split=True,
    )
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(inputs=1, hidden=64))
    config = TrainConfig(epochs=args.epochs, progress=False, seed=0, learning_rate=3e-3)
    history = fit(model, layout, config=config)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    reduce_seconds = 0.0
    if world > 1:
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        for _ in range(10):
            dist.all_reduce(flat)
        dist.barrier()
        started = time.perf_counter()
        for _ in range(200):
            dist.all_reduce(flat)
        reduce_seconds = (time.perf_counter() - started) / 200
    if rank == 0:
        rates = [record.steps_per_second for record in history.epochs[1:]]  # after the first
        result = {
            "processes": world,
            "steps_per_second": float(np.median(rates)),
            "chunks": len(layout),
            "epoch_seconds": float(np.median([r.seconds for r in history.epochs[1:]])),
            "reduce_seconds": reduce_seconds,
            "parameters": sum(p.numel() for p in model.parameters()),
            "loss": history.epochs[-1].train_loss,
        }
        Path(args.result).write_text(json.dumps(result))


def run(processes: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    result = folder / f"ranks-{processes}.json"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
        "--master_addr", "127.0.0.1", "--master_port", str(port), __file__, "--rank-worker",
        "--result", str(result), "--epochs", str(args.epochs), "--lanes", str(args.lanes),
        "--chunk", str(args.chunk),
    ]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{processes} process(es) failed:\n{done.stderr[-4000:]}")
    loaded: dict[str, float] = json.loads(result.read_text())
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="the first is not timed")
    parser.add_argument("--lanes", type=int, default=128)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--rank-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank_worker:
        rank_main(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="stateline-train-ranks-"))
    rows = [run(count, args, folder) for count in args.processes]
    table = Table(
        title=f"fit over processes: hourly temperatures, {args.lanes} lanes x {args.chunk} steps, "
        f"64-unit LSTM, gloo on loopback, 1 thread per process, {os.cpu_count()} cores"
    )
    columns = ("processes", "series steps/s", "vs 1 process", "s per epoch",
               "all-reduce per chunk, ms", "all-reduce share of an epoch", "last loss")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    base = rows[0]["steps_per_second"]
    for row in rows:
        share = row["reduce_seconds"] * row["chunks"] / row["epoch_seconds"]
        table.add_row(
            str(int(row["processes"])),
            f"{row['steps_per_second']:,.0f}",
            f"{row['steps_per_second'] / base:.2f}x",
            f"{row['epoch_seconds']:.2f}",
            f"{row['reduce_seconds'] * 1e3:.3f}" if row["processes"] > 1 else "",
            f"{share:.0%}" if row["processes"] > 1 else "",
            f"{row['loss']:.5f}",
        )
    console = Console(width=160)
    console.print(table)
    console.print(
        f"{int(rows[0]['parameters']):,} parameters summed per chunk; series steps/s count the "
        "steps of all the lanes (the same work at every process count); medians over the "
        "epochs after the first"
    )


if __name__ == "__main__":
    main()
