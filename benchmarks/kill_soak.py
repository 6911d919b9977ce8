"""Run the kill tests (tests/faults/test_kill.py) many times under CPU load; report failures.

A one-off check, not part of CI: an interrupt's outcome must be the same at every moment, and a
loaded machine is where rare moments (a signal during an import, a pool starting, the last
flush) come up. One pytest session runs each selected kill test ``--runs`` times, each time at
other seeded moments (UPCALL_KILL_REPEAT, UPCALL_KILL_SEED), while ``--load`` CPU-bound
processes (``python -c 'while True: pass'``) compete for the cores.

    nice python benchmarks/kill_soak.py --runs 20 --load 2 -k "killed_step and sigint"

Prints each test's outcome as it comes, the failures' summary and a last line with the counts;
exits 1 when any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each kill test (20)")
    parser.add_argument("--load", type=int, default=2, help="CPU-bound processes beside (2)")
    parser.add_argument("-k", dest="select", default="", help="pytest -k expression (all)")
    parser.add_argument("--seed", type=int, default=1, help="UPCALL_KILL_SEED (1)")
    args = parser.parse_args()

    command = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rf"]
    command += ["tests/faults/test_kill.py"] + (["-k", args.select] if args.select else [])
    env = {**os.environ, "UPCALL_KILL_REPEAT": str(args.runs), "UPCALL_KILL_SEED": str(args.seed)}
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)
    ]
    start, lines = time.monotonic(), []
    try:  # each test's outcome as it comes (-v), for a long soak watched from its log
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for line in proc.stdout:
            lines.append(line)
            if " PASSED" in line or " FAILED" in line or " ERROR" in line:
                print(line.rstrip(), flush=True)
        proc.wait()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    minutes = (time.monotonic() - start) / 60
    output = "".join(lines)
    failed = re.findall(r"^FAILED (\S+)", output, re.MULTILINE)
    passed = sum(int(n) for n in re.findall(r"(\d+) passed", output))
    if proc.returncode not in (0, 1):  # not a test failure: pytest itself or a fixture broke
        sys.stdout.write(output[-3000:])
    elif failed:
        sys.stdout.write(output[output.find("short test summary") :])
    print(
        f"{passed + len(failed)} kill test runs ({args.runs} of each selected test"
        + (f", -k {args.select!r}" if args.select else "")
        + f") beside {args.load} CPU-bound processes, {minutes:.0f} min: "
        + f"{len(failed)} failed (pytest exit {proc.returncode})"
    )
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
