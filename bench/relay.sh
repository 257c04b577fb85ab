#!/usr/bin/env bash
# bench/relay.sh — the ceiling of the I/O layer (issue 12 part 2): a blind TCP relay (no HTTP,
# one upstream connection per client) written as trafficcop does its I/O (Asio, epoll), the
# same on Asio's io_uring backend, on an io_uring loop of its own (liburing), and HAProxy
# `mode tcp` as the reference floor. See bench/relay/README.md.
#
#   bench/relay.sh                  3 rounds of 5 s rows, pinned and unpinned (about 4 minutes)
#   bench/relay.sh --rounds 5       on a quiet machine
#   options: --duration S  --warmup S  --relays "asio-epoll asio-uring asio-uring-async uring haproxy"
#            --pinning "pinned unpinned"  --entries-seconds S  --no-entries  --no-install
#            --profile (also perf record each of asio-epoll, asio-uring, asio-uring-async, uring
#            and print their costliest symbols and the share of spin-lock slow paths)
#
# Relays: asio-epoll, asio-uring (trafficcop's way: non-blocking sockets, synchronous write
# attempt), asio-epoll-async, asio-uring-async (blocking-mode sockets, async operations only),
# uring (multishot, provided buffers, registered files, DEFER_TASKRUN), uring-nofixed (plain
# descriptors), uring-coop (COOP_TASKRUN), uring-signal (no ring flags, as Asio sets its ring
# up: task_work by TWA_SIGNAL), haproxy. Backend: one nginx worker answering 64 B from memory. Load: wrk -t1
# -c50 keep-alive GET /small through the relay. Pinned: the relay on CPU 0, wrk and nginx on
# CPU 1; unpinned: all three free. Each row starts a fresh relay, warms up, then measures the
# relay's utime+stime (/proc/PID/stat) over the wrk run: requests per relay CPU-second, as
# medians (ranges) over rounds, and the ratio of medians to HAProxy's.
# Then kernel entries per request: each relay once more (pinned), with `perf stat` counting its
# system calls (raw_syscalls:sys_enter; io_uring_enter is one entry however many SQEs it
# carries) and, system-wide, io_uring's SQEs, poll arms and task_work; strace -c -f instead
# where perf cannot count tracepoints. Needs: nginx haproxy wrk curl perf (linux-perf) strace
# cmake ninja g++ libboost1.81-dev liburing-dev (installed when missing and run as root).
# Load goes to 127.0.0.1 only, ports BENCH_PORT_BASE+80.. (default 18680-18681); every process
# started stops when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
COMMAND="bench/relay.sh${*:+ $*}"
DURATION=5
WARMUP=1
ROUNDS=3
CONNS=50
INSTALL=1
RELAYS="asio-epoll asio-uring asio-uring-async uring haproxy"
ENTRY_RELAYS="asio-epoll asio-epoll-async asio-uring asio-uring-async uring uring-nofixed uring-coop uring-signal haproxy"
PROFILE_RELAYS=""
ENTRY_SECONDS=3
PINNINGS="pinned unpinned"
PORT_BASE=$((${BENCH_PORT_BASE:-18600} + 80))
BACKEND_PORT=$PORT_BASE
RELAY_PORT=$((PORT_BASE + 1))
BIN=$BENCH/relay/build
# shellcheck source=bench/lib/common.sh
. "$BENCH/lib/common.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --relays) RELAYS=$2; shift 2 ;;
    --pinning) PINNINGS=$2; shift 2 ;;
    --entries-seconds) ENTRY_SECONDS=$2; shift 2 ;;
    --no-entries) ENTRY_RELAYS=""; shift ;;
    --profile) PROFILE_RELAYS="asio-epoll asio-uring asio-uring-async uring"; shift ;;
    --no-install) INSTALL=0; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

TMP=$(mktemp -d /tmp/tc-relay-bench.XXXXXX)
trap cleanup EXIT
trap 'exit 130' INT TERM
ensure_packages nginx haproxy wrk curl procps util-linux iproute2 linux-perf strace \
  cmake ninja-build g++ pkg-config libboost1.81-dev liburing-dev
NCPU=$(nproc)
[ "$NCPU" -ge 2 ] || die "needs 2 CPUs (relay on one, load on the other)"
check_ports "$BACKEND_PORT" "$RELAY_PORT"

# ------------------------------------------------------------------ the relays

log "building bench/relay (cmake + ninja, -O2)"
if [ ! -f "$BIN/build.ninja" ]; then
  cmake -S "$BENCH/relay" -B "$BIN" -G Ninja -DCMAKE_CXX_COMPILER=g++ >"$TMP/build.log" 2>&1 ||
    { tail -20 "$TMP/build.log" >&2; die "cmake failed"; }
