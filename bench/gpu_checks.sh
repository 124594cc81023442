#!/usr/bin/env bash
# The GPU checks of the scale issue, one stage per call (each fits a 10-minute device command).
# Not yet run: no GPU has been lent to this project's sessions so far. Each stage writes its log
# and JSON figures under $OUT (default ./gpu-out).
#
#   bash bench/gpu_checks.sh smoke      # CUDA tests + a bf16 scan end to end (run this first)
#   bash bench/gpu_checks.sh directions # per-point overhead, embedded + 1.1B, bf16
#   bash bench/gpu_checks.sh 7b         # random-init 7B: point time, overhead share, peak memory
#   bash bench/gpu_checks.sh decode     # tokens/s: ours vs model.generate vs preallocated cache
#   bash bench/gpu_checks.sh replicas   # 1, 2, 4 replicas of the embedded model on one GPU
#   bash bench/gpu_checks.sh grid       # the embedded model's 21×21 × 80-prompt scan, 4 replicas
#   bash bench/gpu_checks.sh paper      # ours vs the reference algorithm per point, paper settings
#   bash bench/gpu_checks.sh batch      # bf16 greedy tokens: how many responses flip, batch 1 vs 32
set -euo pipefail
stage=${1:?stage: smoke|directions|7b|decode|replicas|grid|paper|batch}
out=${OUT:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python}
store=$(mktemp -d)
export SAFETY_LANDSCAPE_STORE=$store
log="$out/$stage.log"
run() { echo "+ $*" | tee -a "$log"; "$@" 2>&1 | tee -a "$log"; }

case $stage in
smoke)
  run nvidia-smi
  run "$py" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  run "$py" -m pytest -q tests/landscape/core/test_noise.py tests/landscape/core/test_device.py \
    tests/landscape/core/test_directions.py tests/landscape/core/test_generate.py
  run "$py" -m landscape --device cuda scan 1d --points 5 --limit 16
  run "$py" -m landscape --device cuda scan 2d --points 3 --beta-points 3 --limit 8
  ;;
directions)
  run "$py" bench/bench_directions.py --device cuda --dtype bfloat16 --skip-rss --json "$out/directions.json"
  ;;
7b)
  dir=$(mktemp -d)
  run "$py" bench/bench_7b.py --device cuda --dtype bfloat16 --model-dir "$dir" \
    --prompts 80 --max-new-tokens 512 --json "$out/7b_paper.json"
  run "$py" bench/bench_7b.py --device cuda --dtype bfloat16 --model-dir "$dir" \
    --prompts 113 --max-new-tokens 32 --early-stop --json "$out/7b_defaults.json"
  ;;
decode)
  run "$py" bench/bench_decode.py --device cuda --dtype bfloat16 --long --compile --json "$out/decode.json"
  ;;
replicas)
  run "$py" bench/bench_ray.py --device cuda --dtype bfloat16 --workers 1,2,4 --gpus-per-worker 0.25 \
    --points 9 --prompts 80 --max-new-tokens 32 --json "$out/replicas.json"
  ;;
grid)
  SECONDS=0
  run "$py" -m landscape --device cuda scan 2d --points 21 --beta-points 21 --limit 80 \
    --workers 4 --gpus-per-worker 0.25
  echo "wall: $SECONDS s (441 points × 80 prompts, 4 replicas on one GPU)" | tee -a "$log"
  ;;
paper)
  run "$py" bench/bench_scan.py --paper --model smollm2-135m-instruct --points 1 --half 0 \
    --device cuda --dtype bfloat16 --store "$store" --json "$out/paper.json"
  ;;
batch)
  # issue 22 §8: the flip rate of bf16 greedy decoding between batch 1 and 32 (on CPU in float32
  # it is 0); each point records its batch size in its provenance
  for alpha in 0 0.1; do
    run "$py" bench/bench_batch.py --device cuda --dtype bfloat16 --prompts 64 --batch-sizes 1,32 \
      --alpha "$alpha" --max-new-tokens 64
  done
  ;;
*)
  echo "unknown stage: $stage" >&2
  exit 2
  ;;
esac
