"""Caffe's NetState rules (Net::FilterNet): one implementation for every caller."""

import pytest
from google.protobuf import text_format

from upcall.errors import UpcallError
from upcall.network import build as ns
from upcall.network.phase import layer_included, rule_met
from upcall.proto import caffe_pb2

TEST = caffe_pb2.TEST


def rule_from(text: str) -> caffe_pb2.NetStateRule:
    return text_format.Parse(text, caffe_pb2.NetStateRule())


def test_state_rules_follow_caffe():
    state = caffe_pb2.NetState(phase=TEST, level=2, stage=["val", "x"])
    # phase and stage: every stage of a rule must be in the state, no not_stage may be
    assert rule_met(state, rule_from("phase: TEST stage: 'val'"))
    assert not rule_met(state, rule_from("phase: TRAIN"))
    assert not rule_met(state, rule_from("stage: 'deploy'"))
    assert not rule_met(state, rule_from("stage: 'val' stage: 'deploy'"))
    assert not rule_met(state, rule_from("not_stage: 'x'"))
    # levels are inclusive bounds
    assert rule_met(state, rule_from("min_level: 2 max_level: 2"))
    assert not rule_met(state, rule_from("min_level: 3"))
    assert not rule_met(state, rule_from("max_level: 1"))
    # a layer's exclude rule that is met drops it; a layer without rules is kept
    assert not layer_included(ns.exclude(ns.softmax("s", "x"), stage="val"), state)
    assert layer_included(ns.softmax("s", "x"), state)


def test_include_wins_over_no_rule_and_both_kinds_is_an_error():
    state = caffe_pb2.NetState(phase=TEST)
    assert layer_included(ns.include(ns.softmax("s", "x"), phase="TEST"), state)
    assert not layer_included(ns.include(ns.softmax("s", "x"), phase="TRAIN"), state)
    both = ns.exclude(ns.include(ns.softmax("s", "x"), phase="TEST"), stage="val")
    with pytest.raises(UpcallError, match="layer 's': give include rules or exclude rules"):
        layer_included(both, state)
