"""The Dockerfile without a Docker engine: every script and make target it calls exists, its
default command is the README's main job (make demo), and its Caffe step picks the base image's
own Caffe when there is one."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*):", text, flags=re.M))


def test_default_command_is_the_demo():
    cmd = [json.loads(args) for word, args in instructions() if word == "CMD"]
    assert cmd == [["make", "demo"]]
    assert re.search(r"^demo: .*\n\t\$\(BIN\)/upcall demo ", (ROOT / "Makefile").read_text(), re.M)


def test_every_script_and_make_target_it_calls_exists():
    runs = " ".join(args for word, args in instructions() if word in ("RUN", "ENTRYPOINT"))
    scripts = re.findall(r"(?:/opt/upcall/)?(scripts/[\w./-]+)", runs)
    assert "scripts/docker-caffe.sh" in scripts and "scripts/docker-entrypoint.sh" in scripts
    for script in scripts:
        assert (ROOT / script).is_file(), script
    entry = json.loads(next(args for word, args in instructions() if word == "ENTRYPOINT"))
    assert os.access(ROOT / entry[0].removeprefix("/opt/upcall/"), os.X_OK)
    commands = [c for w, a in instructions() if w == "RUN" for c in re.split(r"&&|;", a)]
    targets = [c.split()[1] for c in commands if c.split()[0] == "make"]
    assert targets == ["venv"]
    assert set(targets) <= make_targets()


def test_base_and_torch_index_are_build_arguments():
    words = instructions()
    args = {a.split("=")[0]: a.split("=", 1)[1] for w, a in words if w == "ARG" and "=" in a}
    assert args["BASE"] == "debian:bookworm-slim"
    assert args["TORCH_INDEX"] == "https://download.pytorch.org/whl/cpu"
    assert ("FROM", "${BASE}") in words
    assert any(w == "ENV" and "PIP_EXTRA_INDEX_URL=${TORCH_INDEX}" in a for w, a in words)


def fake_tools(folder: Path, **tools: str) -> dict[str, str]:
    folder.mkdir()
    for name, body in tools.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:/usr/bin:/bin"}


def test_caffe_step_uses_the_base_images_caffe(tmp_path):
    # a base image whose python3 imports caffe and which has `caffe` on PATH
    env = fake_tools(tmp_path / "bin", python3="exit 0", caffe="exit 0")
    env_file = tmp_path / "caffe.env"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/docker-caffe.sh"), str(env_file), str(tmp_path / "root")],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert env_file.read_text() == (
        f"UPCALL_CAFFE={tmp_path / 'bin' / 'caffe'}\nUPCALL_CAFFE_PYTHON={tmp_path / 'bin' / 'python3'}\n"
    )
    assert not (tmp_path / "root").exists()  # the bundled Caffe was not installed


def test_entrypoint_runs_the_command():
    done = subprocess.run(
        [str(ROOT / "scripts/docker-entrypoint.sh"), "echo", "demo"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "demo\n")
