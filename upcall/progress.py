"""Progress: one place that decides how long work is shown.

``UPCALL_PROGRESS`` chooses how:

- ``bar``: a tqdm bar redrawn in place (the default when stderr is a terminal);
- ``lines``: plain lines for a log file (the default when stderr is not a terminal): a step
  says where it is each 5 % of its work, and training after each validation pass (loss,
  validation figures, images/s, ETA), at most one line each 10 s so that a quick step writes
  nothing; ``lines:S`` makes that S seconds (``lines:0``: every 5 % and every pass);
- ``off``: nothing.

``1`` and ``0`` (this variable's older values) mean ``bar`` and ``off``.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

ENV = "UPCALL_PROGRESS"
STEP_PERCENT = 5  # a line each time this much more of a step is done
# A log file wants to hear from a long step, not from every short one: at 10 s a 30,000-clip
# `fit` writes ~20 lines a step and a line an epoch; a step done within 10 s writes none.
DEFAULT_INTERVAL = 10.0
HEARTBEAT = 6  # between validation lines, a step's own line only after 6 intervals (60 s)


def mode() -> tuple[str, float]:
    """(``"bar"`` | ``"lines"`` | ``"off"``, the lines' minimum interval in seconds)."""
    value = os.environ.get(ENV, "").strip().lower()
    name, _, seconds = value.partition(":")
    name = {"1": "bar", "0": "off"}.get(name, name)
    known = name in ("", "bar", "lines", "off")
    if name not in ("bar", "lines", "off"):  # unset (or unknown): by where stderr goes
        name = "bar" if _stderr_is_terminal() else "lines"
    try:
        interval = max(0.0, float(seconds)) if seconds else DEFAULT_INTERVAL
    except ValueError:
        interval, known = DEFAULT_INTERVAL, False
    if not known:
        _warn_once(f"upcall: {ENV}={value!r} is not bar, lines, lines:SECONDS or off; using {name}")
    return name, interval


_warned: set[str] = set()


def _warn_once(line: str) -> None:
    if line not in _warned:
        _warned.add(line)
        print(line, file=sys.stderr, flush=True)


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without a file, or closed
        return False


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
) -> Any:
    """A progress display on stderr, as :func:`mode` says: a tqdm bar, or :class:`Lines`.

    Either is used the same way: iterate over it, or ``update(n)``, ``set_postfix(**kw)``,
    ``n`` and ``close()``.
    """
    name, interval = mode()
    if name == "lines":
        return Lines(iterable, total=total, desc=desc, unit=unit, interval=interval)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        disable=name == "off",
        dynamic_ncols=True,
        mininterval=0.5,
    )


class Lines:
    """tqdm's interface, writing a plain line each 5 % of ``total`` (each update when the total
    is unknown), at most one each ``interval`` seconds, and a last one on close once any was."""

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.interval = interval
        self.n = 0
        self.postfix: dict[str, object] = {}
        self.started = time.monotonic()
        self._last_line = self.started
        self._next_percent = STEP_PERCENT
        self._written = False
        self._passes = False  # line() was called: training reports its validation passes
        self._due = False  # a line waits for the postfix that follows the update
        self._just_updated = self._postfix_follows = False
        # where the speed is counted from: a resumed training's bar jumps to its start at once
        self._base: tuple[float, int] | None = None

    def __iter__(self) -> Iterator[T]:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_postfix(self, **values: object) -> None:
        # A caller that sets the postfix right after each update (the training loop) gets its
        # line with the new postfix: update() leaves a line that is due to this call.
        self._postfix_follows = self._just_updated
        self._just_updated = False
        self.postfix = values
        if self._due:
            self._due = False
            self._line(self._where())

    def update(self, n: int = 1) -> None:
        now = time.monotonic()
        self.n += n
        self._just_updated = True
        if self._base is None:
            # the first update: a jump made at once (a resumed run's iterations so far) is not
            # work done here, so the speed is counted from after it
            self._base = (now, self.n) if now - self.started < 0.05 else (self.started, 0)
        # once training writes a line per validation pass, a step's lines are only a sign of
        # life between passes that are far apart
        quiet = self.interval * (HEARTBEAT if self._passes else 1)
        if now - self._last_line < quiet:
            return
        if self.total:
            percent = 100 * self.n / self.total
            if percent < self._next_percent or self.n >= self.total:  # the end: close() says it
                return
            self._next_percent = (math.floor(percent / STEP_PERCENT) + 1) * STEP_PERCENT
        if self._postfix_follows:
            self._due = True
        else:
            self._line(self._where())

    def line(self, text: str) -> None:
        """A line of its own (a validation pass), with where the step is; kept to the interval."""
        self._passes = True
        if time.monotonic() - self._last_line >= self.interval:
            self._line(f"{self._where()} · {text}")

    def close(self) -> None:
        if self._due:
            self._due = False
            self._line(self._where())
        if self._written and self.n:
            seconds = time.monotonic() - self.started
            self._line(f"{self._count()} {self._units()} done in {_clock(seconds)}")
            self._written = False

    def _count(self) -> str:
        return f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"

    def _units(self) -> str:
        return "items" if self.unit == "it" else f"{self.unit}s"  # "clips", "iters", "blocks"

    def _where(self) -> str:
        parts = [f"{self._count()} {self._units()}"]
        if self.total:
            parts[0] = f"{100 * self.n / self.total:.0f}% ({parts[0]})"
        # a key ending in _s is a rate (the run loop's img_s): "1148 img/s"
        parts += [
            f"{v} {k[:-2]}/s" if k.endswith("_s") else f"{k} {v}" for k, v in self.postfix.items()
        ]
        rate = self.rate()
        if rate:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.total:
                parts.append(f"ETA {_clock(max(0, self.total - self.n) / rate)}")
        return ", ".join(parts)

    def rate(self) -> float | None:
        """Units a second since the first update (None before any)."""
        if self._base is None:
            return None
        t0, n0 = self._base
        seconds = time.monotonic() - t0
        return (self.n - n0) / seconds if seconds > 0 and self.n > n0 else None

    def _line(self, text: str) -> None:
        self._last_line = time.monotonic()
        self._written = True
        prefix = f"{self.desc}: " if self.desc else ""
        print(f"{prefix}{text}", file=sys.stderr, flush=True)


def epoch_line(bar: Any, record: Any) -> None:
    """After a validation pass, one line with ``bar``'s training state (its postfix: epoch,
    loss, images/s; ETA) and ``record``'s figures (val_loss, val_auc, val_accuracy, recall).

    A no-op for a tqdm bar (its postfix is on screen) and when off; ``record`` is read by
    attribute, so this module depends on nothing of the job folder's.
    """
    if not isinstance(bar, Lines):
        return
    figures = []
    for label, name in (("val loss", "val_loss"), ("AUC", "val_auc"), ("accuracy", "val_accuracy")):
        value = getattr(record, name, None)
        if value is not None:
            figures.append(f"{label} {value:.4f}")
    recall = getattr(record, "recall", None) or {}
    figures += [f"recall {k} {v:.3f}" for k, v in recall.items() if v is not None]
    if figures:
        bar.line(", ".join(figures))


def _clock(seconds: float) -> str:
    """H:MM:SS (M:SS under an hour)."""
    s = round(seconds)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