fi
ninja -C "$BIN" >>"$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log" >&2; die "build failed"; }

# A read in flight when its socket is closed, on Asio's two backends (README.md, Correctness).
CLOSE_CHECK=""
for backend in epoll uring; do
  out=$(timeout 60 "$BIN/asio_close_inflight_$backend" 200 2>&1 | tail -1) && rc=0 || rc=$?
  CLOSE_CHECK="$CLOSE_CHECK- asio_close_inflight_$backend 200: exit $rc${out:+ — $out}
"
done
log "close-with-read-in-flight check: $(printf '%s' "$CLOSE_CHECK" | tr '\n' ' ')"

# ------------------------------------------------------------------ backend and layout

render "$BENCH/conf/backend-nginx.conf.in" "$TMP/backend.conf" TMP="$TMP" PORT="$BACKEND_PORT"
mkdir -p "$TMP/www" && head -c 1024 /dev/zero >"$TMP/www/1m" && chmod -R a+rX "$TMP"
start_bg backend-nginx "" nginx -e "$TMP/backend.stderr" -p "$TMP" -c "$TMP/backend.conf"
BACKEND_PID=$LAST_PID
wait_ready "http://127.0.0.1:$BACKEND_PORT/small" backend

# layout pinned|unpinned: sets RELAY_CPUS and LOAD_CPUS (empty: unpinned) and moves nginx.
layout() {
  local all="0-$((NCPU - 1))" p
  if [ "$1" = pinned ]; then RELAY_CPUS=0; LOAD_CPUS=1; else RELAY_CPUS=""; LOAD_CPUS=""; fi
  for p in $BACKEND_PID $(descendants "$BACKEND_PID"); do
    taskset -a -p -c "${LOAD_CPUS:-$all}" "$p" >/dev/null
  done
}

# start_relay NAME: a fresh relay on RELAY_PORT; sets RELAY_PID.
start_relay() {
  local name=$1 cmd
  case "$name" in
    asio-epoll) cmd=("$BIN/asio_relay_epoll") ;;
    asio-epoll-async) cmd=("$BIN/asio_relay_epoll" --async-only) ;;
    asio-uring) cmd=("$BIN/asio_relay_uring") ;;
    asio-uring-async) cmd=("$BIN/asio_relay_uring" --async-only) ;;
    uring) cmd=("$BIN/uring_relay") ;;
    uring-nofixed) cmd=("$BIN/uring_relay" --no-fixed) ;;
    uring-coop) cmd=("$BIN/uring_relay" --taskrun coop) ;;
    uring-signal) cmd=("$BIN/uring_relay" --taskrun signal) ;;
    haproxy)
      render "$BENCH/conf/relay-haproxy.cfg.in" "$TMP/relay-haproxy.cfg" PORT="$RELAY_PORT" \
        UPSTREAM_PORT="$BACKEND_PORT"
      cmd=(haproxy -db -f "$TMP/relay-haproxy.cfg") ;;
    *) die "unknown relay $name" ;;
  esac
  [ "$name" = haproxy ] || cmd+=(--listen "$RELAY_PORT" --upstream "$BACKEND_PORT")
  start_bg "relay-$name" "$RELAY_CPUS" "${cmd[@]}"
  RELAY_PID=$LAST_PID
  wait_ready "http://127.0.0.1:$RELAY_PORT/small" "relay-$name"
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo dead; }

# died NAME WHAT: the relay exited under load (asio_relay_uring aborted now and then here, see
# bench/relay/README.md): logged and counted, the row skipped, the run goes on.
died() {
  log "$1 exited during $2: $(tail -2 "$TMP/relay-$1.out" | tr '\n' ' ')"
  echo "$1 $2" >>"$TMP/died"
  stop_pid "$RELAY_PID"
}
HZ=$(getconf CLK_TCK)
URL="http://127.0.0.1:$RELAY_PORT/small"

# wrk_run SECONDS OUT: keep-alive GETs through the relay, bounded by timeout.
wrk_run() {
  pin "$LOAD_CPUS" timeout $(($1 + 30)) wrk -t1 -c"$CONNS" -d"$1s" "$URL" >"$2" 2>&1 ||
    log "wrk exited non-zero ($(tail -1 "$2"))"
}

# errors WRKOUT: socket errors plus non-2xx answers.
errors() {
  awk '/Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $NF}
       END {print n + 0}' "$1"
}

# ------------------------------------------------------------------ step 1: req per CPU-s

