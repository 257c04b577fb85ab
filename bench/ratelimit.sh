#!/usr/bin/env bash
# bench/ratelimit.sh — what a rate limit costs end to end (issue 11): trafficcop's requests per
# proxy CPU-second with a local rate limit checked on every request, and with a global one (in
# redis), against the same config without either. The limits allow everything, so every row
# proxies every request: the difference is the check (local: key, clock, shard lock, bucket;
# global: one EVALSHA on the worker's pipelined redis connection). The global row also gives
# redis-server's CPU over the same window (redis: no persistence, on CPU 1).
#
#   bench/ratelimit.sh                 # 5 rounds of 5 s per row (about 1 minute)
#   bench/ratelimit.sh --rounds 7 --duration 10
#   bench/ratelimit.sh --bin-dir DIR   # measure another build's trafficcop
#
# Backend: one nginx worker answering 64 B from memory. Load: wrk -t1 -c50, keep-alive,
# GET /small. The proxy has 1 worker pinned to CPU 0, nginx and wrk share CPU 1. Rows
# alternate within each round so that drift hits them alike; the table gives medians and
# ranges over rounds, and each row's median over the `none` median (target: local >= 0.97).
# Load goes to 127.0.0.1 only (ports BENCH_PORT_BASE+50.., default 18650-18652); every process
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
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

TMP=$(mktemp -d /tmp/tc-rl-bench.XXXXXX)
trap cleanup EXIT
ensure_packages nginx wrk curl redis-server
ensure_trafficcop
PROXY_PORT=$PORT_BASE
BACKEND_PORT=$((PORT_BASE + 1))
REDIS_PORT=$((PORT_BASE + 2))
check_ports "$PROXY_PORT" "$BACKEND_PORT" "$REDIS_PORT"

render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend.conf" TMP="$TMP" PORT="$BACKEND_PORT"
mkdir -p "$TMP/www" && head -c 1024 /dev/zero >"$TMP/www/1m" && chmod -R a+rX "$TMP"
start_bg backend-nginx 1 nginx -e "$TMP/backend.stderr" -p "$TMP" -c "$TMP/backend.conf"
wait_ready "http://127.0.0.1:$BACKEND_PORT/small" "backend"
start_bg redis 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
REDIS_PID=$LAST_PID
wait_listening "$REDIS_PORT" redis

# config NAME [local|global]: one upstream, one route, with a rate limit of that scope.
config() {
  local name=$1 limits=${2:-}
  {
    cat <<EOF
workers: 1
access_log: {path: "off"}
listeners: [{address: "127.0.0.1:$PROXY_PORT"}]
upstreams: [{name: u, url: "http://127.0.0.1:$BACKEND_PORT"}]
EOF
    if [ "$limits" = local ]; then
      echo "rate_limits: [{name: bench, key: client_ip, rate: 1000000000/s, burst: 1000000}]"
      echo "routes: [{upstream: u, rate_limits: [bench]}]"
    elif [ "$limits" = global ]; then
      # failure_mode closed: a failed lookup would be a 503 and fail the row. timeout 1s: the
      # row measures the lookup's cost; with 50 ms, this loaded 2-core machine timed out 33 of
      # 45,232 lookups once (wrk's worst latency then: 242 ms).
      echo "rate_limits: [{name: bench, key: client_ip, rate: 100000/s, scope: global}]"
      echo "redis: {address: '127.0.0.1:$REDIS_PORT', timeout: 1s, failure_mode: closed}"
      echo "routes: [{upstream: u, rate_limits: [bench]}]"
    else
      echo "routes: [{upstream: u}]"
    fi
  } >"$TMP/$name.yaml"
}
ROWS="none local global"
config none
config local local
config global global

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run_row NAME: prints "requests proxy_cpu_seconds redis_cpu_seconds" of one measurement.
run_row() {
  local name=$1 pid t0 t1 r0 r1 out
  start_bg "tc-$name" 0 "$TC_BIN" -c "$TMP/$name.yaml"
  pid=$LAST_PID
  wait_ready "http://127.0.0.1:$PROXY_PORT/small" "trafficcop ($name)"
  [ "$WARMUP" -gt 0 ] && taskset -c 1 wrk -t1 -c50 -d"${WARMUP}s" "http://127.0.0.1:$PROXY_PORT/small" >/dev/null
  t0=$(ticks "$pid")
  r0=$(ticks "$REDIS_PID")
  out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" "http://127.0.0.1:$PROXY_PORT/small")
  t1=$(ticks "$pid")
  r1=$(ticks "$REDIS_PID")
  stop_pid "$pid"
  if grep -q "Non-2xx" <<<"$out"; then die "row $name: non-2xx answers: $out"; fi
  echo "$(awk '/requests in/ {print $1}' <<<"$out")" \
    "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {print (b - a) / hz}')" \
    "$(awk -v a="$r0" -v b="$r1" -v hz="$HZ" 'BEGIN {print (b - a) / hz}')"
}

: >"$TMP/results"
for round in $(seq 1 "$ROUNDS"); do
  for r in $ROWS; do
    read -r reqs cpu rcpu < <(run_row "$r")
    log "round $round $r: $reqs requests, $cpu proxy CPU-s, $rcpu redis CPU-s"
    echo "$r $reqs $cpu $rcpu" >>"$TMP/results"
  done
done

/usr/bin/python3 - "$TMP/results" "$ROWS" <<'EOF'
import statistics, sys
rows = sys.argv[2].split()
per = {r: {"eff": [], "redis_us": [], "both": []} for r in rows}
for line in open(sys.argv[1]):
    name, reqs, cpu, rcpu = line.split()
    reqs, cpu, rcpu = int(reqs), float(cpu), float(rcpu)
    per[name]["eff"].append(reqs / cpu)
    per[name]["redis_us"].append(1e6 * rcpu / reqs)
    per[name]["both"].append(reqs / (cpu + rcpu))
def mr(v, f="{:,.0f}"):
    return f"{f.format(statistics.median(v))} ({f.format(min(v))}–{f.format(max(v))})"
base = statistics.median(per[rows[0]]["eff"])
print("| rate limit | req per proxy CPU-s, median (range) | ÷ none "
      "| redis CPU µs per request | req per (proxy + redis) CPU-s |")
print("|---|---|---|---|---|")
for r in rows:
    p = per[r]
    print(f"| {r} | {mr(p['eff'])} | {statistics.median(p['eff']) / base:.3f} "
          f"| {mr(p['redis_us'], '{:.1f}')} | {mr(p['both'])} |")
EOF
