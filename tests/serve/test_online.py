"""`stateline serve --online`: the service keeps learning, persists what it learned, reports it."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from stateline import ConfigError
from stateline.anomaly import DetectorConfig
from stateline.online import OnlineConfig
from stateline.serve import Event, StreamService
from stateline.stream import SnapshotMismatchError

from .conftest import AUTH, REFERENCE, WARMUP, free_port, serve_config

ONLINE = OnlineConfig(update_every=40, min_steps=8, chunk=16, buffer=48, cpu_share=0.5)


def temperatures(csv: Path) -> dict[str, np.ndarray]:
    frame = pd.read_csv(csv)
    return {city: group["temp"].to_numpy() for city, group in frame.groupby("city")}


def test_service_learns_saves_and_restores_its_weights(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    config = serve_config(model_dir, tmp_path / "state", online=ONLINE)
    service = StreamService(config)
    assert service.learner is not None and service.health()["online"]["version"] == 0
    series = temperatures(temperatures_csv)
    for t in range(60):
        service.step([Event(city, [float(v[t])], t) for city, v in series.items()])
    assert service.learner.pending == 2 * 60 - 0  # no flags before calibration
    report = service.learner.update()
    assert report is not None and report.streams == 2
    health = service.health()["online"]
    assert health["version"] == 1 and health["updated_at"] is not None
    text = service.metrics.render()
    assert "stateline_online_updates 1" in text and "stateline_online_last_loss_after" in text
    service.snapshot()
    assert torch.load(tmp_path / "state" / "state.pt")["online"]["version"] == 1  # one file
    learned = {k: v.clone() for k, v in service.model.state_dict().items()}

    again = StreamService(config)  # a restart: learned weights first, then the store
    assert again.restored == 2 and again.learner is not None and again.learner.version == 1
    for name, tensor in again.model.state_dict().items():
        torch.testing.assert_close(tensor, learned[name])
    answers = [service.step([Event(c, [float(v[60])], 60)])[0] for c, v in series.items()]
    resumed = [again.step([Event(c, [float(v[60])], 60)])[0] for c, v in series.items()]
    for mine, theirs in zip(answers, resumed, strict=True):
        assert theirs["status"] == "ok"
        np.testing.assert_allclose(theirs["forecast"], mine["forecast"], rtol=1e-6)


def test_horizon_or_width_mismatch_is_refused(model_dir: Path, tmp_path: Path) -> None:
    from stateline import ConfigError

    config = serve_config(model_dir, tmp_path / "state", online=ONLINE)
    service = StreamService(config)  # this model forecasts its one input: fine
    assert service.learner is not None
    with pytest.raises(ConfigError, match="targets"):
        from stateline.online import OnlineLearner

        OnlineLearner(service.engine, ONLINE, targets=2)


def test_running_server_updates_the_model_in_the_background(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    import uvicorn

    from stateline.serve._app import create_app

    port = free_port()
    app = create_app(serve_config(model_dir, tmp_path / "state", online=ONLINE))
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        series = temperatures(temperatures_csv)
        for t in range(150):
            body = {
                "events": [
                    {"stream": c, "values": [float(v[t])], "seq": t} for c, v in series.items()
                ]
            }
            answer = httpx.post(url + "/v1/steps", json=body, headers=AUTH, timeout=30)
            assert answer.status_code == 200, answer.text
            assert [r["status"] for r in answer.json()["results"]] == ["ok", "ok"]
        deadline = time.monotonic() + 30
        while httpx.get(url + "/healthz").json()["online"]["version"] < 2:
            assert time.monotonic() < deadline, "the model was not updated in the background"
            time.sleep(0.1)
        metrics = httpx.get(url + "/metrics", headers=AUTH).text
        assert "stateline_online_last_update_timestamp_seconds" in metrics
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    final = torch.load(tmp_path / "state" / "state.pt")["online"]  # with the final snapshot
    assert final["version"] >= 2


def test_online_service_with_the_likelihood_restores_its_state(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    """``serve --online --threshold likelihood``: anomaly scores in [0, 1], flagged steps kept
    out of learning, and a restart continues every stream's likelihood exactly."""
    detector = DetectorConfig(threshold="likelihood", reference=REFERENCE, warmup=WARMUP)
    config = dataclasses.replace(
        serve_config(model_dir, tmp_path / "state", online=ONLINE), detector=detector
    )
    service = StreamService(config)
    series = temperatures(temperatures_csv)
    series["faulty"] = series["Seattle"].copy()
    series["faulty"][90:95] += 30.0
    flagged = 0
    for t in range(100):
        answers = service.step([Event(name, [float(v[t])], t) for name, v in series.items()])
        for answer in answers:
            score = answer["anomaly_scores"][0]
            assert (score is None) == (t < REFERENCE)
            assert score is None or 0.0 <= score <= 1.0
            flagged += answer["flags"][0]
    assert flagged >= 1 and service.detector is not None
    assert service.learner is not None
    assert service.learner.pending == 3 * 100 - flagged  # flagged steps are not learned
    service.snapshot()
    again = StreamService(config)
    for t in range(100, 130):
        events = [Event(name, [float(v[t])], t) for name, v in series.items()]
        mine, theirs = service.step(events), again.step(events)
        for one, other in zip(mine, theirs, strict=True):
            assert other["anomaly_scores"] == one["anomaly_scores"]
            assert other["flags"] == one["flags"]


