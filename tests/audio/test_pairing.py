"""The one rule pairing selection tables with recordings, on real WAV files and Raven-style text:
the four name patterns, parallel folder trees, file sequences (Begin File, Begin Path), ambiguous
names, and the one-line errors naming table and row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from upcall.audio import stream
from upcall.audio.pairing import TABLE_PATTERNS, find_tables, pair, table_recording
from upcall.audio.raven import Selection, write_table
from upcall.errors import UpcallError

RATE = 2000


def wav(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * RATE), np.int16), RATE, subtype="PCM_16")
    return path


def box(begin: float, end: float, label: str = "upcall", **kw) -> Selection:
    return Selection(begin, end, 50.0, 250.0, label, **kw)


def raven_text(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """As Raven on Windows writes it: BOM, CRLF, a trailing tab on every line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(cells) + "\t" for cells in [header, *rows]]
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode("utf-8"))
    return path


def spans(annotations) -> dict[str, list[tuple[float, float, str]]]:
    return {str(a.rel): [(s.begin_s, s.end_s, s.label) for s in a.selections] for a in annotations}


@pytest.mark.parametrize(
    ("name", "rec"),
    [("rec.Table.1.selections.txt", "rec"), ("rec.selections.txt", "rec"),
     ("rec.wav.selections.txt", "rec"), ("rec.flac.detections.txt", "rec"),
     ("a.b.Table.12.selections.txt", "a.b"), ("notes.txt", None), ("rec.wav.txt", None)],
)  # fmt: skip
def test_table_names(name, rec):
    assert table_recording(name) == rec
    assert len(TABLE_PATTERNS) == 4


def test_four_patterns_in_a_parallel_tree_and_beside_the_recordings(tmp_path):
    recs, tabs = tmp_path / "recs", tmp_path / "tables"
    for site in ("site1", "site2"):
        for n in ("a", "b", "c", "d"):
            wav(recs / site / f"{n}.wav", 30)
    for site, at in (("site1", 1.0), ("site2", 2.0)):
        write_table(tabs / site / "a.Table.1.selections.txt", [box(at, at + 1)])
        write_table(tabs / site / "a.Table.2.selections.txt", [box(at + 10, at + 11, "moan")])
        write_table(tabs / site / "b.selections.txt", [box(at + 2, at + 3)])
        write_table(recs / site / "c.wav.selections.txt", [box(at + 3, at + 4)])
        write_table(recs / site / "d.wav.detections.txt", [box(at + 4, at + 5, score=0.9)])
    (tabs / "site1" / "notes.txt").write_text("not a table\n")
    tables = find_tables([tabs, recs])
    assert [str(rel) for _, rel in tables if rel.parts[0] == "tables"][:3] == [
        "tables/site1/a.Table.1.selections.txt",
        "tables/site1/a.Table.2.selections.txt",
        "tables/site1/b.selections.txt",
    ]
    # parallel trees: the tables' paths under TABLES equal the recordings' under RECS
    got = pair(stream.find_recordings([recs]), find_tables([tabs]) + find_tables([recs]))
    assert spans(got) == {
        "site1/a.wav": [(1.0, 2.0, "upcall"), (11.0, 12.0, "moan")],
        "site1/b.wav": [(3.0, 4.0, "upcall")],
        "site1/c.wav": [(4.0, 5.0, "upcall")],
        "site1/d.wav": [(5.0, 6.0, "upcall")],
        "site2/a.wav": [(2.0, 3.0, "upcall"), (12.0, 13.0, "moan")],
        "site2/b.wav": [(4.0, 5.0, "upcall")],
        "site2/c.wav": [(5.0, 6.0, "upcall")],
        "site2/d.wav": [(6.0, 7.0, "upcall")],
    }
    a = got[0]
    assert [t.name for t in a.tables] == ["a.Table.1.selections.txt", "a.Table.2.selections.txt"]
    assert a.where(1) == f"{tabs / 'site1' / 'a.Table.2.selections.txt'}:2"


