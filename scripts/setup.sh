#!/usr/bin/env bash
# Set up everything selfsup needs on a fresh Debian/Ubuntu machine (idempotent):
#   - Debian packages with real data and tools (Fashion-MNIST; espeak-ng and codec2 for
#     the audio plugin's deepfake data; mricron-data's Colin27 + AAL volumes for the
#     medical plugin), when apt-get is available;
#   - a virtual environment in .venv with the pinned torch stack (constraints.txt);
#   - the core, every first-party plugin and the example third-party plugin, editable.
# Usage: bash scripts/setup.sh        (SELFSUP_SKIP_APT=1 to skip the Debian step)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# Debian packages: real data for the plugins' tests, examples and benchmarks.
APT_PACKAGES=(dataset-fashion-mnist espeak-ng codec2 mricron-data)
if [ "${SELFSUP_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
PIP=(.venv/bin/python -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip
log "installing the pinned torch stack (constraints.txt)"
"${PIP[@]}" -c constraints.txt torch torchvision torchaudio
log "installing selfsup (core) and the plugins"
"${PIP[@]}" -c constraints.txt \
  -e "$ROOT/core[test,report]" \
  -e "$ROOT/plugins/vision" \
  -e "$ROOT/plugins/graph" \
  -e "$ROOT/plugins/security[test]" \
  -e "$ROOT/plugins/audio[test]" \
  -e "$ROOT/plugins/medical[test]" \
  -e "$ROOT/plugins/tracking[test]" \
  -e "$ROOT/examples/third_party_plugin"
# torchattacks is a test reference of the security plugin; it pins an old requests (used
# only to download pretrained models), so it is installed without its dependencies.
"${PIP[@]}" --no-deps "torchattacks==3.5.1"
log "done: $(.venv/bin/selfsup --version 2>/dev/null || echo 'selfsup installed')"
