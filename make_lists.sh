#!/usr/bin/env bash
# The tutorial's list step: DATA/train.csv -> DATA/lists/{train,val,labels}.txt (+ lists.json).
# A thin door into `upcall lists`; extra arguments pass through (see `upcall lists --help`).
#   bash make_lists.sh [DATA_DIR] [upcall lists options]
# As preprocess-aiff.py: with no DATA_DIR (no arguments, or an option first) it lists data/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
upcall="$here/.venv/bin/upcall"
[ -x "$upcall" ] || upcall="upcall"
if [ $# -eq 0 ] || [[ "$1" == -* ]]; then
    set -- data "$@"
fi
exec "$upcall" lists "$@"
