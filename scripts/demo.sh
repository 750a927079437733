#!/usr/bin/env bash
# The main job: set up, pretrain on scikit-learn's real handwritten digits (SimCLR and Barlow
# Twins against a random-init baseline, linear probe + kNN), print the results table and write
# the report (runs/demo-digits/report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/selfsup run examples/demo_digits.yaml "$@"
.venv/bin/selfsup report runs/demo-digits
