#!/usr/bin/env bash
# Data-parallel scaling on this machine: training throughput of configs/demo.ini's
# model (3.2M parameters, 12.8 MB of f32 gradients) with a fixed batch per rank
# (weak scaling), for 1 rank and for 2 ranks under mpirun. Every configuration
# runs ROUNDS times, round-robin, and the best round counts: other jobs on a
# small machine only ever slow a run down. Prints a table for bench/RESULTS.md.
#   bench/bench_ddp_scaling.sh [BUILD_DIR] [STEPS] [ROUNDS] [BATCH]
# A small BATCH (rows per rank) makes communication a larger share of a step.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
steps=${2:-25}
rounds=${3:-3}
batch=${4:-8}
data=datasets/moby_byte
if [ ! -s $data/train.h5 ]; then
  bash scripts/fetch_data.sh datasets/mobydick.txt
  "$build/attnlab" prepare --input datasets/mobydick.txt --tokenizer byte --out $data
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
common=(configs/demo.ini --data.train=$data/train.h5 --data.val=$data/val.h5 --train.steps=$steps
        --optim.warmup_steps=5 --train.eval_every=0 --train.log_every=5 --data.batch_size=$batch -q)

names=(one_1t one_2t two two_4mb two_1mb two_zero)
labels=("1 rank, 1 thread" "1 rank, 2 threads (OpenMP)" "2 ranks x 1 thread, one 25 MB bucket (default)"
        "2 ranks x 1 thread, 4 MB buckets" "2 ranks x 1 thread, 1 MB buckets" "2 ranks x 1 thread, ZeRO-1")
launch() {
  local mpi=(mpirun --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 "$build/attnlab")
  case $1 in
    one_1t) env OMP_NUM_THREADS=1 "$build/attnlab" train "${common[@]}" --train.threads=1 "${@:2}" ;;
    one_2t) env OMP_NUM_THREADS=2 "$build/attnlab" train "${common[@]}" --train.threads=2 "${@:2}" ;;
    two) "${mpi[@]}" train "${common[@]}" --train.threads=1 "${@:2}" ;;
    two_4mb) "${mpi[@]}" train "${common[@]}" --train.threads=1 --train.bucket_mb=4 "${@:2}" ;;
    two_1mb) "${mpi[@]}" train "${common[@]}" --train.threads=1 --train.bucket_mb=1 "${@:2}" ;;
    two_zero) "${mpi[@]}" train "${common[@]}" --train.threads=1 --train.zero1=true "${@:2}" ;;
  esac
}
# Median tokens/s over the logged windows, the first (warm-up) window left out.
tok_s() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{statistics.median(r['tokens_per_s'] for r in rows[1:]):.0f}")
PY
}

declare -A best
for r in $(seq "$rounds"); do
  for n in "${names[@]}"; do
    launch "$n" --train.out_dir="$out/$n" > /dev/null
    t=$(tok_s "$out/$n")
    rm -rf "${out:?}/$n"
    if [ -z "${best[$n]:-}" ] || [ "$t" -gt "${best[$n]}" ]; then best[$n]=$t; fi
  done
done
printf '%-50s %10s %11s\n' "configuration (batch $batch x 256 tokens per rank)" "tokens/s" "efficiency"
for i in "${!names[@]}"; do
  n=${names[$i]}
  eff=$(python3 -c "print(f'{${best[$n]} / ((2 if \"$n\" != \"one_1t\" else 1) * ${best[one_1t]}):.2f}')")
  printf '%-50s %10s %11s\n' "${labels[$i]}" "${best[$n]}" "$eff"
done
echo "(efficiency: tokens/s over 2 x the 1-rank 1-thread tokens/s; best of $rounds rounds of $steps steps)"
