"""Where clips go: positives hold their call, negatives keep the guard, all seeded and stable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from upcall.audio import clipplan
from upcall.audio.clipplan import Box, ClipSettings, Recording, plan
from upcall.audio.raven import Selection
from upcall.errors import UpcallError


def _inside(start_ms: int, box: Box) -> float:
    """Share of ``box`` inside the 2-s window starting at ``start_ms``."""
    begin = start_ms / 1000
    overlap = min(begin + 2.0, box.end_s) - max(begin, box.begin_s)
    return max(overlap, 0.0) / (box.end_s - box.begin_s)


def _far(start_ms: int, box: Box, guard: float) -> bool:
    begin = start_ms / 1000
    return begin + 2.0 <= box.begin_s - guard + 1e-9 or begin >= box.end_s + guard - 1e-9


@pytest.mark.parametrize("length", [0.3, 1.0, 1.9, 2.0])
def test_a_positive_window_holds_at_least_60_percent_of_its_call_at_random_places(length):
    rng = np.random.default_rng(0)
    for begin in (0.0, 0.2, 10.0, 58.0 - length, 60.0 - length):  # file edges too
        box = Box(begin, begin + length, "upcall")
        starts = [clipplan.place(rng, box.begin_s, box.end_s, 60.0) for _ in range(300)]
        assert all(0 <= s <= 58000 for s in starts)
        assert min(_inside(s, box) for s in starts) >= 0.6 - 1e-9
        if 2.0 <= begin <= 56.0 - length:  # away from the edges the place varies over the range
            assert max(starts) - min(starts) > 1000 * (2.0 - 1.2 * length) * 0.9


def test_a_call_longer_than_the_window_holds_the_window():
    rng = np.random.default_rng(1)
    starts = [clipplan.place(rng, 10.0, 15.5, 60.0) for _ in range(200)]
    assert min(starts) >= 10000 and max(starts) <= 13500 and max(starts) - min(starts) > 2500


def test_free_starts_keep_the_guard_from_every_box():
    boxes = [Box(10.0, 11.0, "upcall"), Box(12.0, 13.5, "ship")]
    assert clipplan.free_starts(boxes, 30.0, 2.0) == [(0, 6000), (15500, 28000)]
    assert clipplan.free_starts([], 1.5, 2.0) == []  # no window fits in the file


def test_negatives_keep_the_guard_are_seeded_and_stable_as_the_count_grows():
    boxes = [Box(t, t + 1.0, "upcall") for t in (20.0, 35.0, 90.0)] + [Box(50.0, 70.0, "ship")]

    def draw(count: int, seed: int = 3) -> list[int]:
        got = clipplan.negatives(np.random.default_rng(seed), boxes, 120.0, count, guard_s=2.5,
                                 taken=set())  # fmt: skip
        return [c.start_ms for c in got]

    ten = draw(10)
    assert len(set(ten)) == 10 and all(all(_far(s, b, 2.5) for b in boxes) for s in ten)
    assert all(0 <= s <= 118000 for s in ten)
    assert draw(10) == ten and draw(10, seed=4) != ten
    assert draw(25)[:10] == ten  # more negatives add clips, they do not move the others
    few = clipplan.negatives(np.random.default_rng(0), [Box(5.0, 6.0, "x")], 12.0, 10**6,
                             guard_s=2.0, taken=set())  # fmt: skip
    assert 2000 < len(few) <= 3002  # the free starts (0-1 s, 8-10 s) run out: no endless loop


def test_hard_negatives_sit_on_other_labels_and_keep_the_guard_from_calls():
    calls = [Box(30.0, 31.0, "upcall", index=0)]
    others = [Box(34.0, 35.0, "humpback", index=1), Box(80.0, 81.5, "moan", index=2)]
    got = clipplan.hard_negatives(np.random.default_rng(5), others, calls, 120.0, 10,
                                  guard_s=2.0, placements=3, taken=set())  # fmt: skip
    assert 3 <= len(got) <= 6  # each used at most 3 times; the humpback is hard to clear
    for clip in got:
        box = others[clip.box - 1]
        assert _inside(clip.start_ms, box) >= 0.6 - 1e-9 and _far(clip.start_ms, calls[0], 2.0)
        assert clip.kind == "hard-negative" and clip.label == 0
    assert sum(c.box == 2 for c in got) == 3


def _rec(rel: str, duration: float, selections: list[Selection] | None) -> Recording:
    return Recording(Path(rel), Path(rel), duration, selections)


def _sel(begin: float, label: str = "upcall") -> Selection:
    return Selection(begin, begin + 1.0, 60.0, 200.0, label)


def test_plan_counts_k_negatives_per_positive_and_keeps_each_recording_to_itself():
    settings = ClipSettings(positive=("upcall",), negatives_per_positive=2.0, placements=2)
    a = _rec("s/a.wav", 300.0, [_sel(t) for t in (20.0, 100.0, 200.0)] + [_sel(150.0, "ship")])
    quiet = _rec("s/quiet.wav", 600.0, None)  # --unannotated-negatives: at the positive rate
    plan([a, quiet], settings)
    kinds = [c.kind for c in a.clips]
    assert kinds.count("positive") == 6 and len(kinds) - 6 == 12
    assert kinds.count("hard-negative") == 2  # the ship, placed twice (placements)
    assert [c.start_ms for c in a.clips] == sorted(c.start_ms for c in a.clips)
    assert len(quiet.clips) == round(2.0 * 6 / 300.0 * 600.0)
    alone = _rec("s/a.wav", 300.0, a.selections)
    plan([alone], settings)  # a's clips do not depend on the other recordings
    assert alone.clips == a.clips
    renamed = _rec("s/b.wav", 300.0, a.selections)
    plan([renamed], settings)  # another path, other draws
    assert [c.start_ms for c in renamed.clips] != [c.start_ms for c in a.clips]


def _verified(begin: float, verdict: str) -> Selection:
    """A detection as `upcall review` leaves it: Score, then the reviewer's Verified cell."""
    extra = (("Verified", verdict),) if verdict else ()
    return Selection(begin, begin + 1.0, 60.0, 200.0, "upcall", score=0.9, extra=extra)


