"""`stateline serve --model model.keras` as users run it: a process, over HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

import keras

SCRIPT = shutil.which("stateline", path=str(Path(sys.executable).parent))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_process_answers_the_keras_models_outputs(tmp_path: Path) -> None:
    assert SCRIPT is not None, "the stateline console script is not installed"
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.layers.Input((None, 2)), keras.layers.GRU(4, return_sequences=True),
         keras.layers.Dense(2)]
    )  # fmt: skip
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.random.default_rng(1).normal(size=(1, 12, 2)).astype(np.float32)
    expected = np.asarray(keras.ops.convert_to_numpy(model(x)))[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # no KERAS_BACKEND: stateline picks Keras's torch backend (TensorFlow is installed too)
    env = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    env.update(STATELINE_TOKEN="t")
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [SCRIPT, "serve", "--model", str(path), "--port", str(port), "--reference", "5",
         "--warmup", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        forecasts = []
        for step in range(12):
            answer = httpx.post(
                url + "/v1/streams/pump-1/steps",
                json={"values": x[0, step].tolist(), "seq": step},
                headers={"Authorization": "Bearer t"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            forecasts.append(answer.json()["forecast"][0][0])
        np.testing.assert_allclose(np.array(forecasts), expected, atol=1e-5)
        assert answer.json()["scores"][0] is not None
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM), (tmp_path / "serve.log").read_text()
    printed = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in printed
    assert "TensorFlow" not in printed  # TensorFlow announces itself when imported
    assert (tmp_path / "model.state" / "state.pt").is_file()  # the final snapshot
