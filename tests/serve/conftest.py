"""A small trained model on real data, and real servers: in a thread, or as a process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stateline.anomaly import DetectorConfig
from stateline.cli import main
from stateline.data import hourly_temperatures
from stateline.serve import ServeConfig

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFERENCE, WARMUP = 60, 10
STEPS = 400
SCRIPT = shutil.which("stateline", path=str(Path(sys.executable).parent))


@pytest.fixture(scope="session")
def temperatures_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first STEPS hours of both bundled real temperature sensors."""
    frame = hourly_temperatures().groupby("city").head(STEPS)
    path = tmp_path_factory.mktemp("data") / "temps.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def model_dir(temperatures_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "model"
    code = main(
        [
            "train", str(temperatures_csv), "--time", "time", "--group", "city",
            "--target", "temp", "--hidden", "8", "--epochs", "3", "--chunk", "24",
            "--no-progress", "--output", str(folder),
        ]
    )  # fmt: skip
    assert code == 0
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_config(model_dir: Path, state: Path, **kwargs: object) -> ServeConfig:
    return ServeConfig(
        model=str(model_dir),
        token=TOKEN,
        snapshot_dir=str(state),
        detector=DetectorConfig(reference=REFERENCE, warmup=WARMUP),
        **kwargs,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def serving(app: object) -> Iterator[str]:
    """``app`` on a real uvicorn server on loopback, in a thread of this process; its URL."""
    import uvicorn

    port = free_port()
    instance = uvicorn.Server(
        uvicorn.Config(app, port=port, log_level="warning", ws_max_size=20_000)  # as serve does
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        instance.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(model_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A real uvicorn server on loopback, in a thread of this process; yields its URL."""
    from stateline.serve._app import create_app

    app = create_app(serve_config(model_dir, tmp_path / "state", max_body_bytes=20_000))
    with serving(app) as url:
        yield url


class ServerProcess:
    """``stateline serve`` as a child process, as users run it."""

    def __init__(
        self, model_dir: Path, state: Path, port: int, interval: float, extra: tuple[str, ...] = ()
    ) -> None:
        assert SCRIPT is not None, "the stateline console script is not installed"
        self.url = f"http://127.0.0.1:{port}"
        self.log = state.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    SCRIPT, "serve", "--model", str(model_dir), "--port", str(port),
                    "--snapshot-dir", str(state), "--snapshot-interval", str(interval),
                    "--reference", str(REFERENCE), "--warmup", str(WARMUP), *extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "STATELINE_TOKEN": TOKEN},
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{self.log.read_text()}")
            time.sleep(0.2)

    def kill_hard(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
