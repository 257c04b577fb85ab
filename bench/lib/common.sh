# shellcheck shell=bash
# bench/lib/common.sh — sourced by bench/run.sh and bench/callgrind.sh.
# Needs ROOT, BENCH, TMP (set before starting processes), INSTALL, TC_BIN, ECHO_BIN,
# PORT_BACKEND, PORT_ECHO. Every process is started by start_bg and stopped by stop_pid,
# or by cleanup (the scripts' EXIT trap).

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------------ tools and binaries

# ensure_packages PKG...: apt-get install those of PKG that dpkg-query says are missing.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  [ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (run without --no-install, as root)"
  [ "$(id -u)" -eq 0 ] || die "missing packages: ${missing[*]}; run as root to install them"
  log "installing ${missing[*]}"
  apt-get update -qq
  # Debian's packages start their system service on install where policy allows; the
  # benchmark never uses those (its own instances listen on $PORT_BASE and up).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ensure_trafficcop: the binaries measured. By default build-release/, brought up to date
# with the work tree first (scripts/setup.sh: configures once, then an incremental build
# that does nothing when nothing changed), so that the binary is the source it is named by.
ensure_trafficcop() {
  if [ "$TC_BIN" = "$ROOT/build-release/bin/trafficcop" ]; then
    log "bringing build-release/ up to date (scripts/setup.sh --no-tests --build-dir build-release)"
    scripts/setup.sh --no-tests --build-dir build-release >"$TMP/build-release.log" 2>&1 ||
      { tail -20 "$TMP/build-release.log" >&2; die "the release build failed (log above)"; }
  fi
  if [ ! -x "$TC_BIN" ] || [ ! -x "$ECHO_BIN" ]; then die "no $TC_BIN or $ECHO_BIN"; fi
}

# ------------------------------------------------------------------ processes we start

TMP=""
PIDS=()

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  [ -n "$TMP" ] && rm -rf "$TMP"
}

# descendants PID: the PIDs of all processes below PID (nginx workers, ...).
descendants() {
  local kid
  for kid in $(pgrep -P "$1" || true); do echo "$kid"; descendants "$kid"; done
}

# pin CPUS CMD...: run CMD on CPUS, or unpinned if CPUS is empty.
pin() {
  local cpus=$1; shift
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@"; else "$@"; fi
}

# start_bg NAME CPUS CMD...: start CMD in the background; its PID goes to LAST_PID.
start_bg() {
  local name=$1 cpus=$2; shift 2
  # Not through pin(): a backgrounded function would be a subshell, and $! its PID.
  if [ -n "$cpus" ]; then taskset -c "$cpus" "$@" >"$TMP/$name.out" 2>&1 &
  else "$@" >"$TMP/$name.out" 2>&1 &
  fi
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# alive PID: PID exists and is not a zombie waiting to be reaped.
alive() { ps -o stat= -p "$1" 2>/dev/null | grep -qv Z; }

# stop_pid PID: SIGTERM, up to STOP_WAIT seconds (5) to exit, then SIGKILL for it and
# anything it left behind.
stop_pid() {
  local pid=$1 kids _ p rest=()
  kids=$(descendants "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((${STOP_WAIT:-5} * 10))); do alive "$pid" || break; sleep 0.1; done
  for p in "$pid" $kids; do
    if alive "$p"; then log "killing $p (did not stop on SIGTERM)"; kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait "$pid" 2>/dev/null || true
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
  PIDS=("${rest[@]+"${rest[@]}"}")
}

# wait_listening PORT NAME: until something listens on 127.0.0.1:PORT (60 s at most);
# no connection is made, so nothing is counted against the process (callgrind).
wait_listening() {
  local _
  for _ in $(seq 600); do
    ss -Htln "sport = :$1" | grep -q . && return
    alive "${LAST_PID:-0}" || break
    sleep 0.1
  done
  tail -20 "$TMP/$2.out" >&2 || true
  die "$2 is not listening on port $1"
}

# wait_ready URL NAME: until URL answers 200 (10 s at most).
wait_ready() {
  local _
  for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true)" = 200 ] && return
    sleep 0.1
  done
  tail -20 "$TMP/$2.out" >&2 || true
  die "$2 did not answer 200 on $1"
}

# render TEMPLATE OUT KEY=VALUE...: copy TEMPLATE with @KEY@ replaced by VALUE.
render() {
  local in=$1 out=$2 kv args=(); shift 2
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
}

# check_ports PORT...: fail early when one is taken (another session's server, say).
check_ports() {
  local p
  for p in "$@"; do
    if ss -Htln "sport = :$p" | grep -q .; then
      die "port $p is in use; set BENCH_PORT_BASE to a free range"
    fi
  done
}

# ------------------------------------------------------------------ backends

# start_backends CPUS: nginx (64 B from memory, 1 MiB static file) on PORT_BACKEND and
# trafficcop-echo (reads and discards request bodies, then answers) on PORT_ECHO.
start_backends() {
  local cpus=$1
  mkdir -p "$TMP/www"
  head -c $((1 << 20)) /dev/urandom >"$TMP/www/1m"
  chmod -R a+rX "$TMP"   # nginx workers run as nobody when started as root
  render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend-nginx.conf" TMP="$TMP" PORT="$PORT_BACKEND"
  start_bg backend-nginx "$cpus" nginx -e "$TMP/backend-nginx.stderr" \
    -p "$TMP" -c "$TMP/backend-nginx.conf"
  start_bg backend-echo "$cpus" "$ECHO_BIN" --listen "127.0.0.1:$PORT_ECHO"
  wait_ready "http://127.0.0.1:$PORT_BACKEND/small" backend-nginx
  wait_ready "http://127.0.0.1:$PORT_ECHO/small" backend-echo
}
