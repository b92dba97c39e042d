#!/usr/bin/env bash
# Idempotent environment set-up: a virtual environment in .venv with everything the project needs.
#   scripts/bootstrap.sh            runtime dependencies (the demo)
#   scripts/bootstrap.sh dev        + test tools, parity reference, Debian packages the tests use
# Fast when already done: each step is skipped when its stamp matches the inputs it was made from.
set -euo pipefail
cd "$(dirname "$0")/.."
want_dev=${1:-}
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

stamp_ok() { [ -f "$VENV/.stamp-$1" ] && [ "$(cat "$VENV/.stamp-$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" >"$VENV/.stamp-$1"; }

if [ ! -x "$VENV/bin/python" ]; then
    echo "[bootstrap] creating $VENV"
    "$PY" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)

if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    # A CUDA user installs the CUDA build into .venv before running this; we only fill in a CPU build.
    echo "[bootstrap] installing torch==2.13.0 (CPU build)"
    "${pip[@]}" torch==2.13.0
fi

key=$(sha1sum pyproject.toml | cut -c1-12)
if ! stamp_ok runtime "$key"; then
    echo "[bootstrap] installing the project and its runtime dependencies"
    "${pip[@]}" -e .
    stamp_set runtime "$key"
fi

if [ "$want_dev" = "dev" ]; then
    if ! stamp_ok dev "$key"; then
        echo "[bootstrap] installing dev, parity and cluster extras"
        "${pip[@]}" -e '.[dev,parity,cluster]'
        stamp_set dev "$key"
    fi
    debs=(python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
          gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
          gstreamer1.0-libav nats-server chromium stress-ng)
    missing=()
    for d in "${debs[@]}"; do dpkg -s "$d" >/dev/null 2>&1 || missing+=("$d"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "[bootstrap] installing Debian packages: ${missing[*]}"
        sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo"
        $sudo_ apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