def test_learned_weights_travel_in_the_snapshot_and_only_to_their_own_model(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    """From a review: online.pt and state.pt were two renames, and a kill -9 between them
    left a pair the server refused to start from; an online.pt learned from another model
    was put into a retrained one without a word."""
    import shutil

    config = serve_config(model_dir, tmp_path / "state", online=ONLINE)
    service = StreamService(config)
    series = temperatures(temperatures_csv)
    for t in range(60):
        service.step([Event(city, [float(v[t])], t) for city, v in series.items()])
    assert service.learner is not None and service.learner.update() is not None
    service.snapshot()
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == ["state.pt"]
    learned = {k: v.clone() for k, v in service.model.state_dict().items()}
    again = StreamService(config)
    assert again.restored == 2
    for name, tensor in again.model.state_dict().items():
        torch.testing.assert_close(tensor, learned[name])
    with pytest.raises(SnapshotMismatchError, match="online"):  # its buffers need --online
        StreamService(dataclasses.replace(config, online=None))
    other = tmp_path / "retrained"
    shutil.copytree(model_dir, other, ignore=shutil.ignore_patterns("state"))
    weights = torch.load(other / "weights.pt")
    weights["head.bias"] += 1.0
    torch.save(weights, other / "weights.pt")
    with pytest.raises(ConfigError, match="holds what another model learned"):
        StreamService(dataclasses.replace(config, model=str(other)))


def test_a_snapshot_waits_while_an_update_recomputes_carries(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carries are recomputed a few streams at a time, the lock let go between turns: a
    snapshot asked for meanwhile waits for the last turn, so it never holds the new weights
    beside carries the old ones made."""
    from stateline.online import _learner

    monkeypatch.setattr(_learner, "RECOMPUTE_HOLD", 0.0)  # one stream a turn
    service = StreamService(serve_config(model_dir, tmp_path / "state", online=ONLINE))
    learner = service.learner
    assert learner is not None
    series = temperatures(temperatures_csv)
    for t in range(60):
        service.step([Event(city, [float(v[t])], t) for city, v in series.items()])
    turns: list[int] = []
    taken: list[int] = []
    original = learner._recompute_now
    snapshot = threading.Thread(target=lambda: (service.snapshot(), taken.append(len(turns))))

    during: list[tuple[bool, bool]] = []

    def first_a_snapshot(slots: np.ndarray, steps: int) -> int:
        if not turns:
            snapshot.start()
            during.append(
                (
                    service.health()["online"]["recomputing"],
                    "stateline_online_recomputing 1.0" in service.metrics.render(),
                )
            )
        turns.append(len(slots))
        time.sleep(0.05)  # the snapshot thread has time to ask
        return original(slots, steps)

    monkeypatch.setattr(learner, "_recompute_now", first_a_snapshot)
    report = learner.update()
    snapshot.join(timeout=30)
    assert report is not None and report.recomputed == 2 and turns == [1, 1]
    assert taken == [2]  # after the last turn
    assert during == [(True, True)] and service.health()["online"]["recomputing"] is False
    assert "stateline_online_recomputing 0.0" in service.metrics.render()
    saved = torch.load(tmp_path / "state" / "state.pt")
    assert saved["online"]["version"] == 1
    again = StreamService(serve_config(model_dir, tmp_path / "state", online=ONLINE))
    for city in series:
        for mine, theirs in zip(
            service.store.carry_of(city), again.store.carry_of(city), strict=True
        ):
            torch.testing.assert_close(theirs, mine)
