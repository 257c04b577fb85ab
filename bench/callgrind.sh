#!/usr/bin/env bash
# bench/callgrind.sh — instructions per proxied request, counted by valgrind's callgrind
# (an instruction count, not a time: repeatable whatever else the machine is doing).
#
# Each proxy runs under callgrind twice: once for N1 and once for N2 keep-alive GET requests
# (64 B responses from the same nginx backend as bench/run.sh), sent one after the other on
# one connection by bench/lib/ka_client.py. Start-up, the connection and shutdown are the same
# in both runs, so (I(N2) - I(N1)) / (N2 - N1) is the cost of one proxied request. Callgrind
# counts user-space instructions only, so the same two runs are repeated under strace -f -c
# for the system calls per request (the kernel's share, which callgrind cannot see).
#
#   bench/callgrind.sh                  trafficcop, nginx and HAProxy, N1=1000 N2=2000
#   (prints a markdown table and keeps it as bench/results/<timestamp>-callgrind.md)
#   options: --only-trafficcop  --n1 N  --n2 N  --bin-dir DIR  --no-install
#            --annotate  also print trafficcop's 25 costliest functions (callgrind_annotate)
#            --endpoints N [--policy P]  what load balancing costs (issue 9): trafficcop with an
#              upstream of 1 endpoint, then of N endpoints (N ports of the same nginx) with
#              load_balancing P (default round_robin); no nginx/HAProxy rows
#            --metrics  what metrics cost (issue 10): trafficcop from a config of 1 endpoint,
#              without then with `admin:` (which turns counting on)
#            --ratelimit  what a local rate limit costs (issue 11): trafficcop from a config of
#              1 endpoint, without then with a local limit on every request (all allowed)
#            --global-limit  what a global rate limit costs (issue 11): trafficcop from a config
#              of 1 endpoint, without then with a global limit on every request (a redis-server
#              on port BENCH_PORT_BASE+23, started here; its own CPU is not counted)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)

N1=1000
N2=2000
PROXIES="trafficcop nginx haproxy"
ANNOTATE=0
INSTALL=1
ENDPOINTS=0
POLICY=round_robin
METRICS=0
RATELIMIT=0
GLOBAL=0
PORT_BASE=${BENCH_PORT_BASE:-18600}
TC_BIN=$ROOT/build-release/bin/trafficcop
ECHO_BIN=$ROOT/build-release/bin/trafficcop-echo
PORT_BACKEND=$((PORT_BASE + 20))
PORT_ECHO=$((PORT_BASE + 21))
PORT_PROXY=$((PORT_BASE + 22))
PORT_REDIS=$((PORT_BASE + 23))

# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --only-trafficcop) PROXIES=trafficcop; shift ;;
      --annotate) ANNOTATE=1; shift ;;
      --n1) N1=$2; shift 2 ;;
      --n2) N2=$2; shift 2 ;;
      --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
      --no-install) INSTALL=0; shift ;;
      --endpoints) ENDPOINTS=$2; shift 2 ;;
      --policy) POLICY=$2; shift 2 ;;
      --metrics) METRICS=1; shift ;;
      --ratelimit) RATELIMIT=1; shift ;;
      --global-limit) GLOBAL=1; shift ;;
      -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  [ "$N2" -gt "$N1" ] || die "--n2 must be larger than --n1"
  if [ "$ENDPOINTS" -gt 1 ]; then PROXIES="trafficcop-lb1 trafficcop-lb$ENDPOINTS"; fi
  if [ "$METRICS" = 1 ]; then PROXIES="trafficcop-lb1 trafficcop-metrics"; fi
  if [ "$RATELIMIT" = 1 ]; then PROXIES="trafficcop-lb1 trafficcop-ratelimit"; fi
  if [ "$GLOBAL" = 1 ]; then PROXIES="trafficcop-lb1 trafficcop-global"; fi
}

# global_config: lb_config 1, plus a global rate limit on every request that allows them all.
global_config() {
  local file="$TMP/global.yaml"
  sed 's|^routes: \[{upstream: u}\]$|routes: [{upstream: u, rate_limits: [g]}]|' \
    "$(lb_config 1)" >"$file"
  cat >>"$file" <<EOF
rate_limits: [{name: g, key: route, rate: 100000/s, scope: global}]
redis: {address: "127.0.0.1:$PORT_REDIS", timeout: 1s, failure_mode: closed}
EOF
  echo "$file"
}

