"""Raven selection tables: exact text written, round trip, optional columns, malformed input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from upcall.audio.raven import Selection, read_table, write_table
from upcall.errors import UpcallError

HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
    "High Freq (Hz)\tDelta Time (s)\tAnnotation"
)


def test_write_exact_text(tmp_path):
    path = tmp_path / "t.selections.txt"
    write_table(path, [Selection(1.5, 2.25, 60.0, 180.5, "upcall")])
    assert path.read_text() == (
        HEADER + "\n1\tSpectrogram 1\t1\t1.500000\t2.250000\t60.000000\t180.500000\t0.750000\t"
        "upcall\n"
    )


def test_round_trip_plain_scored_and_multi_file(tmp_path):
    plain = [Selection(0.0, 1.0, 50.0, 250.0), Selection(10.125, 11.5, 70.0, 150.0, "upcall")]
    scored = [
        Selection(3.0, 5.0, 50.0, 250.0, "upcall", score=0.875),
        Selection(7.0, 9.0, 50.0, 250.0, "upcall", score=None),
    ]
    multi = [
        Selection(
            3.0, 5.0, 50.0, 250.0, "upcall", score=0.5, begin_path="/d/a.wav", file_offset_s=1.25
        )
    ]
    for i, selections in enumerate((plain, scored, multi)):
        path = tmp_path / f"{i}.txt"
        write_table(path, selections)
        assert read_table(path) == selections
    assert "Score" in (tmp_path / "1.txt").read_text().splitlines()[0]
    assert "Score" not in (tmp_path / "0.txt").read_text().splitlines()[0]
    assert (
        (tmp_path / "2.txt")
        .read_text()
        .splitlines()[0]
        .endswith("Delta Time (s)\tBegin Path\tFile Offset (s)\tAnnotation\tScore")
    )


def test_empty_table_round_trips(tmp_path):
    write_table(tmp_path / "e.txt", [])
    assert (tmp_path / "e.txt").read_text() == HEADER + "\n"
    assert read_table(tmp_path / "e.txt") == []


def test_reads_columns_by_name_in_any_order(tmp_path):
    path = tmp_path / "raven.txt"
    path.write_text(
        "Selection\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin Time (s)\tEnd Time (s)\t"
        "Delta Time (s)\n1\t40\t90\t2\t3.5\t1.5\n"
    )
    assert read_table(path) == [Selection(2.0, 3.5, 40.0, 90.0, "")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("Selection\tBegin Time (s)\n1\t2\n", "missing column"),
        (HEADER + "\n1\tSpectrogram 1\t1\t0.5\t1.0\t50\t250\t0.5\n", ":2: expected 9"),
        (
            HEADER + "\n1\tSpectrogram 1\t1\t0.5\t1.0\t50\t250\t0.5\tupcall\n"
            "2\tSpectrogram 1\t1\tsoon\t1.0\t50\t250\t0.5\tupcall\n",
            ":3: column 'Begin Time (s)'",
        ),
        (HEADER + "\n1\tSpectrogram 1\t1\t2.0\t1.0\t50\t250\t1\tup\n", ":2: selection must"),
        (HEADER + "\n1\tSpectrogram 1\t1\tnan\t1.0\t50\t250\t1\tup\n", "not finite"),
    ],
)
def test_malformed_table_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(UpcallError) as info:
        read_table(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UpcallError, match="cannot read"):
        read_table(tmp_path / "absent.txt")


def test_selection_rejects_inverted_box():
    with pytest.raises(ValueError, match="begin <= end"):
        Selection(2.0, 1.0, 50.0, 250.0)


@pytest.mark.parametrize("bad", ["a\tb.aiff", "a\nb.aiff"])
def test_selection_rejects_tabs_and_newlines_in_label_and_begin_path(bad):
    with pytest.raises(ValueError, match="selection label must not contain tabs or newlines"):
        Selection(1.0, 2.0, 50.0, 250.0, bad)
    with pytest.raises(ValueError, match="selection begin path must not contain tabs or newlines"):
        Selection(1.0, 2.0, 50.0, 250.0, begin_path=bad, file_offset_s=0.0)


def test_two_views_count_once_and_a_verified_column_makes_truth(tmp_path):
    from upcall.audio.raven import read

    path = tmp_path / "raven.txt"
    path.write_text(
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
        "High Freq (Hz)\tScore\tVerified\n"
        "1\tWaveform 1\t1\t2\t3\t50\t250\t0.9\tyes\n"
        "1\tSpectrogram 1\t1\t2\t3\t50\t250\t0.9\tyes\n"
        "2\tWaveform 1\t1\t5\t6\t50\t250\t0.7\tno\n"
        "2\tSpectrogram 1\t1\t5\t6\t50\t250\t0.7\tno\n"
    )
    table = read(path)
    assert [s.begin_s for s in table.selections] == [2.0, 5.0]
    assert table.kind == "truth" and [s.begin_s for s in table.truth()] == [2.0]
    write_table(tmp_path / "d.txt", [Selection(1, 2, 50, 250, score=0.5)])
    write_table(tmp_path / "t.txt", [Selection(1, 2, 50, 250)])
    assert (read(tmp_path / "d.txt").kind, read(tmp_path / "t.txt").kind) == ("detections", "truth")


RAVEN = (
    "\ufeffSelection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
    "High Freq (Hz)\tDelta Time (s)\tBegin File\tFile Offset (s)\tBegin Date\tBegin Clock Time\t"
    "Tags\tNote\t\r\n"
    "1\tWaveform 1\t1\t12.5\t13.75\t0\t1000\t1.25\trec_20260301_120000.wav\t12.5\t2026/03/01\t"
    '12:00:12.500\tupcall\t"first, clear"\t\r\n'
    "1\tSpectrogram 1\t1\t12.5\t13.75\t55\t240\t1.25\trec_20260301_120000.wav\t12.5\t2026/03/01\t"
    '12:00:12.500\tupcall\t"first, clear"\t\r\n'
    "2\tWaveform 1\t2\t70\t72.25\t0\t1000\t2.25\trec_20260301_120000.wav\t70\t2026/03/01\t"
    "12:01:10.000+02:00\thumpback\t\t\r\n"
    "\t\t\t\r\n"
)


def test_reads_raven_as_raven_writes_it(tmp_path):
    from datetime import UTC, datetime, timedelta, timezone

    from upcall.audio.raven import read

    path = tmp_path / "rec.Table.1.selections.txt"
    path.write_bytes(RAVEN.encode("utf-8"))
    table = read(path)
    first, second = table.selections
    assert (first.begin_s, first.end_s, first.low_hz, first.high_hz) == (12.5, 13.75, 0.0, 1000.0)
    assert (first.label, first.begin_file, first.file_offset_s) == (
        "upcall", "rec_20260301_120000.wav", 12.5
    )  # fmt: skip
    assert first.clock == datetime(2026, 3, 1, 12, 0, 12, 500000, tzinfo=UTC)
    assert second.clock == datetime(2026, 3, 1, 12, 1, 10, tzinfo=timezone(timedelta(hours=2)))
    assert (first.number, first.row, second.number, second.row) == (1, 2, 2, 4)
    assert (first.channel, second.channel) == (1, 2)
    assert first.extra == (("Tags", "upcall"), ("Note", "first, clear"))
    assert second.extra == (("Tags", "humpback"),)  # an empty cell is no value
    assert table.label_column == "Tags" and table.labels() == {"upcall", "humpback"}
    assert read(path, label_column="Note").labels() == {"first, clear", ""}
    with pytest.raises(UpcallError) as info:
        read(path, label_column="Species")
    assert str(path) in str(info.value) and "'Tags'" in str(info.value)
    # written back and read again: the same selections (clock times included)
    write_table(tmp_path / "again.txt", table.selections)
    again = read(tmp_path / "again.txt")
    assert again.selections == table.selections and again.label_column == "Annotation"
    text = (tmp_path / "again.txt").read_text()
    assert "\t2026/03/01\t12:00:12.500\t" in text and "\t12:01:10.000+02:00\t" in text


def test_round_trip_of_every_column(tmp_path):
    from datetime import UTC, datetime, timedelta, timezone

    from upcall.audio.raven import read

    local = timezone(timedelta(hours=-3, minutes=-30))
    rows = [
        Selection(1.0, 2.5, 60, 200, "upcall", 0.75, "/d/a.wav", 1.0, begin_file="a.wav",
                  clock=datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), peak_s=1.75,
                  channel=2, extra=(("Verified", "yes"), ("Note", 'said "maybe"'))),
        Selection(3.0, 3.0, 60, 60, "", None, clock=datetime(2026, 1, 2, 3, 4, 5, tzinfo=local),
                  extra=(("Note", "x"),)),
    ]  # fmt: skip
    write_table(tmp_path / "t.txt", rows)
    table = read(tmp_path / "t.txt")
    assert table.selections == rows and table.verified == (True, False)
    assert table.columns[8:] == (
        "Begin File", "Begin Path", "File Offset (s)", "Begin Date", "Begin Clock Time",
        "Peak Score Time (s)", "Annotation", "Score", "Verified", "Note",
    )  # fmt: skip


def test_clock_cells_round_to_the_millisecond_into_the_next_day():
    from datetime import UTC, datetime

    from upcall.audio.raven import clock_cells

    assert clock_cells(datetime(2026, 12, 31, 23, 59, 59, 999600, tzinfo=UTC)) == (
        "2027/01/01", "00:00:00.000"
    )  # fmt: skip
    assert clock_cells(datetime(2026, 3, 4, 5, 6, 7, 89000, tzinfo=UTC)) == (
        "2026/03/04", "05:06:07.089"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("date", "clock", "message"),
    [("2026/13/01", "12:00:00", "no such date"), ("1 March", "12:00:00", "'Begin Date'"),
     ("2026/03/01", "noon", "'Begin Clock Time'")],
)  # fmt: skip
def test_bad_clock_cells_name_the_row(tmp_path, date, clock, message):
    path = tmp_path / "t.txt"
    path.write_text(
        "Begin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin Date\tBegin Clock Time\n"
        f"1\t2\t50\t250\t{date}\t{clock}\n"
    )
    with pytest.raises(UpcallError, match=message) as info:
        read_table(path)
    assert f"{path}:2:" in str(info.value)


def test_windows_1252_text_and_a_clock_time_without_date(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(
        "Begin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tBegin Clock Time\tSpecies\r\n"
        "1\t2\t50\t250\t12:00:01.000\tbaleine bleue \u00e9\r\n".encode("cp1252")
    )
    (s,) = read_table(path)
    assert s.label == "baleine bleue \u00e9" and s.clock is None
    assert s.extra == (("Species", "baleine bleue \u00e9"),)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_a_peer_reader_reads_every_row(tmp_path):
    """crowsetta's Raven format (a reader other tools use) reads every row of a detection table
    as upcall writes it: clock times, peak time, score, file-sequence columns and all."""
    from crowsetta.formats.bbox import Raven

    start = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)
    rows = [
        Selection(
            t,
            t + 0.8,
            60.0,
            210.0,
            score=0.9,
            begin_file="rec.wav",
            begin_path="/x/rec.wav",
            file_offset_s=t,
            clock=start + timedelta(seconds=t),
            peak_s=t + 0.4,
        )
        for t in (1.5, 40.25, 3599.0)
    ]
    write_table(tmp_path / "t.txt", rows, scores=True)
    boxes = Raven.from_file(tmp_path / "t.txt", annot_col="Annotation").to_bbox()
    assert [(b.onset, b.offset, b.low_freq, b.high_freq, b.label) for b in boxes] == [
        (s.begin_s, s.end_s, s.low_hz, s.high_hz, "upcall") for s in rows
    ]
