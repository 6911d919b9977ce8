"""`upcall evaluate` through the command on hand-made tables: truth and detections told apart by
content (swapped arguments, reviewed tables, tables of the other kind in a folder), recordings
matched by path under the folders given, Raven's two rows per selection, and its argument checks."""

from __future__ import annotations

import json

import pytest

from upcall.audio.raven import Selection, write_table
from upcall.cli import main
from upcall.detect.evaluate import Evaluation


def sel(begin, end, score=None):
    return Selection(begin, end, 50.0, 250.0, "upcall", score=score)


def evaluate(capsys, *args):
    """(exit status, stdout, stderr) of `upcall evaluate ARGS`."""
    code = main(["evaluate", *map(str, args)])
    done = capsys.readouterr()
    return code, done.out, done.err


def figures(out: str) -> dict[str, str]:
    """The `name: value` lines printed before the per-recording table."""
    return dict(line.split(": ", 1) for line in out.split("\n\n")[0].splitlines())


def one_line_error(err: str, *words: str) -> None:
    lines = [x for x in err.splitlines() if x.startswith("upcall evaluate: error: ")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert "Traceback" not in err


@pytest.fixture
def sites(tmp_path):
    """Two sites' recordings, both named rec.wav, each with its truth beside it, and detections
    (as `upcall detect` writes them) in a mirrored tree: site1's call at 10 s, site2's at 50 s."""
    recs, det = tmp_path / "recs", tmp_path / "det"
    for site, at in (("site1", 10.0), ("site2", 50.0)):
        (recs / site).mkdir(parents=True)
        write_table(recs / site / "rec.wav.selections.txt", [sel(at, at + 1)])
        write_table(det / site / "rec.wav.detections.txt", [sel(at - 0.5, at + 1.5, 0.9)])
    (det / "detect.json").write_text("{}")  # a detect output folder: detections.txt is combined
    combined = [
        Selection(at - 0.5, at + 1.5, 50.0, 250.0, "upcall", 0.9, str(recs / s / "rec.wav"), at)
        for s, at in (("site1", 10.0), ("site2", 50.0))
    ]
    write_table(det / "detections.txt", combined)
    return recs, det


def test_recordings_match_by_path_under_the_roots(sites, capsys):
    recs, det = sites
    code, out, _ = evaluate(capsys, recs, det)
    assert code == 0
    got = figures(out)
    assert (got["truth"], got["detections"], got["recall"], got["precision"]) == (
        "2", "2", "1.0000", "1.0000"
    )  # fmt: skip
    # the combined table alone: its Begin Paths lie outside the folder given and end in
    # site1/rec.wav and site2/rec.wav, each naming one truth recording
    code, out, _ = evaluate(capsys, recs, det / "detections.txt")
    assert code == 0 and figures(out)["recall"] == "1.0000"
    # a base-name match would pair site2's detection with site1's truth: a mismatch instead
    code, _, err = evaluate(capsys, recs / "site1" / "rec.wav.selections.txt",
                            det / "site2" / "rec.wav.detections.txt")  # fmt: skip
    assert code == 0  # both files are named rec: the user paired them; the call is elsewhere
    # folders given at different depths: paths pair when one ends the other (the pairing rule
    # of upcall.audio.pairing), when only one does; site1's truth is "rec", as are both sites'
    code, _, err = evaluate(capsys, recs / "site1", det)
    assert code == 1
    one_line_error(err, "truth recording 'rec' matches several", "site1/rec, site2/rec")
    one = det.parent / "one"
    write_table(one / "site1" / "rec.wav.detections.txt", [sel(9.5, 11.5, 0.9)])
    code, out, _ = evaluate(capsys, recs / "site1", one)
    assert code == 0 and figures(out)["recall"] == "1.0000"


def test_per_recording_rows_name_the_detections_recordings(sites, tmp_path, capsys):
    """Truth in one file-sequence table whose Begin Paths are the analyst's own (outside the
    folders given): the rows of per_recording.csv name the recordings as the detections do."""
    _, det = sites
    truth = tmp_path / "truth" / "survey.txt"  # a table tied to recordings by Begin Path only
    write_table(truth, [
        Selection(10.0 + i * 60, 11.0 + i * 60, 50.0, 250.0, "upcall",
                  begin_path=f"/analyst/disk/{site}/rec.wav", file_offset_s=at)
        for i, (site, at) in enumerate((("site1", 10.0), ("site2", 50.0)))
    ])  # fmt: skip
    code, out, _ = evaluate(capsys, truth.parent, det, "--out", tmp_path / "ev")
    assert code == 0 and figures(out)["recall"] == "1.0000"
    rows = (tmp_path / "ev" / "per_recording.csv").read_text().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["site1/rec", "site2/rec"]


def test_detections_of_uncovered_recordings_need_the_flag(sites, capsys, tmp_path):
    recs, det = sites
    write_table(det / "site3" / "rec.wav.detections.txt", [sel(5, 7, 0.8)])
    code, _, err = evaluate(capsys, recs, det)
    assert code == 1
    one_line_error(err, "1 recording(s) the truth", "site3/rec")
    code, out, err = evaluate(capsys, recs, det, "--only-truth-recordings")
    assert code == 0 and "site3/rec" in err
    assert (figures(out)["detections"], figures(out)["precision"]) == ("2", "1.0000")
    # nothing left to match: an error, not figures of nothing
    only3 = tmp_path / "only3"
    write_table(only3 / "site3" / "rec.wav.detections.txt", [sel(5, 7, 0.8)])
    code, _, err = evaluate(capsys, recs, only3, "--only-truth-recordings")
    assert code == 1
    one_line_error(err, "no recording matches")


def test_swapped_arguments_are_one_line(sites, capsys):
    recs, det = sites
    truth = recs / "site1" / "rec.wav.selections.txt"
    found = det / "site1" / "rec.wav.detections.txt"
    code, _, err = evaluate(capsys, found, truth)
    assert code == 1
    one_line_error(err, str(found), "a detection table", "given as truth", "TRUTH DETECTIONS")
    code, _, err = evaluate(capsys, recs, truth)
    assert code == 1
    one_line_error(err, str(truth), "a truth table", "given as detections")
    # folders swapped: the detections folder holds no truth
    code, _, err = evaluate(capsys, det, recs)
    assert code == 1
    one_line_error(err, str(det), "no truth tables")


def test_tables_of_the_other_kind_in_a_folder_are_passed_over(sites, capsys):
    recs, det = sites
    # detections written into the recordings folder, truth copied beside the detections
    write_table(recs / "site1" / "rec.wav.detections.txt", [sel(9.5, 11.5, 0.9), sel(30, 32, 0.4)])
    write_table(det / "site2" / "rec.wav.selections.txt", [sel(50, 51), sel(70, 71)])
    code, out, err = evaluate(capsys, recs, recs, "--threshold", "0")  # all: 0.4 too
    assert code == 0
    got = figures(out)
    assert (got["truth"], got["detections"]) == ("2", "2")  # not 4 truths, not 2 score-1 rows
    code, out, err = evaluate(capsys, recs, det, "--threshold", "0")
    assert code == 0 and "1 truth table(s) passed over" in err
    assert (figures(out)["truth"], figures(out)["detections"]) == ("2", "2")


def test_reviewed_tables_and_two_views_per_selection(tmp_path, capsys):
    header = ("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\t"
              "High Freq (Hz)\tScore\tVerified")  # fmt: skip
    rows = []
    for n, (at, ok) in enumerate([(10, "yes"), (20, "no"), (30, "Yes"), (40, "yes")], start=1):
        for view in ("Waveform 1", "Spectrogram 1"):  # Raven's usual export: each view a row
            rows.append(f"{n}\t{view}\t1\t{at}\t{at + 1}\t50\t250\t0.8\t{ok}")
    truth = tmp_path / "t" / "rec.wav.selections.txt"
    truth.parent.mkdir()
    truth.write_text("\n".join([header, *rows]) + "\n")
    det = tmp_path / "d" / "rec.wav.detections.txt"
    write_table(det, [sel(9.5, 11.5, 0.9), sel(19.5, 21.5, 0.8), sel(29.5, 31.5, 0.7)])
    code, _, _ = evaluate(capsys, truth, det, "--out", tmp_path / "ev")
    assert code == 0
    ev = Evaluation.require(tmp_path / "ev")
    assert ev.truth == 3  # four selections once each, the one marked "no" is not a call
    assert (ev.precision, ev.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    # a reviewed table is truth even with a Score column: not detections
    code, _, err = evaluate(capsys, truth, truth)
    assert code == 1
    one_line_error(err, "a truth table", "given as detections")
    # two tables pasted together: selection 1 again with other times is not another view of it
    pasted = tmp_path / "t" / "pasted.wav.selections.txt"
    again = rows[0].replace("\t10\t11\t", "\t70\t71\t")
    pasted.write_text("\n".join([header, rows[0], rows[1], again]))
    code, _, err = evaluate(capsys, pasted, det)
    assert code == 1
    one_line_error(err, f"{pasted}:4", "selection 1 appears again with other times")


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--tolerance", "-1"), ("--tolerance", "nan"), ("--precision", "0"),
     ("--precision", "1.5"), ("--precision", "nan")],
)  # fmt: skip
def test_bad_figures_are_refused(sites, capsys, flag, value):
    recs, det = sites
    code, _, err = evaluate(capsys, recs, det, flag, value)
    assert code == 1
    one_line_error(err, flag, value)


