"""A write cut short by kill -9 leaves a temporary file; the next start removes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from stateline._files import remove_leftovers, write_atomically

WRITER = """
import sys, time
from pathlib import Path
from stateline._files import write_atomically
def forever(file):
    file.write(b"x" * 1000)
    file.flush()
    print("writing", flush=True)
    time.sleep(60)
write_atomically(Path(sys.argv[1]), forever)
"""


def test_a_killed_writers_file_is_removed_and_a_live_ones_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "state.pt"
    write_atomically(target, lambda file: file.write(b"old"))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    (being_written,) = [p for p in tmp_path.iterdir() if p.name != "state.pt"]
    assert being_written.name.startswith(f".state.pt.{writer.pid}@")
    assert remove_leftovers(tmp_path) == [] and being_written.exists()  # its writer is alive
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    writer.stdout.close()
    deadline = time.monotonic() + 10
    while not remove_leftovers(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)  # the pid is gone once the child is reaped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]
    assert target.read_bytes() == b"old"


def test_files_not_written_here_are_left_alone(tmp_path: Path) -> None:
    others = [".state.pt.1@another-host.abc", ".hidden", ".state.pt.tmp", "state.pt"]
    for name in others:
        (tmp_path / name).write_bytes(b"x")
    assert remove_leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)
    assert remove_leftovers(tmp_path / "missing") == []


def test_a_leftover_of_this_pid_is_an_earlier_runs(tmp_path: Path) -> None:
    """From a review: a container restarts its server as pid 1 again, so the leftovers of the
    killed run carry this process's pid; it is not writing there yet: they go."""
    import socket

    mine = tmp_path / f".state.pt.{os.getpid()}@{socket.gethostname()}.r4nd"
    mine.write_bytes(b"half")
    assert remove_leftovers(tmp_path) == [mine] and not mine.exists()
