#!/usr/bin/env bash
# Install emox-edge into ./.venv (idempotent; safe to run again).
#   bash scripts/install.sh          runtime only (what `emox-edge run` needs)
#   bash scripts/install.sh --dev    + converters (torch, transformers, ...) + test tools
# llama-cpp-python is compiled from source on first install (~5 min on 2 cores); pip's wheel cache
# makes later installs on the same machine take seconds. Set CMAKE_ARGS="-DGGML_CUDA=on" for CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}

# System packages: PortAudio (microphone); for tests also espeak-ng and ffmpeg (generated media) and
# PulseAudio (a null-sink microphone for the real PortAudio test).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  for pkg in libportaudio2 $( [ $DEV = 1 ] && echo espeak-ng ffmpeg pulseaudio libasound2-plugins chromium chromium-driver ); do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip wheel setuptools
if [ $DEV = 1 ]; then
  # torch 2.13.0 is the CPU build this machine kind keeps on disk; a bare `torch` may pull a CUDA build.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[convert,dev]"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "emox-edge installed in .venv: $(.venv/bin/emox-edge --version)"
