#!/usr/bin/env bash
# bench/run.sh — trafficcop, nginx and HAProxy as reverse proxies, side by side in one run,
# on 127.0.0.1 only (issue 3). See bench/README.md for what is measured and the caveats.
#
#   bench/run.sh            full run: 3 rounds of 5 s rows, 1 GiB upload (about 12 minutes)
#   bench/run.sh --quick    1 round of 2 s rows, no warm-up, a 256 MiB upload (under 3 minutes)
#   options: --duration S (seconds per row)  --rounds N  --workers "1 1u 2"  --no-install
#            (1u: one worker, unpinned — the scheduler free — for the small-request cases)
#            --bin-dir DIR (trafficcop and trafficcop-echo from DIR; default build-release/bin)
#
# Prints a markdown table; writes bench/results/<timestamp>[-quick].json and .md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=/usr/bin/python3   # the system one: starts in 0.1 s, where a version-manager shim takes ~1 s
[ -x "$PY" ] || PY=$(command -v python3)
COMMAND="bench/run.sh${*:+ $*}"

QUICK=0
DURATION=5           # seconds of measurement per row
ROUNDS=3             # the whole matrix this many times; each row reports median and range
WARMUP=1             # seconds of load before measuring (pool filled, caches warm)
CONNS=50             # wrk connections, one wrk thread
UPLOAD_MIB=1024
WORKERS_LIST="1 1u 2"
INSTALL=1
PORT_BASE=${BENCH_PORT_BASE:-18600}
TC_BIN=$ROOT/build-release/bin/trafficcop
ECHO_BIN=$ROOT/build-release/bin/trafficcop-echo

PORT_BACKEND=$PORT_BASE              # nginx: /small (64 B) and /1m (1 MiB)
PORT_ECHO=$((PORT_BASE + 1))         # trafficcop-echo: reads and discards bodies, then answers
PORT_PROXY=$((PORT_BASE + 10))       # the proxy under test (one at a time)

# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) QUICK=1; DURATION=2; WARMUP=0; ROUNDS=1; UPLOAD_MIB=256; shift ;;
      --duration) DURATION=$2; shift 2 ;;
      --rounds) ROUNDS=$2; shift 2 ;;
      --workers) WORKERS_LIST=$2; shift 2 ;;
      --no-install) INSTALL=0; shift ;;
      --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
      -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
}

# ------------------------------------------------------------------ step 1: machine layout

NCPU=$(nproc)
BACKEND_CPUS=""

# plan_cpus WORKERS: sets PROXY_CPUS, LOAD_CPUS (empty = unpinned), PINNED (1/0) and PINNING
# (the label). WORKERS "1u" is one worker left to the scheduler, as a new user runs it.
plan_cpus() {
  local w=$1
  PINNED=1
  if [ "$w" = 1u ]; then
    PROXY_CPUS=""; LOAD_CPUS=""; PINNED=0
    PINNING="unpinned: the scheduler free (proxy and wrk on any CPU; backend on CPU ${BACKEND_CPUS:-any})"
  elif [ "$w" -lt "$NCPU" ]; then
    PROXY_CPUS="0-$((w - 1))"; [ "$w" = 1 ] && PROXY_CPUS=0
    LOAD_CPUS="$w-$((NCPU - 1))"; [ "$w" = $((NCPU - 1)) ] && LOAD_CPUS=$w
    PINNING="proxy on CPU $PROXY_CPUS, load+backend on CPU $LOAD_CPUS"
  else
    PROXY_CPUS=""; LOAD_CPUS=""; PINNED=0
    PINNING="unpinned: no free core (proxy and wrk share all $NCPU; backend on CPU ${BACKEND_CPUS:-any})"
  fi
}

# ------------------------------------------------------------------ step 2: proxies

# start_proxy PROXY WORKERS UPSTREAM_PORT: sets PROXY_PID. PROXY is trafficcop,
# trafficcop+log (access log on, to a file), nginx or haproxy.
start_proxy() {
  local proxy=$1 w=$2 up=$3 alog=off
  case "$proxy" in
    trafficcop|trafficcop+log)
      [ "$proxy" = trafficcop+log ] && alog="$TMP/access.log" && rm -f "$alog"
      start_bg "$proxy" "$PROXY_CPUS" "$TC_BIN" --listen "127.0.0.1:$PORT_PROXY" \
        --upstream "http://127.0.0.1:$up" --workers "$w" --access-log "$alog" \
        --drain-timeout 1s --log-level warn ;;
    nginx)
      mkdir -p "$TMP/nginx-proxy"
      render "$BENCH/conf/proxy-nginx.conf.in" "$TMP/proxy-nginx.conf" TMP="$TMP/nginx-proxy" \
        PORT="$PORT_PROXY" UPSTREAM_PORT="$up" WORKERS="$w"
      start_bg nginx "$PROXY_CPUS" nginx -e "$TMP/nginx-proxy.stderr" -p "$TMP/nginx-proxy" \
        -c "$TMP/proxy-nginx.conf" ;;
    haproxy)
      render "$BENCH/conf/proxy-haproxy.cfg.in" "$TMP/proxy-haproxy.cfg" \
        PORT="$PORT_PROXY" UPSTREAM_PORT="$up" WORKERS="$w"
      start_bg haproxy "$PROXY_CPUS" haproxy -db -f "$TMP/proxy-haproxy.cfg" ;;
    *) die "unknown proxy $proxy" ;;
  esac
  PROXY_PID=$LAST_PID
  wait_ready "http://127.0.0.1:$PORT_PROXY/small" "$proxy"
}

