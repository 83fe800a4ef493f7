"""Progress on the command line: a bar on a terminal (a real pty), a few plain lines anywhere else."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from agent.cli.progress import Progress
from models.manifest import entry
from tests.conftest import REPO

MODEL = "antispoof_minifasnet_v2"  # 1.9 MB from the shared data's local source: about 30 chunks


def test_plain_mode_writes_a_few_lines_however_many_updates() -> None:
    """518 updates into a pipe or file (what `models fetch` once wrote as carriage returns): start, quarters, end."""
    out = io.StringIO()
    progress = Progress("model", 518 * 65536, unit="B", stream=out, quiet_s=0.0)
    assert not progress.tty
    for i in range(1, 519):
        progress.update(i * 65536)
    progress.finish("ok")
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0] == "model: started (32.4 MiB)"
    assert [line.split(" (")[0] for line in lines[1:4]] == ["model: 25%", "model: 50%", "model: 75%"]
    assert lines[4].startswith("model: ok (") and len(lines) == 5


def test_plain_mode_leaves_out_the_middle_lines_of_a_quick_task() -> None:
    out = io.StringIO()
    with Progress("catalogue", 40, unit="photos", stream=out) as progress:  # quiet_s 5 s: no quarter lines
        for i in range(1, 41):
            progress.update(i)
    lines = out.getvalue().splitlines()
    assert lines[0] == "catalogue: started (40 photos)" and lines[1].startswith("catalogue: done (")
    assert len(lines) == 2


def test_terminal_mode_redraws_one_line_and_ends_it() -> None:
    out = io.StringIO()
    progress = Progress("model", 100, unit="B", stream=out, tty=True, redraw_s=0.0)
    for i in range(1, 101):
        progress.update(i, detail=f"part {i}")
    progress.finish("ok")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n"), "one line, redrawn in place"
    draws = text.split("\r")[1:]
    assert len(draws) == 101 and draws[0].startswith("model [....") and "  1%" in draws[0]
    assert "[" + "#" * 28 + "] 100% 100 B/100 B part 100" in draws[-2]
    assert draws[-1].startswith("model: ok (")
    throttled = io.StringIO()
    slow = Progress("model", 100, stream=throttled, tty=True, redraw_s=60.0)
    for i in range(1, 101):
        slow.update(i)
    assert slow.lines == 1, "at most one redraw per redraw_s"


def fetch_with_stderr(stderr: int, target: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "models", "fetch", MODEL, "--dir", str(target)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


def test_models_fetch_draws_a_bar_on_a_terminal_and_plain_lines_into_a_file(tmp_path: Path, shared_data: Path) -> None:
    del shared_data  # the local source reads STORE_AGENT_DATA/models: skip clearly without it
    master, slave = pty.openpty()
    proc = fetch_with_stderr(slave, tmp_path / "tty")
    os.close(slave)
    received = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    assert proc.wait(30) == 0, received.decode(errors="replace")
    text = received.decode()
    assert f"\r{MODEL} [" in text and "%" in text, text
    assert f"{MODEL}: ok {tmp_path / 'tty' / entry(MODEL).file}" in text
    assert "started" not in text, "a terminal gets the bar, not the plain lines"

    log = tmp_path / "fetch.log"
    with log.open("wb") as handle:
        assert fetch_with_stderr(handle.fileno(), tmp_path / "file").wait(120) == 0
    lines = log.read_text().splitlines()
    assert "\r" not in log.read_text()
    assert lines[0] == f"{MODEL}: started (1.7 MiB)" and lines[-1].startswith(f"{MODEL}: ok ")
    assert len(lines) <= 5, lines
