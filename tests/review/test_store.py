"""The review's store: VERIFIED tables named by the pairing rule, verdicts written at once and
merged with the disk, reopening continues, two writers lose no row, bad input is one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.review.detections import RELS, make_detections
from upcall.audio import pairing, raven, stream
from upcall.errors import UpcallError
from upcall.review.store import LOCK, Store, listed, ordered, revision


@pytest.fixture(scope="module")
def dets(tmp_path_factory):
    return make_detections(tmp_path_factory.mktemp("review"))


def cells(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]


def test_tables_recordings_and_the_verified_names(dets, tmp_path):
    store = Store([dets.det], tmp_path / "v")
    assert store.problems == []
    # the combined detections.txt beside detect.json is passed over: each detection once
    assert [r.rel for r in store.recordings] == list(RELS)
    assert [len(r.selections) for r in store.recordings] == [len(dets.tables[r]) for r in RELS]
    assert [r.audio for r in store.recordings] == [dets.audio / r for r in RELS]
    assert store.verified_table(store.recordings[0]) == tmp_path / "v/site1/a.wav.selections.txt"
    assert len(listed(store, threshold=0.5)) == dets.reviewed
    assert len(listed(store, threshold=0.0)) == sum(map(len, dets.tables.values()))


def test_a_verdict_is_written_at_once_and_reopening_continues(dets, tmp_path):
    out = tmp_path / "v"
    store = Store([dets.det], out)
    rec = store.recordings[1]
    new, before = store.save(rec, 0, "yes", "faint\tbut\nclear", revision("", ""))
    assert before is None and new == revision("yes", "faint but clear")
    store.save(rec, 2, "no", "", None)
    path = out / "site2/b.wav.selections.txt"
    rows = cells(path)
    # the detection table, row for row, plus Verified and Note
    assert list(rows[0])[-2:] == ["Verified", "Note"]
    assert [r["Score"] for r in rows] == [f"{s.score:.6f}" for s in dets.tables["site2/b.wav"]]
    assert [(r["Verified"], r["Note"]) for r in rows][:3] == [
        ("yes", "faint but clear"), ("", ""), ("no", "")]  # fmt: skip
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp, no lock
    assert not (out / LOCK).exists()
    # the pairing rule finds it as truth of that recording: its yes rows
    table = raven.read(path)
    assert table.kind == "truth" and len(table.truth()) == 1
    found = pairing.pair(stream.find_recordings([dets.audio]), pairing.find_tables([out]),
                         truth=True)  # fmt: skip
    assert [(a.rel.as_posix(), len(a.selections)) for a in found] == [("site2/b.wav", 1)]
    again = Store([dets.det], out)
    assert again.recordings[1].verdicts[:3] == ["yes", "", "no"]
    assert again.recordings[1].notes[0] == "faint but clear"


def test_two_tabs_last_write_wins_with_the_earlier_verdict_said(dets, tmp_path):
    store = Store([dets.det], tmp_path / "v")
    rec = store.recordings[0]
    loaded = revision("", "")  # both tabs loaded the row before any verdict
    store.save(rec, 1, "yes", "tab one", loaded)
    _, before = store.save(rec, 1, "no", "", loaded)
    assert before == ("yes", "tab one")  # the second tab is told what it replaced
    assert rec.verdicts[1] == "no"
    _, before = store.save(rec, 1, "unsure", "", revision("no", ""))  # up to date: no warning
    assert before is None


def test_two_servers_on_one_folder_lose_no_row(dets, tmp_path):
    out = tmp_path / "v"
    a, b = Store([dets.det], out), Store([dets.det], out)
    a.save(a.recordings[0], 0, "yes", "", None)
    b.save(b.recordings[0], 1, "no", "", None)  # b never saw a's verdict, but keeps it
    assert [r["Verified"] for r in cells(out / "site1/a.wav.selections.txt")][:2] == ["yes", "no"]


def test_bad_tables_and_missing_audio_are_one_line_each(dets, tmp_path):
    det, audio = tmp_path / "det", tmp_path / "audio"
    shutil.copytree(dets.det, det)
    shutil.copytree(dets.audio, audio)
    table = det / "site1/a.wav.detections.txt"
    table.write_text(table.read_text().replace("0.700000", "high", 1))
    (det / "notes.txt").write_text("not a table\n")
    (audio / "site2/b.wav").unlink()
    store = Store([det], tmp_path / "v", audio_root=audio)  # --audio: the archive moved
    assert len(store.problems) == 2, store.problems
    assert f"{table}:2: column 'Score'" in store.problems[0]
    assert store.problems[1].startswith(f"{audio / 'site2/b.wav'}: missing audio")
    assert all("\n" not in p for p in store.problems)
    [rec] = store.recordings  # the bad table is left out, the other still reviewed
    assert rec.audio is None and rec.problem == store.problems[1]


def test_an_unreadable_verified_table_is_kept_not_replaced(dets, tmp_path):
    out = tmp_path / "v"
    (out / "site1").mkdir(parents=True)
    bad = out / "site1/a.wav.selections.txt"
    bad.write_text("Begin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\nx\t1\t2\t3\n")
    store = Store([dets.det], out)
    rec = store.recordings[0]
    assert not rec.writable and "not continued" in rec.problem and str(bad) in rec.problem
    with pytest.raises(UpcallError, match="not continued"):
        store.save(rec, 0, "yes", "", None)
    assert bad.read_text().startswith("Begin Time (s)\tEnd")
    with pytest.raises(UpcallError, match="verdict must be one of"):
        store.save(store.recordings[1], 0, "maybe", "", None)


def test_orders(dets, tmp_path):
    store = Store([dets.det], tmp_path / "v")
    items = listed(store, threshold=0.5)

    def sel(it):
        return store.recordings[it.rec].selections[it.row]

    scores = [sel(it).score for it in ordered(store, items, "score", 0)]
    assert scores == sorted(scores, reverse=True)
    clocks = [sel(it).clock for it in ordered(store, items, "time", 0)]
    assert clocks == sorted(clocks)
    shuffled = ordered(store, items, "random", 3)
    assert shuffled == ordered(store, items, "random", 3) and sorted(
        shuffled, key=items.index) == items  # fmt: skip
    assert shuffled != ordered(store, items, "random", 4)
