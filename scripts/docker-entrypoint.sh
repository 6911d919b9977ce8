#!/usr/bin/env bash
# The Docker image's entrypoint: export the Caffe the build found (scripts/docker-caffe.sh),
# then run the command (default: make demo).
set -euo pipefail
if [[ -s /opt/upcall/caffe.env ]]; then
    set -a
    # shellcheck source=/dev/null
    . /opt/upcall/caffe.env
    set +a
fi
exec "$@"
