#!/usr/bin/env bash
# The Docker image's Caffe step: use the base image's own Caffe when it has one (a CUDA build,
# as in NVIDIA's Caffe images), else install the bundled CPU Caffe 1.0 root as `make test` does.
#
#   bash scripts/docker-caffe.sh ENV_FILE [PREFIX]
#
# Own Caffe: `python3 -c "import caffe"` works and `caffe` is on PATH. ENV_FILE then gets
# UPCALL_CAFFE (the binary) and UPCALL_CAFFE_PYTHON (that python3, for pycaffe), which the
# image's entrypoint (scripts/docker-entrypoint.sh) exports; otherwise ENV_FILE is left empty
# and scripts/install-caffe.sh makes the root at PREFIX (default $UPCALL_CAFFE_ROOT).
set -euo pipefail

env_file="${1:?usage: docker-caffe.sh ENV_FILE [PREFIX]}"
prefix="${2:-${UPCALL_CAFFE_ROOT:-/var/cache/upcall/caffe-bullseye}}"
: >"$env_file"
if python3 -c "import caffe" >/dev/null 2>&1 && caffe_bin="$(command -v caffe)"; then
    printf 'UPCALL_CAFFE=%s\nUPCALL_CAFFE_PYTHON=%s\n' "$caffe_bin" "$(command -v python3)" \
        >"$env_file"
    echo "docker-caffe: using the base image's Caffe: $caffe_bin" >&2
else
    bash "$(dirname "${BASH_SOURCE[0]}")/install-caffe.sh" "$prefix"
fi
