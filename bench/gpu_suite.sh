#!/usr/bin/env bash
# The whole GPU table of bench/RESULTS.md in one run (< 8 minutes on an H100):
#   1. ms / fps per frame, bf16, full size (`sam3`, random weights in the official layout),
#      exactly N objects in steady state (bench/video.py), N = 1 4 10 16 32;
#   2. per-stage device ms (--stage-sync), which gives the detector's ms per frame with the
#      concept's text cached (encoded once per stream, as the engine does);
#   3. four live streams sharing backbone batches (VideoTracker.step_many): aggregate fps.
# Each part has its own time limit, so a slow part cannot eat the others' time.
#
#   bench/gpu_suite.sh            # on the GPU machine, from the repository root
#   bench/gpu_suite.sh --quick    # smoke test anywhere: tiny config on the CPU, 2 frames
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY="${PYTHON:-.venv/bin/python}"

if [[ "${1:-}" == "--quick" ]]; then
  common=(--config tiny --device cpu --dtype float32 --frames 2)
  objects=(1 4); split=(1); limit=600
else
  common=(--config sam3 --device cuda --dtype bfloat16 --frames 8)
  objects=(1 4 10 16 32); split=(1 10); limit=240
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --quick for the CPU smoke test')"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
echo "# bench/gpu_suite.sh  commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)  $(date -u +%FT%TZ)"

part() {  # part TITLE SECONDS ARGS...: one bench run, failing loudly with its name
  local title="$1" seconds="$2"; shift 2
  echo; echo "## $title"
  if ! timeout "$seconds" "$PY" -m bench.video "$@"; then
    echo "FAILED or over ${seconds}s: $title" >&2
    exit 1
  fi
}

part "1. exact N, steady state: ms per frame" "$limit" "${common[@]}" --objects "${objects[@]}"
part "2. per-stage device ms (synchronised around each network call; 'detect' = detector per frame, text cached)" \
  "$limit" "${common[@]}" --objects "${split[@]}" --stage-sync
part "3. four live streams sharing backbone batches: aggregate fps" \
  "$limit" "${common[@]}" --objects "${split[0]}" --streams 4
echo; echo "# done"
