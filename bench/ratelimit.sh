#!/usr/bin/env bash
# bench/ratelimit.sh — what a global rate limit costs end to end (issue 11): trafficcop's
# requests per proxy CPU-second with a global limit (redis) on every request, against none,
# with redis-server's CPU beside it.
#
#   bench/ratelimit.sh                 # 3 rounds of 5 s per row (about 1 minute)
#   bench/ratelimit.sh --rounds 5 --duration 10
#   bench/ratelimit.sh --bin-dir DIR   # measure another build's trafficcop
#
# Backend: one nginx worker answering 64 B from memory. Load: wrk -t1 -c50, keep-alive,
# GET /small. The proxy has 1 worker pinned to CPU 0; nginx, wrk and redis-server (no
# persistence) share CPU 1. The global row's limit (key: route, rate 1000000/s) allows every
# request, so both rows proxy the same requests; it costs one EVALSHA per request, pipelined
# on the worker's one redis connection. Rows alternate within each round; the table gives
# medians and ranges over rounds. Load goes to 127.0.0.1 only (ports BENCH_PORT_BASE+50..52,
# default 18650-18652); every process stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
DURATION=5
ROUNDS=3
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
ensure_packages nginx wrk curl redis-server
ensure_trafficcop
PROXY_PORT=$PORT_BASE
BACKEND_PORT=$((PORT_BASE + 1))
REDIS_PORT=$((PORT_BASE + 2))
check_ports "$PROXY_PORT" "$BACKEND_PORT" "$REDIS_PORT"

render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend.conf" TMP="$TMP" PORT="$BACKEND_PORT"
mkdir -p "$TMP/www" && head -c 1024 /dev/zero >"$TMP/www/1m" && chmod -R a+rX "$TMP"
start_bg backend-nginx 1 nginx -e "$TMP/backend.stderr" -p "$TMP" -c "$TMP/backend.conf"
wait_ready "http://127.0.0.1:$BACKEND_PORT/small" backend
start_bg redis 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no
REDIS_PID=$LAST_PID
wait_listening "$REDIS_PORT" redis

# config NAME LIMITS ROUTE_LIMITS: a trafficcop config with an upstream of the backend.
config() {
  cat >"$TMP/$1.yaml" <<EOF
workers: 1
access_log: {path: "off"}
listeners: [{address: "127.0.0.1:$PROXY_PORT"}]
upstreams: [{name: u, url: "http://127.0.0.1:$BACKEND_PORT"}]
$2
routes: [{name: all, path_prefix: /, upstream: u$3}]
EOF
}
config none "" ""
config global "rate_limits: [{name: g, key: route, rate: 1000000/s, scope: global}]
redis: {address: '127.0.0.1:$REDIS_PORT', timeout: 50ms, failure_mode: closed}" \
  ", rate_limits: [g]"
ROWS="none global"

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
  # failure_mode closed: a store error would be a 503, so a clean row had every lookup answered.
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

/usr/bin/python3 - "$TMP/results" "$ROWS" "$DURATION" <<'EOF'
import statistics, sys
rows, duration = sys.argv[2].split(), float(sys.argv[3])
per = {r: {"eff": [], "rps": [], "redis_pct": [], "both": [], "redis_us": []} for r in rows}
for line in open(sys.argv[1]):
    name, reqs, cpu, rcpu = line.split()
    reqs, cpu, rcpu = int(reqs), float(cpu), float(rcpu)
    p = per[name]
    p["eff"].append(reqs / cpu)
    p["rps"].append(reqs / duration)
    p["redis_pct"].append(100 * rcpu / duration)
    p["both"].append(reqs / (cpu + rcpu))
    p["redis_us"].append(1e6 * rcpu / reqs)
def mr(v, fmt="{:,.0f}"):
    return f"{fmt.format(statistics.median(v))} ({fmt.format(min(v))}–{fmt.format(max(v))})"
base = statistics.median(per[rows[0]]["eff"])
print("| limit | req/s | req per proxy CPU-s | ÷ none | redis CPU % | redis CPU µs/req "
      "| req per (proxy + redis) CPU-s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    p = per[r]
    print(f"| {r} | {mr(p['rps'])} | {mr(p['eff'])} | {statistics.median(p['eff']) / base:.3f} "
          f"| {mr(p['redis_pct'], '{:.1f}')} | {mr(p['redis_us'], '{:.1f}')} | {mr(p['both'])} |")
print("\nmedian (range) over rounds")
EOF
