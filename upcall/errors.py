"""User-facing errors and per-item reporting for batch jobs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field


class UpcallError(Exception):
    """An error a user can act on; its message is one line naming the file and what is wrong."""


class Interrupted(UpcallError):
    """Work stopped on request (Ctrl-C, SIGTERM) after saving what lets a rerun go on (a
    training snapshot: ``--resume`` continues it); its message says how to go on.

    The CLI prints the message and ends the process by the signal that stopped it (see
    ``upcall.cli``). Here, not in ``upcall.engines``, so the CLI can recognise it without
    importing any engine.
    """


class BatchFailed(UpcallError):
    """Raised at the end of a batch job in which some items failed (the rest were done)."""


@dataclass
class BatchReport:
    """Collects per-item failures of a batch job, printing each one as it happens.

    A batch job reports each bad item, skips it, finishes the rest, then calls :meth:`finish`,
    which raises :class:`BatchFailed` with a one-line summary if anything failed.
    """

    what: str  # what an item is, for the summary: "clips", "images"
    failures: list[tuple[str, str]] = field(default_factory=list)
    done: int = 0

    def fail(self, item: object, problem: str) -> None:
        self.failures.append((str(item), problem))
        print(f"{item}: {problem}", file=sys.stderr, flush=True)

    def ok(self, n: int = 1) -> None:
        self.done += n

    def record(self, item: object, problem: str | None) -> None:
        """One item's outcome from a worker: None when it was done, else what went wrong."""
        if problem is None:
            self.ok()
        else:
            self.fail(item, problem)

    def finish(self) -> None:
        if self.failures:
            total = self.done + len(self.failures)
            raise BatchFailed(
                f"{len(self.failures)} of {total} {self.what} failed (listed above); "
                f"the other {self.done} were done"
            )
