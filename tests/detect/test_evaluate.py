"""`upcall evaluate` through the command on hand-made tables: truth and detections told apart by
content (swapped arguments, reviewed tables, tables of the other kind in a folder), recordings
matched by path under the folders given, Raven's two rows per selection, and its argument checks."""

from __future__ import annotations

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
    return dict(line.split(": ", 1) for line in out.splitlines())


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
    code, _, err = evaluate(capsys, recs / "site1", det)
    assert code == 1
    one_line_error(err, "does not cover", "site1/rec", "--only-truth-recordings")


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
