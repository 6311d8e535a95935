#!/usr/bin/env bash
# One script for a machine with a CUDA GPU: the CUDA tests, then the GPU figures of every issue
# target (engine, mixed batch, arm, POET step, a leaderboard sample), each under its own time cap.
# Usage: bash benchmarks/gpu_check.sh [OUT_DIR]
# A host without internet first needs what benchmarks/gpu_prepare.sh makes elsewhere (the wheels
# its Python lacks, the leaderboard grid's oracle plans), carried with the working tree.
# Writes OUT_DIR/log.txt (everything), OUT_DIR/results.jsonl (the JSON lines, one "# section"
# line before each section), OUT_DIR/leaderboard.db (the leaderboard sample), and the stores of
# the runs filled over several calls (leaderboard_full.db, poet_1000/; see their sections).
# GPU_CHECK_SECONDS (default 400) bounds the whole run: sections are capped to what is left and
# skipped when it is spent, so the files are complete when the script returns.
# SECTIONS="leaderboard poet_run" runs only the named sections, in the script's order (default: all).
# DK_ENVS (default 4096,MID,BIG) are DoorKey's batch sizes; LB_WORKERS (default 16) the
# leaderboard sample's worker processes; LB_ENVS (default 1024) is the leaderboard sample's envs per run; POET_ITERS (default 30) the
# length of the timed POET run (20 pairs from the start).
# DEVICE=cpu BIG=4096 MID=1024 BENCH_STEPS=4096 TIMED_STEPS=20 runs the same steps small, to check the script.
set -uo pipefail
out="${1:-gpu_results}"
dev="${DEVICE:-cuda}"
big="${BIG:-1048576}"
mid="${MID:-65536}"
steps="${BENCH_STEPS:-1000000}"
t="${TIMED_STEPS:-200}"  # timed engine steps per repeat (the default adapts to ~1M env steps)
only="${SECTIONS:-}"
lb_envs="${LB_ENVS:-1024}"
lb_workers="${LB_WORKERS:-16}"
poet_iters="${POET_ITERS:-30}"
dk_envs="${DK_ENVS:-4096,$mid,$big}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/log.txt"
res="$out/results.jsonl"
: >"$res"

budget="${GPU_CHECK_SECONDS:-400}"  # the whole script ends within this, whatever the caps

section() {  # section NAME SECONDS CMD...: run CMD under a time cap; JSON lines to results
  local name=$1 cap=$2
  shift 2
  if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then
    return
  fi
  local t0=$SECONDS left=$((budget - SECONDS - 5))
  if [ "$left" -lt 20 ]; then
    echo "=== $name skipped: the ${budget}s budget is spent" | tee -a "$log"
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "# section $name" >>"$res"
  echo "=== $name (cap ${cap}s): $*" | tee -a "$log"
  timeout -k 10 "$cap" "$@" 2>&1 | tee -a "$log" | grep '^{' >>"$res"
  echo "=== $name rc=${PIPESTATUS[0]} in $((SECONDS - t0))s" | tee -a "$log"
}

