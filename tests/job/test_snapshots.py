"""Tests for upcall.job.snapshots: the one snapshot-name pattern and completeness rule, on real
files (a .caffemodel and .solverstate as Caffe writes them)."""

from __future__ import annotations

import pytest

from upcall.errors import UpcallError
from upcall.job import snapshots as sets
from upcall.proto import caffe_pb2


def _pair(folder, it, prefix="snapshot", *, cut=None):
    """A real set: a NetParameter .caffemodel and a SolverState .solverstate; ``cut`` names the
    member to leave empty."""
    net = caffe_pb2.NetParameter(name="tiny").SerializeToString()
    state = caffe_pb2.SolverState(iter=it, learned_net=f"{prefix}_iter_{it}.caffemodel")
    for suffix, data in ((".caffemodel", net), (".solverstate", state.SerializeToString())):
        (folder / f"{prefix}_iter_{it}{suffix}").write_bytes(b"" if suffix == cut else data)


def test_find_by_iteration_and_prefix(tmp_path):
    for name in (
        "snapshot_iter_10.caffemodel",
        "snapshot_iter_2.caffemodel",
        "snapshot_iter_2.solverstate",
        "snapshot_iter_x.caffemodel",
        "other_iter_5.caffemodel",
        "snapshot_iter_3.caffemodel.tmp",
    ):
        (tmp_path / name).write_bytes(b"")
    assert sets.find(tmp_path) == {
        2: tmp_path / "snapshot_iter_2.caffemodel",
        10: tmp_path / "snapshot_iter_10.caffemodel",
    }
    assert list(sets.find(tmp_path, prefix=None)) == [2, 5, 10]
    assert sets.find(tmp_path, suffix=".solverstate") == {
        2: tmp_path / "snapshot_iter_2.solverstate"
    }
    assert [p.name for p in sets.members(tmp_path, "other")] == ["other_iter_5.caffemodel"]
    assert sets.iteration_of("snap_iter_7.rng.pt") == 7
    assert sets.iteration_of("snapshot_iter_3.caffemodel.tmp") is None


def test_one_name_pattern(tmp_path):
    job = sets.Prefix(tmp_path / "snap")
    assert sets.path(job, 12, ".rng.pt") == tmp_path / "snap_iter_12.rng.pt"
    assert sets.name("snapshot", 4, ".caffemodel") == "snapshot_iter_4.caffemodel"


def test_a_set_is_complete_only_whole(tmp_path):
    job = sets.Prefix(tmp_path / "snapshot")
    _pair(tmp_path, 2)
    _pair(tmp_path, 4)
    _pair(tmp_path, 6, cut=".caffemodel")  # Caffe killed while writing
    (tmp_path / "snapshot_iter_8.caffemodel").write_bytes(b"x")  # no .solverstate yet
    assert sets.iterations(job) == [2, 4, 6, 8]
    assert sets.incomplete(job, 8) == "snapshot_iter_8.solverstate is missing"
    assert sets.incomplete(job, 6) == "snapshot_iter_6.caffemodel is empty"
    assert sets.incomplete(job, 4) is None
    assert sets.complete(job) == {
        2: tmp_path / "snapshot_iter_2.caffemodel",
        4: tmp_path / "snapshot_iter_4.caffemodel",
    }
    assert sets.complete_names(job) == ["snapshot_iter_2.caffemodel", "snapshot_iter_4.caffemodel"]
    assert sets.latest_complete(job) == 4
    sets.remove_after(job, 4)
    assert sets.iterations(job) == [2, 4]


def test_a_corrupt_solverstate_is_incomplete(tmp_path, capsys):
    job = sets.Prefix(tmp_path / "snapshot")
    _pair(tmp_path, 3)
    _pair(tmp_path, 5)
    (tmp_path / "snapshot_iter_5.solverstate").write_bytes(b"\xff\xff\xff")
    assert sets.incomplete(job, 5) == "snapshot_iter_5.solverstate is cut short or corrupt"
    assert sets.latest_complete(job, warn=True) == 3
    assert "snapshot 5 is incomplete" in capsys.readouterr().err


def test_write_set_renames_into_place_caffemodel_last(tmp_path):
    job = sets.Prefix(tmp_path / "snapshot")
    order = []

    def writer(data):
        def write(path):
            path.write_bytes(data)
            order.append(path.name)

        return write

    state = caffe_pb2.SolverState(iter=1).SerializeToString()
    net = caffe_pb2.NetParameter(name="n").SerializeToString()
    sets.write_set(
        job,
        1,
        {".caffemodel": writer(net), ".solverstate": writer(state), ".rng.pt": writer(b"rng")},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "snapshot_iter_1.caffemodel",
        "snapshot_iter_1.rng.pt",
        "snapshot_iter_1.solverstate",
    ]
    assert all(n.startswith(".snapshot_iter_1.") for n in order)  # under temporary names
    assert ".caffemodel" in order[-1]  # the model last
    assert sets.latest_complete(job) == 1

    def fail(path):
        raise OSError(28, "No space left on device")

    with pytest.raises(UpcallError, match=r"snapshot_iter_2\.caffemodel: cannot write"):
        sets.write_set(job, 2, {".caffemodel": fail, ".solverstate": writer(state)})
    assert sets.iterations(job) == [1]  # nothing of set 2 under a final name
