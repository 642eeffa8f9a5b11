"""`make demo` installs stateline without extras: the demo must run on that alone (issue #19:
it once pulled in the whole development set, TensorFlow and JAX included, 3.6 GB)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Top-level modules of every optional extra (and of the test tools) that the core does not
# depend on; the demo's process may import none of them. (Not pyarrow: pandas imports it when
# it is there, and the demo ran without it in a venv of stateline alone.)
BLOCKED = (
    "fastapi", "uvicorn", "httpx", "websockets", "prometheus_client", "threadpoolctl",
    "keras", "jax", "jaxlib", "tensorflow", "pmdarima", "sktime", "confluent_kafka", "selenium",
    "pytest", "hypothesis", "schemathesis", "statsmodels",
)  # fmt: skip

_DEMO = """
import json, sys
from stateline.cli import main
code = main(["demo", "--output", {output!r}, "--epochs", "2"])
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set({blocked!r}))))
raise SystemExit(code)
"""


def test_the_demo_imports_no_extra(tmp_path: Path) -> None:
    """The whole demo in a fresh process: at its end, none of the extras' modules is loaded."""
    code = _DEMO.format(blocked=BLOCKED, output=str(tmp_path / "demo"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "demo" / "report.md").is_file()


def test_make_demo_installs_no_extra_and_the_core_needs_none_of_them() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("$(DEMO_STAMP): pyproject.toml Makefile", 1)[1].split("\n\n", 1)[0]
    installs = re.findall(r"pip install --quiet (.+)", recipe)
    assert installs == ['"$(TORCH_SPEC)"', "-e ."], installs
    assert re.search(r"^demo: \$\(DEMO_STAMP\)$", makefile, re.MULTILINE)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {
        re.split(r"[<>=\[ ]", requirement)[0].lower() for requirement in project["dependencies"]
    }
    assert core == {"numpy", "pandas", "rich", "matplotlib", "vega_datasets", "torch"}, core
