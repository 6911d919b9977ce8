"""One recipe from labelled clips to a trained job: the steps `upcall fit` and `upcall demo` share
(`upcall search` uses the first three, :func:`make_dataset`).

spectrograms → train/val lists → LMDB dataset → job folder → training, each through the step's
own function (``upcall.data.render.ensure``, ``make_lists``, ``build_dataset``, ``make_job``,
the engine). A step whose output is complete is skipped, so rerunning after an interruption
continues where it stopped; training resumes from its latest snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upcall.errors import BatchFailed, Interrupted, UpcallError
from upcall.results.records import Summary
from upcall.workflows.recipe import Recipe

if TYPE_CHECKING:
    from upcall.engines import Engine


@dataclass(frozen=True)
class Layout:
    """Where each step reads and writes."""

    data: Path  # Kaggle layout: train.csv, train/
    spectrograms: Path  # ROOT of the PNGs (DATA itself for the tutorial's layout)
    lists: Path
    dataset: Path
    jobs: Path  # the job folder is jobs/<network>-lr<lr>

    @classmethod
    def under(cls, out: Path, *, data: Path, spectrograms: Path | None = None) -> Layout:
        """lists/, dataset/ and jobs/ under ``out``; PNGs in ``spectrograms`` (default
        out/spectrograms)."""
        return cls(
            data, spectrograms or out / "spectrograms", out / "lists", out / "dataset", out / "jobs"
        )


@dataclass
class Steps:
    """Numbered step lines: ``[fit] 3/5 LMDB dataset ... (already done)``."""

    prefix: str  # the command: "fit", "demo"
    total: int
    number: int = 0

    def step(self, title: str, done: bool = False) -> bool:
        """Print the next step's line; True when it has to run."""
        self.number += 1
        suffix = " (already done)" if done else ""
        print(f"[{self.prefix}] {self.number}/{self.total} {title}{suffix}", flush=True)
        return not done


DATA_STEPS = 3  # spectrograms, lists, dataset
PIPELINE_STEPS = DATA_STEPS + 2  # job, training


def make_dataset(layout: Layout, recipe: Recipe, *, steps: Steps) -> Path:
    """The first three steps of ``recipe`` over ``layout`` (spectrograms, lists, LMDB dataset);
    returns the dataset folder. DATA is only read unless ``layout.spectrograms`` is DATA."""
    from upcall.data.dataset import build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.render import ensure

    root = layout.spectrograms
    where = f"beside the clips in {root}" if root == layout.data else f"in {root}"
    # ensure keeps the PNGs an earlier run made, so it always runs
    steps.step(f"spectrograms ({recipe.spectrogram_mode} mode) {where}")
    try:
        ensure(layout.data, out=root, mode=recipe.spectrogram_mode)
    except BatchFailed as e:  # each bad clip was printed; lists say if a listed one is missing
        print(f"[{steps.prefix}] note: {e}", flush=True)
    if steps.step(f"train/val lists in {layout.lists}", (layout.lists / "lists.json").exists()):
        make_lists(layout.data, out=layout.lists, settings=recipe.list_settings(root))
    size = "native size" if recipe.size == "native" else recipe.size
    if steps.step(
        f"LMDB dataset at {size} in {layout.dataset}",
        (layout.dataset / "dataset.json").exists(),
    ):
        build_dataset(layout.lists, out=layout.dataset, settings=recipe.dataset_settings())
    return layout.dataset


def run_pipeline(
    layout: Layout, recipe: Recipe, engine: Engine, *, steps: Steps, rerun: str
) -> Path:
    """Run the five steps of ``recipe`` over ``layout``; returns the trained job folder.

    ``rerun`` names the command to run again after a Ctrl-C ("upcall fit").
    """
    from upcall.model.datasetinfo import load_dataset
    from upcall.model.nets import make_job, write_job
    from upcall.workflows.sweep import train_pending

    job = make_job(
        recipe.network,
        load_dataset(make_dataset(layout, recipe, steps=steps)),
        recipe.solver,
        batch_size=recipe.batch_size,
        net_params=recipe.network_params,
        **_nets_options(recipe),
    )
    folder = layout.jobs / job.name
    if steps.step(f"{recipe.network} job in {folder}", (folder / "solver.prototxt").exists()):
        write_job(job, layout.jobs)
    if steps.step(
        f"training {recipe.network} for {recipe.epochs} epochs ({engine.name} engine)",
        (folder / Summary.FILE).exists(),
    ):
        try:
            if train_pending(folder, engine) == "running elsewhere":
                raise UpcallError(f"{folder}: another process is training it; rerun when it ends")
        except (Interrupted, KeyboardInterrupt) as e:
            what = getattr(e, "what", None) or f"{folder}: stopped"
            raise Interrupted(
                f"{what}; to go on, run the same {rerun} command again (finished steps are "
                "skipped, training resumes from its snapshot)"
            ) from e
    return folder


def _nets_options(recipe: Recipe) -> dict[str, Any]:
    """make_job's keywords for the recipe's `upcall nets --class-weights` / `--augment`, parsed
    as `upcall nets` parses them; only those set are passed, so a recipe without them makes the
    same job files as `upcall nets` without the flags."""
    options: dict[str, Any] = {}
    if recipe.class_weights is not None:
        from upcall.model.classweights import parse_class_weights

        options["class_weights"] = parse_class_weights(recipe.class_weights)
    if recipe.augment is not None:
        from upcall.model.augment_net import parse_augment

        options["augment"] = parse_augment(recipe.augment, seed=recipe.seed)
    return options


def result_line(summary: Summary) -> str:
    """The last validation figures; AUC is n/a when the validation set had a single class."""

    def fmt(key: str) -> str:
        value = getattr(summary.final, key, None)
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"validation AUC: {fmt('val_auc')} (accuracy {fmt('val_accuracy')}) after "
        f"{summary.epochs:.2f} epochs in {summary.wall_seconds:.0f} s"
    )
