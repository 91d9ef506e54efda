#!/usr/bin/env bash
# Runs the gates (ruff, mypy, import-linter), then the whole test suite. The store tests also
# run on Postgres when a server answers on 127.0.0.1:5432 (or PLINTH_TEST_DATABASE_URL names
# one); otherwise they are skipped with a reason that pytest prints (-ra), never silently.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# The gates a contributor expects (ADRs 0070-0072), before any test: lint, formatting, types,
# the dependency rule. Each one's findings are printed and the run stops at the first that fails.
# PLINTH_SKIP_GATES=1 skips them (for running a few tests while editing).
gate() {
  local name=$1; shift
  local start=$SECONDS
  if ! "$@"; then
    echo "GATE FAILED: $name ($*)" >&2
    exit 1
  fi
  echo "gate ok: $name ($((SECONDS - start)) s)"
}
if [ -z "${PLINTH_SKIP_GATES:-}" ]; then
  gate "ruff check" "$BIN/ruff" check --quiet .
  gate "ruff format" "$BIN/ruff" format --check --quiet .
  gate "mypy" "$BIN/mypy"
  gate "import-linter" "$BIN/lint-imports" --no-cache
fi
if [ -z "${PLINTH_TEST_DATABASE_URL:-}" ]; then
  if "$BIN/python" - <<'PY' 2>/dev/null
import psycopg
psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", connect_timeout=3).close()
PY
  then
    export PLINTH_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/test"
    echo "Postgres answers on 127.0.0.1:5432: store tests run on SQLite and Postgres."
  else
    echo "WARNING: no Postgres on 127.0.0.1:5432: the Postgres store tests will be SKIPPED (see the summary)." >&2
  fi
fi
# Two workers (pytest-xdist), a test file each at a time: much of the suite waits on servers
# and job processes, so two workers keep both cores busy. Module fixtures (live servers,
# loaded models) stay within their file. PLINTH_TEST_WORKERS=0 runs in this process.
# --no-loadscope-reorder: files are handed out in collection order, the longest first
# (tests/support/order.py), not sorted by their number of tests, which put the minutes-long
# few-test files last and left one worker idle at the end.
WORKERS="${PLINTH_TEST_WORKERS:-2}"
if [ "$WORKERS" != "0" ]; then
  set -- -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
fi
exec "$BIN/python" -m pytest "$@"
