#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the HTML page test of `upcall digits serve`
# (tests/test_digits_server.py). Idempotent: apt-get runs only when `chromium` is missing.
#
#   bash scripts/install-chromium.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
as_root=()
[[ "$(id -u)" == 0 ]] || as_root=(sudo)
echo "install-chromium: apt-get install -y chromium" >&2
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null || { echo "install-chromium: error: chromium still missing" >&2; exit 1; }