@pytest.fixture
def survey(tmp_path):
    """Truth for a.wav (calls at 10, 20, 3700, 7300 s) and b.wav (50 s), and a detect folder whose
    recordings.csv says a.wav is 3 h from 00:00 UTC and b.wav 1 h from 00:30 UTC. By score:
    0.95 hit, 0.9 hit (within the tolerance, IoU 0.25), 0.85 hit (b), 0.8 false, 0.7 hit,
    0.6 false (a's second hour), 0.4 false (b)."""
    from datetime import UTC, datetime

    from upcall.survey.effort import RecordingEffort, write_effort

    recs, det = tmp_path / "recs", tmp_path / "det"
    write_table(recs / "a.wav.selections.txt", [sel(t, t + 1) for t in (10, 20, 3700, 7300)])
    write_table(recs / "b.wav.selections.txt", [sel(50, 51)])
    write_table(det / "a.wav.detections.txt", [sel(9.8, 11.2, 0.95), sel(20.5, 22, 0.9),
                sel(500, 501, 0.8), sel(3700.1, 3701.1, 0.7), sel(5000, 5001, 0.6)])  # fmt: skip
    write_table(det / "b.wav.detections.txt", [sel(50, 51, 0.85), sel(1000, 1001, 0.4)])
    (det / "detect.json").write_text("{}")
    write_effort(det, [
        RecordingEffort("a.wav", "/r/a.wav", datetime(2024, 3, 1, 0, 0, tzinfo=UTC), "GUANO", 10800),
        RecordingEffort("b.wav", "/r/b.wav", datetime(2024, 3, 1, 0, 30, tzinfo=UTC), "GUANO", 3600),
    ])  # fmt: skip
    return recs, det


