#!/bin/bash
# SHA-256 of the .caffemodel files the torch engine writes for a fixed seed, for each of
# today's networks (and the online-augmentation and class-weight levers). Run it on two
# checkouts with the same virtualenv: equal lines mean byte-identical weights.
#   scripts/weights-hashes.sh WORKDIR [UPCALL]     (UPCALL: the command, default .venv/bin/upcall)
set -euo pipefail
work=${1:?usage: scripts/weights-hashes.sh WORKDIR [UPCALL]}
upcall=${2:-.venv/bin/upcall}
export UPCALL_PROGRESS=off
mkdir -p "$work"
"$upcall" synth "$work/data" --n-train 120 --seed 3 --workers 2 --force >/dev/null
"$upcall" spectrograms "$work/data" --workers 2 --force >/dev/null
"$upcall" lists "$work/data" --out "$work/lists" --seed 3 >/dev/null
"$upcall" lmdb "$work/lists" --out "$work/ds" --seed 3 --workers 2 >/dev/null
"$upcall" lmdb "$work/lists" --out "$work/native" --size native --seed 3 --workers 2 >/dev/null
"$upcall" nets --dataset "$work/ds" --networks alexnet,googlenet --lr 0.01 --epochs 1 \
    --batch-size 16 --seed 7 --out "$work/jobs" >/dev/null
"$upcall" nets --dataset "$work/native" --networks whalenet --lr 0.01 --epochs 2 \
    --batch-size 16 --seed 7 --out "$work/jobs" >/dev/null
"$upcall" nets --dataset "$work/native" --networks whalenet --lr 0.005 --epochs 1 \
    --batch-size 16 --seed 7 --class-weights balanced --augment "${UPCALL_AUGMENT:-shift=4,freq=2,tmask=6,fmask=8,mix=0.5}" \
    --out "$work/jobs-levers" >/dev/null
for job in "$work"/jobs/* "$work"/jobs-levers/*; do
    "$upcall" train "$job" --engine torch --threads 2 >/dev/null
done
cd "$work" && find jobs jobs-levers -name '*.caffemodel' | sort | xargs sha256sum
