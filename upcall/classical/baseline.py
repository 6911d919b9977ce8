"""``upcall baseline DATA --out JOB``: the classical baseline, trained on the networks' split.

The yardstick a user compares the CNNs against ("is a network worth it on my data?"): the 2013
Kaggle winners' method (see :mod:`upcall.classical.features`), trained on DATA/lists/train.txt
and scored on val.txt, the very lists ``upcall lmdb`` makes the networks' datasets from. Each
listed PNG is mapped back to its clip (lists.json names DATA and the PNGs' root), because the
method computes its own spectrograms from the audio.

The job folder is built in a temporary folder and renamed into place (``upcall.fsutil.atomic_dir``)
and holds what any trained job does (config.json, metrics.jsonl, summary.json, curves.png,
train.log) plus templates.npy, model.pkl and val_scores.csv (clip, label, score: the ROC data),
so ``upcall report`` lists it beside the networks and ``upcall classify`` runs it on clips.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from upcall import __version__
from upcall.audio.clip import read_clip
from upcall.classical.features import (
    FeatureSettings,
    enhance,
    feature_names,
    log_power,
    one_thread,
)
from upcall.classical.model import KIND, ClassifierSettings, compute_features, save
from upcall.classical.templates import Bank, BankSettings, choose
from upcall.data.lists import make_lists
from upcall.data.listsfolder import LABELS, PARTIAL_MARKER, ListSettings, ListsManifest
from upcall.data.pngroot import ReadOptions, find_clips
from upcall.errors import BatchReport, UpcallError
from upcall.fsutil import atomic_dir, atomic_write_text, check_own_dir
from upcall.job.config import JobConfig
from upcall.job.records import Summary
from upcall.job.writer import JobWriter
from upcall.parallel import check_workers, default_workers

HELP = "train the classical baseline (2013 Kaggle winners: templates + gradient boosting) on DATA's lists"
NETWORK = "baseline"  # the job's network name in config.json, summary.json and reports
SCORES = "val_scores.csv"

Listed = list[tuple[Path, int]]  # (clip, label) per list line, in list order


@dataclass(frozen=True)
class BaselineSettings:
    seed: int = 0  # template choice and the classifier: the same seed gives the same scores
    features: FeatureSettings = field(default_factory=FeatureSettings)
    bank: BankSettings = field(default_factory=BankSettings)
    classifier: ClassifierSettings = field(default_factory=ClassifierSettings)


def lists_for(
    data: Path, lists: Path, *, seed: int, settings: ListSettings | None = None
) -> ListsManifest:
    """LISTS' lists.json, after ``upcall lists DATA --out LISTS`` (with ``settings``, default
    those of ``seed``) if LISTS holds no lists yet."""
    manifest = ListsManifest.read(lists)
    if manifest is None:
        if (lists / "train.txt").exists() or (lists / PARTIAL_MARKER).exists():
            raise UpcallError(
                f"{lists}: has lists but no lists.json (made by hand, or `upcall lists` was "
                f"interrupted); the baseline needs it to find the clips: rerun `upcall lists "
                f"{data} --out {lists}`"
            )
        print(f"no lists in {lists}: making them (`upcall lists {data} --out {lists}`)")
        manifest = make_lists(data, out=lists, settings=settings or ListSettings(seed=seed))
    manifest.check_files(lists)
    if Path(manifest.data_dir).resolve() != data.resolve():
        raise UpcallError(
            f"{lists / ListsManifest.FILE}: lists of {manifest.data_dir}, not of {data}"
        )
    return manifest


def listed_clips(lists: Path, name: str, manifest: ListsManifest) -> Listed:
    """The clips behind the PNGs of LISTS/``name`` ("PNG LABEL" per line)."""
    data, root = Path(manifest.data_dir), Path(manifest.spectrogram_root)
    clips = {c.relative_to(data).with_suffix(".png"): c for c in find_clips(data)}
    path = lists / name
    out: Listed = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        png, _, label = line.rpartition(" ")  # a path may hold spaces; the label cannot
        try:
            out.append((clips[Path(png).relative_to(root)], int(label)))
        except (KeyError, ValueError):
            raise UpcallError(f"{path}:{n}: no clip in {data} for {png}") from None
    if not out:
        raise UpcallError(f"{path}: lists no clips")
    return out


def _images(path: Path, settings: FeatureSettings, read: ReadOptions):
    """(H, V) of one clip, or None for a bad clip (reported later, by the feature pass)."""
    try:
        return enhance(log_power(read_clip(path, **dataclasses.asdict(read))), settings)
    except (UpcallError, ValueError, OSError):
        return None


def make_bank(train: Listed, s: BaselineSettings, read: ReadOptions, workers: int | None) -> Bank:
    """Templates from training whale clips, ranked on other training clips (seeded)."""
    unique = sorted(set(train))
    rng = np.random.default_rng(s.seed)
    whales = [c for c in unique if c[1] == 1]
    if not whales:
        raise UpcallError("the training list has no whale clips to cut templates from")
    pick = rng.permutation(len(whales))[: s.bank.candidates]
    sources = [whales[i][0] for i in pick]
    rest = [c for c in unique if c[0] not in set(sources)]
    scoring = [rest[i] for i in rng.permutation(len(rest))[: s.bank.scoring_clips]]
    src = [(p.name, im) for p in sources if (im := _images(p, s.features, read)) is not None]
    scored = [(im, y) for p, y in scoring if (im := _images(p, s.features, read)) is not None]
    return choose(src, scored, features=s.features, bank=s.bank, workers=workers)


def train_baseline(
    data: Path,
    *,
    out: Path,
    lists: Path | None = None,
    settings: BaselineSettings = BaselineSettings(),
    workers: int | None = None,
    force: bool = False,
    read: ReadOptions | None = None,
    lists_settings: ListSettings | None = None,
) -> Summary:
    """Fit the baseline on LISTS (default DATA/lists) and write the job folder ``out``.

    Clips are read as LISTS' spectrograms were made, with ``read``'s options where given (and
    lists made here with ``lists_settings``, default those of the seed). Bad clips are reported
    one a line and left out; BatchFailed follows once the job is written.
    """
    check_workers(workers)
    data, out = Path(data).resolve(), Path(out).resolve()
    lists = Path(lists or data / "lists").resolve()
    # --force replaces only an earlier baseline job, never DATA, LISTS or a folder holding them
    owned = {"kind": "baseline", "legacy": (JobConfig.FILE,), "inputs": (data, lists)}
    check_own_dir(out, **owned)
    if out.exists() and any(out.iterdir()) and not force:
        raise UpcallError(f"{out}: exists and is not empty; --force replaces it")
    manifest = lists_for(data, lists, seed=settings.seed, settings=lists_settings)
    read = _merge(manifest.spectrograms.read_options, read)
    train, val = (listed_clips(lists, n, manifest) for n in ("train.txt", "val.txt"))
    start = time.perf_counter()
    with atomic_dir(out, **owned) as tmp:
        writer = JobWriter(tmp, class_names=list(LABELS))
        writer.log(f"baseline of {data}: {len(train)} training and {len(val)} validation clips")
        bank = make_bank(train, settings, read, workers)
        writer.log(f"templates: {len(bank.sources)}, AUC alone {list(bank.scores)}")
        report = BatchReport("clips")
        paths = sorted({p for p, _ in train + val})
        x, good = compute_features(
            paths,
            bank=bank.templates,
            settings=settings.features,
            read=read,
            report=report,
            workers=workers,
        )
        row = {p: i for i, p in enumerate(q for q, ok in zip(paths, good, strict=True) if ok)}
        tr = [(row[p], y) for p, y in train if p in row]
        va = [(p, row[p], y) for p, y in val if p in row]
        if not tr or not va:
            raise UpcallError(f"{lists}: no readable clip left in the training or validation list")
        features_done = time.perf_counter()
        model = settings.classifier.make(settings.seed)  # imports scikit-learn: before one_thread
        with one_thread():
            model.fit(x[[i for i, _ in tr]], np.array([y for _, y in tr]))
            fit_done = time.perf_counter()
            writer.log(
                f"features {features_done - start:.1f} s ({len(paths)} clips), "
                f"fit {fit_done - features_done:.1f} s ({model.n_iter_} trees)"
            )
            summary = _record(writer, model, x, tr, va, settings, start)
            probs = summary_probs(model, x, va)
        save(tmp, bank=bank.templates, classifier=model)
        atomic_write_text(tmp / SCORES, _scores_csv(va, probs, data))
        _config(manifest, lists, bank, settings, read, x.shape[1]).write(tmp)
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")
    _print_result(summary)
    report.finish()
    return summary


def _merge(recorded: ReadOptions, given: ReadOptions | None) -> ReadOptions:
    """The lists' read options, with those ``given`` that relax them."""
    if given is None:
        return recorded
    return ReadOptions(
        resample=recorded.resample or given.resample,
        mixdown=recorded.mixdown or given.mixdown,
        fit=recorded.fit if given.fit == "strict" else given.fit,
    )


