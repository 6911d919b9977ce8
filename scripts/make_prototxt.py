"""Regenerate prototxt/: the whale tutorial's jobs (see prototxt/README.md).

python scripts/make_prototxt.py [OUT]       (default: prototxt/ beside this script's parent)
"""

from __future__ import annotations

import sys
from pathlib import Path

from upcall.job.nets import write_tutorial

if __name__ == "__main__":
    out = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "prototxt"
    )
    for folder in write_tutorial(out):
        print(folder)