# lb_config N [admin]: a config file as the --upstream command line of start_under, but with
# an upstream of N endpoints (ports PORT_BACKEND, PORT_BACKEND+100, ...: one nginx listens on
# all), and with `admin` an admin listener (metrics on).
lb_config() {
  local n=$1 with_admin=${2:-} eps="" i file
  for i in $(seq 0 $((n - 1))); do eps+="http://127.0.0.1:$((PORT_BACKEND + 100 * i)), "; done
  file="$TMP/lb$n${with_admin:+-admin}.yaml"
  {
    [ -z "$with_admin" ] || echo "admin: {address: \"127.0.0.1:$((PORT_PROXY + 1))\"}"
    cat <<EOF
workers: 1
access_log: {path: "off"}
listeners: [{address: "127.0.0.1:$PORT_PROXY"}]
upstreams:
  - name: u
    endpoints: [${eps%, }]
    load_balancing: $POLICY
routes: [{upstream: u}]
EOF
  } >"$file"
  echo "$file"
}

# rl_config: lb_config 1, with a local rate limit on its route that allows every request.
rl_config() {
  local file
  file=$(lb_config 1)
  sed -i 's/^routes: \[{upstream: u}\]$/routes: [{upstream: u, rate_limits: [bench]}]/' "$file"
  echo "rate_limits: [{name: bench, key: client_ip, rate: 1000000000/s, burst: 1000000}]" >>"$file"
  echo "$file"
}

# The extra ports of --endpoints on the backend nginx (after start_backends rendered it).
add_backend_ports() {
  local extra="" i
  for i in $(seq 1 $((ENDPOINTS - 1))); do
    extra+="        listen 127.0.0.1:$((PORT_BACKEND + 100 * i));\\n"
  done
  sed -i "s|^\(        listen 127.0.0.1:$PORT_BACKEND backlog=4096;\)|\1\n$extra|" \
    "$TMP/backend-nginx.conf"
  nginx -e "$TMP/backend-nginx.stderr" -p "$TMP" -c "$TMP/backend-nginx.conf" -s reload
  for i in $(seq 1 $((ENDPOINTS - 1))); do
    wait_ready "http://127.0.0.1:$((PORT_BACKEND + 100 * i))/small" "backend :$((PORT_BACKEND + 100 * i))"
  done
}

# start_under TOOL PROXY TAG: the proxy, 1 worker, configured as in bench/run.sh, run under
# callgrind (TOOL=callgrind) or strace -f -c (TOOL=strace).
start_under() {
  local tool=$1 proxy=$2 tag=$3 vg
  if [ "$tool" = callgrind ]; then
    vg=(valgrind --tool=callgrind --log-file="$TMP/$tag.vg.log"
        --callgrind-out-file="$TMP/$tag.callgrind.out")
  else
    vg=(strace -f -c -o "$TMP/$tag.strace")
  fi
  case "$proxy" in
    trafficcop-lb*)
      start_bg "$tag" "" "${vg[@]}" "$TC_BIN" -c "$(lb_config "${proxy#trafficcop-lb}")" \
        --log-level warn ;;
    trafficcop-ratelimit)
      start_bg "$tag" "" "${vg[@]}" "$TC_BIN" -c "$(rl_config)" --log-level warn ;;
    trafficcop-metrics)
      start_bg "$tag" "" "${vg[@]}" "$TC_BIN" -c "$(lb_config 1 admin)" --log-level warn ;;
    trafficcop-global)
      start_bg "$tag" "" "${vg[@]}" "$TC_BIN" -c "$(global_config)" --log-level warn ;;
    trafficcop)
      start_bg "$tag" "" "${vg[@]}" "$TC_BIN" --listen "127.0.0.1:$PORT_PROXY" \
        --upstream "http://127.0.0.1:$PORT_BACKEND" --workers 1 --access-log off \
        --drain-timeout 1s --log-level warn ;;
    nginx)
      mkdir -p "$TMP/nginx-proxy"
      render "$BENCH/conf/proxy-nginx.conf.in" "$TMP/proxy-nginx.conf" TMP="$TMP/nginx-proxy" \
        PORT="$PORT_PROXY" UPSTREAM_PORT="$PORT_BACKEND" WORKERS=1
      # One process (no master), so that callgrind sees the worker's instructions.
      start_bg "$tag" "" "${vg[@]}" nginx -g 'master_process off;' -e "$TMP/nginx-proxy.stderr" \
        -p "$TMP/nginx-proxy" -c "$TMP/proxy-nginx.conf" ;;
    haproxy)
      render "$BENCH/conf/proxy-haproxy.cfg.in" "$TMP/proxy-haproxy.cfg" \
        PORT="$PORT_PROXY" UPSTREAM_PORT="$PORT_BACKEND" WORKERS=1
      start_bg "$tag" "" "${vg[@]}" haproxy -db -f "$TMP/proxy-haproxy.cfg" ;;
  esac
}