# row NAME PINNING ROUND: appends "name pinning round requests relay_cpu_s wall_s errors".
row() {
  local name=$1 t0 t1 reqs
  start_relay "$name"
  [ "$WARMUP" -gt 0 ] && wrk_run "$WARMUP" "$TMP/warmup.out"
  t0=$(ticks "$RELAY_PID")
  wrk_run "$DURATION" "$TMP/wrk.out"
  t1=$(ticks "$RELAY_PID")
  if [ "$t0" = dead ] || [ "$t1" = dead ] || ! alive "$RELAY_PID"; then died "$name" "round $3 $2"; return; fi
  stop_pid "$RELAY_PID"
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  [ -n "$reqs" ] || { cat "$TMP/wrk.out" >&2; die "$name: no wrk result"; }
  echo "$name $2 $3 $reqs $(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {print (b - a) / hz}') \
$DURATION $(errors "$TMP/wrk.out")" >>"$TMP/rows"
  log "round $3 $2 $name: $(tail -1 "$TMP/rows" | awk '{printf "%d requests, %.2f relay CPU-s, %.0f req/CPU-s, %d errors", $4, $5, $4 / ($5 > 0 ? $5 : 1), $7}')"
}

: >"$TMP/rows"
: >"$TMP/died"
log "$ROUNDS rounds of ${DURATION} s rows (warm-up ${WARMUP} s); relays: $RELAYS; $PINNINGS"
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq "$ROUNDS"); do
  for pinning in $PINNINGS; do
    layout "$pinning"
    for r in $RELAYS; do row "$r" "$pinning" "$round"; done
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ step 2: kernel entries

# Counted in the relay's own context (-p): its system calls and context switches.
PERF_TASK_EVENTS="raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,\
syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_ctl,\
syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendto,\
syscalls:sys_enter_sendmsg,syscalls:sys_enter_read,syscalls:sys_enter_write,\
syscalls:sys_enter_readv,syscalls:sys_enter_writev,context-switches"
# Counted system-wide (-a): io_uring work is partly done in the context of the task that wakes
# the socket (nginx, wrk). Only the relay uses io_uring during the window.
PERF_URING_EVENTS="io_uring:io_uring_submit_req,io_uring:io_uring_poll_arm,\
io_uring:io_uring_task_add,io_uring:io_uring_task_work_run,io_uring:io_uring_local_work_run,\
io_uring:io_uring_complete,ipi:ipi_send_cpu"

PERF_OK=0
if perf stat -x, -e raw_syscalls:sys_enter true >/dev/null 2>&1; then PERF_OK=1; fi

# entries NAME: one pinned run under perf stat (or strace -c -f); appends to $TMP/entries.
entries() {
  local name=$1 p1 p2 reqs t0 t1
  start_relay "$name"
  wrk_run 1 "$TMP/warmup.out"
  t0=$(ticks "$RELAY_PID")
  if [ "$PERF_OK" = 1 ]; then
    perf stat -x, -o "$TMP/perf-task-$name.csv" -e "$PERF_TASK_EVENTS" -p "$RELAY_PID" &
    p1=$!
    perf stat -x, -o "$TMP/perf-uring-$name.csv" -e "$PERF_URING_EVENTS" -a &
    p2=$!
    sleep 0.5   # perf attaches
    wrk_run "$ENTRY_SECONDS" "$TMP/wrk-entries.out"
    kill -INT "$p1" "$p2"; wait "$p1" "$p2" || true
  else
    timeout $((ENTRY_SECONDS + 20)) strace -c -f -o "$TMP/strace-$name.txt" -p "$RELAY_PID" &
    p1=$!
    sleep 0.5
    wrk_run "$ENTRY_SECONDS" "$TMP/wrk-entries.out"
    kill -INT "$p1"; wait "$p1" || true
  fi
  t1=$(ticks "$RELAY_PID")
  if [ "$t0" = dead ] || [ "$t1" = dead ] || ! alive "$RELAY_PID"; then died "$name" "the entries run"; return; fi
  stop_pid "$RELAY_PID"
  reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk-entries.out")
  echo "$name $reqs $(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {print (b - a) / hz}')" >>"$TMP/entries"
  # uring_relay's own count of loop turns (it prints them when it stops)
  grep -h "loop turns" "$TMP/relay-$name.out" 2>/dev/null | sed "s/^/  $name: /" >>"$TMP/turns" || true
}

