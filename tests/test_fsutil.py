import pytest

from upcall.errors import BatchFailed, BatchReport
from upcall.fsutil import atomic_dir, atomic_path, atomic_write_text


def test_atomic_path_renames_only_on_success(tmp_path):
    final = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(final, "whole")
    assert final.read_text() == "whole"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_replaces_old_and_cleans_up_on_failure(tmp_path):
    final = tmp_path / "db"
    with atomic_dir(final) as d:
        (d / "a").write_text("1")
    with pytest.raises(KeyError), atomic_dir(final) as d:
        (d / "b").write_text("2")
        raise KeyError("interrupted")
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    with atomic_dir(final) as d:
        (d / "c").write_text("3")
    assert sorted(p.name for p in final.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["db"]


def test_batch_report_prints_each_failure_and_summarises(capsys):
    report = BatchReport("clips")
    report.ok(3)
    report.fail("a.aiff", "empty file")
    with pytest.raises(BatchFailed, match="1 of 4 clips failed"):
        report.finish()
    assert capsys.readouterr().err == "a.aiff: empty file\n"
    BatchReport("clips").finish()  # nothing failed: no error
    report = BatchReport("clips")
    report.record("b.aiff", None)
    report.record("c.aiff", "stereo")
    assert (report.done, report.failures) == (1, [("c.aiff", "stereo")])


def test_read_json_is_none_when_missing_and_one_line_errors_otherwise(tmp_path):
    from upcall.errors import UpcallError
    from upcall.fsutil import read_json

    path = tmp_path / "settings.json"
    assert read_json(path) is None
    path.write_text('{"seed": 3}')
    assert read_json(path) == {"seed": 3}
    for content, problem in (
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object, found list"),
    ):
        path.write_bytes(content)
        with pytest.raises(UpcallError, match=f"settings.json: {problem}"):
            read_json(path)


def test_check_own_dir_allows_only_the_same_commands_folder(tmp_path):
    from upcall.errors import UpcallError
    from upcall.fsutil import OWN_MARK, check_own_dir, mark_own_dir

    out = tmp_path / "out"
    check_own_dir(out, kind="lmdb")  # missing: nothing to lose
    out.mkdir()
    check_own_dir(out, kind="lmdb")  # empty
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UpcallError, match=f"not a folder made by upcall lmdb .*{OWN_MARK}"):
        check_own_dir(out, kind="lmdb")
    check_own_dir(out, kind="lmdb", legacy=["notes.txt"])  # an older upcall's manifest proves it
    mark_own_dir(out, "synth")
    with pytest.raises(UpcallError, match="made by upcall synth, not by upcall lmdb"):
        check_own_dir(out, kind="lmdb", legacy=["notes.txt"])
    check_own_dir(out, kind="synth")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UpcallError, match="not a folder"):
        check_own_dir(tmp_path / "file", kind="synth")


def test_check_own_dir_never_allows_a_folder_that_is_or_holds_an_input(tmp_path):
    from upcall.errors import UpcallError
    from upcall.fsutil import check_own_dir, mark_own_dir

    data = tmp_path / "data"
    mark_own_dir(data, "baseline")  # even a folder the command made
    (data / "lists").mkdir()
    (tmp_path / "link").symlink_to(data)
    for out, problem in (
        (data, "is an input"),
        (tmp_path / "link", "is an input"),  # after symlinks
        (tmp_path, f"holds {data}, an input"),
    ):
        with pytest.raises(UpcallError, match=problem):
            check_own_dir(out, kind="baseline", inputs=[data])
    with pytest.raises(UpcallError, match=f"holds {data / 'lists'}, an input"):
        check_own_dir(data, kind="baseline", inputs=[data / "lists"])
    check_own_dir(data / "job", kind="baseline", inputs=[data / "lists"])  # inside DATA is fine


def test_atomic_dir_with_a_kind_checks_first_and_marks_its_folder(tmp_path):
    from upcall.errors import UpcallError
    from upcall.fsutil import OWN_MARK

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    ran = []
    with pytest.raises(UpcallError, match="not a folder made by upcall export"):
        with atomic_dir(mine, kind="export") as d:
            ran.append(d)
    assert not ran and (mine / "notes.txt").read_text() == "keep"
    with atomic_dir(tmp_path / "out", kind="export") as d:
        (d / "a").write_text("1")
    assert (tmp_path / "out" / OWN_MARK).read_text() == "export\n"
    with atomic_dir(tmp_path / "out", kind="export") as d:  # its own: replaced
        (d / "b").write_text("2")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [OWN_MARK, "b"]


def test_a_symlink_loop_or_unreadable_file_says_why(tmp_path):
    import errno

    from upcall.fsutil import why_unreadable

    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    with pytest.raises(OSError) as raised:
        atomic_write_text(loop / "x.txt", "x")  # mkdir alone would say "File exists"
    assert raised.value.errno == errno.ELOOP
    assert why_unreadable(loop) == "Too many levels of symbolic links"
    assert why_unreadable(tmp_path / "missing") == "No such file or directory"
    (tmp_path / "ok").write_text("x")
    assert why_unreadable(tmp_path / "ok") is None
