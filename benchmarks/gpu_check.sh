#!/usr/bin/env bash
# Check every CUDA path of upcall on one GPU in a few minutes, and print a table:
#   check | result | figure | cpu figure | ratio
# torch engine training on the GPU, bit-exact --resume (--deterministic), bf16 autocast against
# float32, WhaleNet and AlexNet training images/s against the CPU, detection speed, and a CUDA
# Caffe (UPCALL_CAFFE or --caffe-bin) when one is present. The checks are in gpu_check.py.
#
#   benchmarks/gpu_check.sh [--gpu N] [--caffe-bin PATH] [other gpu_check.py options]
#
# Exit status: 0 all passed, 1 a check failed, 77 no usable GPU here (nothing was checked).
# PYTHON selects the interpreter (default: the checkout's .venv/bin/python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
python="${PYTHON:-$root/.venv/bin/python}"

gpu=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        --gpu) gpu="${args[i + 1]:-}" ;;
        --gpu=*) gpu="${args[i]#--gpu=}" ;;
        --dry-run) dry_run=1 ;;
    esac
done
if [[ ! "$gpu" =~ ^[0-9]+$ ]]; then
    echo "gpu_check: --gpu takes a device index, not '$gpu'" >&2
    exit 2
fi

if [[ -z "${dry_run:-}" ]]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "gpu_check: no nvidia-smi here (no NVIDIA GPU or driver); nothing checked" >&2
        exit 77
    fi
    if ! nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader \
        --id="$gpu"; then
        echo "gpu_check: nvidia-smi cannot see GPU $gpu; nothing checked" >&2
        exit 77
    fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/upcall-gpu-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$here"  # gpu_check.py imports its neighbours (_run, bench_train)
status=0
"$python" gpu_check.py --work "$work" "$@" || status=$?
exit "$status"