# ------------------------------------------------------------------ step 3: one row

# CASE -> path, upstream, wrk options, response size.
case_setup() {
  WRK_OPTS=(); RESP_BYTES=64; UP_PORT=$PORT_BACKEND; BACKEND_LABEL="nginx return 200 (64 B)"
  case "$1" in
    small-keepalive) CASE_PATH=/small ;;
    new-connection) CASE_PATH=/small; WRK_OPTS=(-H "Connection: close") ;;
    1mib) CASE_PATH=/1m; RESP_BYTES=$((1 << 20)); BACKEND_LABEL="nginx static file (1 MiB, sendfile)" ;;
    post-100k) CASE_PATH=/post; UP_PORT=$PORT_ECHO; WRK_OPTS=(-s "$BENCH/conf/post-100k.lua")
      BACKEND_LABEL="trafficcop-echo (reads the whole body, then answers)" ;;
    upload-1gib) CASE_PATH=/upload; UP_PORT=$PORT_ECHO
      BACKEND_LABEL="trafficcop-echo (reads the whole body, then answers); $UPLOAD_MIB MiB" ;;
    *) die "unknown case $1" ;;
  esac
}

# load URL OUTFILE [SECONDS]: wrk for SECONDS (default DURATION; bounded by timeout).
load() {
  local secs=${3:-$DURATION} pre=()
  [ -n "$LOAD_CPUS" ] && pre=(taskset -c "$LOAD_CPUS")
  timeout $((secs + 30)) "${pre[@]+"${pre[@]}"}" wrk -t1 -c"$CONNS" -d"${secs}s" --latency \
    "${WRK_OPTS[@]+"${WRK_OPTS[@]}"}" "$1" >"$2" 2>&1 || log "wrk exited non-zero (see row errors)"
}

# upload URL: sets UPLOAD_* from one curl -T of UPLOAD_MIB MiB of zeros through a pipe.
upload() {
  local out rc=0 got
  out=$(pin "$LOAD_CPUS" head -c $((UPLOAD_MIB << 20)) /dev/zero |
    pin "$LOAD_CPUS" curl -sS -T - -H 'Expect:' --max-time 300 -o "$TMP/upload.body" \
      -w '%{http_code} %{size_upload} %{time_total}' "$1") || rc=$?
  read -r code sent secs <<<"$out"
  got=$(grep -o '([0-9]* body bytes' "$TMP/upload.body" 2>/dev/null | tr -dc 0-9 || true)
  UPLOAD_BYTES=$((UPLOAD_MIB << 20)); UPLOAD_SECONDS=${secs:-0}; UPLOAD_OK=0
  UPLOAD_DETAIL="curl rc $rc, HTTP ${code:-?}, sent ${sent:-?}, upstream got ${got:-?} bytes"
  [ "$rc" = 0 ] && [ "${code:-}" = 200 ] && [ "${got:-}" = "$UPLOAD_BYTES" ] && UPLOAD_OK=1
  return 0
}

