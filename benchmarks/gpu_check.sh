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
python benchmarks/throughput.py --mixed 12 --device cuda --num-envs 1048576 --repeats 3 --json \
  | tee "$out/mixed12_cuda.jsonl"
