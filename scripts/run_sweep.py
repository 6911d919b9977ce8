#!/usr/bin/env python3
"""Train every (network, learning rate) job on a dataset and compare them: `upcall sweep`.

    python scripts/run_sweep.py --dataset DATASET --networks alexnet,googlenet \
        --lr 0.001,0.005,0.01,0.05 --epochs 5 --out JOBS

Run by a Python without upcall's packages it says, in one line, to run `make venv`.
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from upcall.door import run

if __name__ == "__main__":
    sys.exit(run("sweep", sys.argv[1:], script="scripts/run_sweep.py"))