# the 12-world mix of docs/benchmarks.md, bucketed by component set, against each world alone
MIX=Checkpoints-9x9,CoinMaze-11x11,CrumblingBridge-9x9,DoorKey-8x8,FoggyRooms-11x11,IceRink-9x9
MIX=$MIX,InverseLava-8x8,MirrorLava-9x9,NoisyMaze-9x9,SlipperyDeceptive-7x7,SlipperyLava-9x9,Sokoban-7x7
if [ "$dev" = cuda ]; then
  python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.cuda.get_device_name(0), torch.__version__)" 2>&1 | tee -a "$log" || exit 1
  # the CUDA tests, and every test of the CUDA-graph step (some check CPU and CUDA engines)
  section cuda_tests 120 python -m pytest -q -m "cuda or cuda_graph" tests
  # the CUDA-graph sections first (one launch per program): the figures not yet measured
  section mixed12_graph 120 python benchmarks/throughput.py --worlds "$MIX" --device "$dev" \
    --num-envs "$big" --repeats 3 --steps "$t" --cuda-graph --no-concurrent --homogeneous --json
  # with one launch per program the fixed cost per program shrinks, so the auto plan's merges
  # (tuned for eager launches) may no longer pay: the two extreme plans, replayed as graphs
  for plan in components none; do
    section "mixed12_graph_$plan" 60 python benchmarks/throughput.py --worlds "$MIX" \
      --device "$dev" --num-envs "$big" --repeats 3 --steps "$t" --cuda-graph --no-concurrent \
      --bucketing "$plan" --json
  done
  # the buckets on their own CUDA streams (small programs side by side; the default with graphs,
  # and the auto plan charges a program less), graphed and compiled; then one after another
  section mixed12_graph_streams 60 python benchmarks/throughput.py --worlds "$MIX" \
    --device "$dev" --num-envs "$mid,$big" --repeats 3 --steps "$t" --cuda-graph --json
  section mixed12_graph_mid 40 python benchmarks/throughput.py --worlds "$MIX" \
    --device "$dev" --num-envs "$mid" --repeats 3 --steps "$t" --cuda-graph --no-concurrent --json
  section mixed12_graph_components_streams 60 python benchmarks/throughput.py --worlds "$MIX" \
    --device "$dev" --num-envs "$big" --repeats 3 --steps "$t" --cuda-graph --concurrent \
    --bucketing components --json
  section mixed12_compile_graph_streams 150 python benchmarks/throughput.py --worlds "$MIX" \
    --device "$dev" --num-envs "$big" --repeats 3 --steps "$t" --compile --cuda-graph \
    --concurrent --bucketing components --json
  section doorkey_graph 60 python benchmarks/throughput.py --world DoorKey-8x8 --device "$dev" \
    --cuda-graph --num-envs "$dk_envs" --repeats 3 --steps "$t" --json
fi
section doorkey 60 python benchmarks/throughput.py --world DoorKey-8x8 --device "$dev" \
  --num-envs "$dk_envs" --repeats 3 --steps "$t" --json
section arm 60 python benchmarks/arm_throughput.py --device "$dev" --num-envs "4096,$big" \
  --repeats 3 --steps "$t" --json
section poet 100 python benchmarks/poet_speed.py --pairs 20 --population 512 --iterations 3 \
  --device "$dev"
# the same with the engines' steps replayed as recorded CUDA graphs (both executors)
# (graphed engines step their buckets on CUDA streams by default)
section poet_graph 100 python benchmarks/poet_speed.py --pairs 20 --population 512 --iterations 3 \
  --device "$dev" --cuda-graph
# ... without the streams (the environment switch), and where one step's time goes
section poet_graph_no_streams 100 env AUTOWORLD_CUDA_STREAMS=0 python benchmarks/poet_speed.py \
  --pairs 20 --population 512 --iterations 3 --device "$dev" --cuda-graph
section poet_graph_profile 150 python benchmarks/poet_speed.py --pairs 20 --population 512 \
  --iterations 1 --device "$dev" --cuda-graph --profile
# the leaderboard sample: 8 methods x 2 worlds x 1 seed at the issue's 1M steps per run, cells
# in parallel processes sharing the GPU; the full grid (36 worlds x 5 seeds) is 90x this sample
section leaderboard 150 autoworld bench --methods ppo,ppo-pbt,bc,bc+ppo,es,cem,ga,es-pareto \
  --worlds DoorKey-8x8,InverseLava-8x8 --seeds 1 --steps "$steps" --device "$dev" \
  --num-envs "$lb_envs" --backend process --workers "$lb_workers" --db "$out/leaderboard.db"
