#!/usr/bin/env bash
# bench/profile.sh — where each proxy's CPU goes per request, on this machine (issue 3).
#
# For the small keep-alive and new-connection cases, 1 worker pinned to CPU 0 as in
# bench/run.sh, each proxy in turn under the same wrk load:
#   - perf record (cpu-clock, the proxy's processes only): the share of its CPU time spent in
#     the kernel, in the proxy's own code and in libc;
#   - strace -c -f (a separate run: strace slows the proxy): system calls per request, and
#     the most frequent ones.
# Needs root (or perf_event_paranoid <= 1) for the kernel share; prints a markdown table and
# keeps it as bench/results/<timestamp>-profile.md.
#
#   bench/profile.sh [--duration S] [--no-install] [--bin-dir DIR]
set -euo pipefail
# shellcheck source=bench/run.sh
. "$(dirname "$0")/run.sh"   # functions and settings only (run.sh runs main when executed)
COMMAND="bench/profile.sh${*:+ $*}"
DURATION=4

parse_profile_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) DURATION=$2; shift 2 ;;
      --no-install) INSTALL=0; shift ;;
      --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
      -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
}

# proxy_pids PID: the proxy and its descendants (nginx workers), comma-separated.
proxy_pids() { { echo "$1"; descendants "$1"; } | paste -sd, -; }

# requests WRK_OUTPUT: the request count wrk reports.
requests() { awk '/requests in/ {print $1}' "$1"; }

# profile_row CASE PROXY: one line of the table.
profile_row() {
  local case=$1 proxy=$2 pids n_perf n_strace split calls
  case_setup "$case"
  plan_cpus 1
  start_proxy "$proxy" 1 "$UP_PORT"
  local url="http://127.0.0.1:$PORT_PROXY$CASE_PATH"
  load "$url" "$TMP/warmup.out" 1
  pids=$(proxy_pids "$PROXY_PID")
  # perf: samples of the proxy's processes while wrk runs.
  load "$url" "$TMP/perf-wrk.out" "$DURATION" &
  local wrk=$!
  sleep 0.5
  perf record -q -e cpu-clock -F 1999 -p "$pids" -o "$TMP/perf.data" -- sleep $((DURATION - 1)) \
    >/dev/null 2>&1 || true
  wait "$wrk" || true
  n_perf=$(requests "$TMP/perf-wrk.out")
  split=$(perf report -i "$TMP/perf.data" --sort dso --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ {p=$1; sub("%","",p); d=$2;
          if (d ~ /kernel/) k+=p; else if (d ~ /^libc/) c+=p; else u+=p}
         END {printf "%.0f | %.0f | %.0f", k, u, c}')
  # strace: system calls of the proxy's processes, attached for the whole of a wrk run.
  strace -c -f -o "$TMP/strace.txt" -p "$pids" >/dev/null 2>&1 &
  local tracer=$!
  sleep 0.5
  load "$url" "$TMP/strace-wrk.out" "$DURATION"
  kill -INT "$tracer" 2>/dev/null || true
  wait "$tracer" 2>/dev/null || true
  n_strace=$(requests "$TMP/strace-wrk.out")
  calls=$(awk -v n="$n_strace" '
      /^-+ / {sep++; next}
      sep == 1 && NF >= 5 {c = $4; name = $NF; total += c; if (n > 0 && c / n >= 0.05) list = list sprintf("%s %.1f, ", name, c / n)}
      END {if (n > 0) printf "%.1f | %s", total / n, substr(list, 1, length(list) - 2); else printf "? | ?"}' \
    "$TMP/strace.txt")
  stop_pid "$PROXY_PID"
  printf '| %s | %s | %s | %s | %s |\n' "$case" "$proxy" "$((n_perf / DURATION))" "$split" "$calls"
}

profile_main() {
  parse_profile_args "$@"
  TMP=$(mktemp -d /tmp/trafficcop-profile.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_packages nginx haproxy wrk curl procps linux-perf strace util-linux
  ensure_trafficcop
  check_ports "$PORT_BACKEND" "$PORT_ECHO" "$PORT_PROXY"
  [ "$NCPU" -gt 1 ] && BACKEND_CPUS=$((NCPU - 1))
  start_backends "$BACKEND_CPUS"
  local stamp out table
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  table=$(
    echo "Where each proxy's CPU goes ($(date -u '+%Y-%m-%d %H:%M UTC'), \`$COMMAND\`, $(nproc) CPUs, $(uname -r); trafficcop $(git rev-parse --short HEAD 2>/dev/null || echo ?)): 1 worker on CPU 0, wrk -c$CONNS and the backend on CPU 1. perf: share of the proxy's own CPU samples; strace: a separate run of the same load."
    echo
    echo "| case | proxy | req/s under perf | kernel % | proxy code % | libc % | system calls per request | the most frequent, per request |"
    echo "|---|---|--:|--:|--:|--:|--:|---|"
    for case in small-keepalive new-connection; do
      for p in trafficcop nginx haproxy; do profile_row "$case" "$p"; done
    done
  )
  mkdir -p "$BENCH/results"
  out="$BENCH/results/$stamp-profile.md"
  echo "$table" | tee "$out"
  log "wrote $out"
}

profile_main "$@"
