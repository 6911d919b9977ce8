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
from typing import TYPE_CHECKING

from upcall.errors import BatchFailed, Interrupted, UpcallError
from upcall.job.records import Summary
from upcall.workflows.recipe import Recipe

if TYPE_CHECKING:
    from upcall.data.groups import GroupSplit
    from upcall.data.traincsv import Clip
    from upcall.engines import Engine
    from upcall.job.nets import Job


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


def check_same_data(layout: Layout, *, clips: bool = True) -> None:
    """Refuse lists under ``layout`` made from other data, or from DATA before its labels (or,
    with ``clips``, its clips) changed: their dataset and model would be kept and reported as
    this data's. Decided by content (``ListsManifest.labels_digest``, ``clips_digest``), never by
    modification times, which `cp -p`, `rsync -a` and `tar` carry over. ``clips`` needs the
    spectrograms brought up to date first (the clips' digest comes from their stamps)."""
    from upcall.data.listsfolder import ListsManifest
    from upcall.data.stamps import clips_digest
    from upcall.data.traincsv import groups_bytes, labels_digest, read_train_csv

    lists = ListsManifest.read(layout.lists)
    if lists is None:
        return
    out, csv_path = layout.lists.parent, layout.data / "train.csv"
    hint = "use another --out or remove it"
    if Path(lists.data_dir) != layout.data:
        raise UpcallError(
            f"{out}: made from the clips in {lists.data_dir}, not {layout.data}; {hint}"
        )
    if lists.labels_digest is None or lists.clips_digest is None:
        raise UpcallError(
            f"{layout.lists / ListsManifest.FILE}: made by an older upcall that did not record "
            f"what its clips and labels were; {hint}"
        )
    rows = read_train_csv(csv_path)
    groups = groups_bytes(layout.data)
    if labels_digest(rows, groups=groups) != lists.labels_digest:
        change = _label_change(layout.lists, rows)
        if groups is not None and change == "its rows were reordered":
            csv_path, change = layout.data / "clips.csv", "the clips' provenance (groups) changed"
        raise UpcallError(
            f"{csv_path}: {change} since the lists in {layout.lists} were made; {hint}"
        )
    pngs = [f"train/{Path(row.name).stem}.png" for row in rows]
    if clips and clips_digest(Path(lists.spectrogram_root), pngs) != lists.clips_digest:
        raise UpcallError(
            f"{layout.data / 'train'}: clips changed (same names, other content) since the "
            f"lists in {layout.lists} were made; {hint}"
        )


def _label_change(lists_dir: Path, rows: list[Clip]) -> str:
    """The first difference between train.csv's rows and the lists' (for the message)."""
    from upcall.data.dataset import read_list

    listed: dict[str, int] = {}
    for name in ("train.txt", "val.txt"):
        try:
            listed |= {p.stem: label for p, label in read_list(lists_dir / name, n_labels=2)}
        except UpcallError:
            return "its rows changed"
    now = {Path(row.name).stem: row for row in rows}
    for stem, row in now.items():
        if stem not in listed:
            return f"{row.name} was added (line {row.line})"
        if listed[stem] != row.label:
            return f"the label of {row.name} changed from {listed[stem]} to {row.label}"
    gone = [stem for stem in listed if stem not in now]
    return f"{gone[0]} was removed" if gone else "its rows were reordered"


def check_validation(lists_dir: Path) -> None:
    """UpcallError unless the validation list holds clips of every class: without up-calls the
    validation AUC does not exist and accuracy says nothing, yet training would run and exit 0."""
    from upcall.data.listsfolder import ListsManifest

    counts = ListsManifest.require(lists_dir).counts["val"]
    absent = [name for name, n in counts.items() if n == 0]
    if absent:
        raise UpcallError(
            f"{lists_dir / 'val.txt'}: no {' or '.join(absent)} clips among its "
            f"{sum(counts.values())}: validation figures need both classes; raise val_fraction "
            "in the recipe, or add labelled clips of that class to train.csv"
        )