def _print_result(summary: Summary) -> None:
    final = summary.final
    if final is None:
        return
    recall = ", ".join(f"{k} {v:.3f}" for k, v in (final.recall or {}).items() if v is not None)
    auc = "n/a" if final.val_auc is None else f"{final.val_auc:.4f}"
    accuracy = "n/a" if final.val_accuracy is None else f"{final.val_accuracy:.4f}"
    print(f"validation: AUC {auc}, accuracy {accuracy}, recall: {recall}")


def summary_probs(model, x: np.ndarray, va: list[tuple[Path, int, int]]) -> np.ndarray:
    return np.asarray(model.predict_proba(x[[i for _, i, _ in va]]), np.float64)


def _record(writer: JobWriter, model, x, tr, va, s: BaselineSettings, start: float) -> Summary:
    """metrics.jsonl (the training loss, the validation test), summary.json, curves.png."""
    from sklearn.metrics import log_loss

    y_tr, y_va = np.array([y for _, y in tr]), np.array([y for _, _, y in va])
    probs = summary_probs(model, x, va)
    loss = log_loss(y_tr, model.predict_proba(x[[i for i, _ in tr]]), labels=[0, 1])
    it = int(model.n_iter_)
    writer.train(iter=it, epoch=1.0, lr=s.classifier.learning_rate, loss=float(loss))
    writer.test(
        iter=it,
        epoch=1.0,
        val_loss=float(log_loss(y_va, probs, labels=[0, 1])),
        scores=probs,
        labels=y_va,
    )
    wall = time.perf_counter() - start
    return writer.finish(
        engine=KIND,
        network=NETWORK,
        iterations=it,
        epochs=1.0,  # one pass over the training clips: features once, then the trees
        wall_seconds=round(wall, 3),
        train_images_per_second=round(len(tr) / wall, 2),
        device="cpu",
        threads=default_workers(),
        resumed_from=None,  # no snapshots: the writer names none
    )


