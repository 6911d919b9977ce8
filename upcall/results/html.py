"""report.html: one self-contained page (figures embedded as data: URIs) comparing a sweep's jobs.

The page holds DIGITS's model list with what accuracy alone hides (the majority-class accuracy,
AUC, whale recall and precision at a threshold), the tutorial's three questions answered in
numbers, and the figures of :mod:`upcall.results.figures`. While any job is unfinished it
reloads itself every :data:`REFRESH_SECONDS` (``upcall report --watch`` rewrites it).
"""

from __future__ import annotations

import base64
import datetime as dt
from html import escape
from pathlib import Path

from upcall.results import figures
from upcall.results.entries import (
    Entry,
    best,
    by_network,
    by_validation_set,
    num,
    pct,
    questions,
)

REFRESH_SECONDS = 30

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.name { text-align: left; }
tr.best td { background: #eef7ee; } tr.pending td { color: #888; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #666; font-size: 0.9em; }
"""


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{escape(alt)}">'


HEAD = (
    "job", "network", "engine", "dataset", "base lr", "epochs", "accuracy", "majority class",
    "AUC", "best AUC", "whale recall", "whale precision", "training time", "images/s",
)  # fmt: skip


def table(entries: list[Entry], threshold: float) -> str:
    """DIGITS's model list plus what accuracy hides; unfinished jobs as grey rows; the best
    job of each validation set highlighted."""
    tops = {id(b) for es in by_validation_set(entries).values() if (b := best(es))}
    head = "".join(f"<th>{escape(h)}</th>" for h in HEAD)
    head = head.replace("whale recall<", f"whale recall ≥ {threshold:g}<")
    head = head.replace("whale precision<", f"whale precision ≥ {threshold:g}<")
    lines = [f'<table id="models"><tr>{head}</tr>']
    for e in entries:
        r = e.row
        if r is None:
            cells = [e.label, e.network, e.status, *[""] * (len(HEAD) - 3)]
            lines.append(_tr(cells, "pending"))
            continue
        recall = pct(e.at and e.at.recall) + (f" ({e.one_sided})" if e.one_sided else "")
        cells = [
            e.label, r.network, r.engine, r.dataset or "–", num(r.base_lr, "g"),
            num(r.epochs, ".2f"), pct(r.final_accuracy), pct(e.majority), num(r.final_auc),
            num(r.best_auc), recall, pct(e.at and e.at.precision),
            f"{r.wall_seconds:.0f} s", num(r.images_per_second, ".0f"),
        ]  # fmt: skip
        lines.append(_tr(cells, "best" if id(e) in tops else ""))
    lines.append("</table>")
    notes = [f"{e.label}: {e.note}" for e in entries if e.note]
    lines += [f'<p class="note">{escape(n)}</p>' for n in notes]
    return "\n".join(lines)


def _tr(cells: list[str], cls: str) -> str:
    tds = "".join(
        f'<td class="name">{escape(c)}</td>' if i < 4 else f"<td>{escape(c)}</td>"
        for i, c in enumerate(cells)
    )
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def _questions(entries: list[Entry], threshold: float) -> str:
    parts = []
    for q, answers in questions(entries, threshold):
        items = "".join(f"<li>{escape(a)}</li>" for a in answers)
        parts.append(f"<h3>{escape(q)}</h3><ul>{items}</ul>")
    return "\n".join(parts)


def _datasets(entries: list[Entry]) -> str:
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
        parts.append(f"<h3>{escape(e.dataset)}</h3>")
        if info is not None and info.counts:
            parts.append(_img(figures.class_histogram(info.counts, name), f"classes of {name}"))
        val = next((x.val for x in entries if x.dataset == e.dataset and x.val), None)
        if val is not None and val.images is not None:
            parts.append("<p>Validation spectrograms of each class (row 0, the lowest "
                         "frequency, at the bottom):</p>")  # fmt: skip
            parts.append(_img(figures.samples(val), f"sample spectrograms of {name}"))
    return "\n".join(parts) or '<p class="note">no network job names its dataset</p>'


def _models(entries: list[Entry], threshold: float) -> str:
    """ROC / PR, confusion matrices and the most-wrong clips of the best models."""
    nets = by_network(entries)
    tops = [b for es in nets.values() if (b := best([e for e in es if e.val])) is not None]
    tops.sort(key=lambda e: -e.auc)
    if not tops:
        return '<p class="note">no finished job could be scored per clip</p>'
    parts = [
        "<h3>ROC and precision–recall of each network's best job</h3>",
        f"<p>Dots: the operating point at whale probability ≥ {threshold:g}.</p>",
        _img(figures.roc_pr(tops, threshold), "ROC and precision-recall curves"),
        "<h3>Confusion matrices</h3>",
        _img(figures.confusion(tops), "confusion matrices"),
    ]
    top = next((e for e in tops if e.val.images is not None), None)
    if top is not None:
        png, listed = figures.most_wrong(top)
        parts.append(f"<h3>Validation clips {escape(top.label)} gets most wrong</h3>")
        if png is None:
            parts.append(f"<p>none: it calls every validation clip right at {threshold:g}</p>")
        else:
            items = "".join(
                f"<li>{escape(name)}: {escape(top.val.class_names[label])}, P(whale) {score:.3f}</li>"
                for name, label, score in listed
            )
            parts += [
                f"<p>Wrong at whale probability ≥ {threshold:g}, farthest from their label "
                "first:</p>",
                _img(png, "most wrong validation clips"),
                f'<ul class="note">{items}</ul>',
            ]
    return "\n".join(parts)


def _search(figure_dir: Path | None) -> str:
    pngs = sorted(figure_dir.glob("*.png")) if figure_dir and figure_dir.is_dir() else []
    return "\n".join(f"<h3>{escape(p.stem)}</h3>" + _img(p.read_bytes(), p.stem) for p in pngs)


def _classical(e: Entry) -> bool:
    return e.row is not None and e.row.engine == "classical"


def _compared(
    entries: list[Entry], threshold: float, where: str, tag: str
) -> list[tuple[str, str, str]]:
    """The sections that rank jobs against each other, for jobs validated on the same clips."""
    nets = by_network(entries)
    networks = {n: es for n, es in nets.items() if es[0].row.engine != "classical"}
    baseline = [e for es in nets.values() for e in es if e.row.engine == "classical"]
    lr = (
        _img(figures.against_lr(networks, baseline), "AUC and accuracy against learning rate")
        if networks
        else '<p class="note">no network job has finished</p>'
    )
    return [
        ("the" + tag, "The tutorial's three questions" + where, _questions(entries, threshold)),
        ("auc" + tag, "AUC and accuracy against learning rate" + where, lr),
        ("best" + tag, "Best models" + where, _models(entries, threshold)),
    ]


def render(
    entries: list[Entry],
    *,
    title: str,
    threshold: float,
    figure_dirs: list[Path] = (),
) -> str:
    """The whole page as one HTML string."""
    pending = [e for e in entries if e.row is None]
    refresh = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' if pending else ""
    stamp = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    status = (
        f"{len(pending)} of {len(entries)} jobs not finished: this page reloads every "
        f"{REFRESH_SECONDS} s (rewritten by <code>upcall report --watch</code>)."
        if pending
        else f"All {len(entries)} jobs finished."
    )
    curves = "\n".join(
        _img(figures.network_curves(net, es), f"curves of {net}")
        for net in sorted({e.network for e in entries})
        if (es := [e for e in entries if e.network == net and e.tests and not _classical(e)])
    )
    groups = by_validation_set(entries)
    sections = [
        ("models", "Models", table(entries, threshold)),
        ("dataset", "Dataset", _datasets(entries)),
        ("training", "Training curves, per network",
         curves or '<p class="note">no curves yet</p>'),
    ]  # fmt: skip
    for i, (group, members) in enumerate(groups.items()):
        # jobs validated on other clips are never ranked against each other
        where = f": jobs validated on {group or 'unknown clips'}" if len(groups) > 1 else ""
        tag = f"-{i + 1}" if len(groups) > 1 else ""
        sections += _compared(members, threshold, where, tag)
    order = {"models": 0, "the": 1, "dataset": 2, "training": 3, "auc": 4, "best": 5}
    sections.sort(key=lambda s: order[s[0].split("-")[0]])
    search = "\n".join(_search(d) for d in figure_dirs)
    if search:
        sections.append(("search", "Search", search))
    body = "\n".join(
        f'<section id="{escape(key)}"><h2>{escape(t)}</h2>\n{html}</section>'
        for key, t, html in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{refresh}<title>{escape(title)}</title><style>{STYLE}</style></head>\n<body>"
        f'<h1>{escape(title)}</h1><p class="note">Written {stamp}. {status}</p>\n'
        f"{body}\n</body></html>\n"
    )
