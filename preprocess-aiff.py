#!/usr/bin/env python3
"""The DIGITS tutorial's preprocess-aiff.py, as a thin door into ``upcall spectrograms``.

    python preprocess-aiff.py [DATA_DIR] [upcall spectrograms options]

With no DATA_DIR it converts data/train and data/test, writing trainK.png beside trainK.aiff,
as the tutorial's script did (same pixels: the default mode is "tutorial"). Run by a Python
without upcall's packages it says, in one line, to run `make venv` and use .venv/bin/python.
"""

import sys
from pathlib import Path

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from upcall.door import run

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["data", *args]
    sys.exit(run("spectrograms", args, script="preprocess-aiff.py"))
