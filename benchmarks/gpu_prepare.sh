#!/usr/bin/env bash
# Prepare, on a machine with internet, what benchmarks/gpu_check.sh needs on a CUDA host that has
# none: the wheels its Python image lacks, and the oracle plans of the leaderboard grid.
# Usage: bash benchmarks/gpu_prepare.sh [WHEEL_DIR] [STATE_DIR]   (defaults .whl and gpu_state)
#   WHEEL_DIR: the project's dependencies a CUDA image with torch, numpy, typer, rich, pyyaml,
#     safetensors, matplotlib and tensorboard does not carry, pinned to this machine's versions,
#     for the host's Python (PYVER, default 3.12; x86-64 manylinux). Install them there with
#     pip install --no-index --no-deps --target DIR WHEEL_DIR/*.whl and PYTHONPATH=DIR.
#   STATE_DIR/oracle-cache: benchmarks/prefill_oracle.py suite:core36 (~100 s on 2 cores); the
#     entries are keyed by the grid code's digest, so rerun it after any change under envs/grid.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
wheels="${1:-.whl}"
state="${2:-gpu_state}"
py="${PYVER:-3.12}"
mkdir -p "$wheels" "$state"
for name in pydantic pydantic-core annotated-types typing-inspection gymnasium \
    farama-notifications; do
  version=$(python -c "import importlib.metadata as m; print(m.version('$name'))")
  python -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$wheels" "$name==$version"
done
echo "wheels in $wheels: $(ls "$wheels" | tr '\n' ' ')"
AUTOWORLD_CACHE_DIR="$state/oracle-cache" python benchmarks/prefill_oracle.py suite:core36
python -c "from autoworld.learners import oracle_cache as oc; print('oracle cache digest', \
oc.code_digest())"
