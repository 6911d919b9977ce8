#!/usr/bin/env bash
# Install Debian packages with apt-get, as root or through sudo: the one place the install
# scripts (install-chromium.sh, install-postgresql.sh) and the Makefile's venv step do it.
#
#   bash scripts/apt-install.sh NAME PACKAGE...     (NAME prefixes the messages)
set -euo pipefail

name="${1:?usage: apt-install.sh NAME PACKAGE...}"
shift
(($#)) || { echo "$name: error: no package named" >&2; exit 2; }
as_root=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "$name: error: not root and sudo is missing: run this as root" >&2
    exit 1
  }
  as_root=(sudo)
fi
echo "$name: apt-get install -y $*" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
