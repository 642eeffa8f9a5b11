"""The dashboard in a real headless Chromium while `stateline replay` streams into the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SCRIPT, TOKEN, ServerProcess, free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (CI installs them)",
)


def browser() -> object:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def enter_token(driver: object) -> None:
    """Reads need the token: the page asks for it once; it never goes into the URL."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 30).until(  # type: ignore[arg-type]
        lambda d: d.find_element(By.ID, "token-form").is_displayed()
    )
    driver.find_element(By.ID, "token").send_keys(TOKEN)  # type: ignore[attr-defined]
    driver.find_element(By.CSS_SELECTOR, "#token-form button").click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 30).until(  # type: ignore[arg-type]
        lambda d: not d.find_element(By.ID, "token-form").is_displayed()
    )
    assert TOKEN not in driver.current_url  # type: ignore[attr-defined]


def test_chart_updates_while_replay_runs(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    server = ServerProcess(model_dir, tmp_path / "state", free_port(), 5.0)
    replay = subprocess.Popen(
        [
            str(SCRIPT), "replay", str(temperatures_csv), "--url", server.url,
            "--group", "city", "--time", "time", "--rate", "25", "--limit", "200",
        ],
        env={**os.environ, "STATELINE_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    driver = browser()
    try:
        driver.get(server.url + "/?stream=Seattle")  # type: ignore[attr-defined]
        enter_token(driver)
        chart = driver.find_element(By.ID, "values")  # type: ignore[attr-defined]
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(set(seen)) < 3 or seen[-1] < 80):
            seen.append(int(chart.get_attribute("data-points") or 0))
            time.sleep(0.5)
        assert len(set(seen)) >= 3, f"the chart did not update: {seen}"
        assert seen == sorted(seen) and seen[-1] >= 80
        assert chart.get_attribute("data-stream") == "Seattle"
        # read in one script: the table is rebuilt on every refresh, so elements found
        # one call earlier can be stale by the next
        rows = driver.execute_script(  # type: ignore[attr-defined]
            "return [...document.querySelectorAll('#streams tr')].map(r => r.dataset.stream)"
        )
        assert sorted(rows) == [
            "San Francisco",
            "Seattle",
        ]
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))  # type: ignore[attr-defined]
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()  # type: ignore[attr-defined]
        output = replay.communicate(timeout=60)[0].decode()
        server.stop()
    assert replay.returncode == 0, output


def test_dashboard_shows_when_the_model_was_last_updated(
    model_dir: Path, temperatures_csv: Path, tmp_path: Path
) -> None:
    """`stateline serve --online` as a process: the dashboard reports the model's updates."""
    import httpx
    import pandas as pd

    online = ("--online", "--online-update-every", "40", "--online-min-steps", "8",
              "--online-chunk", "16", "--online-buffer", "48")  # fmt: skip
    server = ServerProcess(model_dir, tmp_path / "state", free_port(), 5.0, online)
    frame = pd.read_csv(temperatures_csv)
    driver = browser()
    try:
        for t in range(120):
            events = [
                {"stream": city, "values": [float(group["temp"].iloc[t])], "seq": t}
                for city, group in frame.groupby("city")
            ]
            answer = httpx.post(
                server.url + "/v1/steps",
                json={"events": events},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
        driver.get(server.url + "/")  # type: ignore[attr-defined]
        enter_token(driver)
        deadline = time.monotonic() + 60
        shown = ""
        while time.monotonic() < deadline:
            shown = driver.execute_script(  # type: ignore[attr-defined]
                "const e = document.getElementById('model-updated');"
                "return [e.dataset.version, e.textContent].join('|')"
            )
            version, _, text = shown.partition("|")
            if version and int(version) >= 1 and "last updated" in text:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the dashboard did not show a model update: {shown!r}")
    finally:
        driver.quit()  # type: ignore[attr-defined]
        server.stop()


def test_pages_of_streams_a_stream_gone_and_a_token_typed_slowly(
    model_dir: Path, tmp_path: Path
) -> None:
    """From a review: only the first 50 streams were listed; a deleted stream kept its old
    chart; every poll of the open /healthz hid the token field while someone typed."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = ServerProcess(model_dir, tmp_path / "state", free_port(), 5.0)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    events = [{"stream": f"s{i:03d}", "values": [50.0], "seq": 0} for i in range(60)]
    assert httpx.post(server.url + "/v1/steps", json={"events": events}, headers=auth).is_success
    driver = browser()
    try:
        driver.get(server.url + "/?stream=s000")  # type: ignore[attr-defined]
        WebDriverWait(driver, 30).until(  # type: ignore[arg-type]
            lambda d: d.find_element(By.ID, "token-form").is_displayed()
        )
        field = driver.find_element(By.ID, "token")  # type: ignore[attr-defined]
        for character in TOKEN:  # slower than the page polls
            field.send_keys(character)
            time.sleep(0.15)
        assert field.get_attribute("value") == TOKEN
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()  # type: ignore[attr-defined]
        shown = lambda d: d.find_element(By.ID, "shown").text  # noqa: E731
        WebDriverWait(driver, 30).until(lambda d: shown(d) == "(1\u201350 of 60)")  # type: ignore[arg-type]
        driver.find_element(By.ID, "next").click()  # type: ignore[attr-defined]
        WebDriverWait(driver, 30).until(lambda d: shown(d) == "(51\u201360 of 60)")  # type: ignore[arg-type]
        assert httpx.delete(server.url + "/v1/streams/s000", headers=auth).status_code == 204
        WebDriverWait(driver, 30).until(  # type: ignore[arg-type]
            lambda d: "no longer held" in d.find_element(By.ID, "title").text
        )
        # an id that closes an isolate and overrides the direction (both are valid ids): its
        # controls are shown as code points, the numbers after it read in order
        tricky = "esc\u2069\u202e"
        step = {"stream": tricky, "values": [50.0], "seq": 12345}
        assert httpx.post(server.url + "/v1/steps", json={"events": [step]}, headers=auth)
        driver.get(server.url + "/?stream=" + httpx.QueryParams({"s": tricky})["s"])  # type: ignore[attr-defined]
        WebDriverWait(driver, 30).until(  # type: ignore[arg-type]
            lambda d: "seq 12345" in d.find_element(By.ID, "title").text
        )
        title = driver.find_element(By.ID, "title").text  # type: ignore[attr-defined]
        assert "[U+2069][U+202E]" in title and "\u202e" not in title
    finally:
        driver.quit()  # type: ignore[attr-defined]
        server.stop()
