"""upcall detect --ray ADDRESS on a real local Ray cluster (one head, 2 CPUs) started with the
``ray`` command: the same files, byte for byte, as a local run; bad files reported and skipped;
a rerun resumes. The cluster is started once for the module (Ray takes seconds to start)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.detect.test_run import job, recording  # noqa: F401  (fixtures)
from upcall.detect.run import detect
from upcall.errors import BatchFailed, UpcallError

RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """HOST:PORT of a Ray head started here; stopped by signalling its own process group, not
    with `ray stop` (which stops every Ray process on the machine, other users' too)."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are long
    cmd = [str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
           "--include-dashboard=false", "--object-store-memory=100000000",
           f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ray start failed: {proc.stderr.read().decode()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                pytest.fail("the Ray head did not come up in 90 s")
            time.sleep(0.5)
        yield address
    finally:
        # every process `ray start` started is in its session's group: ours alone
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what SIGTERM left (raylet, GCS, workers)
        proc.wait()
        shutil.rmtree(temp, ignore_errors=True)


def files_of(folder: Path) -> dict[str, bytes]:
    """Every output file's bytes; detect.json less its ``stages`` (the run's timings)."""
    import json

    out = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
           if p.is_file()}  # fmt: skip
    settings = json.loads(out["detect.json"])
    assert settings.pop("stages")
    out["detect.json"] = json.dumps(settings).encode()
    return out


def test_ray_run_writes_the_local_runs_bytes_and_resumes(cluster, job, recording, tmp_path):  # noqa: F811
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.wav").write_bytes(recording.read_bytes())
    (folder / "sub" / "b.wav").write_bytes(recording.read_bytes())
    (folder / "bad.wav").write_bytes(b"not audio")
    local, remote = tmp_path / "local", tmp_path / "ray"
    kw = {"threshold": 0.0, "scores": True}
    with pytest.raises(BatchFailed, match="1 of 3 recordings failed"):
        detect(job, [folder], local, **kw).finish()
    with pytest.raises(BatchFailed, match="1 of 3 recordings failed"):
        detect(job, [folder], remote, ray=cluster, **kw).finish()
    want = files_of(local)
    assert "sub/b.wav.detections.txt" in want and "bad.wav.detections.txt" not in want
    assert files_of(remote) == want
    # rerun on the cluster: done recordings are skipped, the bad one is reported again
    mtime = (remote / "a.wav.detections.txt").stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-m", "upcall", "detect", str(job), str(folder), "--out", str(remote),
         "--threshold", "0.0", "--scores", "--ray", cluster],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1 and "1 of 3 recordings failed" in done.stderr, done.stderr[-2000:]
    assert "2 recording(s) already done" in done.stderr and "Traceback" not in done.stderr
    assert (remote / "a.wav.detections.txt").stat().st_mtime_ns == mtime
    assert files_of(remote) == want


def test_no_cluster_at_the_address_is_one_line(job, recording, tmp_path):  # noqa: F811
    with pytest.raises(UpcallError, match=r"--ray 127\.0\.0\.1:\d+: no Ray cluster answers there"):
        detect(job, [recording], tmp_path / "out", ray=f"127.0.0.1:{free_port()}")
