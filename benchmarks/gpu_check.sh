#!/usr/bin/env bash
# One script for a machine with a CUDA GPU: the CUDA tests, then the GPU throughput figures.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]   (results as JSON lines in OUT_DIR)
set -uo pipefail
out="${1:-gpu_results}"
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))" \
  | tee "$out/device.txt" || exit 1
python -m pytest -q -m cuda tests 2>&1 | tail -n 5 | tee "$out/cuda_tests.txt"
python benchmarks/throughput.py --world DoorKey-8x8 --device cuda \
  --num-envs 4096,65536,1048576 --repeats 3 --json | tee "$out/doorkey_cuda.jsonl"
python benchmarks/throughput.py --world DoorKey-8x8 --device cuda --compile \
  --num-envs 1048576 --repeats 3 --json | tee "$out/doorkey_cuda_compile.jsonl"
# the 12-world mix of docs/benchmarks.md, bucketed by component set, against each world alone
MIX=Checkpoints-9x9,CoinMaze-11x11,CrumblingBridge-9x9,DoorKey-8x8,FoggyRooms-11x11,IceRink-9x9
MIX=$MIX,InverseLava-8x8,MirrorLava-9x9,NoisyMaze-9x9,SlipperyDeceptive-7x7,SlipperyLava-9x9,Sokoban-7x7
python benchmarks/throughput.py --worlds "$MIX" --device cuda --num-envs 1048576 --repeats 3 \
  --homogeneous --json | tee "$out/mixed12_cuda.jsonl"
if [ -f benchmarks/arm_throughput.py ]; then
  python benchmarks/arm_throughput.py --device cuda --num-envs 4096,1048576 --json \
    | tee "$out/arm_cuda.jsonl"
fi
