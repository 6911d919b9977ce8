"""Nothing deleted that upcall did not make (issue 19 §2): ``--force``, ``--restart`` and every
replacement of an output folder touch only a folder the same command made (its ``.upcall-made``
mark, or the manifest an older upcall wrote there), never a folder of notes, never the inputs.

Each case runs the real command (``upcall.cli.main``) on real files and checks what is left.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from upcall.cli import main
from upcall.fsutil import OWN_MARK


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what must survive a refused command."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(capsys, argv: list[object], *needles: str) -> str:
    """Run ``upcall ARGV``: exit 1 with one line naming what is wrong."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """DATA with its PNGs and lists, as `upcall synth`, `spectrograms` and `lists` leave it."""
    data = tmp_path_factory.mktemp("force") / "d"
    for argv in (
        ["synth", data, "--n-train", 60, "--workers", 1],
        ["spectrograms", data, "--workers", 1],
        ["lists", data],
    ):
        assert main([str(a) for a in argv]) == 0
    return data


@pytest.fixture
def notes(tmp_path) -> Path:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("a week of field notes")
    return folder


BASELINE = ("--templates", 2, "--workers", 1)
NATIVE = ("--size", "native", "--workers", "1")


def test_baseline_force_never_removes_notes_or_its_own_data(data, notes, capsys):
    before = tree(data)
    refused(capsys, ["baseline", data, "--out", notes, "--force"], str(notes), "not a folder made")
    assert (notes / "notes.txt").read_text() == "a week of field notes"
    for out in (data, data / "lists", data.parent):  # DATA, LISTS, a folder holding them
        refused(capsys, ["baseline", data, "--out", out, "--force"], "an input of this command")
    assert tree(data) == before and (data / "train.csv").is_file()


def test_baseline_force_replaces_its_own_earlier_job(data, tmp_path, capsys):
    # A job of an older upcall (no mark): its config.json proves whose it is.
    job = tmp_path / "job"
    job.mkdir()
    (job / "config.json").write_text(json.dumps({"network": "baseline"}))
    (job / "old_scores.csv").write_text("stale")
    assert main(["baseline", str(data), "--out", str(job), "--force", *map(str, BASELINE)]) == 0
    assert not (job / "old_scores.csv").exists() and (job / "summary.json").is_file()
    assert (job / OWN_MARK).read_text() == "baseline\n"
    refused(capsys, ["baseline", data, "--out", job, *BASELINE], "--force replaces it")
    # an upcall folder of another kind is not a baseline job either
    refused(capsys, ["lmdb", data / "lists", "--out", job], "made by upcall baseline")
    assert (job / "summary.json").is_file()


def test_lmdb_replaces_only_its_dataset_and_never_its_lists(data, notes, tmp_path, capsys):
    refused(capsys, ["lmdb", data / "lists", "--out", notes], "not a folder made by upcall lmdb")
    assert (notes / "notes.txt").is_file()
    ds = tmp_path / "ds"
    for _ in range(2):  # the second run replaces the first's dataset
        assert main(["lmdb", str(data / "lists"), "--out", str(ds), *NATIVE]) == 0
    assert (ds / OWN_MARK).read_text() == "lmdb\n" and (ds / "train_db").is_dir()
    lists = shutil.copytree(data / "lists", ds / "lists")  # a dataset folder holding LISTS
    refused(capsys, ["lmdb", lists, "--out", ds], f"holds {lists}, an input")
    assert (lists / "train.txt").is_file()


def test_synth_force_rewrites_only_a_synth_data_set(tmp_path, capsys):
    kaggle = tmp_path / "kaggle"  # clips that are not ours: --force must not delete them
    (kaggle / "train").mkdir(parents=True)
    (kaggle / "train" / "train1.aiff").write_bytes(b"a real recording")
    (kaggle / "train.csv").write_text("clip_name,label\ntrain1.aiff,1\n")
    before = tree(kaggle)
    refused(
        capsys, ["synth", kaggle, "--n-train", 3, "--force"], "not a folder made by upcall synth"
    )
    assert tree(kaggle) == before
    own = tmp_path / "own"
    assert main(["synth", str(own), "--n-train", "3", "--workers", "1"]) == 0
    assert main(["synth", str(own), "--n-train", "4", "--seed", "1", "--force"]) == 0
    assert sorted(p.name for p in (own / "train").iterdir()) == [
        f"train{i}.aiff" for i in range(1, 5)
    ]


def test_nets_never_replaces_a_folder_of_notes(data, tmp_path, capsys):
    ds = tmp_path / "ds"
    assert main(["lmdb", str(data / "lists"), "--out", str(ds), *NATIVE]) == 0
    jobs = tmp_path / "jobs"
    argv = ["nets", "--dataset", ds, "--networks", "whalenet-small", "--lr", "0.01"]
    assert main([str(a) for a in [*argv, "--out", jobs]]) == 0
    job = jobs / "whalenet-small-lr0.01"
    assert (job / OWN_MARK).read_text() == "nets\n"
    assert main([str(a) for a in [*argv, "--epochs", 2, "--out", jobs]]) == 0  # its own: rewritten
    other = tmp_path / "other"
    (other / job.name).mkdir(parents=True)
    (other / job.name / "solver.prototxt").write_text("# written by hand\n")
    capsys.readouterr()
    assert main([str(a) for a in [*argv, "--out", other]]) == 1  # a batch: one line per job
    err = capsys.readouterr().err
    assert f"{other / job.name}: not a folder made by upcall nets" in err and "Traceback" not in err
    assert (other / job.name / "solver.prototxt").read_text() == "# written by hand\n"


def test_export_never_replaces_the_job_or_notes(tiny_job, notes, tmp_path, capsys):
    before = tree(tiny_job)
    for out in (tiny_job, tiny_job.parent):
        refused(capsys, ["export", tiny_job, "--format", "caffe", "--out", out], "an input")
    refused(capsys, ["export", tiny_job, "--format", "caffe", "--out", notes], "not a folder made")
    assert tree(tiny_job) == before and (notes / "notes.txt").is_file()
    out = tmp_path / "exported"
    for _ in range(2):
        assert main(["export", str(tiny_job), "--format", "caffe", "--out", str(out)]) == 0
    assert (out / "export.json").is_file() and (out / OWN_MARK).read_text() == "export\n"


def test_restart_removes_only_this_jobs_snapshots_from_a_shared_folder(tmp_path):
    from tests.engines.test_train import make_job

    job = make_job(tmp_path, max_iter=2)
    shared = job / "snaps"  # a folder several solvers may name in their snapshot_prefix
    shared.mkdir()
    solver = job / "solver.prototxt"
    text = solver.read_text()
    assert 'snapshot_prefix: "snapshot"' in text
    solver.write_text(text.replace('"snapshot"', '"snaps/tiny"'))
    others = [shared / "other_iter_2.caffemodel", shared / "other_iter_2.solverstate"]
    for path in others:
        path.write_bytes(b"another job's snapshot")
    argv = ["train", str(job), "--engine", "torch", "--threads", "1"]
    assert main(argv) == 0
    assert (shared / "tiny_iter_2.caffemodel").is_file()
    assert main([*argv, "--restart"]) == 0
    assert all(p.read_bytes() == b"another job's snapshot" for p in others)


def test_synth_recording_overwrites_only_its_own_recording(tmp_path, capsys):
    mine = tmp_path / "field.wav"
    mine.write_bytes(b"RIFF a real night at sea")
    refused(capsys, ["synth-recording", mine, "--minutes", 0.1], "refusing to overwrite it")
    assert mine.read_bytes() == b"RIFF a real night at sea"
    ours = tmp_path / "synthetic.wav"
    for seed in ("1", "2"):  # the second run replaces the first's recording and truth
        assert main(["synth-recording", str(ours), "--minutes", "0.1", "--seed", seed]) == 0
    assert (tmp_path / "synthetic.wav.selections.txt").is_file()
