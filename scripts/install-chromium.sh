#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the HTML page tests (`upcall digits serve`'s
# page, report.html). Idempotent: apt-get runs only when `chromium` is missing.
#
#   bash scripts/install-chromium.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" install-chromium chromium
command -v chromium >/dev/null || { echo "install-chromium: error: chromium still missing" >&2; exit 1; }
