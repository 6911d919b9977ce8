"""Raven selection tables: exact text written, round trip, optional columns, malformed input."""

from __future__ import annotations

import pytest

from upcall.audio.raven import Selection, read_table, write_table
from upcall.errors import UpcallError

HEADER = (
    "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
    "High Freq (Hz)\tAnnotation"
)


def test_write_exact_text(tmp_path):
    path = tmp_path / "t.selections.txt"
    write_table(path, [Selection(1.5, 2.25, 60.0, 180.5, "upcall")])
    assert path.read_text() == (
        HEADER + "\n1\tSpectrogram 1\t1\t1.500000\t2.250000\t60.000000\t180.500000\tupcall\n"
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
    assert (tmp_path / "2.txt").read_text().splitlines()[0].endswith("Begin Path\tFile Offset (s)")


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
        (HEADER + "\n1\tSpectrogram 1\t1\t0.5\t1.0\t50\t250\n", ":2: expected 8"),
        (
            HEADER + "\n1\tSpectrogram 1\t1\t0.5\t1.0\t50\t250\tupcall\n"
            "2\tSpectrogram 1\t1\tsoon\t1.0\t50\t250\tupcall\n",
            ":3: column 'Begin Time (s)'",
        ),
        (HEADER + "\n1\tSpectrogram 1\t1\t2.0\t1.0\t50\t250\tupcall\n", ":2: selection must"),
        (HEADER + "\n1\tSpectrogram 1\t1\tnan\t1.0\t50\t250\tupcall\n", "not finite"),
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
