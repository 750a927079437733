#!/usr/bin/env bash
# Set up and run the whole test suite (unit, contract, quality-on-real-data and CLI tests).
# Tests that need ../shared/data skip with a reason when it is absent, except under CI=true.
# Test files run in parallel, one pytest-xdist worker per usable CPU up to 4 (a file's
# tests stay in one worker, so module fixtures are built once; a test class is a scope
# of its own), the files with the most heavy tests first (conftest.py);
# SELFSUP_TEST_WORKERS=N picks N workers, 0 runs everything in this process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
workers=${SELFSUP_TEST_WORKERS:-$(.venv/bin/python -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')}
parallel=()
if [ "$workers" -gt 1 ]; then
  parallel=(-n "$workers" --dist loadscope --no-loadscope-reorder)
fi
# pytest exits 5 when it collects nothing: set -e turns that into a failure, as it should.
.venv/bin/python -m pytest "${parallel[@]}" "$@"
