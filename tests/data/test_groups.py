"""Group splits from DATA/clips.csv: no site, recording or time block on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.data.test_lists import clip_numbers, make_data, read_list
from upcall import cli
from upcall.audio.clipscsv import CLIPS_CSV, ClipOrigin, write_clips_csv
from upcall.data.groups import choose_validation, group_keys, group_split
from upcall.data.lists import make_lists
from upcall.data.listsfolder import ListSettings, ListsManifest
from upcall.errors import UpcallError


def origins(plan: list[tuple[str, str, float, int]]) -> list[ClipOrigin]:
    """One clips.csv row per (site, recording, start_s, label); clip k is train{k}.aiff."""
    return [
        ClipOrigin(
            clip_name=f"train{k}.aiff",
            label=label,
            kind="positive" if label else "negative",
            recording=f"/rec/{site}/{rec}",
            rel=f"{site}/{rec}",
            channel=0,
            start_s=start,
            site=site,
            table=f"{site}/{rec}.selections.txt" if label else "",
            row=k if label else None,
        )
        for k, (site, rec, start, label) in enumerate(plan, start=1)
    ]


def recorded_data(root: Path, plan: list[tuple[str, str, float, int]]) -> Path:
    """Kaggle-layout clips plus a clips.csv saying where each came from."""
    data = make_data(root, [label for *_, label in plan])
    write_clips_csv(data / CLIPS_CSV, origins(plan))
    return data


def plan_of(sites: int, recordings: int, clips: int) -> list[tuple[str, str, float, int]]:
    """``clips`` clips in each recording, every fourth an up-call, 10 s apart."""
    return [
        (f"site{s}", f"rec{r}.wav", 10.0 * c, int(c % 4 == 0))
        for s in range(sites)
        for r in range(recordings)
        for c in range(clips)
    ]


def sides(lists: Path, plan, field: int) -> tuple[set, set]:
    """The groups (plan column ``field``) of the training and validation clips."""
    train = {plan[k - 1][: field + 1] for k in clip_numbers(read_list(lists / "train.txt"))}
    val = {plan[k - 1][: field + 1] for k in clip_numbers(read_list(lists / "val.txt"))}
    return train, val


def test_auto_splits_by_site_and_records_it(tmp_path, capsys):
    plan = plan_of(sites=4, recordings=2, clips=8)
    data = recorded_data(tmp_path / "data", plan)
    info = make_lists(
        data, out=tmp_path / "lists", settings=ListSettings(seed=1, val_fraction=0.25)
    )
    train, val = sides(tmp_path / "lists", plan, 0)
    assert train and val and not train & val
    assert (info.group_by, info.groups) == ("site", {"train": 3, "val": 1})
    assert info.counts["val"] == {"not-whale": 12, "whale": 4}
    assert "split by sites from" in capsys.readouterr().out
    again = ListsManifest.read(tmp_path / "lists")
    assert again == info and again.group_seconds is None


def test_one_site_falls_back_to_recordings_then_blocks(tmp_path, capsys):
    plan = plan_of(sites=1, recordings=5, clips=8)
    data = recorded_data(tmp_path / "data", plan)
    info = make_lists(data, out=tmp_path / "lists", settings=ListSettings(seed=2))
    train, val = sides(tmp_path / "lists", plan, 1)
    assert not train & val and info.group_by == "recording" and info.groups["val"] == 1
    assert "auto: one site (site0)" in capsys.readouterr().out
    # one recording: time blocks of 30 s (3 clips each), said so
    plan = plan_of(sites=1, recordings=1, clips=40)
    data = recorded_data(tmp_path / "one", plan)
    settings = ListSettings(seed=2, group_seconds=30.0)
    info = make_lists(data, out=tmp_path / "blocks", settings=settings)
    assert (info.group_by, info.group_seconds) == ("block", 30.0)
    val = clip_numbers(read_list(tmp_path / "blocks/val.txt"))
    train = clip_numbers(read_list(tmp_path / "blocks/train.txt"))
    assert {(k - 1) // 3 for k in val}.isdisjoint({(k - 1) // 3 for k in train})
    out = capsys.readouterr().out
    assert "split by time blocks of 30 s" in out and "auto: one site (site0); one recording" in out


def test_a_class_in_one_recording_only_is_one_line_saying_what_to_change(tmp_path):
    plan = [
        ("s", f"rec{r}.wav", 10.0 * c, int(r == 0 and c < 3)) for r in range(3) for c in range(6)
    ]
    data = recorded_data(tmp_path / "data", plan)
    settings = ListSettings(group_by="recording")
    with pytest.raises(UpcallError) as e:
        make_lists(data, out=tmp_path / "lists", settings=settings)
    message = str(e.value)
    assert message.startswith(f"{data / CLIPS_CSV}: every whale clip comes from one recording")
    assert "use --group-by block" in message and "\n" not in message
    assert not (tmp_path / "lists" / "lists.json").exists()


def test_validation_always_gets_a_group_and_both_classes():
    labels = np.array([1, 0, 0, 0] * 10)
    keys = [f"r{i // 8}" for i in range(40)]  # 5 groups of 8, a whale in each
    for seed in range(5):
        rng = np.random.default_rng(seed)
        train, val, groups = choose_validation(labels, keys, val_fraction=0.01, rng=rng)
        assert groups == {"train": 4, "val": 1} and len(val) == 8
        assert set(labels[val]) == set(labels[train]) == {0, 1}
    assert choose_validation(labels, ["one"] * 40, val_fraction=0.1, rng=rng) is None


def test_copies_of_one_call_stay_in_one_block():
    rows = origins([("s", "r.wav", 299.0, 1), ("s", "r.wav", 300.5, 1), ("s", "r.wav", 301.0, 0)])
    rows[1] = ClipOrigin(**{**rows[1].__dict__, "row": rows[0].row})  # a second placement
    assert group_keys(rows, "block", 300.0) == ["s/r.wav@0", "s/r.wav@0", "s/r.wav@1"]


def test_kaggle_lists_are_unchanged(tmp_path):
    labels = np.random.default_rng(5).permutation([1] * 30 + [0] * 70).tolist()
    data = make_data(tmp_path / "data", labels)
    settings = ListSettings(seed=7, balance="oversample")
    info = make_lists(data, out=tmp_path / "lists", settings=settings)
    # the split this seed gave before group splits existed
    val = clip_numbers(read_list(tmp_path / "lists/val.txt"))
    assert val == [11, 38, 41, 44, 46, 54, 55, 85, 86, 88]
    assert len(read_list(tmp_path / "lists/train.txt")) == 126
    assert info.group_by is None and info.groups is None
    with pytest.raises(UpcallError, match=r"clips.csv: not found; --group-by site needs"):
        make_lists(data, out=tmp_path / "x", settings=ListSettings(group_by="site"))


def test_lists_cli_takes_the_group_options(tmp_path, capsys):
    plan = plan_of(sites=1, recordings=1, clips=20)
    data = recorded_data(tmp_path / "data", plan)
    argv = ["lists", str(data), "--out", str(tmp_path / "l"), "--group-by", "block"]
    assert cli.main([*argv, "--group-seconds", "50"]) == 0
    out = capsys.readouterr().out
    assert "split by time blocks of 50 s" in out and "(split by block, seed 0)" in out
    written = json.loads((tmp_path / "l" / "lists.json").read_text())
    assert written["group_by"] == "block" and written["group_seconds"] == 50.0
    with pytest.raises(
        UpcallError, match=r"clips.csv: one recording \(s/r\); use --group-by block"
    ):
        group_split(
            np.array([0, 1]),
            origins([("s", "r", 0.0, 0), ("s", "r", 1.0, 1)]),
            by="recording",
            group_seconds=None,
            val_fraction=0.1,
            seed=np.random.SeedSequence(0),
            source=Path("clips.csv"),
        )