def test_survey_figures_from_the_detect_folder(survey, tmp_path, capsys):
    recs, det = survey
    code, out, _ = evaluate(capsys, recs, det, "--out", tmp_path / "ev", "--fp-per-hour", "0.25")
    assert code == 0
    ev = Evaluation.require(tmp_path / "ev")
    assert (ev.threshold, ev.detections, ev.truth) == (0.5, 6, 5)
    assert (ev.precision, ev.recall) == (pytest.approx(4 / 6), 0.8)
    assert (ev.hours, ev.hours_source, ev.fp_per_hour) == (4.0, "recordings.csv", 0.5)
    # at most 1 false positive in 4 h: down to 0.7 (0.6 is the second)
    assert (ev.recall_at_fp_per_hour, ev.threshold_at_fp_per_hour) == (0.8, 0.7)
    # clock hours: calls in 00, 01, 02 UTC (b's 00:30:50 is hour 00); detections in 00, 01
    assert ev.hourly_bins == "UTC clock hours"
    assert (ev.truth_hours, ev.detected_hours) == (3, 2)
    assert (ev.hourly_precision, ev.hourly_recall) == (1.0, pytest.approx(2 / 3))
    per = (tmp_path / "ev" / "per_recording.csv").read_text().splitlines()
    assert per == [
        "recording,truth,detections,tp,fp,fn,precision,recall,f1,hours,fp_per_hour",
        "a,4,5,3,2,1,0.6000,0.7500,0.6667,3.0000,0.667",
        "b,1,1,1,0,0,1.0000,1.0000,1.0000,1.0000,0.000",
    ]
    table = out.split("\n\n", 1)[1].splitlines()
    assert table[0].startswith("per recording (threshold 0.5)")
    assert table[2].split() == per[1].split(",")
    assert figures(out)["recall_at_fp_per_hour"] == "0.8000"
    code, out, _ = evaluate(capsys, recs, det)  # the default rate, 1 per hour: all 7
    assert (figures(out)["recall_at_fp_per_hour"], figures(out)["threshold_at_fp_per_hour"]) == (
        "0.8000", "0.4000")  # fmt: skip