def _scores_csv(va: list[tuple[Path, int, int]], probs: np.ndarray, data: Path) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["clip", "label", "score"])
    for (path, _, label), p in zip(va, probs, strict=True):
        out.writerow([path.relative_to(data).as_posix(), label, repr(float(p[1]))])
    return buf.getvalue()


def _config(
    manifest: ListsManifest,
    lists: Path,
    bank: Bank,
    s: BaselineSettings,
    read: ReadOptions,
    n_features: int,
) -> JobConfig:
    import sklearn

    return JobConfig(
        network=NETWORK,
        network_source={
            "kind": KIND,
            "method": "Kridler & Dobson 2013: contrast-enhanced spectrograms, template "
            "correlation, row and click statistics, gradient boosting",
            "data_dir": manifest.data_dir,
            "lists": str(lists),
            "lists_seed": manifest.seed,
            "read": dataclasses.asdict(read),
            "features": dataclasses.asdict(s.features),
            "bank": dataclasses.asdict(s.bank),
            "templates": [
                {"clip": c, "row": r, "frame": f, "auc": a}
                for c, (r, f), a in zip(bank.sources, bank.boxes, bank.scores, strict=True)
            ],
            "classifier": {
                "name": "HistGradientBoostingClassifier",
                **dataclasses.asdict(s.classifier),
            },
            "feature_names": feature_names(len(bank.sources), s.features)[:n_features],
            "sklearn": sklearn.__version__,
        },
        base_lr=s.classifier.learning_rate,
        seed=s.seed,
        upcall_version=__version__,
    )


def configure(parser: argparse.ArgumentParser) -> None:
    from upcall import cliargs
    from upcall.data.groups import add_group_arguments
    from upcall.data.pngroot import add_read_arguments

    parser.add_argument("data_dir", type=Path, metavar="DATA", help="Kaggle-layout data directory")
    cliargs.add_out(parser, "job folder to write", metavar="JOB", required=True)
    parser.add_argument(
        "--lists",
        type=Path,
        metavar="LISTS",
        help="train/val lists from `upcall lists` (default DATA/lists; made there if missing)",
    )
    d = BaselineSettings()
    cliargs.add_seed(parser, "seed of the lists made here, the template choice and the classifier")
    parser.add_argument(
        "--templates",
        type=int,
        default=d.bank.size,
        help=f"templates in the bank (default {d.bank.size}); each costs ~0.6 ms a clip",
    )
    cliargs.add_workers(parser, "is a process computing the features of a chunk of clips")
    clips = parser.add_argument_group("clips (as `upcall fit` takes them; lists made here)")
    add_read_arguments(clips)
    add_group_arguments(clips)
    parser.add_argument(
        "--force", action="store_true", help="replace JOB if an earlier `upcall baseline` made it"
    )


def run(args: argparse.Namespace) -> int:
    from upcall.data.pngroot import read_options

    if args.templates < 1:
        raise UpcallError(f"--templates must be at least 1, got {args.templates}")
    d = BaselineSettings()
    settings = BaselineSettings(
        seed=args.seed, bank=dataclasses.replace(d.bank, size=args.templates)
    )
    read = read_options(args)
    lists_settings = ListSettings(
        seed=args.seed, read=read, group_by=args.group_by, group_seconds=args.group_seconds
    )
    train_baseline(
        args.data_dir,
        out=args.out,
        lists=args.lists,
        settings=settings,
        workers=args.workers,
        force=args.force,
        read=read,
        lists_settings=lists_settings,
    )
    return 0