: >"$TMP/entries"
: >"$TMP/turns"
if [ -n "$ENTRY_RELAYS" ]; then
  layout pinned
  log "kernel entries per request ($([ "$PERF_OK" = 1 ] && echo "perf stat" || echo "strace -c -f")), ${ENTRY_SECONDS} s per relay: $ENTRY_RELAYS"
  for r in $ENTRY_RELAYS; do entries "$r"; done
fi

# ------------------------------------------------------------------ step 3: profiles

# profile NAME: perf record (cpu-clock, call graphs) of one pinned run; appends the costliest
# symbols and the spin-lock slow path's share to $TMP/profiles.
profile() {
  local name=$1 p
  start_relay "$name"
  wrk_run 1 "$TMP/warmup.out"
  perf record -q -e cpu-clock -F 2000 -g -p "$RELAY_PID" -o "$TMP/perf-$name.data" \
    >"$TMP/perf-record-$name.log" 2>&1 &
  p=$!
  sleep 0.5
  wrk_run "$ENTRY_SECONDS" "$TMP/wrk-profile.out"
  kill -INT "$p"; wait "$p" || true
  stop_pid "$RELAY_PID"
  {
    echo
    echo "$name ($(awk '/requests in/ {print $1}' "$TMP/wrk-profile.out") requests), the relay's samples:"
    echo
    perf report -i "$TMP/perf-$name.data" --no-children --sort sym --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -8 | cut -c1-110 | sed 's/^ */    /' || true
    echo "    kernel share of the relay's samples: $(perf report -i "$TMP/perf-$name.data" --sort dso \
      --stdio 2>/dev/null | awk '/kernel.kallsyms/ {print $1; exit}')"
    echo "    spin-lock slow path, and the part of it under io_uring task_work:" \
      "$(perf report -i "$TMP/perf-$name.data" --no-children --sort sym --stdio 2>/dev/null |
         awk '/queued_spin_lock_slowpath/ && /%/ {s += $1} END {printf "%.1f%%", s}')," \
      "$(perf report -i "$TMP/perf-$name.data" --no-children --sort sym --stdio -G 2>/dev/null |
         awk '/queued_spin_lock_slowpath/ {inlock = 1} /^$/ {inlock = 0}
              inlock && /--[0-9.]+%--/ {pct = $0; sub(/^[^-]*--/, "", pct); sub(/%.*/, "", pct)}
              inlock && /task_work_run/ && pct != "" {tw += pct; pct = ""}
              END {printf "%.1f%%", tw}')"
  } >>"$TMP/profiles"
}

: >"$TMP/profiles"
if [ -n "$PROFILE_RELAYS" ] && [ "$PERF_OK" = 1 ]; then
  layout pinned
  log "profiles (perf record, ${ENTRY_SECONDS} s per relay, pinned): $PROFILE_RELAYS"
  for r in $PROFILE_RELAYS; do profile "$r"; done
fi

# ------------------------------------------------------------------ report

echo
echo "## bench/relay.sh — $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $NCPU CPUs"
echo
echo "\`$COMMAND\`: $ROUNDS rounds of ${DURATION} s rows after ${WARMUP} s of warm-up, wrk -t1 \
-c$CONNS keep-alive GET of 64 B through the relay to one nginx worker; load average \
$(cut -d' ' -f1-3 /proc/loadavg) at the end, $LOAD_END after the rate rows."
echo
echo "Asio, a read in flight when its socket is closed (exit 0: every read aborted, the next"
echo "socket's read got its byte; 139: SIGSEGV):"
echo
printf '%s' "$CLOSE_CHECK"
"$PY" - "$TMP" "$PERF_OK" "$RELAYS" "$PINNINGS" <<'EOF'
import collections, glob, os, statistics, sys
tmp, perf_ok, relays, pinnings = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split(), sys.argv[4].split()

rows = collections.defaultdict(list)
for line in open(os.path.join(tmp, "rows")):
    name, pin, rnd, reqs, cpu, secs, errs = line.split()
    rows[(name, pin)].append((int(reqs), float(cpu), float(secs), int(errs)))

def mr(v, f="{:,.0f}"):
    return f"{f.format(statistics.median(v))} ({f.format(min(v))}–{f.format(max(v))})"

