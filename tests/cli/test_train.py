"""`stateline train` / `predict` / `bench` as users call them, on real bundled data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from stateline import Forecaster
from stateline.cli import main
from stateline.data import hourly_temperatures


@pytest.fixture(scope="module")
def temps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "temps.csv"
    hourly_temperatures().groupby("city").head(300).to_csv(path, index=False)
    return path


def test_train_then_predict_every_step_of_every_stream(
    temps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model"
    args = ["train", str(temps), "--time", "time", "--group", "city", "--target", "temp"]
    code = main([*args, "--hidden", "4", "--epochs", "2", "--horizon", "2", "--no-progress",
                 "--output", str(model)])  # fmt: skip
    assert code == 0
    # the scaled loss says nothing of the naive forecast: the error in degrees, next to it
    said = capsys.readouterr().out
    assert "validation tails" in said and "persistence" in said and "x):" in said
    assert (model / "weights.pt").is_file() and (model / "columns.json").is_file()
    assert Forecaster.load(model).streams_ == list(pd.read_csv(temps)["city"].unique())
    output = tmp_path / "predictions.csv"
    code = main(["predict", str(temps), "--time", "time", "--group", "city", "--model",
                 str(model), "--output", str(output)])  # fmt: skip
    assert code == 0
    frame = pd.read_csv(output)
    assert list(frame.columns) == ["step", "city", "time", "temp+1", "temp+2"]
    assert len(frame) == 600 and frame["temp+1"].between(20, 90).all()
    # From a review: without --group the two cities were read as one series (forecasts of
    # nothing real); the model's own group and time are used when the file has them.
    interleaved = tmp_path / "by-time.csv"
    pd.read_csv(temps).sort_values(["time", "city"]).to_csv(interleaved, index=False)
    again = tmp_path / "again.csv"
    assert main(["predict", str(interleaved), "--model", str(model), "--output", str(again)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_csv(again).sort_values(["city", "step"], ignore_index=True), frame
    )
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "by-time.pq"  # read as Parquet by its suffix, as load_table reads it
    pd.read_csv(interleaved).to_parquet(parquet)
    assert main(["predict", str(parquet), "--model", str(model), "--output", str(again)]) == 0
    assert pd.read_csv(again)["city"].nunique() == 2


def test_bad_columns_paths_and_flags_get_clear_errors(
    temps: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(temps), "--target", "pressure", "--no-progress"]) == 1
    assert "pressure" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.csv"), "--target", "temp"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", str(temps), "--model", str(tmp_path / "nowhere")]) == 1
    assert "stateline train" in capsys.readouterr().err
    model = tmp_path / "model-for-predict"
    assert main(["train", str(temps), "--target", "temp", "--group", "city", "--hidden", "2",
                 "--epochs", "1", "--no-progress", "--output", str(model)]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(tmp_path), "--model", str(model)]) == 1  # a folder
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["train", str(temps), "--target", "temp", "--cell", "transformer"])
    assert usage.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["train", str(temps), "--target", "temp", "--hidden", "0"]) == 1
    assert "hidden" in capsys.readouterr().err


def test_bench_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--streams", "1", "64", "--seconds", "0.05", "--hidden", "8"]) == 0
    out = capsys.readouterr().out
    assert "steps/s" in out and "64" in out


def test_train_in_two_processes_gives_the_weights_of_one(temps: Path, tmp_path: Path) -> None:
    """--nproc 2 launches two gloo processes on loopback; rank 0 writes the model, whose
    weights equal one process's training on the same lanes (float tolerance)."""
    import torch

    args = ["train", str(temps), "--time", "time", "--group", "city", "--target", "temp",
            "--hidden", "4", "--epochs", "2", "--lanes", "4", "--chunk", "24",
            "--no-progress"]  # fmt: skip
    assert main([*args, "--output", str(tmp_path / "one")]) == 0
    assert main([*args, "--nproc", "2", "--output", str(tmp_path / "two")]) == 0
    one = torch.load(tmp_path / "one" / "weights.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "weights.pt", weights_only=True)
    assert one.keys() == two.keys()
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "two" / "columns.json").is_file()


def test_train_reads_a_parquet_folder_in_two_processes(temps: Path, tmp_path: Path) -> None:
    """A folder of Parquet files trains as its table does; with --nproc 2 each process reads
    only the series in its lanes (tests/train/test_parquet_fit.py measures that)."""
    import json

    import torch

    frame = pd.read_csv(temps, parse_dates=["time"])
    folder = tmp_path / "temps"
    folder.mkdir()
    early = frame["time"] < frame["time"].median()  # every city in both files, in time order
    frame[early].to_parquet(folder / "part-0.parquet", index=False)
    frame[~early].to_parquet(folder / "part-1.parquet", index=False)
    flags = ["--time", "time", "--group", "city", "--target", "temp", "--hidden", "4",
             "--epochs", "2", "--lanes", "4", "--chunk", "24", "--no-progress"]  # fmt: skip
    assert main(["train", str(temps), *flags, "--output", str(tmp_path / "csv")]) == 0
    two = ["--nproc", "2", "--output", str(tmp_path / "pq")]
    assert main(["train", str(folder), *flags, *two]) == 0
    one = torch.load(tmp_path / "csv" / "weights.pt", weights_only=True)
    two = torch.load(tmp_path / "pq" / "weights.pt", weights_only=True)
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-4, atol=1e-5)
    columns = json.loads((tmp_path / "pq" / "columns.json").read_text())
    assert (
        columns["streams"] == json.loads((tmp_path / "csv" / "columns.json").read_text())["streams"]
    )
    assert main(["train", str(folder), "--target", "temp", "--output", str(tmp_path / "x")]) == 1
