"""evaluate's survey figures on hand-made curves and tables with known answers."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from upcall.audio.raven import Selection
from upcall.detect.matching import Curve
from upcall.detect.survey_figures import (
    fp_per_hour_at_recall,
    hourly_presence,
    recall_at_fp_rate,
)


def sel(begin, score=None):
    return Selection(begin, begin + 1.0, 50.0, 250.0, "upcall", score=score)


def test_false_positives_per_hour_and_recall_at_a_rate():
    # by score: hit, miss, hit, miss, miss, hit; 4 calls; 2 hours; two detections tie at 0.5
    c = Curve(np.array([0.9, 0.8, 0.7, 0.5, 0.5, 0.3]),
              np.array([True, False, True, False, False, True]), 4)  # fmt: skip
    assert recall_at_fp_rate(c, 2.0, 0.5) == (0.5, 0.7)  # one false positive in 2 h
    # the tie: 0.5 takes both misses at once (3 in 2 h = 1.5 per hour), never one of them
    assert recall_at_fp_rate(c, 2.0, 1.0) == (0.5, 0.7)
    assert recall_at_fp_rate(c, 2.0, 1.5) == (0.75, 0.3)
    assert recall_at_fp_rate(c, 2.0, 0.0) == (0.25, 0.9)
    assert recall_at_fp_rate(Curve(np.array([0.9]), np.array([False]), 1), 1.0, 0.5) == (0.0, None)
    assert fp_per_hour_at_recall(c, 2.0, 0.5) == 0.5
    assert fp_per_hour_at_recall(c, 2.0, 0.75) == 1.5
    assert fp_per_hour_at_recall(c, 2.0, 0.9) is None


def test_hourly_presence_in_clock_hours_and_per_file():
    truth = {"a": [sel(10), sel(3700)], "b": [sel(100)]}
    found = {"a": [sel(20, 0.9), sel(7300, 0.8)], "b": [sel(200, 0.2)]}
    # a from 23:30: calls in 23h and 00h; detections 23h and 01h; b (start unknown) per file
    starts = {"a": datetime(2024, 3, 1, 23, 30, tzinfo=UTC)}
    hp = hourly_presence(truth, found, threshold=0.5, starts=starts)
    assert hp.bins.startswith("UTC clock hours (1 of 2 recordings")
    assert (hp.truth_hours, hp.detected_hours, hp.both) == (3, 2, 1)
    assert (hp.precision, hp.recall) == (0.5, pytest.approx(1 / 3))
    hp = hourly_presence(truth, found, threshold=0.1, starts={})
    assert hp.bins == "hours from each file's start"
    assert (hp.truth_hours, hp.detected_hours, hp.both) == (3, 3, 2)
