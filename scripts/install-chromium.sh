#!/usr/bin/env bash
# Install Debian's headless-capable Chromium and its WebDriver for the HTML page tests
# (`upcall digits serve`'s pages: tests/digits_server/test_browser.py drives chromium through
# chromium-driver with Selenium; report.html). Idempotent: apt-get runs only when one is missing.
#
#   bash scripts/install-chromium.sh
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" install-chromium chromium chromium-driver
for tool in chromium chromedriver; do
  command -v "$tool" >/dev/null || { echo "install-chromium: error: $tool still missing" >&2; exit 1; }
done
