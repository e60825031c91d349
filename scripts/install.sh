#!/usr/bin/env bash
# Installs scorehoi_jax and its dependencies into ./.venv (CPU jax).
# System packages (Mesa EGL for the offscreen renderer) are installed with
# apt-get when running as root and missing; without them the renderer falls
# back to ray casting.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="libegl1 libgl1 libgl1-mesa-dri"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  missing=""
  for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null) \
      || echo "install.sh: could not install$missing; rendering will use the ray-casting fallback" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -r requirements.txt
.venv/bin/pip install -q --no-deps -e .
# Optional Beam mode of `scorehoi prepare synthetic --beam` (the `beam` extra; ~20 s). Without it the
# Beam tests skip and everything else works.
.venv/bin/pip install -q "apache-beam>=2.60" \
  || echo "install.sh: apache-beam not installed; the Beam-mode tests will be skipped" >&2

# Test-only reference for body-model parity: smplx on a CPU torch. Installed only
# where the CPU wheel is available locally (it is never a run-time dependency).
if ls /opt/wheels/torch-*+cpu-*.whl >/dev/null 2>&1; then
  .venv/bin/pip install -q "torch==2.13.0" smplx >/dev/null 2>&1 \
    || echo "install.sh: smplx/torch not installed; the smplx parity tests will be skipped" >&2
fi
echo "scorehoi_jax installed in .venv"
