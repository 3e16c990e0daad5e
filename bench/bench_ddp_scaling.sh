#!/usr/bin/env bash
# Data-parallel scaling on this machine: training throughput of configs/demo.ini's
# model (3.2M parameters, 12.8 MB of f32 gradients) with a fixed batch per rank
# (weak scaling), for 1 rank and for 2 ranks under mpirun. Prints a table;
# numbers go to bench/RESULTS.md.
#   bench/bench_ddp_scaling.sh [BUILD_DIR] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${2:-40}
data=datasets/moby_byte
if [ ! -s $data/train.h5 ]; then
  bash scripts/fetch_data.sh datasets/mobydick.txt
  "$build/attnlab" prepare --input datasets/mobydick.txt --tokenizer byte --out $data
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mpirun=(mpirun --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1)
common=(configs/demo.ini --data.train=$data/train.h5 --data.val=$data/val.h5 --train.steps=$steps
        --optim.warmup_steps=5 --train.eval_every=0 --train.log_every=5 --data.batch_size=8 -q)

# Median tokens/s over the logged windows, the first (warm-up) window left out.
tok_s() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{statistics.median(r['tokens_per_s'] for r in rows[1:]):.0f}")
PY
}

run() {  # name, launcher..., -- , extra args
  local name=$1
  shift
  local launcher=()
  while [ "$1" != "--" ]; do launcher+=("$1"); shift; done
  shift
  "${launcher[@]}" "$build/attnlab" train "${common[@]}" --train.out_dir="$out/$name" "$@" > /dev/null
  tok_s "$out/$name"
}

one_1t=$(run one_1t env OMP_NUM_THREADS=1 -- --train.threads=1)
one_2t=$(run one_2t env OMP_NUM_THREADS=2 -- --train.threads=2)
two=$(run two "${mpirun[@]}" -- --train.threads=1)
two_zero=$(run two_zero "${mpirun[@]}" -- --train.threads=1 --train.zero1=true)
two_one_bucket=$(run two_one_bucket "${mpirun[@]}" -- --train.threads=1 --train.bucket_mb=1000)
two_small=$(run two_small "${mpirun[@]}" -- --train.threads=1 --train.bucket_mb=1)

eff() { python3 -c "print(f'{$1 / (2 * $2):.2f}')"; }
printf '%-46s %10s %12s\n' "configuration (batch 8 x 256 tokens per rank)" "tokens/s" "efficiency"
printf '%-46s %10s %12s\n' "1 rank, 1 thread" "$one_1t" "1.00"
printf '%-46s %10s %12s\n' "1 rank, 2 threads (OpenMP)" "$one_2t" "$(python3 -c "print(f'{$one_2t / (2 * $one_1t):.2f}')")"
printf '%-46s %10s %12s\n' "2 ranks x 1 thread, bucket 25 MB (default)" "$two" "$(eff "$two" "$one_1t")"
printf '%-46s %10s %12s\n' "2 ranks x 1 thread, bucket 1 MB (overlap)" "$two_small" "$(eff "$two_small" "$one_1t")"
printf '%-46s %10s %12s\n' "2 ranks x 1 thread, one bucket (no overlap)" "$two_one_bucket" "$(eff "$two_one_bucket" "$one_1t")"
printf '%-46s %10s %12s\n' "2 ranks x 1 thread, ZeRO-1" "$two_zero" "$(eff "$two_zero" "$one_1t")"