def make_dataset(
    layout: Layout, recipe: Recipe, *, steps: Steps, split: GroupSplit | None = None
) -> Path:
    """The first three steps of ``recipe`` over ``layout`` (spectrograms, lists, LMDB dataset);
    returns the dataset folder. DATA is only read unless ``layout.spectrograms`` is DATA.
    ``split``: the lists' rows, as :func:`upcall.data.lists.make_lists` takes it.

    A step is done when its output was made from what the step reads now: lists from DATA's
    labels and clips as they are (else refused, see :func:`check_same_data`), the dataset from
    these lists (else rebuilt)."""
    from upcall.data.dataset import DatasetManifest, build_dataset
    from upcall.data.lists import make_lists
    from upcall.data.listsfolder import ListsManifest
    from upcall.data.render import ensure

    root = layout.spectrograms
    where = f"beside the clips in {root}" if root == layout.data else f"in {root}"
    # ensure keeps the PNGs an earlier run made, so it always runs
    steps.step(f"spectrograms ({recipe.spectrogram_mode} mode) {where}")
    try:
        ensure(layout.data, out=root, mode=recipe.spectrogram_mode, read=recipe.read_options)
    except BatchFailed as e:  # each bad clip was printed; lists say if a listed one is missing
        print(f"[{steps.prefix}] note: {e}", flush=True)
    check_same_data(layout)
    lists = ListsManifest.read(layout.lists)
    if steps.step(f"train/val lists in {layout.lists}", lists is not None):
        lists = make_lists(
            layout.data, out=layout.lists, settings=recipe.list_settings(root), split=split
        )
    check_validation(layout.lists)
    size = "native size" if recipe.size == "native" else recipe.size
    built = DatasetManifest.read(layout.dataset)
    if steps.step(
        f"LMDB dataset at {size} in {layout.dataset}", built is not None and built.lists == lists
    ):
        build_dataset(layout.lists, out=layout.dataset, settings=recipe.dataset_settings())
    return layout.dataset


def run_pipeline(
    layout: Layout,
    recipe: Recipe,
    engine: Engine,
    *,
    steps: Steps,
    rerun: str,
    split: GroupSplit | None = None,
    init_weights: str | None = None,
) -> Path:
    """Run the five steps of ``recipe`` over ``layout``; returns the trained job folder.

    ``rerun`` names the command to run again after a Ctrl-C ("upcall fit"); ``split``: as
    :func:`make_dataset` takes it; ``init_weights``: the .caffemodel training starts from
    (config.json's ``init_weights``), None: the fillers'.
    """
    from dataclasses import replace

    from upcall.job.datasetinfo import load_dataset
    from upcall.job.nets import write_job
    from upcall.workflows.sweep import train_pending

    dataset = load_dataset(make_dataset(layout, recipe, steps=steps, split=split))
    job = recipe.make_job(dataset, engine=engine.name)
    if init_weights is not None:
        job = replace(job, config=replace(job.config, init_weights=init_weights))
    folder = layout.jobs / job.name
    # done when the folder's config.json is this job's (same dataset build, network, solver
    # and schedule); a job made otherwise that has training results is refused by write_job
    if steps.step(f"{recipe.network} job in {folder}", _same_config(folder, job)):
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


def _same_config(folder: Path, job: Job) -> bool:
    from upcall.job.config import JobConfig

    try:
        return JobConfig.read(folder) == JobConfig.from_json(job.config.to_json())
    except UpcallError:
        return False  # unreadable: rewritten, or refused by write_job if trained


def result_line(summary: Summary) -> str:
    """The last validation figures; AUC is n/a when the validation set had a single class."""

    def fmt(key: str) -> str:
        value = getattr(summary.final, key, None)
        return "n/a" if value is None else f"{value:.4f}"

    return (
        f"validation AUC: {fmt('val_auc')} (accuracy {fmt('val_accuracy')}) after "
        f"{summary.epochs:.2f} epochs in {summary.wall_seconds:.0f} s"
    )
