#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries for the shared-study test of `upcall search`
# (tests/workflows/test_search.py starts its own throwaway server from them). Idempotent: apt-get runs only
# when pg_ctl is missing. The packaged cluster Debian creates is not needed by the tests.
#
#   bash scripts/install-postgresql.sh
set -euo pipefail

if command -v pg_ctl >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  exit 0
fi
bash "$(dirname "${BASH_SOURCE[0]}")/apt-install.sh" install-postgresql postgresql
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || {
  echo "install-postgresql: error: pg_ctl still missing" >&2
  exit 1
}
