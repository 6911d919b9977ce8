"""What the HTML report knows of each job, and the tutorial's three questions answered from it.

An :class:`Entry` is one job folder: its table row and records when it finished, its validation
scores (:mod:`upcall.reports.scores`) when they could be had, and its dataset's balance setting.
Jobs are compared only with jobs validated on the same clips (:func:`by_validation_set`): a
report over several lists folders answers the questions once per folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from upcall.errors import UpcallError
from upcall.job.records import Record, TestRecord, read_metrics, validation_records
from upcall.reports.scores import AtThreshold, Scorer, ValScores, at_threshold, majority_accuracy

if TYPE_CHECKING:
    from upcall.reports.table import Row


@dataclass(frozen=True)
class Entry:
    """One job of the report; ``row`` None: not finished (``status`` says how far it got)."""

    job: Path
    status: str  # "done", or what an unfinished job is doing ("running", "not started", ...)
    network: str
    dataset: str | None  # the dataset folder it trains on; None: a classical job
    row: Row | None = None
    records: tuple[Record, ...] = ()
    val: ValScores | None = None
    at: AtThreshold | None = None
    majority: float | None = None  # majority-class accuracy of its validation set
    balance: str | None = None  # its training list's --balance; None: not recorded
    note: str = ""  # why the scores are missing
    # unique among the report's jobs (upcall.reports.report.unique_names); "": the folder's name
    name: str = ""
    group: str | None = None  # the lists folder of its validation clips; None: unknown

    @property
    def label(self) -> str:
        return self.name or self.job.name

    @property
    def tests(self) -> list[TestRecord]:
        return validation_records(list(self.records))

    @property
    def auc(self) -> float | None:
        return self.row.final_auc if self.row else None

    @property
    def accuracy(self) -> float | None:
        """Accuracy over each validation clip once, at the report's threshold: the same clips
        and rule as :attr:`majority`, so the two compare point for point."""
        if self.at is None:
            return None
        return float(np.trace(self.at.confusion) / max(int(self.at.confusion.sum()), 1))

    @property
    def one_sided(self) -> str | None:
        """ "never calls a whale" (or "calls every clip a whale") when it answers one class
        whatever the clip; None otherwise. Such a model's accuracy is the class balance's."""
        if self.at is None:
            return None
        called = self.at.confusion.sum(axis=0)
        names = self.val.class_names
        if called[1] == 0:
            return f"never calls a {names[-1]}"
        if called[0] == 0:
            return f"calls every clip a {names[-1]}"
        return None


def collect_entry(
    job: Path, row_of: Callable, scorer: Scorer, threshold: float, status: str, name: str = ""
) -> Entry:
    """The entry of ``job``; a job whose scores cannot be had keeps its row, with a note."""
    from upcall.job.config import JobConfig

    try:
        config = JobConfig.read(job)
    except UpcallError:
        config = None
    network = config.network if config else job.name
    classical = config is not None and config.network_source.get("kind") == "classical"
    dataset = config.dataset if config and not classical else None
    if classical:
        group = config.network_source.get("lists")
    else:
        group = _lists_dir(dataset) or dataset
    group = str(Path(group).resolve()) if group else None
    if status != "done":
        records = tuple(read_metrics(job, missing_ok=True))
        return Entry(job, status, network, dataset, records=records, name=name, group=group)
    row, records = row_of(job), tuple(read_metrics(job))
    found = Entry(
        job, status, row.network, dataset, row, records, balance=_balance(dataset), name=name,
        group=group,
    )  # fmt: skip
    try:
        val = scorer.score(job)
    except UpcallError as e:
        print(f"{job}: no per-clip scores for the report: {e}", file=sys.stderr)
        return replace(found, note=str(e))
    return replace(
        found, val=val, at=at_threshold(val, threshold), majority=majority_accuracy(val.labels)
    )


def _manifest(dataset: str | None):
    from upcall.data.dataset import DatasetManifest

    try:
        return DatasetManifest.read(Path(dataset)) if dataset else None
    except UpcallError:
        return None


def _balance(dataset: str | None) -> str | None:
    info = _manifest(dataset)
    return info.lists.balance if info and info.lists else None


def _lists_dir(dataset: str | None) -> str | None:
    """The lists folder a dataset was built from: its val list is the clips jobs are scored on
    (a 256×256 and a native dataset of one lists folder validate on the same clips)."""
    info = _manifest(dataset)
    return info.lists_dir if info else None


def by_validation_set(entries: Iterable[Entry]) -> dict[str | None, list[Entry]]:
    """Entries per lists folder of their validation clips, in first-seen order: only jobs
    scored on the same clips are compared. Entries whose folder is unknown join the only
    known one when there is exactly one."""
    groups: dict[str | None, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.group, []).append(e)
    known = [k for k in groups if k is not None]
    if None in groups and len(known) == 1:
        groups[known[0]] += groups.pop(None)
    return groups


def best(entries: list[Entry]) -> Entry | None:
    """The finished entry of highest final AUC (accuracy breaks ties), or None."""
    done = [e for e in entries if e.row is not None and e.auc is not None]
    key = lambda e: (e.auc, e.row.final_accuracy or 0.0)  # noqa: E731
    return max(done, key=key) if done else None


def by_network(entries: list[Entry]) -> dict[str, list[Entry]]:
    """Finished entries per network (the classical baseline under its network, "baseline")."""
    out: dict[str, list[Entry]] = {}
    for e in entries:
        if e.row is not None:
            out.setdefault(e.row.network, []).append(e)
    return out


def pct(x: float | None) -> str:
    """A fraction as a percentage for the page; "–" where there is none."""
    return "–" if x is None else f"{100 * x:.1f} %"


def num(x: float | None, fmt: str = ".3f") -> str:
    """A number for the page; "–" where there is none."""
    return "–" if x is None else format(x, fmt)


def questions(entries: list[Entry], threshold: float) -> list[tuple[str, list[str]]]:
    """The tutorial's three questions, each with answer lines in numbers."""
    nets = {n: es for n, es in by_network(entries).items() if es[0].row.engine != "classical"}
    tops = {n: b for n, es in nets.items() if (b := best(es)) is not None}
    return [
        ("Which learning rate is best for each network?", _best_lrs(nets)),
        ("How do the networks compare?", _networks(tops, by_network(entries), threshold)),
        ("What does class imbalance hide?", _imbalance(entries, tops, threshold)),
    ]