# the same sample with every engine replaying recorded CUDA graphs (the environment switch)
if [ "$dev" = cuda ]; then
  section leaderboard_graph 150 env AUTOWORLD_CUDA_GRAPH=1 autoworld bench \
    --methods ppo,ppo-pbt,bc,bc+ppo,es,cem,ga,es-pareto --worlds DoorKey-8x8,InverseLava-8x8 \
    --seeds 1 --steps "$steps" --device "$dev" --num-envs "$lb_envs" --backend process \
    --workers "$lb_workers" --db "$out/leaderboard_graph.db"
fi
# ... and with PPO's and BC's minibatch updates replayed as recorded graphs too (PPO makes ~1,900
# small updates per million steps, BC up to 4,000; learners/update_graph.py). The whole grid takes the
# same switch from the environment: AUTOWORLD_CUDA_GRAPH_UPDATES=1 bash benchmarks/gpu_check.sh
if [ "$dev" = cuda ]; then
  section leaderboard_graph_updates 150 env AUTOWORLD_CUDA_GRAPH=1 AUTOWORLD_CUDA_GRAPH_UPDATES=1 \
    autoworld bench --methods ppo,ppo-pbt,bc,bc+ppo,es,cem,ga,es-pareto \
    --worlds DoorKey-8x8,InverseLava-8x8 --seeds 1 --steps "$steps" --device "$dev" \
    --num-envs "$lb_envs" --backend process --workers "$lb_workers" \
    --db "$out/leaderboard_graph_updates.db"
fi
# where a leaderboard cell's time goes on the GPU (one process, graphed): PPO and BC+PPO, the
# slowest cells of the sample
if [ "$dev" = cuda ]; then
  for m in ppo bc+ppo; do
    section "cell_profile_$m" 120 env AUTOWORLD_CUDA_GRAPH=1 python benchmarks/cell_profile.py \
      --method "$m" --world DoorKey-8x8 --steps "$steps" --device "$dev" --num-envs "$lb_envs"
  done
fi
# the whole leaderboard grid of the target (8 methods x suite:core36 x 5 seeds x 1M steps = 1,440
# runs), graphed, filled over as many calls as it takes: LB_DB names a store carried in from the
# last call (default: a new one in OUT); no run starts that would end after LB_LIMIT seconds
# (default 420), and the store is copied to OUT. `autoworld bench` prints this call's wall time
# and the sum over the calls so far (the grid's measured time once it is full). LB_SEEDS=1 first
# runs seed 0 of every (method, world), a sample of the whole grid (its time x 5 estimates the
# grid's); later calls with the default 5 fill in the other seeds.
lb_db="${LB_DB:-$out/leaderboard_full.db}"
lb_limit="${LB_LIMIT:-420}"
lb_seeds="${LB_SEEDS:-5}"
# the oracle's BC plans: filled beforehand (benchmarks/prefill_oracle.py) and carried with the store
lb_cache="${LB_CACHE:-$(dirname "$lb_db")/oracle-cache}"
if [ "$dev" = cuda ]; then
  section leaderboard_full $((lb_limit + 100)) env AUTOWORLD_CUDA_GRAPH=1 \
    AUTOWORLD_CACHE_DIR="$lb_cache" autoworld bench \
    --methods ppo,ppo-pbt,bc,bc+ppo,es,cem,ga,es-pareto --worlds suite:core36 --seeds "$lb_seeds" \
    --steps "$steps" --device "$dev" --num-envs "$lb_envs" --backend process \
    --workers "$lb_workers" --db "$lb_db" --time-limit "$lb_limit"
  [ -f "$lb_db" ] && [ "$lb_db" != "$out/leaderboard_full.db" ] && cp "$lb_db" "$out/"
fi
# a whole POET run (POET preset, population 512) with 20 active pairs from the first iteration
section poet_run 150 python benchmarks/poet_speed.py --pairs 20 --population 512 --full \
  --skip-step --run-iterations "$poet_iters" --device "$dev"
