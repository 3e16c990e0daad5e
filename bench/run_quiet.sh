#!/bin/sh
# Runs a benchmark once the machine is quiet: waits (up to WAIT seconds,
# default 1800) until the CPUs have been at least 95% idle for 5 consecutive
# seconds, then runs "$@". Other jobs on a small machine (compiles) make
# OpenMP timings meaningless: see bench/RESULTS.md.
#   bench/run_quiet.sh env OMP_NUM_THREADS=2 build/bench/bench_matmul
wait_s=${WAIT:-1800}
quiet=0
start=$(date +%s)
cpu_times() { awk '/^cpu / {print $2+$3+$4+$5+$6+$7+$8, $5+$6}' /proc/stat; }
while [ "$quiet" -lt 5 ]; do
  before=$(cpu_times)
  sleep 1
  after=$(cpu_times)
  idle_pct=$(echo "$before $after" | awk '{t = $3 - $1; i = $4 - $2; print (t > 0 ? int(100 * i / t) : 100)}')
  if [ "$idle_pct" -ge 95 ]; then quiet=$((quiet + 1)); else quiet=0; fi
  if [ $(( $(date +%s) - start )) -ge "$wait_s" ]; then
    echo "run_quiet: machine not quiet after ${wait_s}s; running anyway" >&2
    break
  fi
done
echo "run_quiet: start $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "$@"
