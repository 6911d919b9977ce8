#!/usr/bin/env bash
# The tutorial's list step: DATA/train.csv -> DATA/lists/{train,val,labels}.txt (+ lists.json).
# A thin door into `upcall lists`; extra arguments pass through (see `upcall lists --help`).
#   bash make_lists.sh [DATA_DIR] [upcall lists options]
# As preprocess-aiff.py: with no DATA_DIR (no arguments, or an option first) it lists data/.
# It runs the checkout's .venv/bin/upcall, else an `upcall` on PATH; with neither, one line
# says to run `make venv`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
upcall="$here/.venv/bin/upcall"
if [ ! -x "$upcall" ]; then
    if ! upcall="$(command -v upcall)"; then
        echo "make_lists.sh: upcall is not installed ($here/.venv/bin/upcall is missing and" \
            "no upcall is on PATH): run \`make venv\` first" >&2
        exit 1
    fi
fi
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
    set -- data "$@"
fi
exec "$upcall" lists "$@"
