#!/usr/bin/env bash
# bench/lb.sh — what load balancing costs end to end (issue 9): trafficcop's requests per
# proxy CPU-second with an upstream of 10 endpoints, against the same upstream as 1 endpoint.
#
#   bench/lb.sh                 # 3 rounds of 5 s per row (about 2 minutes)
#   bench/lb.sh --rounds 5 --duration 10
#   bench/lb.sh --bin-dir DIR   # measure another build's trafficcop
#
# Backend: one nginx worker answering 64 B from memory on 10 loopback ports (the 10
# endpoints; the 1-endpoint row uses the first). Load: wrk -t1 -c50, keep-alive, GET /small.
# The proxy has 1 worker pinned to CPU 0, nginx and wrk share CPU 1. Rows alternate within
# each round so that drift hits them alike; the table gives medians and ranges over rounds,
# and the ratio of each row's median to the 1-endpoint median. Load goes to 127.0.0.1 only
# (ports BENCH_PORT_BASE+30.., default 18630-18645); every process stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
DURATION=5
ROUNDS=3
WARMUP=1
INSTALL=1
PORT_BASE=$((${BENCH_PORT_BASE:-18600} + 30))
TC_BIN=$ROOT/build-release/bin/trafficcop
ECHO_BIN=$ROOT/build-release/bin/trafficcop-echo
. "$BENCH/lib/common.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

TMP=$(mktemp -d /tmp/tc-lb-bench.XXXXXX)
trap cleanup EXIT
ensure_packages nginx wrk curl
ensure_trafficcop
PROXY_PORT=$PORT_BASE
BACKEND_PORTS=()
for i in $(seq 1 10); do BACKEND_PORTS+=($((PORT_BASE + i))); done
check_ports "$PROXY_PORT" "${BACKEND_PORTS[@]}"

# nginx: the bench's backend config, listening on the ten ports.
render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend.conf" TMP="$TMP" PORT="${BACKEND_PORTS[0]}"
extra=""
for p in "${BACKEND_PORTS[@]:1}"; do extra+="        listen 127.0.0.1:$p;\n"; done
sed -i "s|^\(        listen 127.0.0.1:${BACKEND_PORTS[0]} backlog=4096;\)|\1\n$extra|" "$TMP/backend.conf"
mkdir -p "$TMP/www" && head -c 1024 /dev/zero >"$TMP/www/1m" && chmod -R a+rX "$TMP"
start_bg backend-nginx 1 nginx -e "$TMP/backend.stderr" -p "$TMP" -c "$TMP/backend.conf"
for p in "${BACKEND_PORTS[@]}"; do wait_ready "http://127.0.0.1:$p/small" "backend :$p"; done

# config NAME N POLICY: a trafficcop config with an upstream of the first N ports.
config() {
  local name=$1 n=$2 policy=$3 eps="" i
  for i in $(seq 0 $((n - 1))); do eps+="http://127.0.0.1:${BACKEND_PORTS[$i]}, "; done
  cat >"$TMP/$name.yaml" <<EOF
workers: 1
access_log: {path: "off"}
listeners: [{address: "127.0.0.1:$PROXY_PORT"}]
upstreams:
  - name: u
    endpoints: [${eps%, }]
    load_balancing: $policy
routes: [{upstream: u}]
EOF
}
ROWS="1-endpoint 10-round_robin 10-least_request 10-peak_ewma 10-random"
config 1-endpoint 1 round_robin
for r in $ROWS; do [ "$r" = 1-endpoint ] || config "$r" 10 "${r#10-}"; done

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
print("| upstream | req per proxy CPU-s, median (range) | ÷ 1 endpoint |")
print("|---|---|---|")
for r in rows:
    v = per[r]
    print(f"| {r} | {statistics.median(v):,.0f} ({min(v):,.0f}–{max(v):,.0f}) | "
          f"{statistics.median(v) / base:.3f} |")
EOF