def _best_lrs(nets: dict[str, list[Entry]]) -> list[str]:
    lines = []
    for net, es in sorted(nets.items()):
        b = best(es)
        if b is None:
            lines.append(f"{net}: no job with a validation AUC yet")
            continue
        others = ", ".join(
            f"{e.row.base_lr:g}: {num(e.auc)}" for e in sorted(es, key=_lr) if e is not b
        )
        lines.append(
            f"{net}: learning rate {b.row.base_lr:g} (AUC {num(b.auc)}, accuracy "
            f"{pct(b.row.final_accuracy)})" + (f"; the others' AUC: {others}" if others else "")
        )
    return lines or ["no network job has finished"]


def _lr(e: Entry) -> float:
    return e.row.base_lr if e.row.base_lr is not None else float("nan")


def _networks(tops: dict[str, Entry], nets: dict[str, list[Entry]], threshold: float) -> list[str]:
    lines = []
    for net, b in sorted(tops.items(), key=lambda kv: -kv[1].auc):
        lines.append(
            f"best {net} ({b.label}): AUC {num(b.auc)}, accuracy "
            f"{pct(b.row.final_accuracy)}, whale recall {pct(b.at and b.at.recall)} and "
            f"precision {pct(b.at and b.at.precision)} at {threshold:g}"
            + (f" (it {b.one_sided})" if b.one_sided else "")
            + f", {b.row.wall_seconds:.0f} s of training"
        )
    ranked = sorted(tops.values(), key=lambda e: -e.auc)
    if len(ranked) >= 2:
        a, b = ranked[0], ranked[1]
        lines.append(
            f"{a.row.network} leads {b.row.network} by {a.auc - b.auc:+.3f} AUC; it trained "
            f"{a.row.wall_seconds / max(b.row.wall_seconds, 1e-9):.2f}× as long"
        )
    elif ranked:
        lines.append("only one network has finished jobs here: nothing to compare it with")
    for e in nets.get("baseline", []):
        lines.append(
            f"the classical baseline ({e.label}): AUC {num(e.auc)}, accuracy "
            f"{pct(e.row.final_accuracy)}"
        )
    return lines or ["no job has finished"]


def _imbalance(entries: list[Entry], tops: dict[str, Entry], threshold: float) -> list[str]:
    scored = [e for e in tops.values() if e.majority is not None]
    if not scored:
        return ["no finished job could be scored per clip"]
    top = max(scored, key=lambda e: e.auc)
    names, p = top.val.class_names, top.val.positive
    negative, positive = names[1 if p == 0 else 0], names[p]
    n_pos = int((top.val.labels == p).sum())
    lines = [
        f"the validation set is {pct(top.majority)} {negative} ({n_pos} of "
        f"{len(top.val.labels)} clips are {positive}): always answering "
        f"{negative} scores {pct(top.majority)} accuracy",
        _against_majority(top, threshold),
    ]
    near = [e for e in entries if e.accuracy is not None]
    trivial = [e for e in near if e.one_sided or e.accuracy <= e.majority + 1e-9]
    if trivial:
        lines.append(
            f"{len(trivial)} of {len(near)} scored jobs do no better than the majority answer "
            f"in accuracy at {threshold:g}: "
            + ", ".join(e.label + (f" ({e.one_sided})" if e.one_sided else "") for e in trivial)
        )
    balances = {e.balance for e in entries if e.row is not None and e.balance}
    if len(balances) >= 2:
        for bal in sorted(balances):
            b = best([e for e in entries if e.balance == bal])
            if b is not None:
                lines.append(
                    f"training list balance {bal!r}: best AUC {num(b.auc)} ({b.label}), "
                    f"whale recall {pct(b.at and b.at.recall)}"
                )
    return lines


def _against_majority(top: Entry, threshold: float) -> str:
    """The best model's accuracy against the majority answer's, on the same clips and rule;
    a model that answers one class whatever the clip is not credited with the class balance."""
    positive = top.val.class_names[top.val.positive]
    head = f"the best model ({top.label}), AUC {num(top.auc)}"
    if top.one_sided:
        return (
            f"{head}, {top.one_sided} at {threshold:g}: its accuracy of {pct(top.accuracy)} is "
            f"the class balance, not skill; it finds {pct(top.at.recall)} of the {positive} calls"
        )
    margin = 100 * (top.accuracy - top.majority)
    verdict = f"{margin:+.1f} points against that" if margin > 1e-7 else "no better than that"
    return (
        f"{head}, reaches {pct(top.accuracy)} accuracy at {threshold:g}, {verdict}; it finds "
        f"{pct(top.at.recall)} of the {positive} calls"
    )