# ... and the same run with graphs
if [ "$dev" = cuda ]; then
  section poet_run_graph 150 python benchmarks/poet_speed.py --pairs 20 --population 512 --full \
    --skip-step --run-iterations "$poet_iters" --device "$dev" --cuda-graph
fi
# the target's whole run, 1000 iterations with 20 pairs, graphed, over as many calls as it takes:
# POET_DIR names the run carried in from the last call (default: a new one in OUT); each call
# stops before POET_LIMIT seconds (default 420) and resumes the run from its checkpoint; the
# folder is copied to OUT and its bench_calls.jsonl sums the calls' wall times. Its checkpoints
# also go to OUT as one file, poet_1000_checkpoints.tar (a transfer that drops nested folders
# still brings them back): untar it into the folder to resume the run or to run
# benchmarks/poet_claim.py on it
poet_dir="${POET_DIR:-$out/poet_1000}"
poet_limit="${POET_LIMIT:-420}"
if [ "$dev" = cuda ]; then
  section poet_run_1000 $((poet_limit + 60)) python benchmarks/poet_speed.py --pairs 20 \
    --population 512 --full --skip-step --run-iterations 1000 --device "$dev" --cuda-graph \
    --run-dir "$poet_dir" --resume --time-limit "$poet_limit"
  [ -d "$poet_dir" ] && [ "$poet_dir" != "$out/poet_1000" ] && cp -r "$poet_dir" "$out/poet_1000"
  [ -d "$poet_dir/checkpoints" ] && tar -C "$poet_dir" -cf "$out/poet_1000_checkpoints.tar" checkpoints
fi
# POET's central claim on that run once it is complete (skipped before): fresh agents optimized
# directly on the later half of the worlds it solved, with the same budget, 5 seeds each, all in
# one batched call per step
if [ "$dev" = cuda ]; then
  if python -c "import json, sys; d = sys.argv[1]; n = json.load(open(d + '/config.json'))\
['iterations']; m = open(d + '/metrics.jsonl').read().splitlines(); \
sys.exit(0 if m and json.loads(m[-1])['iteration'] + 1 >= n else 1)" "$poet_dir" 2>/dev/null; then
    section poet_claim_1000 "${POET_CLAIM_CAP:-300}" python benchmarks/poet_claim.py \
      "$poet_dir" --seeds 5
  elif [ -z "$only" ] || [[ " $only " == *" poet_claim_1000 "* ]]; then
    echo "=== poet_claim_1000 skipped: $poet_dir holds no complete run" | tee -a "$log"
  fi
fi
section mixed12 90 python benchmarks/throughput.py --worlds "$MIX" --device "$dev" \
  --num-envs "$big" --repeats 3 --steps "$t" --homogeneous --json
for plan in none components; do
  section "mixed12_$plan" 60 python benchmarks/throughput.py --worlds "$MIX" --device "$dev" \
    --num-envs "$big" --repeats 3 --steps "$t" --bucketing "$plan" --json
done
# the mix with every bucket's step compiled (fewer launches per program), against the compiled
# homogeneous runs it should be compared with
section mixed12_compile 200 python benchmarks/throughput.py --worlds "$MIX" --device "$dev" \
  --num-envs "$big" --repeats 3 --steps "$t" --compile --homogeneous --json
# the same with each program's step replayed as a recorded CUDA graph (one launch per program) (CUDA only)
if [ "$dev" = cuda ]; then
  section mixed12_compile_graph 240 python benchmarks/throughput.py --worlds "$MIX" --device "$dev" \
    --num-envs "$big" --repeats 3 --steps "$t" --compile --cuda-graph --homogeneous --json
fi
section doorkey_compile 120 python benchmarks/throughput.py --world DoorKey-8x8 --device "$dev" \
  --compile --num-envs "$big" --repeats 3 --steps "$t" --json
echo "=== done in ${SECONDS}s" | tee -a "$log"