def test_verified_yes_rows_are_calls_no_rows_hard_negatives():
    settings = ClipSettings(negatives_per_positive=2.0, hard_negative_share=0.5)
    rows = [
        _verified(20.0, "yes"),
        _verified(60.0, "no"),
        _verified(100.0, "No"),
        _verified(180.0, "yes"),
        _verified(140.0, "unsure"),
        _verified(240.0, "unreviewed"),
    ]  # fmt: skip  (pairing.pair marks unreviewed rows)
    rec = _rec("site/rec.wav", 300.0, rows)
    plan([rec], settings)
    by_box: dict[int | None, list[str]] = {}
    for c in rec.clips:
        by_box.setdefault(c.box, []).append(c.kind)
    # yes: a positive each; no: a hard negative each, beside the K = 2 per positive (half of
    # which other labels' selections would take: there are none, so all 4 are plain)
    assert by_box[0] == ["positive"] and by_box[3] == ["positive"]
    assert by_box[1] == ["hard-negative"] and by_box[2] == ["hard-negative"]
    assert by_box[None] == ["negative"] * 4  # unsure, unreviewed rows: no clip of their own
    for c in rec.clips:  # every negative keeps the guard from the calls and doubtful rows
        if c.kind != "positive":
            assert all(_far(c.start_ms, rec.boxes[i], 2.0) for i in (0, 3, 4, 5))
    # without the no rows the calls' draws are the same: reviewing adds, never moves
    plain = _rec("site/rec.wav", 300.0, [rows[0], rows[3]])
    plan([plain], settings)
    assert [c.start_ms for c in plain.clips if c.kind == "positive"] == [
        c.start_ms for c in rec.clips if c.kind == "positive"
    ]


def test_a_review_with_only_false_alarms_still_gives_hard_negatives():
    rec = _rec("rec.wav", 120.0, [_verified(10.0, "no"), _verified(50.0, "no")])
    plan([rec], ClipSettings())
    assert [c.kind for c in rec.clips] == ["hard-negative", "hard-negative"]


def test_plan_without_any_positive_names_the_labels_there():
    rec = _rec("a.wav", 120.0, [_sel(10.0, "Upcall"), _sel(40.0, "ship")])
    with pytest.raises(
        UpcallError, match=r"no selection of upcall in the tables .*'Upcall', 'ship'"
    ):
        plan([rec], ClipSettings(positive=("upcall",)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"negatives_per_positive": -1.0}, "--negatives-per-positive must be zero or positive"),
        ({"guard_s": float("nan")}, "--guard must be zero or positive"),
        ({"placements": 0}, "--placements must be 1 or more"),
        ({"hard_negative_share": 1.5}, "--hard-negative-share must be between 0 and 1"),
        ({"positive": ("upcall", "")}, "--positive needs labels"),
    ],
)
def test_settings_are_checked(change, message):
    with pytest.raises(UpcallError, match=message):
        ClipSettings(**change).check()