for pin in pinnings:
    layout = ("relay on CPU 0, wrk and nginx on CPU 1" if pin == "pinned"
              else "relay, wrk and nginx free on both CPUs")
    print(f"\n### {pin} ({layout})\n")
    print("| relay | req per relay CPU-s, median (range) | ÷ haproxy | req/s, median | relay CPU % | errors |")
    print("|---|--:|--:|--:|--:|--:|")
    base = None
    if ("haproxy", pin) in rows:
        base = statistics.median(r[0] / r[1] for r in rows[("haproxy", pin)] if r[1] > 0)
    for name in relays:
        rs = rows.get((name, pin))
        if not rs:
            continue
        eff = [r[0] / r[1] for r in rs if r[1] > 0]
        rate = [r[0] / r[2] for r in rs]
        busy = [100 * r[1] / r[2] for r in rs]
        ratio = f"{statistics.median(eff) / base:.2f}" if base else "–"
        print(f"| {name} | {mr(eff)} | {ratio} | {statistics.median(rate):,.0f} "
              f"| {statistics.median(busy):.0f} | {sum(r[3] for r in rs)} |")

died = open(os.path.join(tmp, "died")).read().strip()
if died:
    print("\nRelays that exited under load (rows skipped):\n")
    print("\n".join("- " + l for l in died.splitlines()))
entries = [l.split() for l in open(os.path.join(tmp, "entries"))]
if not entries:
    sys.exit(0)

def perf_counts(path):
    out = {}
    for line in open(path):
        parts = line.strip().split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            out[parts[2]] = float(parts[0])
        except ValueError:
            out[parts[2]] = float("nan")  # <not counted> / <not supported>
    return out

if perf_ok:
    print("\n### Kernel entries per request (one pinned run per relay under `perf stat`)\n")
    print("System calls counted in the relay's context (`-p`); io_uring events system-wide (`-a`: "
          "part of io_uring's work runs in the waker's context), only the relay uses io_uring in "
          "the window. perf adds overhead of its own, so these runs are not in the table above.\n")
    cols = [("all syscalls", ["raw_syscalls:sys_enter"]),
            ("io_uring_enter", ["syscalls:sys_enter_io_uring_enter"]),
            ("epoll_wait", ["syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait"]),
            ("epoll_ctl", ["syscalls:sys_enter_epoll_ctl"]),
            ("recv*", ["syscalls:sys_enter_recvfrom", "syscalls:sys_enter_recvmsg",
                       "syscalls:sys_enter_read", "syscalls:sys_enter_readv"]),
            ("send*", ["syscalls:sys_enter_sendto", "syscalls:sys_enter_sendmsg",
                       "syscalls:sys_enter_write", "syscalls:sys_enter_writev"]),
            ("read+write (eventfd?)", ["syscalls:sys_enter_read", "syscalls:sys_enter_write"]),
            ("ctx switches", ["context-switches"]),
            ("SQEs", ["io_uring:io_uring_submit_req"]),
            ("poll arms", ["io_uring:io_uring_poll_arm"]),
            ("task_work adds", ["io_uring:io_uring_task_add"]),
            ("CQEs", ["io_uring:io_uring_complete"]),
            ("IPIs (all CPUs)", ["ipi:ipi_send_cpu"])]
    print("| relay | requests | req per relay CPU-s | " + " | ".join(c for c, _ in cols) + " |")
    print("|---|--:|--:|" + "--:|" * len(cols))
    for name, reqs, cpu in entries:
        reqs, cpu = int(reqs), float(cpu)
        c = perf_counts(os.path.join(tmp, f"perf-task-{name}.csv"))
        c.update(perf_counts(os.path.join(tmp, f"perf-uring-{name}.csv")))
        cells = []
        for _, evs in cols:
            v = sum(c.get(e, 0.0) for e in evs)
            cells.append(f"{v / reqs:.2f}" if reqs else "–")
        eff = f"{reqs / cpu:,.0f}" if cpu > 0 else "–"
        print(f"| {name} | {reqs:,} | {eff} | " + " | ".join(cells) + " |")
else:
    print("\n### Kernel entries per request (perf cannot count here: `strace -c -f`, a separate "
          "short run per relay; strace slows the relay several-fold, which changes batching)\n")
    for name, reqs, cpu in entries:
        reqs = int(reqs)
        print(f"\n{name}: {reqs:,} requests\n")
        print("| syscall | calls | per request |\n|---|--:|--:|")
        total = 0
        for line in open(os.path.join(tmp, f"strace-{name}.txt")):
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                calls = int(p[3])
                total += calls
                print(f"| {p[-1]} | {calls:,} | {calls / reqs:.2f} |")
        print(f"| all | {total:,} | {total / reqs:.2f} |")
turns = open(os.path.join(tmp, "turns")).read().strip()
if turns:
    print("\nuring_relay's own counts over its whole life (warm-up, wait_ready and the run):\n")
    print(turns)
profiles = open(os.path.join(tmp, "profiles")).read().rstrip()
if profiles:
    print("\n### Profiles (perf record -e cpu-clock -g, one pinned run per relay)")
    print(profiles)
EOF
