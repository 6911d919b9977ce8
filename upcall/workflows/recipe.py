"""The training recipe: every choice `upcall fit` and `upcall demo` make between clips and model.

A :class:`Recipe` is OUT/recipe.json: how clips are read, spectrogram mode, list options (the
group split), dataset size, network and its builder parameters, solver settings (the fields of
:class:`upcall.job.solver.SolverSettings`, top-level keys in the file) and seed. :data:`DEFAULT_RECIPE` is the one place its values are
chosen. A user's recipe file may hold only the keys it changes; :func:`load_recipe` fills the
rest from :data:`DEFAULT_RECIPE`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from upcall.audio.clip import check_fit
from upcall.data.dataset import DatasetSettings, parse_size
from upcall.data.listsfolder import LABELS, ListSettings
from upcall.data.pngroot import ReadOptions
from upcall.data.spectrogram import clip_shape, get_mode
from upcall.errors import UpcallError
from upcall.fsutil import read_json
from upcall.job.solver import SolverSettings
from upcall.jsonfile import INLINE, JsonFile, plain
from upcall.network.augment_layer import parse_augment
from upcall.network.classweights import parse_class_weights

if TYPE_CHECKING:
    from upcall.job.datasetinfo import DatasetInfo
    from upcall.job.nets import Job


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
    # How clips that are not 2 s, 2000 Hz mono are read, as `upcall spectrograms --resample,
    # --mixdown, --fit` (top-level keys resample, mixdown, fit).
    read_options: ReadOptions = field(default_factory=ReadOptions, metadata=INLINE)
    # The group split where DATA has clips.csv (`upcall lists --group-by, --group-seconds`).
    group_by: str = "auto"
    group_seconds: float | None = None

    def __post_init__(self) -> None:
        get_mode(self.spectrogram_mode)
        check_fit(self.read_options.fit)
        seed = self.solver.seed
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise UpcallError(f"seed must be a whole number ≥ 0, not {json.dumps(seed)}")
        self.list_settings(None)  # raises on a bad val_fraction, split or balance
        self.dataset_settings()
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size < 1
        ):
            raise UpcallError(
                f"batch_size must be at least 1 or null, not {json.dumps(self.batch_size)}"
            )
        if not isinstance(self.network_params, dict):
            raise UpcallError(f"network_params must be an object, not {self.network_params!r}")
        for name in ("class_weights", "augment"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                flag = "--" + name.replace("_", "-")
                raise UpcallError(f"{name} must be text, as `upcall nets {flag}` takes it")
        # parsed here too, so a bad one stops fit before the spectrograms, not after the LMDB
        self.nets_options()

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
            read=self.read_options,
            group_by=self.group_by,
            group_seconds=self.group_seconds,
        )

    def dataset_settings(self) -> DatasetSettings:
        return DatasetSettings(
            size=parse_size(self.size), resize_mode=self.resize_mode, seed=self.seed
        )

    def nets_options(self) -> dict[str, Any]:
        """make_job's keywords for the recipe's `upcall nets --class-weights` / `--augment`,
        parsed as `upcall nets` parses them; only those set are passed, so a recipe without
        them makes the same job files as `upcall nets` without the flags."""
        options: dict[str, Any] = {}
        if self.class_weights is not None:
            options["class_weights"] = parse_class_weights(self.class_weights)
        if self.augment is not None:
            options["augment"] = parse_augment(self.augment, seed=self.seed)
        return options

    def make_job(self, dataset: DatasetInfo, *, engine: str = "torch") -> Job:
        """The job of this recipe on ``dataset`` (the job step's files, not yet written), for
        ``engine`` (the torch engine refuses a layer it does not run; real Caffe runs any)."""
        from upcall.job.nets import make_job

        return make_job(
            self.network,
            dataset,
            self.solver,
            batch_size=self.batch_size,
            net_params=self.network_params,
            engine=engine,
            **self.nets_options(),
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
    own = [f.name for f in fields(Recipe) if f.name not in ("solver", "read_options")]
    inline = [f.name for kind in (ReadOptions, SolverSettings) for f in dataclasses.fields(kind)]
    return own + inline


# Stands in for the data when a recipe is checked before any is made (load_recipe).
NOMINAL_CLIPS = 1000


def check_buildable(recipe: Recipe, *, clips: int = NOMINAL_CLIPS, engine: str = "torch") -> None:
    """Build the recipe's job on a stand-in dataset of its image size and ``clips`` labelled
    clips, so that what the job step would refuse (an unknown network, bad network parameters,
    class weights for another number of classes, more iterations than Caffe counts) is a
    one-line error naming the key before any step runs, not after the spectrograms and LMDB."""
    from upcall.network.load import load_network

    try:
        load_network(recipe.network)
    except UpcallError as e:
        raise UpcallError(f"network: {e}") from None
    try:
        load_network(recipe.network, recipe.network_params)
    except UpcallError as e:
        raise UpcallError(f"network_params: {e}") from None
    weights = parse_class_weights(recipe.class_weights or "none").weights
    if weights and len(weights) != len(LABELS):
        raise UpcallError(
            f"class_weights: {recipe.class_weights!r} gives {len(weights)} weights for "
            f"{len(LABELS)} classes ({', '.join(LABELS)})"
        )
    try:
        recipe.make_job(_stand_in(recipe, clips), engine=engine)
    except UpcallError as e:
        raise UpcallError(f"network {recipe.network} at size {recipe.size}: {e}") from None
    except (ValueError, OverflowError) as e:  # protobuf: max_iter beyond Caffe's int32
        data = f"{clips} clips" if clips != NOMINAL_CLIPS else f"a stand-in set of {clips} clips"
        raise UpcallError(
            f"epochs: {recipe.epochs} epochs of {data} make more iterations than Caffe counts ({e})"
        ) from None


def _stand_in(recipe: Recipe, clips: int) -> DatasetInfo:
    """A dataset of the recipe's image size and split, half of each class; nothing on disk."""
    from upcall.job.datasetinfo import DatasetInfo

    size = parse_size(recipe.size)
    height, width = size if size else clip_shape(recipe.spectrogram_mode)
    val = max(1, round(recipe.val_fraction * clips))
    train = max(2, clips - val)
    counts = {
        "train": {LABELS[0]: train - train // 2, LABELS[1]: train // 2},
        "val": {LABELS[0]: val - val // 2, LABELS[1]: val // 2},
    }
    info = {
        "image": {"height": height, "width": width, "channels": 1},
        "size": recipe.size,
        "counts": counts,
        "labels": list(LABELS),
    }
    return DatasetInfo("DATASET", height, width, 1, train, val, LABELS, recipe.size, info)


def load_recipe(path: str | os.PathLike, base: Recipe = DEFAULT_RECIPE) -> Recipe:
    """The recipe in file ``path``: its keys over ``base``'s, checked whole (types, values, the
    job it builds); errors are one line naming the file and the key. A file that names another
    network without ``network_params`` gets none (``base``'s are its own network's)."""
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
    if value.get("network", base.network) != base.network and "network_params" not in value:
        value = {**value, "network_params": {}}  # base's parameters are for base's network
    try:
        recipe = Recipe.from_json({**base.to_json(), **plain(value)}, source=path)
        check_buildable(recipe, engine="caffe")  # the command checks its own engine's layers
    except UpcallError as e:
        message = str(e)
        raise UpcallError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
    return recipe


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
