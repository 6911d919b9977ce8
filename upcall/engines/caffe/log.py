"""Reading Caffe's log as it comes: DIGITS's rules for glog lines.

``Iteration N ... loss``, ``Iteration N, lr``, ``Test net output``, ``Snapshotting``. The caffe
engine sets glog's environment for its child (prefix on, to stderr) so these lines have the
prefix the rules need; :attr:`LogState.glog_lines` tells whether any line had it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# glog: "I1124 09:03:03.986 22488 solver.cpp:239] message" (DIGITS's prefix rule)
_GLOG = re.compile(r"^([IWEF])\d{4} \S+\s+\d+ \S+\] (.*)$")
_TRAIN = re.compile(r"^Iteration (\d+) \((\S+) iter/s, (\S+)s/(\d+) iters\), loss = (\S+)$")
_LR = re.compile(r"^Iteration (\d+), lr = (\S+)$")
_TEST = re.compile(r"^Iteration (\d+), Testing net \(#0\)$")
_OUTPUT = re.compile(r"^Test net output #\d+: (\S+) = (\S+)")
_SNAPSHOT = re.compile(r"^Snapshotting to binary proto file (\S+)$")


@dataclass
class LogState:
    """What Caffe's log has said so far; :meth:`feed` takes one line at a time."""

    pending_loss: dict[int, float] = field(default_factory=dict)  # display loss awaiting its lr
    train: list[tuple[int, float, float]] = field(default_factory=list)  # (iter, loss, lr)
    tests: dict[int, dict[str, float]] = field(default_factory=dict)  # iter -> test outputs
    snapshots: list[str] = field(default_factory=list)
    timed: tuple[float, int] = (0.0, 0)  # (seconds, iterations) of Caffe's display intervals
    stopped_early: bool = False
    fatal: str | None = None
    glog_lines: int = 0  # lines with glog's prefix: none means the log could not be read
    _testing: int | None = None  # the iteration of the latest "Testing net" line

    def feed(self, line: str) -> tuple[int, float, float] | None:
        """Parse one log line; returns a new (iter, loss, lr) display point when one completes."""
        m = _GLOG.match(line.rstrip())
        if not m:
            return None
        self.glog_lines += 1
        level, text = m.group(1), m.group(2).strip()
        if level in "EF":
            self.fatal = line.strip()
        if (out := _OUTPUT.match(text)) and self._testing is not None:
            self.tests[self._testing][out.group(1)] = float(out.group(2))
            return None
        # Other threads' lines (data prefetching) interleave with a test's outputs, so outputs
        # belong to the latest "Testing net" line.
        if t := _TEST.match(text):
            self._testing = int(t.group(1))
            self.tests[self._testing] = {}
        elif t := _TRAIN.match(text):
            it, seconds, n = int(t.group(1)), float(t.group(3)), int(t.group(4))
            self.pending_loss[it] = float(t.group(5))
            if it > 0:  # the first display's timer started before the solver did
                self.timed = (self.timed[0] + seconds, self.timed[1] + n)
        elif (t := _LR.match(text)) and int(t.group(1)) in self.pending_loss:
            it = int(t.group(1))
            point = (it, self.pending_loss.pop(it), float(t.group(2)))
            self.train.append(point)
            return point
        elif t := _SNAPSHOT.match(text):
            self.snapshots.append(t.group(1))
        elif text.startswith("Optimization stopped early"):
            self.stopped_early = True
        return None
