"""Progress where no one watches a terminal: real commands with stderr to a pipe (a log file)
write plain lines per few percent of a step and per validation pass; UPCALL_PROGRESS chooses."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.engines.test_train import make_job

ROOT = Path(__file__).resolve().parents[1]


def upcall(*args: str, progress: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "UPCALL_PROGRESS"}
    if progress is not None:
        env["UPCALL_PROGRESS"] = progress
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "upcall", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def test_a_step_writes_a_line_each_few_percent_to_a_pipe(tmp_path):
    # lines:0 lifts the 10-s spacing, so a step of a few seconds shows its lines
    data = tmp_path / "data"
    done = upcall("synth", str(data), "--n-train", "300", "--n-test", "0", progress="lines:0")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    steps = [x for x in lines if re.fullmatch(r"synth: \d+% \(\d+/300 clips\), .*ETA \d+:\d\d", x)]
    assert len(steps) >= 1, done.stderr  # 250 clips a chunk: at least the one at 83 %
    assert lines[-1].startswith("synth: 300/300 clips done in "), done.stderr
    assert "\r" not in done.stderr  # no bar redrawn in place
    done = upcall("spectrograms", str(data), progress="lines:0")
    assert done.returncode == 0, done.stderr
    percents = [int(m[1]) for m in re.finditer(r"spectrograms: (\d+)% \(", done.stderr)]
    assert percents and percents == sorted(percents) and percents[-1] < 100, done.stderr


def test_training_writes_a_line_per_validation_pass(tmp_path):
    job = make_job(tmp_path, max_iter=10)  # 40 images, batch 8: a validation each epoch
    done = upcall("train", str(job), "--threads", "1", progress="lines:0")
    assert done.returncode == 0, done.stderr
    passes = [x for x in done.stderr.splitlines() if " · val loss " in x]
    # iterations 0, 5 and 10: each line says where training is and what it scored
    assert len(passes) == 3, done.stderr
    last = passes[-1]
    assert last.startswith("tiny-lr0.05: ") and "(10/10 iters)" in last, last
    for figure in (
        r"epoch 2\.00",
        r"loss \d",
        r"\d+ img/s",
        r"AUC 0\.\d{4}",
        "accuracy ",
        "ETA 0:",
    ):
        assert re.search(figure, last), (figure, last)


def test_off_writes_nothing_and_a_quick_step_stays_quiet_by_default(tmp_path):
    done = upcall("synth", str(tmp_path / "a"), "--n-train", "300", "--n-test", "0", progress="off")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    # unset, to a pipe: lines, spaced by 10 s, and synth's 300 clips take less
    code = "from upcall.progress import mode; print(mode())"
    env = {k: v for k, v in os.environ.items() if k != "UPCALL_PROGRESS"}
    piped = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert piped.stdout.strip() == "('lines', 10.0)", piped.stderr


def test_a_terminal_gets_the_bar(tmp_path):
    """stderr on a pseudo-terminal: the bar, redrawn in place with carriage returns."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 wide
    env = {k: v for k, v in os.environ.items() if k != "UPCALL_PROGRESS"}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "upcall", "synth", str(tmp_path / "d"), "--n-train", "300"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0, out
    assert b"\r" in out and b"synth: 100%" in out, out


def test_an_unknown_setting_is_said_once_not_ignored(tmp_path):
    done = upcall(
        "synth", str(tmp_path / "a"), "--n-train", "300", "--n-test", "0", progress="lots"
    )
    assert done.returncode == 0
    assert done.stderr.splitlines() == [
        "upcall: UPCALL_PROGRESS='lots' is not bar, lines, lines:SECONDS or off; using lines"
    ], done.stderr
