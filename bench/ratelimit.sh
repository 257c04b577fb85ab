#!/usr/bin/env bash
# bench/ratelimit.sh — what a local rate limit costs end to end (issue 11): trafficcop's
# requests per proxy CPU-second with a local rate limit checked on every request, against the
# same config without it. The limit (key client_ip, 1e9/s, burst 1e6) allows everything, so
# both rows proxy every request: the difference is the check (key, clock, shard lock, bucket).
#
#   bench/ratelimit.sh                 # 5 rounds of 5 s per row (about 1 minute)
#   bench/ratelimit.sh --rounds 7 --duration 10
#   bench/ratelimit.sh --bin-dir DIR   # measure another build's trafficcop
#
# Backend: one nginx worker answering 64 B from memory. Load: wrk -t1 -c50, keep-alive,
# GET /small. The proxy has 1 worker pinned to CPU 0, nginx and wrk share CPU 1. Rows
# alternate within each round so that drift hits them alike; the table gives medians and
# ranges over rounds, and each row's median over the `none` median (target: local >= 0.97).
# Load goes to 127.0.0.1 only (ports BENCH_PORT_BASE+50.., default 18650-18651); every process
# stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
DURATION=5
ROUNDS=5
WARMUP=1
INSTALL=1
PORT_BASE=$((${BENCH_PORT_BASE:-18600} + 50))
TC_BIN=$ROOT/build-release/bin/trafficcop
ECHO_BIN=$ROOT/build-release/bin/trafficcop-echo
. "$BENCH/lib/common.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

TMP=$(mktemp -d /tmp/tc-rl-bench.XXXXXX)
trap cleanup EXIT
ensure_packages nginx wrk curl
ensure_trafficcop
PROXY_PORT=$PORT_BASE
BACKEND_PORT=$((PORT_BASE + 1))
check_ports "$PROXY_PORT" "$BACKEND_PORT"

render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend.conf" TMP="$TMP" PORT="$BACKEND_PORT"
mkdir -p "$TMP/www" && head -c 1024 /dev/zero >"$TMP/www/1m" && chmod -R a+rX "$TMP"
start_bg backend-nginx 1 nginx -e "$TMP/backend.stderr" -p "$TMP" -c "$TMP/backend.conf"
wait_ready "http://127.0.0.1:$BACKEND_PORT/small" "backend"

# config NAME [LIMITS]: one upstream, one route, with the route's rate_limits when given.
config() {
  local name=$1 limits=${2:-}
  {
    cat <<EOF
workers: 1
access_log: {path: "off"}
listeners: [{address: "127.0.0.1:$PROXY_PORT"}]
upstreams: [{name: u, url: "http://127.0.0.1:$BACKEND_PORT"}]
EOF
    if [ -n "$limits" ]; then
      echo "rate_limits: [{name: bench, key: client_ip, rate: 1000000000/s, burst: 1000000}]"
      echo "routes: [{upstream: u, rate_limits: [bench]}]"
    else
      echo "routes: [{upstream: u}]"
    fi
  } >"$TMP/$name.yaml"
}
ROWS="none local"
config none
config local with-limit

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run_row NAME: prints "requests cpu_seconds" of one measurement.
run_row() {
  local name=$1 pid t0 t1 out
  start_bg "tc-$name" 0 "$TC_BIN" -c "$TMP/$name.yaml"
  pid=$LAST_PID
  wait_ready "http://127.0.0.1:$PROXY_PORT/small" "trafficcop ($name)"
  [ "$WARMUP" -gt 0 ] && taskset -c 1 wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:$PROXY_PORT/small" >/dev/null
  t0=$(ticks "$pid")
  out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/small")
  t1=$(ticks "$pid")
  stop_pid "$pid"
  if grep -q "Non-2xx" <<<"$out"; then die "row $name: non-2xx answers: $out"; fi
  echo "$(awk '/requests in/ {print $1}' <<<"$out") $(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {print (b - a) / hz}')"
}

: >"$TMP/results"
for round in $(seq 1 "$ROUNDS"); do
  for r in $ROWS; do
    read -r reqs cpu < <(run_row "$r")
    log "round $round $r: $reqs requests, $cpu proxy CPU-s"
    echo "$r $reqs $cpu" >>"$TMP/results"
  done
done

/usr/bin/python3 - "$TMP/results" "$ROWS" <<'EOF'
import statistics, sys
rows = sys.argv[2].split()
per = {r: [] for r in rows}
for line in open(sys.argv[1]):
    name, reqs, cpu = line.split()
    per[name].append(int(reqs) / float(cpu))
base = statistics.median(per[rows[0]])
print("| rate limit | req per proxy CPU-s, median (range) | ÷ none |")
print("|---|---|---|")
for r in rows:
    v = per[r]
    print(f"| {r} | {statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}) | "
          f"{statistics.median(v) / base:.3f} |")
EOF