# run_row CASE PROXY WORKERS: start the proxy (or none for "direct"), warm up, measure, stop.
run_row() {
  local case=$1 proxy=$2 w=$3 url pid="" cpu0="" cpu1="" hwm="" st0="" st1="" args=()
  case_setup "$case"
  plan_cpus "$w"
  if [ "$proxy" = direct ]; then
    url="http://127.0.0.1:$UP_PORT$CASE_PATH"; PINNING="no proxy: client to backend"
  else
    start_proxy "$proxy" "${w%u}" "$UP_PORT"; pid=$PROXY_PID
    url="http://127.0.0.1:$PORT_PROXY$CASE_PATH"
  fi
  if [ "$case" != upload-1gib ] && [ "$WARMUP" -gt 0 ]; then
    load "$url" "$TMP/warmup.out" "$WARMUP"
  fi
  [ -n "$pid" ] && cpu0=$("$PY" "$BENCH/lib/bench.py" cpu "$pid")
  st0=$("$PY" "$BENCH/lib/bench.py" cpustat)
  if [ "$case" = upload-1gib ]; then
    upload "$url"
    args=(--upload-bytes "$UPLOAD_BYTES" --upload-seconds "$UPLOAD_SECONDS"
          --upload-ok "$UPLOAD_OK" --upload-detail "$UPLOAD_DETAIL")
  else
    load "$url" "$TMP/wrk.out"
    args=(--wrk "$TMP/wrk.out")
  fi
  st1=$("$PY" "$BENCH/lib/bench.py" cpustat)
  if [ -n "$pid" ]; then
    cpu1=$("$PY" "$BENCH/lib/bench.py" cpu "$pid")
    hwm=$("$PY" "$BENCH/lib/bench.py" hwm "$pid")
    stop_pid "$pid"
  fi
  "$PY" "$BENCH/lib/bench.py" row --round "$ROUND" --case "$case" --proxy "$proxy" \
    --workers "${w%u}" --pinned "$PINNED" --pinning "$PINNING" --backend "$BACKEND_LABEL" --duration "$DURATION" \
    --resp-bytes "$RESP_BYTES" --cpu0 "$cpu0" --cpu1 "$cpu1" --hwm-kib "$hwm" \
    --stat0 "$st0" --stat1 "$st1" --proxy-cpus "${PROXY_CPUS:-0-$((NCPU - 1))}" \
    "${args[@]}" >>"$TMP/rows.jsonl"
  log "$(tail -1 "$TMP/rows.jsonl" | "$PY" "$BENCH/lib/bench.py" summary)"
}

# ------------------------------------------------------------------ step 4: the matrix

run_matrix() {
  local proxies="trafficcop nginx haproxy" w
  run_row small-keepalive direct 1   # the backend alone: the ceiling on this machine
  for w in $WORKERS_LIST; do
    for p in $proxies; do run_row small-keepalive "$p" "$w"; done
    if [ "$w" = 1 ]; then run_row small-keepalive trafficcop+log 1; fi
  done
  for w in $WORKERS_LIST; do
    for p in $proxies; do run_row new-connection "$p" "$w"; done
  done
  run_row 1mib direct 1
  for w in $WORKERS_LIST; do
    [ "$w" = 1u ] && continue  # large bodies: pinned and 2 workers are enough
    for p in $proxies; do run_row 1mib "$p" "$w"; done
  done
  for p in $proxies; do run_row post-100k "$p" 1; done
  run_row upload-1gib direct 1
  for p in $proxies; do run_row upload-1gib "$p" 1; done
}

# ------------------------------------------------------------------ main

main() {
  parse_args "$@"
  local started=$SECONDS stamp git
  TMP=$(mktemp -d /tmp/trafficcop-bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_packages nginx haproxy wrk nghttp2-client curl procps iproute2 util-linux
  ensure_trafficcop
  check_ports "$PORT_BACKEND" "$PORT_ECHO" "$PORT_PROXY"
  [ "$NCPU" -gt 1 ] && BACKEND_CPUS=$((NCPU - 1))
  start_backends "$BACKEND_CPUS"
  plan_cpus 1; local pin1=$PINNING; plan_cpus "$NCPU"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  # The commit, and whether src/ include/ CMakeLists.txt differed from it: the default
  # binary was just brought up to date with this tree; a --bin-dir one may be older.
  git="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null ||
    git="$git + uncommitted changes in $(git diff --name-only HEAD -- src include CMakeLists.txt | tr '\n' ' ')"
  git="$git; binary built $(date -u -r "$TC_BIN" '+%Y-%m-%d %H:%M UTC')"
  "$PY" "$BENCH/lib/bench.py" meta --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --command "$COMMAND" --tc-bin "$TC_BIN" --git "$git" --quick "$QUICK" \
    --duration "$DURATION" --warmup "$WARMUP" --rounds "$ROUNDS" --connections "$CONNS" \
    --upload-mib "$UPLOAD_MIB" --workers "$WORKERS_LIST" \
    --pinning-note "1 worker: $pin1 (taskset). ${NCPU} workers: $PINNING." >"$TMP/meta.json"
  log "trafficcop $git; $ROUNDS rounds of ${DURATION} s rows; workers: $WORKERS_LIST; scratch dir $TMP"
  for ROUND in $(seq "$ROUNDS"); do run_matrix; done
  mkdir -p "$BENCH/results"
  local out="$BENCH/results/$stamp"
  if [ "$QUICK" = 1 ]; then out="$out-quick"; fi
  "$PY" "$BENCH/lib/bench.py" report "$TMP/rows.jsonl" "$TMP/meta.json" "$out.json" "$out.md"
  log "wrote $out.json and $out.md in $((SECONDS - started)) s"
}

# Sourced by bench/profile.sh for its functions only.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
