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
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-chromium: error: not root and sudo is missing: run this script as root" >&2
    exit 1
  }
  as_root=(sudo)
fi
echo "install-chromium: apt-get install -y chromium" >&2
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null || { echo "install-chromium: error: chromium still missing" >&2; exit 1; }
