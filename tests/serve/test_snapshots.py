"""#15, finding 2: a snapshot that fails is retried, logged and visible; a final one that fails
makes `stateline serve` exit non-zero."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from stateline.serve import Event, StreamService
from stateline.serve._app import _snapshots

from .conftest import REFERENCE, SCRIPT, TOKEN, WARMUP, free_port, serve_config


def run_loop(service: StreamService, seconds: float, interval: float) -> None:
    async def main() -> None:
        task = asyncio.create_task(_snapshots(service, interval))
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_failed_snapshots_are_retried_logged_and_visible(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder's parent should be")
    service = StreamService(serve_config(model_dir, blocker / "state"))
    service.step([Event("a", [[50.0]], 0)])
    assert service.health()["status"] == "ok"
    with caplog.at_level(logging.ERROR, logger="stateline.serve"):
        run_loop(service, seconds=1.2, interval=0.05)
    health = service.health()
    assert health["status"] == "degraded"
    assert health["snapshot"]["failing"] >= 3 and health["snapshot"]["last_error"]
    text = service.metrics.render()
    assert f"stateline_snapshot_failures_total {float(service.snapshots.failures)}" in text
    assert "stateline_snapshot_last_error{error=" in text
    assert "stateline_snapshot_failing" in text
    assert any("snapshot to" in record.getMessage() for record in caplog.records)
    retries = service.snapshots.failures
    assert retries >= 3
    blocker.unlink()  # the disk is back: the next try writes, health is ok again
    run_loop(service, seconds=0.3, interval=0.05)
    assert service.health()["status"] == "ok" and service.snapshots.last is not None


def test_serve_exits_non_zero_when_the_final_snapshot_fails(
    model_dir: Path, tmp_path: Path
) -> None:
    assert SCRIPT is not None
    state = tmp_path / "state"  # writable at the start (checked), a file by the end
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                SCRIPT, "serve", "--model", str(model_dir), "--port", str(port),
                "--snapshot-dir", str(state), "--snapshot-interval", "3600",
                "--reference", str(REFERENCE), "--warmup", str(WARMUP),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "STATELINE_TOKEN": TOKEN},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        shutil.rmtree(state)
        state.write_text("a file where the snapshot folder was")
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert code == 1, text
    assert "final snapshot" in text and "could not be written" in text


def test_steps_go_on_while_a_snapshot_is_written_and_it_holds_the_state_it_took(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The snapshot holds the service's lock while it copies the state, not while the disk
    writes and flushes it (an fsync of 2-20 ms had stalled every step behind it)."""
    import threading

    import torch

    from stateline.stream import StateStore

    service = StreamService(serve_config(model_dir, tmp_path / "state"))
    service.step([Event("a", [[50.0]], 0)])
    writing, release = threading.Event(), threading.Event()
    real_write = StateStore.write_snapshot

    def slow_write(directory: Path, state: dict[str, object]) -> Path:
        writing.set()
        assert release.wait(timeout=30), "the test never let the write finish"
        return real_write(directory, state)

    monkeypatch.setattr(StateStore, "write_snapshot", staticmethod(slow_write))
    snapshot = threading.Thread(target=service.snapshot)
    snapshot.start()
    try:
        assert writing.wait(timeout=30)
        started = time.perf_counter()
        answers = service.step([Event("a", [[51.0]], 1), Event("b", [[49.0]], 0)])
        assert time.perf_counter() - started < 5  # not stuck behind the write
        assert [answer["status"] for answer in answers] == ["ok", "ok"]
    finally:
        release.set()
        snapshot.join(timeout=30)
    saved = torch.load(tmp_path / "state" / "state.pt", weights_only=True)
    assert saved["ids"] == ["a"] and saved["last_seq"].tolist() == [0]  # as taken
    assert service.health()["snapshot"]["failing"] == 0


def test_a_start_removes_what_a_killed_snapshot_write_left(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """From a review: each kill -9 during a snapshot left a state-sized temporary file that
    no start removed (repeated crashes fill the disk). tests/test_files.py kills a writer."""
    import socket

    state = tmp_path / "state"
    state.mkdir()
    left = state / f".state.pt.999999999@{socket.gethostname()}.k9x2"
    left.write_bytes(b"\0" * 4096)
    with caplog.at_level(logging.WARNING, logger="stateline.serve"):
        StreamService(serve_config(model_dir, state))
    assert not left.exists()
    assert any(left.name in record.getMessage() for record in caplog.records)


def test_serve_refuses_to_start_on_a_folder_it_cannot_write_or_a_snapshot_it_cannot_hold(
    model_dir: Path, tmp_path: Path
) -> None:
    """From a review: an unwritable --snapshot-dir looked healthy until the first snapshot
    failed, an interval later; a snapshot of more streams than --capacity stopped the start
    with a traceback whose fix ("send fewer new streams") did not apply."""
    assert SCRIPT is not None
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    state = tmp_path / "state"
    service = StreamService(serve_config(model_dir, state))
    service.step([Event(name, [[50.0]], 0) for name in "abc"])
    service.snapshot()
    for folder, extra, expected in (
        (blocker / "state", (), "--snapshot-dir is not writable"),
        (state, ("--capacity", "2"), "capacity is too small for the snapshot"),
    ):
        done = subprocess.run(
            [
                SCRIPT, "serve", "--model", str(model_dir), "--port", str(free_port()),
                "--snapshot-dir", str(folder), *extra,
            ],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "STATELINE_TOKEN": TOKEN},
        )  # fmt: skip
        assert done.returncode == 1 and expected in done.stderr, done.stderr
        assert "Traceback" not in done.stderr + done.stdout and "serving" not in done.stdout