def test_tables_alone_need_hours_and_bin_hours_per_file(survey, tmp_path, capsys):
    recs, det = survey
    (det / "recordings.csv").unlink()
    code, _, err = evaluate(capsys, recs, det, "--out", tmp_path / "ev")
    assert code == 0 and "false positives per hour need --hours" in err
    ev = Evaluation.require(tmp_path / "ev")
    assert (ev.hours, ev.fp_per_hour, ev.recall_at_fp_per_hour) == (None, None, None)
    # hours from each file's start: a0, a1, a2, b0 hold calls; a0, a1, b0 detections
    assert ev.hourly_bins == "hours from each file's start"
    assert (ev.truth_hours, ev.detected_hours, ev.hourly_recall) == (4, 3, 0.75)
    assert evaluate(capsys, recs, det, "--hours", "8", "--out", tmp_path / "ev")[0] == 0
    ev = Evaluation.require(tmp_path / "ev")
    assert (ev.hours, ev.hours_source, ev.fp_per_hour) == (8.0, "--hours", 0.25)
    assert ev.recall_at_fp_per_hour == 0.8
    assert (tmp_path / "ev" / "per_recording.csv").read_text().splitlines()[1].endswith(",,")


def test_matching_by_box_overlap(survey, tmp_path, capsys):
    recs, det = survey
    code, out, _ = evaluate(capsys, recs, det, "--match", "overlap", "--out", tmp_path / "ev")
    assert code == 0
    ev = Evaluation.require(tmp_path / "ev")
    # 20.5–22 against 20–21: intersection 0.5 s over union 2 s = 0.25 < 0.3: a false positive
    assert (ev.match, ev.min_overlap, ev.precision, ev.recall) == ("overlap", 0.3, 0.5, 0.6)
    code, out, _ = evaluate(capsys, recs, det, "--match", "overlap", "--min-overlap", "0.25")
    assert (figures(out)["precision"], figures(out)["recall"]) == ("0.6667", "0.8000")
    code, _, err = evaluate(capsys, recs, det, "--min-overlap", "0")
    assert code == 1
    one_line_error(err, "--min-overlap", "(0, 1]")
    code, _, err = evaluate(capsys, recs, det, "--hours", "0")
    assert code == 1
    one_line_error(err, "--hours", "> 0")


def test_a_raven_file_sequence_truth_pairs_by_begin_file(tmp_path, capsys):
    """Truth as Raven writes it over two files (Begin Time from the sequence start, Begin File
    and File Offset locate each selection; two views; a Tags column; CRLF and a BOM) against
    per-file detections: each truth selection lands in its own file's time line."""
    header = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
              "High Freq (Hz)", "Begin File", "File Offset (s)", "Tags"]  # fmt: skip
    lines = ["\t".join(header)]
    for n, (begin, file, offset) in enumerate([(10, "a.wav", 10), (3610, "b.wav", 10)], 1):
        for view in ("Waveform 1", "Spectrogram 1"):
            lines.append(f"{n}\t{view}\t1\t{begin}\t{begin + 1}\t50\t250\t{file}\t{offset}\tup")
    truth = tmp_path / "truth" / "a.Table.1.selections.txt"  # Raven names it after the first file
    truth.parent.mkdir()
    truth.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    det = tmp_path / "det"
    write_table(det / "a.wav.detections.txt", [sel(9.5, 11.5, 0.9)])
    write_table(det / "b.wav.detections.txt", [sel(9.5, 11.5, 0.8), sel(3609, 3611, 0.7)])
    code, out, _ = evaluate(capsys, truth.parent, det)
    assert code == 0
    assert (figures(out)["truth"], figures(out)["recall"], figures(out)["precision"]) == (
        "2", "1.0000", "0.6667"
    )  # fmt: skip


def test_positive_labels_choose_the_calls_to_find(tmp_path, capsys):
    """An analyst's table also boxes other sounds: --positive counts only the up-calls, and the
    false positives per hour at a recall are reported."""
    truth, det = tmp_path / "rec.wav.selections.txt", tmp_path / "det" / "rec.wav.detections.txt"
    det.parent.mkdir()
    write_table(
        truth,
        [
            Selection(10.0, 11.0, 60.0, 200.0, "upcall"),
            Selection(30.0, 31.0, 60.0, 200.0, "humpback"),
            Selection(50.0, 51.0, 60.0, 200.0, "upcall"),
        ],
    )
    write_table(
        det,
        [
            Selection(10.1, 10.9, 60.0, 200.0, score=0.9),
            Selection(30.1, 30.9, 60.0, 200.0, score=0.8),
        ],
    )
    out = tmp_path / "ev"
    assert main(["evaluate", str(truth), str(det), "--positive", "upcall", "--hours", "2",
                 "--recall", "0.5", "--out", str(out)]) == 0  # fmt: skip
    ev = json.loads((out / "evaluation.json").read_text())
    assert (ev["truth"], ev["precision"], ev["recall"]) == (2, 0.5, 0.5)
    assert ev["positive"] == ["upcall"] and ev["fp_per_hour_at_recall"] == 0.0
    assert main(["evaluate", str(truth), str(det), "--positive", "NARW"]) == 1
    assert "no selection labelled NARW (the labels are humpback, upcall)" in capsys.readouterr().err
