"""Tests for the training recipe (recipe.json) and `upcall nets --net-param`."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from upcall.errors import UpcallError
from upcall.network.load import build_network, parse_net_params
from upcall.network.zoo import get
from upcall.workflows.recipe import DEFAULT_RECIPE, Recipe, load_recipe


def test_a_partial_file_changes_only_its_keys(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"epochs": 9, "lr_policy": "exp", "balance": "undersample"}))
    recipe = load_recipe(path)
    assert (recipe.epochs, recipe.solver.lr_policy, recipe.balance) == (9, "exp", "undersample")
    assert recipe.solver.base_lr == DEFAULT_RECIPE.solver.base_lr
    assert recipe.network == DEFAULT_RECIPE.network and recipe.seed == DEFAULT_RECIPE.seed
    # written and read back: the same recipe, solver fields at the top level of the file
    assert Recipe.read(recipe.write(tmp_path / "out")) == recipe
    assert json.loads((tmp_path / "out" / "recipe.json").read_text())["lr_policy"] == "exp"


def test_the_default_recipe_is_the_demos_and_the_measured_one():
    from upcall.workflows.demo import DemoSettings

    demo = DemoSettings()
    assert demo.recipe.solver == DEFAULT_RECIPE.solver
    assert (DEFAULT_RECIPE.network, DEFAULT_RECIPE.solver.base_lr) == ("whalenet", 0.01)
    assert (DEFAULT_RECIPE.epochs, DEFAULT_RECIPE.spectrogram_mode) == (15, "fine")
    assert DEFAULT_RECIPE.solver.lr_policy == "poly"
    assert DEFAULT_RECIPE.network_params == {"time_pool": True}


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"epoch": 3}, r"unknown key 'epoch'; a recipe has spectrogram_mode, "),
        ({"spectrogram_mode": "mel"}, r"unknown spectrogram mode 'mel'"),
        ({"val_fraction": 1.5}, r"--val-fraction must be between 0 and 1"),
        ({"size": "big"}, r"--size must be WIDTHxHEIGHT"),
        ({"seed": -1}, r"seed must be a whole number ≥ 0"),
        ({"batch_size": 0}, r"batch_size must be at least 1"),
        ({"solver_type": "LBFGS"}, r"unknown solver type 'LBFGS'"),
        ({"class_weights": "heavy"}, r".*heavy"),
        ({"augment": "spin=3"}, r"--augment 'spin=3'"),
    ],
)
def test_a_bad_recipe_is_one_line_naming_the_file(tmp_path, keys, problem):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(keys))
    with pytest.raises(UpcallError, match=f"^{path}: {problem}") as e:
        load_recipe(path)
    assert "\n" not in str(e.value)


def test_net_params_override_the_registry_options():
    assert parse_net_params(["width=4", "time_pool=true", "global_pool=AVE"]) == {
        "width": 4,
        "time_pool": True,
        "global_pool": "AVE",
    }
    net = build_network(get("whalenet"), {"width": 4, "blocks": 2})
    convs = [x for x in net.layer if x.type == "Convolution"]
    assert [x.convolution_param.num_output for x in convs] == [4, 8]
    with pytest.raises(UpcallError, match=r"network whalenet has no parameter 'depth'; its"):
        build_network(get("whalenet"), {"depth": 3})
    with pytest.raises(UpcallError, match=r"network whalenet: bad parameters .*PoolMethod"):
        build_network(get("whalenet"), {"global_pool": "MEDIAN"})
    with pytest.raises(UpcallError, match=r"--net-param must be KEY=VALUE"):
        parse_net_params(["width"])


def test_class_weights_and_augment_reach_make_job_only_when_set():
    from upcall.augment.batches import OnlineAugment
    from upcall.network.classweights import ClassWeights

    assert DEFAULT_RECIPE.nets_options() == {}
    options = replace(DEFAULT_RECIPE, class_weights="balanced", augment="shift=2").nets_options()
    assert options["class_weights"] == ClassWeights(mode="balanced")
    assert isinstance(options["augment"], OnlineAugment) and options["augment"].active
