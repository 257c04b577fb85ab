#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs every fuzz target (or those named) for SECONDS each, one after the other, at nice 19, in
# scratch copies of the corpora; then merges what each found into a minimised copy and says
# how much it grew. Nothing in git changes: copy what you want to keep (see fuzz/README.md).
#
#   fuzz/run_all.sh [-t SECONDS | -c CPU_SECONDS] [-j JOBS] [-b BUILD_DIR] [-o OUT_DIR] [TARGET...]
#
# -t  seconds per target (default 600); -j parallel jobs per target (default 1; each is a
#     process, so CPU-seconds = SECONDS x JOBS on an idle machine); -b the fuzz build (default
#     build-fuzz); -o  where corpora, logs and crashes go (default /tmp/trafficcop-fuzz).
# -c  run each target until it has used CPU_SECONDS of CPU (user + system, one process, -j
#     ignored), however long that takes beside other work: at nice 19 on a busy machine wall
#     time says little. The CPU time used is printed with the other figures.
# Per target, OUT/<target>/ holds corpus/ (the grown one), min/ (merged), log/ (libFuzzer's
# output: look for "cov:" and "ft:") and crash-*/timeout-*/leak-* reproducers if any.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
secs=600 jobs=1 cpu=0 build="$here/../build-fuzz" out=/tmp/trafficcop-fuzz
while getopts "t:c:j:b:o:" o; do
  case $o in
    t) secs=$OPTARG ;; c) cpu=$OPTARG ;; j) jobs=$OPTARG ;; b) build=$OPTARG ;; o) out=$OPTARG ;;
    *) sed -n 4,16p "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # The list of fuzz/targets.cmake.
  read -ra targets <<<"$(sed -n '/^set(TRAFFICCOP_FUZZ_TARGETS/,/)/p' "$here/targets.cmake" |
    tr -d '()' | sed 's/set//; s/TRAFFICCOP_FUZZ_TARGETS//' | tr '\n' ' ')"
fi

# Per-target libFuzzer options: input size bounds and dictionaries. The HTTP/2 targets run in
# memory (no socket, no timer waits): libFuzzer's default per-input timeout is plenty.
opts_for() {
  case $1 in
    http1_*) echo "-max_len=4096 -dict=$here/http.dict" ;;
    config) echo "-max_len=4096 -dict=$here/config.dict" ;;
    target) echo "-max_len=512 -dict=$here/target.dict" ;;
    rules) echo "-max_len=1024 -dict=$here/rules.dict" ;;
    upstream_url) echo "-max_len=256 -dict=$here/target.dict" ;;
    h2_*) echo "-max_len=2048 -dict=$here/h2.dict" ;;
  esac
}

# CPU seconds (user + system) used so far by process $1 (procps' cputimes), or empty once gone.
cpu_of() { ps -o cputimes= -p "$1" | tr -d ' '; }

# One process of target $1 (binary $2, dir $3) at nice 19 until it used $cpu CPU-seconds, then
# SIGINT (libFuzzer prints its final stats and exits). Fails if libFuzzer stopped on a finding.
run_for_cpu() {
  local t=$1 bin=$2 d=$3 pid used now start rc
  start=$(date +%s)
  # shellcheck disable=SC2046
  (cd "$d/log" && exec nice -n 19 "$bin" $(opts_for "$t") -print_final_stats=1 \
      -artifact_prefix="$d/" "$d/corpus" >"$d/log/run.log" 2>&1) &
  pid=$!
  used=0
  while now=$(cpu_of "$pid") && [ -n "$now" ]; do
    [ "$now" -gt "$used" ] && used=$now
    if [ "$used" -ge "$cpu" ]; then
      kill -INT "$pid"
      break
    fi
    sleep 5
  done
  wait "$pid" && rc=0 || rc=$?
  grep -q "run interrupted" "$d/log/run.log" && rc=0
  echo "   CPU: ${used}s+ in $(($(date +%s) - start))s wall" | tee "$d/log/cpu.txt"
  return "$rc"
}

status=0
for t in "${targets[@]}"; do
  bin="$build/fuzz/${t}_fuzz"
  [ -x "$bin" ] || { echo "$t: $bin not built (ninja -C $build ${t}_fuzz)"; status=1; continue; }
  d="$out/$t"
  mkdir -p "$d/corpus" "$d/log" "$d/min"
  cp -n "$here/corpus/$t/"* "$d/corpus/" 2>/dev/null || true
  before=$(ls "$d/corpus" | wc -l)
  if [ "$cpu" -gt 0 ]; then
    echo "== $t: until ${cpu} CPU-s, corpus $before files, logs in $d/log"
    run_for_cpu "$t" "$bin" "$d" || { echo "$t: stopped with a finding, see $d/"; status=1; }
  else
    echo "== $t: ${secs}s x $jobs job(s), corpus $before files, logs in $d/log"
    # shellcheck disable=SC2046
    (cd "$d/log" && nice -n 19 "$bin" $(opts_for "$t") -max_total_time="$secs" \
        -jobs="$jobs" -workers="$jobs" -print_final_stats=1 -artifact_prefix="$d/" \
        "$d/corpus" >"$d/log/run.log" 2>&1) || { echo "$t: stopped with a finding, see $d/"; status=1; }
  fi
  rm -rf "$d/min" && mkdir -p "$d/min"
  # shellcheck disable=SC2046
  nice -n 19 "$bin" $(opts_for "$t") -merge=1 "$d/min" "$here/corpus/$t" "$d/corpus" \
    >"$d/log/merge.log" 2>&1 || true
  first=$(grep -h -m1 "INITED" "$d/log/"fuzz-*.log "$d/log/run.log" 2>/dev/null | head -1 || true)
  last=$(grep -h -E "#[0-9]+.*cov:" "$d/log/"fuzz-*.log "$d/log/run.log" 2>/dev/null | tail -1 || true)
  echo "   first: $first"
  echo "   last:  $last"
  execs=$(grep -h "stat::number_of_executed_units" "$d/log/"fuzz-*.log "$d/log/run.log" \
    2>/dev/null | awk '{n += $2} END {print n + 0}' || true)
  echo "   executions: $execs"
  echo "   corpus: $before → $(ls "$d/corpus" | wc -l) files; merged: $(ls "$d/min" | wc -l)"
  ls "$d"/crash-* "$d"/timeout-* "$d"/leak-* 2>/dev/null && status=1
done
exit $status