# count TOOL PROXY N: one run with N requests. callgrind: sets COUNT to the instructions
# collected; strace: leaves the per-syscall table in $TMP/PROXY-N.strace. (Not echoed: a
# $(...) subshell would own the process and escape cleanup.)
count() {
  local tool=$1 proxy=$2 n=$3 tag="$2-$3" pid
  start_under "$tool" "$proxy" "$tag"
  pid=$LAST_PID
  wait_listening "$PORT_PROXY" "$tag"
  timeout 600 "$PY" "$BENCH/lib/ka_client.py" "$PORT_PROXY" /small "$n" >/dev/null ||
    die "$tag: the client failed"
  if [ "$tool" = strace ]; then
    # Stop the traced proxy, not strace (which would detach and leave it running); strace
    # then exits by itself and writes its table.
    kill -TERM "$(pgrep -P "$pid" | head -1)" 2>/dev/null || true
    for _ in $(seq 300); do alive "$pid" || break; sleep 0.1; done
    stop_pid "$pid"
    return 0
  fi
  stop_pid "$pid"
  COUNT=$(grep -o 'Collected : [0-9]*' "$TMP/$tag.vg.log" | tr -dc 0-9 || true)
  [ -n "$COUNT" ] || die "$tag: no callgrind total in $TMP/$tag.vg.log"
}

# syscalls_per_request PROXY: "total (top calls)" per request, from the two strace tables.
syscalls_per_request() {
  "$PY" - "$TMP/$1-$N1.strace" "$TMP/$1-$N2.strace" "$((N2 - N1))" <<'EOF_PY'
import sys
def table(path):
    calls = {}
    for line in open(path):
        f = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls
a, b, n = table(sys.argv[1]), table(sys.argv[2]), int(sys.argv[3])
per = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in b}
top = sorted(((v, k) for k, v in per.items() if v >= 0.05), reverse=True)
print(f"{sum(per.values()):.1f} | " + ", ".join(f"{k} {v:.1f}" for v, k in top[:6]))
EOF_PY
}

main() {
  parse_args "$@"
  TMP=$(mktemp -d /tmp/trafficcop-callgrind.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_packages valgrind strace nginx haproxy curl procps iproute2 python3
  ensure_trafficcop
  check_ports "$PORT_BACKEND" "$PORT_ECHO" "$PORT_PROXY"
  start_backends ""
  if [ "$ENDPOINTS" -gt 1 ]; then add_backend_ports; fi
  if [ "$GLOBAL" = 1 ]; then
    check_ports "$PORT_REDIS"
    start_bg redis "" redis-server --port "$PORT_REDIS" --bind 127.0.0.1 --save '' --appendonly no
    wait_listening "$PORT_REDIS" redis
  fi
  local proxy i1 i2 per ratio tc_per=""
  LINES=()
  STOP_WAIT=30   # valgrind needs longer than the usual 5 s to wind down and write its file
  for proxy in $PROXIES; do
    log "$proxy: $N1 then $N2 requests under callgrind"
    count callgrind "$proxy" "$N1"; i1=$COUNT
    count callgrind "$proxy" "$N2"; i2=$COUNT
    per=$(( (i2 - i1) / (N2 - N1) ))
    if [ -z "$tc_per" ]; then tc_per=$per; fi  # the first row: trafficcop (or its 1 endpoint)
    log "$proxy: $per instructions per request; now the same under strace -f -c"
    count strace "$proxy" "$N1"
    count strace "$proxy" "$N2"
    ratio=$(awk -v a="$per" -v b="${tc_per:-0}" \
      'BEGIN { if (a > 0 && b > 0) printf "%.2f×", b / a; else printf "–" }')
    LINES+=("| $proxy | $i1 | $i2 | $per | $ratio | $(syscalls_per_request "$proxy") |")
  done
  local out git
  git="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null || git="$git + uncommitted changes"
  mkdir -p "$BENCH/results"
  out="$BENCH/results/$(date -u +%Y%m%dT%H%M%SZ)-callgrind.md"
  report_table "$git" | tee "$out"
  if [ "$ANNOTATE" = 1 ]; then
    echo
    echo "trafficcop, $N2 requests: the costliest functions (exclusive instructions, whole run incl. start-up)"
    echo '```'
    callgrind_annotate --threshold=100 "$TMP/trafficcop-$N2.callgrind.out" 2>/dev/null |
      grep -E '^ *[0-9,]+ \(' | awk 'NR <= 26' | cut -c1-160
    echo '```'
  fi | tee -a "$out"
  log "wrote $out"
}

# report_table GIT: the markdown table of the rows in LINES.
report_table() {
  echo "Instructions per proxied request (callgrind; $N1 vs $N2 keep-alive GETs of 64 B," \
    "one connection, 1 worker; $(date -u '+%Y-%m-%d %H:%M UTC'); $("$TC_BIN" --version) ($1)," \
    "$(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | cut -d' ' -f1-3))"
  echo
  echo "| proxy | instructions, $N1 requests | instructions, $N2 requests | per request" \
    "| trafficcop ÷ this | syscalls per request | the most frequent, per request |"
  echo "|---|--:|--:|--:|--:|--:|---|"
  printf '%s\n' "${LINES[@]}"
}

main "$@"
