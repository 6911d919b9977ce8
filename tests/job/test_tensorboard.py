"""``--tensorboard DIR``: real event files from a real tiny training, read back with
tensorboard's own EventAccumulator and compared with metrics.jsonl."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.engines.test_train import SOLVER, make_job
from upcall.cli import build_parser, main
from upcall.engines import get_engine, options_from_args
from upcall.errors import UpcallError
from upcall.job.records import read_metrics
from upcall.job.tensorboard import EVENTS_GLOB, record_scalars


def events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in ``folder``'s event files: tag -> [(step, value)] in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def expected(job: Path) -> dict[str, list[tuple[int, float]]]:
    """metrics.jsonl as the same tag -> [(step, value)], in float32 as event files hold it."""
    out: dict[str, list[tuple[int, float]]] = {}
    for record in read_metrics(job):
        for tag, value in record_scalars(record).items():
            out.setdefault(tag, []).append((record.iter, float(np.float32(value))))
    return out


def test_train_writes_the_metrics_as_tensorboard_scalars(tmp_path, capsys):
    job = make_job(tmp_path)
    board = tmp_path / "board"
    assert main(["train", str(job), "--threads", "1", "--tensorboard", str(board)]) == 0
    found = events(board / job.name)
    assert found == expected(job)
    assert {"train/loss", "train/lr", "val/loss", "val/accuracy", "val/auc"} <= set(found)
    assert {"val/recall/not-whale", "val/recall/whale"} <= set(found)
    assert [step for step, _ in found["val/auc"]] == [0, 5, 10]  # test_interval 5


def test_real_caffe_engine_writes_the_same_scalars(tmp_path, caffe):
    job = make_job(tmp_path, max_iter=6)
    board = tmp_path / "board"
    get_engine("caffe", threads=1, tensorboard=board).train(job)
    found = events(board / job.name)
    assert found == expected(job)
    assert {"train/loss", "val/auc"} <= set(found)  # the loop scored Caffe's snapshots


def test_resume_and_restart_keep_one_history(tmp_path):
    job = make_job(tmp_path, max_iter=6)
    board = tmp_path / "board"
    get_engine("torch", threads=1, tensorboard=board).train(job)
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=12))
    get_engine("torch", threads=1, tensorboard=board).train(job, resume=True)
    # the resumed run replays the records it keeps into one new file: no repeated steps
    assert len(list((board / job.name).glob(EVENTS_GLOB))) == 1
    assert events(board / job.name) == expected(job)
    (job / "solver.prototxt").write_text(SOLVER.format(max_iter=4))
    get_engine("torch", threads=1, tensorboard=board).train(job, restart=True)
    assert events(board / job.name) == expected(job)
    assert max(step for step, _ in events(board / job.name)["train/loss"]) < 4


def test_tensorboard_is_an_option_of_train_and_sweep():
    for command, required in (("train", ["JOB"]), ("sweep", ["--dataset", "D", "--out", "J"])):
        args = build_parser(command).parse_args(
            [command, *required, "--tensorboard", "tb", "--engine", "caffe"]
        )
        assert options_from_args(args).tensorboard == Path("tb")


def test_missing_tensorboard_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    with pytest.raises(UpcallError, match=r"^--tensorboard needs the tensorboard package: pip"):
        get_engine("caffe", tensorboard=tmp_path)


def test_unwritable_folder_names_it(tmp_path):
    board = tmp_path / "board"
    board.write_text("a file, not a folder")
    job = make_job(tmp_path)
    with pytest.raises(UpcallError, match=rf"{board / job.name}: cannot write TensorBoard events"):
        get_engine("torch", threads=1, tensorboard=board).train(job)
