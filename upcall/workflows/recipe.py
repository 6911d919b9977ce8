"""The training recipe: every choice `upcall fit` and `upcall demo` make between clips and model.

A :class:`Recipe` is OUT/recipe.json: spectrogram mode, list options, dataset size, network and
its builder parameters, solver settings (the fields of :class:`upcall.model.solver.SolverSettings`,
top-level keys in the file) and seed. :data:`DEFAULT_RECIPE` is the one place its values are
chosen. A user's recipe file may hold only the keys it changes; :func:`load_recipe` fills the
rest from :data:`DEFAULT_RECIPE`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from upcall.data.dataset import DatasetSettings, parse_size
from upcall.data.lists import ListSettings
from upcall.data.spectrogram import get_mode
from upcall.errors import UpcallError
from upcall.fsutil import read_json
from upcall.jsonfile import INLINE, JsonFile, plain
from upcall.model.augment_net import parse_augment
from upcall.model.classweights import parse_class_weights
from upcall.model.solver import SolverSettings


@dataclass(frozen=True)
class Recipe(JsonFile):
    """OUT/recipe.json: what the spectrograms → lists → dataset → job → training steps use."""

    FILE: ClassVar[str] = "recipe.json"

    spectrogram_mode: str  # a name in upcall.data.spectrogram.MODES
    val_fraction: float  # of the labelled clips, held out for validation
    split: str  # "random" (seeded, stratified) or "ordered" (the tutorial's last rows)
    balance: str  # training list only: "none", "undersample" or "oversample"
    size: str  # dataset image size: "native" or "WIDTHxHEIGHT", as `upcall lmdb --size`
    resize_mode: str  # used only when size is not native
    network: str  # a registry name (`upcall nets --list`) or a train_val .prototxt path
    # base_lr, epochs, solver_type, lr_policy and its parameters, seed, ...: top-level keys
    solver: SolverSettings = field(metadata=INLINE)
    network_params: dict[str, Any] = field(default_factory=dict)  # as `upcall nets --net-param`
    batch_size: int | None = None  # None: the network's own
    # As `upcall nets --class-weights` / `--augment` take them; None leaves the flag out, so
    # the job files are exactly those of `upcall nets` without it.
    class_weights: str | None = None
    augment: str | None = None

    def __post_init__(self) -> None:
        get_mode(self.spectrogram_mode)
        if not isinstance(self.solver.seed, int) or self.solver.seed < 0:
            raise UpcallError(f"seed must be a whole number ≥ 0, not {self.solver.seed!r}")
        self.list_settings(None)  # raises on a bad val_fraction, split or balance
        self.dataset_settings()
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise UpcallError(f"batch_size must be at least 1 or null, not {self.batch_size!r}")
        if not isinstance(self.network_params, dict):
            raise UpcallError(f"network_params must be an object, not {self.network_params!r}")
        for name in ("class_weights", "augment"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                flag = "--" + name.replace("_", "-")
                raise UpcallError(f"{name} must be text, as `upcall nets {flag}` takes it")
        # parsed here too, so a bad one stops fit before the spectrograms, not after the LMDB
        if self.class_weights is not None:
            parse_class_weights(self.class_weights)
        if self.augment is not None:
            parse_augment(self.augment, seed=self.seed)

    @property
    def seed(self) -> int:
        """Seeds the split, the dataset's shuffle and Caffe's random_seed."""
        return self.solver.seed

    @property
    def epochs(self) -> int:
        return self.solver.epochs

    def list_settings(self, spectrogram_root: Path | None) -> ListSettings:
        return ListSettings(
            val_fraction=self.val_fraction,
            split=self.split,
            balance=self.balance,
            seed=self.seed,
            spectrogram_root=spectrogram_root,
            mode=self.spectrogram_mode,
        )

    def dataset_settings(self) -> DatasetSettings:
        return DatasetSettings(
            size=parse_size(self.size), resize_mode=self.resize_mode, seed=self.seed
        )

    def with_solver(self, **changes: Any) -> Recipe:
        """This recipe with some solver fields changed (``epochs=1``, ``seed=3``)."""
        return replace(self, solver=replace(self.solver, **changes))

    def differences(self, other: Recipe) -> list[str]:
        """``key old → new`` for each top-level key of recipe.json that differs."""
        mine, theirs = self.to_json(), other.to_json()
        return [
            f"{k} {json.dumps(mine.get(k))} → {json.dumps(theirs[k])}"
            for k in theirs
            if mine.get(k) != theirs[k]
        ]


# The best measured recipe (benchmarks/bench_quality.py; chosen on a tuning set, never on the
# held-out test set): the fine 65×59 spectrogram, WhaleNet pooling over time only (it keeps
# where in frequency the sweep is), SGD at 0.01 decaying smoothly to 0 (poly) over 15 epochs.
# Class weights, list balancing and online or offline augmentation measured no better; they
# stay options. The values a measured recipe changes belong here only.
DEFAULT_RECIPE = Recipe(
    spectrogram_mode="fine",
    val_fraction=0.1,
    split="random",
    balance="none",
    size="native",
    resize_mode="squash",
    network="whalenet",
    network_params={"time_pool": True},
    solver=SolverSettings(base_lr=0.01, epochs=15, solver_type="SGD", lr_policy="poly", seed=0),
)


def recipe_keys() -> list[str]:
    """Every key a recipe file may hold."""
    own = [f.name for f in fields(Recipe) if f.name != "solver"]
    return own + [f.name for f in dataclasses.fields(SolverSettings)]


def load_recipe(path: str | os.PathLike, base: Recipe = DEFAULT_RECIPE) -> Recipe:
    """The recipe in file ``path``: its keys over ``base``'s; errors are one line naming it."""
    path = Path(path)
    value = read_json(path)
    if value is None:
        raise UpcallError(f"{path}: not found")
    if not isinstance(value, dict):
        raise UpcallError(f"{path}: expected a JSON object of recipe keys")
    known = recipe_keys()
    unknown = [k for k in value if k not in known and k != "format"]
    if unknown:
        raise UpcallError(f"{path}: unknown key {unknown[0]!r}; a recipe has {', '.join(known)}")
    merged = {**base.to_json(), **plain(value)}
    try:
        return Recipe.from_json(merged, source=path)
    except UpcallError as e:
        message = str(e)
        raise UpcallError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None


def check_recipe(out: Path, recipe: Recipe, *, hint: str) -> None:
    """Record ``recipe`` in OUT/recipe.json; refuse an OUT made with another recipe, whose
    finished steps would otherwise be kept and their results reported as this recipe's."""
    before = Recipe.read(out)
    if before is None:
        out.mkdir(parents=True, exist_ok=True)
        recipe.write(out)
        return
    changed = before.differences(recipe)
    if changed:
        raise UpcallError(
            f"{out / Recipe.FILE}: {out} was made with another recipe ({', '.join(changed)}); "
            f"{hint}"
        )
