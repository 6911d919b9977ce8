"""What typed validation of the JSON file contracts (upcall.jsonfile) costs: start-up and reads.

Three variants, each measured in the same run as today's (no validation) and printed as medians
with the ratio to it:

- ``today``: upcall.jsonfile as it was before validation (``git show BASELINE:upcall/jsonfile.py``,
  put in place of this tree's by an import hook), so nothing checks field types;
- ``msgspec``: this tree (msgspec.convert checks every field against its annotation);
- ``pydantic``: today's module plus what a pydantic reader would import at start-up
  (``pydantic.TypeAdapter``); its reads are ``TypeAdapter(cls).validate_json(line, strict=True)``
  (strict python mode wants dataclass instances, not dicts, and lax mode reads ``"10"`` as 10).

Start-up: wall and CPU seconds (CPU is steadier on a shared machine) of ``upcall --help`` and
``upcall classify --help``, and the import time of ``upcall.jsonfile`` (``python -X importtime``:
every top-level module a bare interpreter does not load, so a library imported beside it counts).
Reads: microseconds per metrics.jsonl record, ``json.loads`` included (today's reader resolved
the annotations on every record, so validated reads are faster than today's).
pydantic is not a dependency: give a folder it was installed into with ``--pydantic``
(``pip install --target DIR pydantic``), or it is left out.

    .venv/bin/python benchmarks/bench_json_startup.py --repeats 15 --pydantic /tmp/pydantic
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "3a23506"  # the last commit whose upcall.jsonfile validated no field types

# Run first in every child: today's variant puts the old module in place of this tree's.
HOOK = """
import importlib.util, sys
class _Today:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "upcall.jsonfile" and {old!r}:
            return importlib.util.spec_from_file_location(name, {old!r})
sys.meta_path.insert(0, _Today)
"""
PYDANTIC = "import pydantic; pydantic.TypeAdapter\n"
HELP = """
from upcall.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
"""


def child(code: str, env: dict[str, str], *, importtime: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stderr) of a fresh interpreter running ``code``."""
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        sys.exit(f"a child failed ({done.returncode}):\n{code}\n{done.stderr[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, cpu, done.stderr


def top_level_us(stderr: str, skip: set[str]) -> int:
    """Sum of the cumulative import times of the top-level modules not in ``skip``."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        if not name.startswith("  ") and name.strip() not in skip:  # depth 0 is one space
            total += int(cumulative)
    return total


def modules_of_bare_interpreter(env: dict[str, str]) -> set[str]:
    *_, stderr = child("pass", env, importtime=True)
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if "|" in line}


def startup(variants: dict[str, str], env: dict[str, str], repeats: int) -> dict[str, dict]:
    """variant → measure → median (seconds; µs for the import time)."""
    skip = modules_of_bare_interpreter(env)
    runs: dict[str, dict[str, list[float]]] = {v: {} for v in variants}
    for _ in range(repeats):  # interleaved, so a busy moment hits every variant alike
        for name, prelude in variants.items():
            times = runs[name]
            for label, argv in (
                ("upcall --help", ["--help"]),
                ("classify --help", ["classify", "--help"]),
            ):
                wall, cpu, _ = child(prelude + HELP.format(argv=argv), env)
                times.setdefault(f"{label} (wall s)", []).append(wall)
                times.setdefault(f"{label} (CPU s)", []).append(cpu)
            *_, stderr = child(prelude + "import upcall.jsonfile\n", env, importtime=True)
            times.setdefault("import upcall.jsonfile (µs)", []).append(top_level_us(stderr, skip))
    return {v: {k: statistics.median(x) for k, x in m.items()} for v, m in runs.items()}


def records(n: int) -> list[str]:
    """metrics.jsonl lines as the run loop writes them: a test every tenth record."""
    lines = []
    for i in range(n):
        if i % 10 == 9:
            value = {
                "format": 1,
                "kind": "test",
                "iter": i,
                "epoch": i / 100,
                "val_loss": 0.31,
                "val_accuracy": 0.9,
                "val_auc": 0.95,
                "recall": {"noise": 0.97, "whale": 0.6},
                "clips": 300,
                "caffe_logged": None,
            }
        else:
            value = {
                "format": 1,
                "kind": "train",
                "iter": i,
                "epoch": i / 100,
                "lr": 0.01,
                "loss": 0.4,
            }
        lines.append(json.dumps(value))
    return lines


def reads(old: str, pydantic: bool, n: int, repeats: int) -> dict[str, float]:
    """variant → µs per record (json.loads included), median over ``repeats`` passes."""
    from upcall.job.records import RECORDS

    spec = importlib.util.spec_from_file_location("_jsonfile_today", old)
    today = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(today)  # type: ignore[union-attr]
    lines = records(n)
    kinds = [RECORDS[json.loads(line)["kind"]] for line in lines]
    ways = {
        "today": lambda cls, line: today._build(cls, json.loads(line), "metrics.jsonl"),
        "msgspec": lambda cls, line: cls.from_json(json.loads(line), source="metrics.jsonl"),
    }
    if pydantic:
        from pydantic import TypeAdapter

        adapters = {cls: TypeAdapter(cls) for cls in set(kinds)}
        ways["pydantic"] = lambda cls, line: adapters[cls].validate_json(line, strict=True)
    out = {}
    for name, read in ways.items():
        passes = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for cls, line in zip(kinds, lines, strict=True):
                read(cls, line)
            passes.append((time.perf_counter() - t0) / n * 1e6)
        out[name] = statistics.median(passes)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11, help="start-up runs per variant")
    parser.add_argument("--records", type=int, default=5000, help="metrics records read")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of today's module")
    parser.add_argument("--pydantic", type=Path, help="folder pydantic was installed into")
    args = parser.parse_args()

    source = subprocess.run(
        ["git", "show", f"{args.baseline}:upcall/jsonfile.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "msgspec" not in source, f"{args.baseline}'s upcall.jsonfile already validates"
    env = {**os.environ, "UPCALL_PROGRESS": "off"}
    if args.pydantic:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(args.pydantic), env.get("PYTHONPATH")])
        )
        sys.path.insert(0, str(args.pydantic))
    has_pydantic = importlib.util.find_spec("pydantic") is not None
    with tempfile.TemporaryDirectory() as tmp:
        old = str(Path(tmp) / "jsonfile_today.py")
        Path(old).write_text(source)
        variants = {"today": HOOK.format(old=old), "msgspec": HOOK.format(old="")}
        if has_pydantic:
            variants["pydantic"] = HOOK.format(old=old) + PYDANTIC
        medians = startup(variants, env, args.repeats)
        per_record = reads(old, has_pydantic, args.records, 5)

    print(
        f"median of {args.repeats} fresh interpreters ({sys.executable}); today = {args.baseline}"
    )
    names = list(medians)
    print(f"{'':34}" + "".join(f"{name:>20}" for name in names))
    for label in medians["today"]:
        today = medians["today"][label]
        cells = []
        for name in names:
            value = medians[name][label]
            shown = f"{value:.0f}" if "µs" in label else f"{value:.3f}"
            cells.append(f"{shown} (×{value / today:.2f})")
        print(f"{label:34}" + "".join(f"{c:>20}" for c in cells))
    today = per_record["today"]
    cells = "".join(f"{f'{us:.2f} (×{us / today:.2f})':>20}" for us in per_record.values())
    print(f"{'metrics.jsonl record read (µs)':34}{cells}")
    if not has_pydantic:
        print("pydantic: not installed (give --pydantic DIR)")


if __name__ == "__main__":
    main()