def test_a_file_sequence_is_split_by_file(tmp_path):
    """Raven's table over two files: Begin Time from the sequence start, two views per selection,
    a Tags column, Begin File + File Offset; one selection by an absolute Windows Begin Path."""
    recs = tmp_path / "recs"
    first, second = wav(recs / "dep1" / "x_0000.wav", 60), wav(recs / "dep1" / "x_0100.wav", 60)
    wav(recs / "dep1" / "unannotated.wav", 10)
    header = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
              "High Freq (Hz)", "Delta Time (s)", "Begin File", "Begin Path", "File Offset (s)",
              "Tags"]  # fmt: skip
    rows = []
    for n, (b, e, file, path, offset, tag) in enumerate([
        (10.0, 11.5, "x_0000.wav", "", "10", "upcall"),
        (70.25, 71.0, "x_0100.wav", "", "10.25", "humpback"),
        (119.0, 120.0, "", r"D:\field\dep1\x_0100.wav", "59", '"up, faint"'),
    ], start=1):  # fmt: skip
        for view in ("Waveform 1", "Spectrogram 1"):
            rows.append([str(n), view, "1", f"{b}", f"{e}", "40", "260", f"{e - b}", file, path,
                         offset, tag])  # fmt: skip
    table = raven_text(tmp_path / "tables" / "dep1" / "x_0000.Table.1.selections.txt", header, rows)
    got = pair(stream.find_recordings([recs]), find_tables([tmp_path / "tables"]))
    assert [a.recording for a in got] == [first, second]
    assert spans(got) == {
        "dep1/x_0000.wav": [(10.0, 11.5, "upcall")],
        "dep1/x_0100.wav": [(10.25, 11.0, "humpback"), (59.0, 60.0, "up, faint")],
    }
    assert got[1].where(0) == f"{table}:4" and got[1].tables == [table]
    # a selection past the end of its file: one line naming the table and row
    rows[-1][10] = rows[-2][10] = "59.5"
    raven_text(table, header, rows)
    with pytest.raises(UpcallError) as info:
        pair(stream.find_recordings([recs]), find_tables([tmp_path / "tables"]))
    assert f"{table}:6:" in str(info.value) and "outside dep1/x_0100.wav (60 s long)" in str(
        info.value
    )


def test_ambiguous_begin_file_prefers_the_tables_own_folder(tmp_path):
    recs = tmp_path / "recs"
    for site in ("site1", "site2"):
        wav(recs / site / "rec.wav", 20)
    seq = [box(100.0, 101.0, begin_file="rec.wav", file_offset_s=3.0)]
    write_table(tmp_path / "tabs" / "site2" / "all.txt", seq)
    write_table(tmp_path / "tabs" / "flat.txt", seq)
    recordings = stream.find_recordings([recs])
    got = pair(recordings, [(tmp_path / "tabs" / "site2" / "all.txt", Path("site2/all.txt"))])
    assert spans(got) == {"site2/rec.wav": [(3.0, 4.0, "upcall")]}
    with pytest.raises(UpcallError) as info:
        pair(recordings, [(tmp_path / "tabs" / "flat.txt", Path("flat.txt"))])
    message = str(info.value)
    assert "flat.txt:2: Begin File 'rec.wav' names several recordings" in message
    assert "site1/rec.wav" in message and "\n" not in message


def test_unique_names_pair_across_layouts_and_empty_tables_count(tmp_path):
    """Tables in one flat folder for recordings in deployment folders: unique names pair; a
    table without selections still says its recording was checked; reviewed rows with truth."""
    recs = tmp_path / "recs"
    wav(recs / "dep1" / "a_20260301_000000.wav", 20)
    wav(recs / "dep2" / "b_20260302_000000.wav", 20)
    flat = tmp_path / "flat"
    write_table(flat / "a_20260301_000000.Table.1.selections.txt", [])
    write_table(
        flat / "b_20260302_000000.wav.selections.txt",
        [box(1, 2, extra=(("Verified", "yes"),)), box(5, 6, extra=(("Verified", "no"),))],
    )
    recordings, tables = stream.find_recordings([recs]), find_tables([flat])
    assert spans(pair(recordings, tables)) == {
        "dep1/a_20260301_000000.wav": [],
        "dep2/b_20260302_000000.wav": [(1.0, 2.0, "upcall"), (5.0, 6.0, "upcall")],
    }
    assert spans(pair(recordings, tables, truth=True))["dep2/b_20260302_000000.wav"] == [
        (1.0, 2.0, "upcall")
    ]


def test_errors_name_the_table_and_row(tmp_path):
    recs = tmp_path / "recs"
    wav(recs / "rec.wav", 10)
    recordings = stream.find_recordings([recs])

    def error(name: str, selections, **kw) -> str:
        path = tmp_path / "t" / name
        write_table(path, selections)
        with pytest.raises(UpcallError) as info:
            pair(recordings, [(path, Path(name))], **kw)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        return str(info.value)

    assert "names no recording" in error("summary.txt", [box(1, 2)])
    assert "names no recording given (other.*)" in error("other.selections.txt", [box(1, 2)])
    assert ":3: selection 2 at 9.5–10.5 s lies outside rec.wav (10 s long)" in error(
        "rec.selections.txt", [box(1, 2), box(9.5, 10.5)]
    )
    got = error("rec.Table.1.selections.txt", [box(1, 2)], label_column="Species")
    assert "no label column 'Species'" in got and "'Annotation'" in got
    got = error("seq.txt", [box(1, 2, begin_file="rec.wav"), box(3, 4, begin_file="x.wav")])
    assert "no 'File Offset (s)' column" in got
    got = error("seq2.txt", [box(1, 2, begin_file="gone.wav", file_offset_s=1.0)])
    assert "seq2.txt:2: Begin File 'gone.wav' names no recording given" in got
    with pytest.raises(UpcallError, match="no selection tables"):
        find_tables([recs])


