"""report.html: one self-contained page (figures embedded as data: URIs) comparing a sweep's jobs.

The page holds DIGITS's model list with what accuracy alone hides (the majority-class accuracy,
AUC, whale recall and precision at a threshold), the tutorial's three questions answered in
numbers, and the figures of :mod:`upcall.reports.figures`. While any job is unfinished it
reloads itself every :data:`REFRESH_SECONDS` (``upcall report --watch`` rewrites it).

This module gathers what the page shows; ``templates/report.html`` (Jinja2, autoescaped) lays
it out.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path

import jinja2

from upcall.reports import figures
from upcall.reports.entries import (
    Entry,
    best,
    by_network,
    by_validation_set,
    num,
    pct,
    questions,
)

REFRESH_SECONDS = 30
HEAD = (
    "job", "network", "engine", "dataset", "base lr", "epochs", "accuracy", "majority class",
    "AUC", "best AUC", "whale recall", "whale precision", "training time", "images/s",
)  # fmt: skip
# Sections in page order; a report over several validation sets repeats the/auc/best per set.
ORDER = {"models": 0, "the": 1, "dataset": 2, "training": 3, "auc": 4, "best": 5, "search": 6,
         "presence": 7}  # fmt: skip


@dataclass(frozen=True)
class Image:
    """A PNG shown inline: ``src`` is its data: URI."""

    src: str
    alt: str


@dataclass(frozen=True)
class Section:
    """One ``<section>``: ``kind`` names the template macro that draws ``data``."""

    id: str
    title: str
    kind: str
    data: object


def _img(png: bytes, alt: str) -> Image:
    return Image("data:image/png;base64," + base64.b64encode(png).decode("ascii"), alt)


@functools.cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("upcall.reports"),
        autoescape=True,  # every job name, label and path is text, never markup
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def table(entries: list[Entry], threshold: float) -> dict:
    """DIGITS's model list plus what accuracy hides; unfinished jobs as grey rows; the best
    job of each validation set highlighted. ``{"head", "rows": [(css class, cells)], "notes"}``."""
    tops = {id(b) for es in by_validation_set(entries).values() if (b := best(es))}
    head = [f"{h} ≥ {threshold:g}" if h in ("whale recall", "whale precision") else h for h in HEAD]
    rows = []
    for e in entries:
        r = e.row
        if r is None:
            rows.append(("pending", [e.label, e.network, e.status, *[""] * (len(HEAD) - 3)]))
            continue
        recall = pct(e.at and e.at.recall) + (f" ({e.one_sided})" if e.one_sided else "")
        cells = [
            e.label, r.network, r.engine, r.dataset or "–", num(r.base_lr, "g"),
            num(r.epochs, ".2f"), pct(r.final_accuracy), pct(e.majority), num(r.final_auc),
            num(r.best_auc), recall, pct(e.at and e.at.precision),
            f"{r.wall_seconds:.0f} s", num(r.images_per_second, ".0f"),
        ]  # fmt: skip
        rows.append(("best" if id(e) in tops else "", cells))
    notes = [f"{e.label}: {e.note}" for e in entries if e.note]
    return {"head": head, "rows": rows, "notes": notes}


def _datasets(entries: list[Entry]) -> list[dict]:
    """Each dataset the jobs train on: its class histogram and sample spectrograms."""
    from upcall.data.dataset import DatasetManifest
    from upcall.errors import UpcallError

    parts, seen = [], set()
    for e in entries:
        if e.dataset is None or e.dataset in seen:
            continue
        seen.add(e.dataset)
        try:
            info = DatasetManifest.read(Path(e.dataset))
        except UpcallError:
            info = None
        name = Path(e.dataset).name
        part = {"path": e.dataset, "classes": None, "samples": None}
        if info is not None and info.counts:
            part["classes"] = _img(figures.class_histogram(info.counts, name), f"classes of {name}")
        val = next((x.val for x in entries if x.dataset == e.dataset and x.val), None)
        if val is not None and val.images is not None:
            part["samples"] = _img(figures.samples(val), f"sample spectrograms of {name}")
        parts.append(part)
    return parts


def _models(entries: list[Entry], threshold: float) -> dict | None:
    """ROC / PR, confusion matrices and the most-wrong clips of the best models."""
    nets = by_network(entries)
    tops = [b for es in nets.values() if (b := best([e for e in es if e.val])) is not None]
    tops.sort(key=lambda e: -e.auc)
    if not tops:
        return None
    out = {
        "roc": _img(figures.roc_pr(tops, threshold), "ROC and precision-recall curves"),
        "confusion": _img(figures.confusion(tops), "confusion matrices"),
        "wrong": None,
    }
    top = next((e for e in tops if e.val.images is not None), None)
    if top is not None:
        png, listed = figures.most_wrong(top)
        out["wrong"] = {
            "label": top.label,
            "image": _img(png, "most wrong validation clips") if png is not None else None,
            "clips": [
                f"{name}: {top.val.class_names[label]}, P(whale) {score:.3f}"
                for name, label, score in listed
            ],
        }
    return out


def _search(figure_dir: Path | None) -> list[tuple[str, Image]]:
    pngs = sorted(figure_dir.glob("*.png")) if figure_dir and figure_dir.is_dir() else []
    return [(p.stem, _img(p.read_bytes(), p.stem)) for p in pngs]


def _classical(e: Entry) -> bool:
    return e.row is not None and e.row.engine == "classical"


def _compared(entries: list[Entry], threshold: float, where: str, tag: str) -> list[Section]:
    """The sections that rank jobs against each other, for jobs validated on the same clips."""
    nets = by_network(entries)
    networks = {n: es for n, es in nets.items() if es[0].row.engine != "classical"}
    baseline = [e for es in nets.values() for e in es if e.row.engine == "classical"]
    lr = (
        _img(figures.against_lr(networks, baseline), "AUC and accuracy against learning rate")
        if networks
        else None
    )
    return [
        Section("the" + tag, "The tutorial's three questions" + where, "questions",
                questions(entries, threshold)),
        Section("auc" + tag, "AUC and accuracy against learning rate" + where, "lr", lr),
        Section("best" + tag, "Best models" + where, "best", _models(entries, threshold)),
    ]  # fmt: skip


def presence(folder: Path) -> dict:
    """What ``upcall presence`` wrote in ``folder``: its figures as lines, the diel plot."""
    from upcall.survey.presence import Presence

    p = Presence.require(folder, "run `upcall presence DETECTIONS --out DIR` first")
    effort = (
        f"{p.recorded_hours:.2f} h of audio; {p.hours_with_presence} of {p.hours_with_effort} "
        f"recorded hours and {p.days_with_presence} of {p.days_with_effort} recorded days with "
        "detections"
        if p.effort_known
        else f"recording effort unknown (tables alone): {p.hours_with_presence} hours and "
        f"{p.days_with_presence} days with detections"
    )
    lines = [
        f"{p.detections} detections from {p.source}, {p.first_day} to {p.last_day} (UTC)",
        effort,
        f"detections scoring at least {p.threshold:g}"
        + (f", labels {', '.join(p.labels)}" if p.labels else ""),
    ]
    if p.unplaced_detections:
        lines.append(
            f"not placed on the clock (start unknown): {p.unplaced_detections} detections in "
            f"{', '.join(p.unplaced_recordings)} ({p.unplaced_hours:.2f} h of audio)"
        )
    diel = folder / "diel.png"
    return {
        "folder": str(folder),
        "lines": lines,
        "diel": _img(diel.read_bytes(), f"diel plot of {folder}") if diel.is_file() else None,
    }


def render(
    entries: list[Entry],
    *,
    title: str,
    threshold: float,
    figure_dirs: list[Path] = (),
    presence_dirs: list[Path] = (),
) -> str:
    """The whole page as one HTML string; ``presence_dirs``: ``upcall presence`` outputs."""
    curves = [
        _img(figures.network_curves(net, es), f"curves of {net}")
        for net in sorted({e.network for e in entries})
        if (es := [e for e in entries if e.network == net and e.tests and not _classical(e)])
    ]
    groups = by_validation_set(entries)
    sections = [
        Section("models", "Models", "models", table(entries, threshold)),
        Section("dataset", "Dataset", "datasets", _datasets(entries)),
        Section("training", "Training curves, per network", "curves", curves),
    ]
    for i, (group, members) in enumerate(groups.items()):
        # jobs validated on other clips are never ranked against each other
        where = f": jobs validated on {group or 'unknown clips'}" if len(groups) > 1 else ""
        tag = f"-{i + 1}" if len(groups) > 1 else ""
        sections += _compared(members, threshold, where, tag)
    search = [fig for d in figure_dirs for fig in _search(d)]
    if search:
        sections.append(Section("search", "Search", "search", search))
    if presence_dirs:
        parts = [presence(d) for d in presence_dirs]
        sections.append(Section("presence", "Presence", "presence", parts))
    sections.sort(key=lambda s: ORDER[s.id.split("-")[0]])
    return (
        _env()
        .get_template("report.html")
        .render(
            title=title,
            threshold=f"{threshold:g}",
            refresh=REFRESH_SECONDS,
            pending=sum(e.row is None for e in entries),
            total=len(entries),
            stamp=dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
            sections=sections,
        )
    )
