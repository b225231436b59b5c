#!/usr/bin/env bash
# The ONNX export of all-MiniLM-L6-v2 for `make bench-encoder` (transformers.js runs it from local
# files): runs scripts/export-onnx.py (the onnx helper API, no torch) in a venv under .cache/ with
# onnx, numpy and onnxruntime from PyPI, only when .cache/minilm-onnx/ lacks the model or is older
# than the exporter. Needs the weights in .cache/minilm/ (`make setup`). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.cache/minilm-onnx/all-MiniLM-L6-v2/onnx/model.onnx
if [ -f "$OUT" ] && [ "$OUT" -nt scripts/export-onnx.py ]; then
  echo "[bench] ONNX export present ($OUT)"
  exit 0
fi
VENV=.cache/onnx-venv
if ! "$VENV/bin/python" -c 'import onnx, onnxruntime, numpy' 2>/dev/null; then
  echo "[bench] making $VENV (pip: onnx, numpy, onnxruntime)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check onnx==1.23.2 numpy==2.4.6 onnxruntime==1.32.0
fi
"$VENV/bin/python" scripts/export-onnx.py