def test_with_a_report_a_bad_recording_is_left_out(tmp_path, capsys):
    from upcall.errors import BatchReport

    recs = tmp_path / "recs"
    wav(recs / "good.wav", 10)
    (recs / "bad.wav").write_bytes(b"not audio")
    wav(recs / "short.wav", 2)
    for name in ("good", "bad", "short"):
        write_table(tmp_path / "t" / f"{name}.selections.txt", [box(1, 3)])
    recordings, tables = stream.find_recordings([recs]), find_tables([tmp_path / "t"])
    with pytest.raises(UpcallError, match="not readable audio"):
        pair(recordings, tables)
    report = BatchReport("recordings")
    assert [a.recording.name for a in pair(recordings, tables, report=report)] == ["good.wav"]
    assert [(Path(item).name, "outside" in why) for item, why in report.failures] == [
        ("bad.wav", False), ("short.wav", True)
    ]  # fmt: skip
    assert "short.selections.txt:2: selection 1 at 1–3 s" in capsys.readouterr().err


def test_tables_in_a_subfolder_beside_the_audio(tmp_path):
    """recs/siteN/selections/rec.Table.1.selections.txt: each table names the rec.wav of its
    own site, the one nearest its folder."""
    recs = tmp_path / "recs"
    for site, at in (("site1", 1.0), ("site2", 2.0)):
        wav(recs / site / "rec.wav", 10)
        write_table(recs / site / "selections" / "rec.Table.1.selections.txt", [box(at, at + 1)])
    got = pair(stream.find_recordings([recs]), find_tables([recs]))
    assert spans(got) == {"site1/rec.wav": [(1.0, 2.0, "upcall")],
                          "site2/rec.wav": [(2.0, 3.0, "upcall")]}  # fmt: skip


def test_one_recording_named_by_two_paths_or_two_formats_is_an_error(tmp_path):
    recs = tmp_path / "recs"
    wav(recs / "site1" / "rec.wav", 10)
    tabs = tmp_path / "tabs"
    write_table(tabs / "site1" / "rec.selections.txt", [box(1, 2)])
    write_table(tabs / "site3" / "rec.selections.txt", [box(3, 4)])
    # one recording given as a file: either table's path ends with its name "rec"...
    one = stream.find_recordings([recs / "site1" / "rec.wav"])
    with pytest.raises(UpcallError, match=r"name rec\.wav by different paths"):
        pair(one, find_tables([tabs]))
    # ...while in parallel trees site3's table never pairs with site1's recording
    with pytest.raises(UpcallError, match=r"site3/rec\.selections\.txt: its name names no rec"):
        pair(stream.find_recordings([recs]), find_tables([tabs]))
    wav(recs / "site1" / "rec.flac", 10)
    with pytest.raises(UpcallError, match=r"names several recordings \(site1/rec.flac, site1/rec"):
        pair(stream.find_recordings([recs]), find_tables([tabs / "site1"]))


def test_a_reviewed_table_gives_its_yes_rows_or_with_no_rows_every_verdict(tmp_path):
    from upcall.audio.raven import verdict

    rec = wav(tmp_path / "audio" / "site1" / "rec.wav", 30.0)
    cells = ["yes", "no", "unsure", ""]
    write_table(
        tmp_path / "verified" / "site1" / "rec.wav.selections.txt",
        [box(2.0 + 5 * i, 3.0 + 5 * i, score=0.9, extra=(("Verified", v),) if v else ())
         for i, v in enumerate(cells)],
        scores=True,
    )  # fmt: skip
    recordings = stream.find_recordings([tmp_path / "audio"])
    tables = find_tables([tmp_path / "verified"])
    (truth,) = pair(recordings, tables, truth=True)
    assert truth.recording == rec and [s.begin_s for s in truth.selections] == [2.0]
    (every,) = pair(recordings, tables, truth=True, no_rows=True)
    assert [verdict(s) for s in every.selections] == ["yes", "no", "unsure", "unsure"]
    assert dict(every.selections[3].extra)["Verified"] == "unreviewed"
    assert [s.row for s in every.selections] == [2, 3, 4, 5]
