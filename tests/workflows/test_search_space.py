"""``upcall search``'s table of parameters: network builder keywords (``--net-params``) as one
more categorical row, checked against every searched network, and a trial's job built with them."""

from __future__ import annotations

import pytest

from upcall.errors import UpcallError
from upcall.workflows.recipe import DEFAULT_RECIPE, _stand_in
from upcall.workflows.search_space import search_space, trial_job

BASE = dict(
    lr_range=(0.001, 0.1),
    batch_sizes=(16,),
    solver_types=("SGD",),
    lr_policies=("poly",),
    epochs=(1, 2),
)
LEVERS = "time_pool=true,label_smoothing=0.1,background=31"


def _dataset():
    """A 65×59 (fine, native) dataset as a job sees it; trial_job reads nothing on disk."""
    return _stand_in(DEFAULT_RECIPE, 200)


def test_net_params_choices_become_the_trial_networks_keywords():
    space = search_space(networks=("whalenet",), net_params=("none", LEVERS), **BASE)
    (row,) = [p for p in space if p.name == "net_params"]
    assert (row.target, row.choices) == ("job", ("none", LEVERS))
    values = {"network": "whalenet", "base_lr": 0.01, "batch_size": 16, "solver_type": "SGD",
              "lr_policy": "poly", "epochs": 1, "class_weights": "none", "augment": "none"}  # fmt: skip
    plain = trial_job(space, {**values, "net_params": "none"}, _dataset(), name="0", seed=1)
    levers = trial_job(space, {**values, "net_params": LEVERS}, _dataset(), name="1", seed=1)
    assert levers.config.network_source["options"]["background"] == 31
    text = levers.prototxts["train_val.prototxt"]
    assert all(f'name: "{n}"' in text for n in ("front", "smooth_loss", "val_loss"))
    assert 'name: "front"' not in plain.prototxts["train_val.prototxt"]


@pytest.mark.parametrize(
    ("networks", "choice", "message"),
    [
        (("whalenet",), "background=4", "odd width"),
        (("whalenet", "alexnet"), "label_smoothing=0.1", "network alexnet has no parameter"),
        (("whalenet",), "label_smoothing", "KEY=VALUE"),
    ],
)
def test_a_choice_a_searched_network_cannot_build_is_a_one_line_error(networks, choice, message):
    with pytest.raises(UpcallError, match="--net-params") as e:
        search_space(networks=networks, net_params=("none", choice), **BASE)
    assert message in str(e.value) and "\n" not in str(e.value)
