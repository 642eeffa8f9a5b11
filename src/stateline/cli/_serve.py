"""``stateline serve``: the streaming service over HTTP, from a model directory."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .._errors import ConfigError, StatelineError, describe
from ._config_flags import add_config_flags, config_from_args

TOKEN_VARIABLE = "STATELINE_TOKEN"
_DETECTOR_FIELDS = (
    "smoothing",
    "combine",
    "threshold",
    "quantile",
    "margin",
    "k",
    "reference",
    "warmup",
    "short",
    "long",
    "range_tolerance",
    "range_base",
    "quiet",
    "alarm",
    "cap",
)

_EPILOG = f"""examples:
  stateline serve --model model --token s3cret
  {TOKEN_VARIABLE}=s3cret stateline serve --model model --port 8080 --snapshot-interval 5
  stateline serve --model model --reference 100 --threshold gaussian
  stateline serve --model model --threshold likelihood --alarm 0.9
  stateline serve --model model --online --online-update-every 500 --online-cpu-share 0.2

The dashboard is at http://HOST:PORT/, the API schema at /docs and /openapi.json.
Every write needs 'Authorization: Bearer TOKEN'. Without --token or {TOKEN_VARIABLE}
a token is made up and printed.
"""


def serve_parser() -> argparse.ArgumentParser:
    from ..serve import ServeConfig

    parser = argparse.ArgumentParser(
        prog="stateline serve",
        description="Serve a saved forecaster: forecasts, anomaly scores and flags for live "
        "streams over HTTP and WebSocket, with a live dashboard, Prometheus metrics and "
        "snapshots of every stream's state.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_flags(parser, ServeConfig, skip=("detector", "online"))
    add_model_flags(parser, online="keep the model learning from its streams")
    return parser


def add_model_flags(parser: argparse.ArgumentParser, *, online: str) -> None:
    """The detector's flags and ``--online`` with its ``--online-*`` flags (serve, worker)."""
    from ..anomaly import DetectorConfig
    from ..online import OnlineConfig

    skip = tuple(f.name for f in fields(DetectorConfig) if f.name not in _DETECTOR_FIELDS)
    add_config_flags(parser, DetectorConfig, skip=skip, defaults={"reference": 200})
    parser.add_argument(
        "--online", action="store_true", help=f"{online} (the --online-* flags tune it)"
    )
    add_config_flags(parser, OnlineConfig, prefix="online-")


def model_configs(args: argparse.Namespace) -> tuple[Any, Any]:
    """``(DetectorConfig, OnlineConfig or None)`` from :func:`add_model_flags`' flags."""
    from ..anomaly import DetectorConfig
    from ..online import OnlineConfig

    detector = config_from_args(DetectorConfig, args)
    online = config_from_args(OnlineConfig, args, prefix="online_") if args.online else None
    return detector, online


def require_writable(folder: Path, flag: str) -> None:
    """Refuse to start when ``folder`` (made if missing) takes no file: the first snapshot
    would fail one interval later, with the streams already accepted."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(
            describe(
                flag,
                "a folder this process can write snapshots into",
                f"{folder}: {error.strerror or error}",
                problem="is not writable.",
                fix=f"Point {flag} at a writable folder, or give this user write access.",
            )
        ) from error


def limit_threads(count: int) -> int:
    """Give PyTorch and the BLAS libraries ``count`` threads in this (server) process.

    By default both start one thread per core, which next to the server's
    event loop, its worker threads and local clients oversubscribes a small
    machine (on 2 cores, batch throughput fell about 4x).
    """
    import torch

    torch.set_num_threads(count)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - numpy's BLAS then keeps its default
        return count
    threadpool_limits(count)
    return count


def run_serve(argv: Sequence[str]) -> None:
    try:
        import uvicorn
    except ImportError as error:  # pragma: no cover - the serve extra is part of dev
        raise StatelineError(
            "stateline serve needs FastAPI and uvicorn.\n  Fix: pip install 'stateline[serve]'"
        ) from error
    from ..serve import ServeConfig, StreamService
    from ..serve._app import create_app

    args = serve_parser().parse_args(list(argv))
    args.token = args.token or os.environ.get(TOKEN_VARIABLE)
    if not args.token:
        args.token = secrets.token_urlsafe(16)
        print(f"no --token or {TOKEN_VARIABLE} given; this run's token: {args.token}")
    detector, online = model_configs(args)
    config = config_from_args(ServeConfig, args, detector=detector, online=online)
    threads = limit_threads(config.compute_threads)
    require_writable(config.state_dir, "--snapshot-dir")
    # Loaded before anything listens: a model, snapshot or setting that cannot be served is
    # then a plain error (exit 2), not a traceback from the server's start-up.
    app = create_app(config, service=StreamService(config))
    print(
        f"stateline serving {config.model} on http://{config.host}:{config.port}/ "
        f"({threads} compute thread(s))",
        flush=True,
    )
    # uvicorn re-raises the SIGTERM/SIGINT it shut down on once it is done; catch that here
    # so the final snapshot's outcome decides the exit code (0, or 1 when it failed).
    stopped: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, frame: stopped.append(number))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        uvicorn.run(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            # Access lines are below the log level; with the access log on, uvicorn still
            # formats each request's client address and path before the logger drops them.
            access_log=False,
            ws_max_size=config.max_body_bytes,  # WebSocket messages: the same limit, as read
            # Compressing Arrow frames and JSON answers costs more CPU than loopback or a LAN
            # saves (6.1 vs 4.3 ms per 1,024-row frame measured); clients may not ask for it.
            ws_per_message_deflate=False,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.stdout.flush()
    failed = getattr(app.state, "final_snapshot_error", None)
    if failed:
        raise StatelineError(
            f"the final snapshot to {config.state_dir} could not be written ({failed}); "
            "the state since the last snapshot is lost.\n"
            "  Fix: make the snapshot directory writable (--snapshot-dir)."
        )
