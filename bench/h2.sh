#!/usr/bin/env bash
# bench/h2.sh — HTTP/2 rows: trafficcop, nginx and HAProxy with TLS and h2 downstream, side by
# side in one run, on 127.0.0.1 only. Same machine layout, backends and figures as bench/run.sh
# (sourced for its helpers): 1 worker per proxy on CPU 0, h2load and the backend on CPU 1,
# proxy CPU time from /proc.
#
#   bench/h2.sh             full run: 3 rounds of 10 s rows (about 5 minutes), median rounds
#   bench/h2.sh --quick     1 round of 3 s rows, no warm-up (under a minute)
#   bench/h2.sh --profile   no table: where trafficcop's and nginx's CPU goes in the h2-tls and
#                           h2-handshake rows (perf, perf with call graphs, strace; ~2 minutes)
#   options: --duration S  --rounds N  --rsa (RSA 2048 certificate; default ECDSA P-256)
#            --hs-rate N (new connections per second offered in h2-handshake; default 500)
#            --no-install  --bin-dir DIR (trafficcop and trafficcop-echo; default build-release/bin)
#            --bin-label TEXT (what the --bin-dir binary was built from, for the report)
#
# Cases (rows):
#   h2-tls        h2load -c8 -m16 (8 connections x 16 streams) GET /small for DURATION s over
#                 TLS 1.3 + h2; HTTP/1.1 keep-alive to the nginx backend (64 B), as run.sh
#   h2-handshake  one new TLS connection per request: h2load -c N -n N at a fixed rate (-r), so
#                 every proxy gets the same load; full handshakes only (h2load never resumes:
#                 it does not call SSL_set_session, checked below with nm)
#   h2-upstream   trafficcop only (nginx has no h2 upstream): the h2-tls load, upstream
#                 trafficcop-echo --h2c with http2: always, and the same echo over HTTP/1.1
#
# Prints a markdown table; writes bench/results/<timestamp>-h2[-quick].json and .md
# (--profile: <timestamp>-h2-profile.md).
set -euo pipefail
# shellcheck source=bench/run.sh
. "$(dirname "$0")/run.sh"   # functions and settings only (run.sh runs main when executed)
COMMAND="bench/h2.sh${*:+ $*}"

DURATION=10
ROUNDS=3
WARMUP=1
H2_CONNS=8           # h2load connections in h2-tls / h2-upstream
H2_STREAMS=16        # concurrent streams per connection (h2load -m)
# Idle upstream connections kept per worker (trafficcop max_idle, nginx keepalive; HAProxy keeps
# all). Above the 8 x 16 requests in flight: with the default 64, both proxies close and reopen
# upstream connections in every burst (nginx: a connect for 1 request in 5), which is then what
# the h2-tls row would measure.
UP_IDLE=256
HS_RATE=500          # h2-handshake: new connections per second offered (h2load -r per 100 ms x 10)
KEY=ec               # ec: ECDSA P-256; rsa: RSA 2048
TLS13_CIPHER=TLS_AES_128_GCM_SHA256   # the only suite h2load offers: the same for every proxy
PROFILE=0
BIN_LABEL=""
PORT_H2C=$((PORT_BASE + 2))   # trafficcop-echo --h2c (h2-upstream)

parse_h2_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) QUICK=1; DURATION=3; WARMUP=0; ROUNDS=1; shift ;;
      --duration) DURATION=$2; shift 2 ;;
      --rounds) ROUNDS=$2; shift 2 ;;
      --rsa) KEY=rsa; shift ;;
      --hs-rate) HS_RATE=$2; shift 2 ;;
      --profile) PROFILE=1; shift ;;
      --no-install) INSTALL=0; shift ;;
      --bin-dir) TC_BIN=$2/trafficcop; ECHO_BIN=$2/trafficcop-echo; shift 2 ;;
      --bin-label) BIN_LABEL=$2; shift 2 ;;
      -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
      *) die "unknown option $1 (see --help)" ;;
    esac
  done
  [ $((HS_RATE % 10)) = 0 ] || die "--hs-rate must be a multiple of 10"
}

# ------------------------------------------------------------------ certificate

# make_cert: a self-signed certificate for 127.0.0.1 in $TMP/tls (ECDSA P-256 or RSA 2048),
# also as one PEM with its key for HAProxy. Sets KEY_LABEL.
make_cert() {
  local d=$TMP/tls alg=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  KEY_LABEL="ECDSA P-256"
  if [ "$KEY" = rsa ]; then alg=(-newkey rsa:2048); KEY_LABEL="RSA 2048"; fi
  mkdir -p "$d"
  openssl req -x509 "${alg[@]}" -nodes -keyout "$d/key.pem" -out "$d/cert.pem" -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>"$TMP/openssl.out" ||
    { cat "$TMP/openssl.out" >&2; die "openssl req failed"; }
  cat "$d/cert.pem" "$d/key.pem" >"$d/both.pem"
}

# check_no_resumption: every h2load connection must be a full handshake. An OpenSSL client
# resumes only a session it hands to SSL_set_session; h2load must not import it.
check_no_resumption() {
  if nm -D "$(command -v h2load)" | grep -q ' U SSL_set_session'; then
    die "this h2load calls SSL_set_session: h2-handshake would not measure full handshakes"
  fi
}

# ------------------------------------------------------------------ proxies

# write_configs UPSTREAM_PORT TC_HTTP2: the three proxies' configuration files in $TMP.
# TC_HTTP2 is trafficcop's upstream http2 setting (never | always).
write_configs() {
  local up=$1 tc_h2=$2 d=$TMP/tls
  cat >"$TMP/h2-trafficcop.yaml" <<EOF
workers: 1
listeners:
  - address: 127.0.0.1:$PORT_PROXY
    tls: {certificates: [{cert_file: $d/cert.pem, key_file: $d/key.pem}]}
upstreams:
  - {name: backend, url: "http://127.0.0.1:$up", http2: $tc_h2, max_idle: $UP_IDLE}
routes: [{path_prefix: /, upstream: backend}]
timeouts: {drain: 1s}
access_log: {path: "off"}
EOF
  # bench/conf/proxy-nginx.conf.in with TLS and h2 on the listener and UP_IDLE idle upstream
  # connections; see the comments there.
  mkdir -p "$TMP/nginx-h2"
  cat >"$TMP/h2-nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TMP/nginx-h2/nginx.pid;
error_log $TMP/nginx-h2/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    keepalive_requests 1000000;      # also the h2 requests per connection (nginx >= 1.19.7)
    keepalive_timeout 60s;
    client_max_body_size 0;
    client_body_buffer_size 32k;
    proxy_request_buffering off;
    proxy_buffer_size 32k;
    proxy_buffers 4 32k;
    proxy_busy_buffers_size 64k;
    proxy_max_temp_file_size 0;
    client_body_temp_path $TMP/nginx-h2/client-body;
    proxy_temp_path $TMP/nginx-h2/proxy-temp;
    upstream backend {
        server 127.0.0.1:$up;
        keepalive $UP_IDLE;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$PORT_PROXY ssl http2 reuseport backlog=4096;
        ssl_certificate $d/cert.pem;
        ssl_certificate_key $d/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$host;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
  # bench/conf/proxy-haproxy.cfg.in with TLS and h2 (ALPN) on the bind line.
  cat >"$TMP/h2-haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 10s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:$PORT_PROXY ssl crt $d/both.pem alpn h2,http/1.1
    option forwardfor
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    http-request set-header X-Forwarded-Proto https
    http-request set-header Host 127.0.0.1:$up
    default_backend be
backend be
    server s1 127.0.0.1:$up
EOF
}

# wait_h2 URL NAME: until URL answers 200 over h2 (10 s at most).
wait_h2() {
  local _ got=""
  for _ in $(seq 100); do
    got=$(curl -sk --http2 -o /dev/null -w '%{http_code} %{http_version}' --max-time 2 "$1" || true)
    [ "$got" = "200 2" ] && return
    sleep 0.1
  done
  tail -20 "$TMP/$2.out" >&2 || true
  die "$2 did not answer 200 over h2 on $1 (got: $got)"
}

# start_h2_proxy PROXY UPSTREAM_PORT: sets PROXY_PID. PROXY: trafficcop, trafficcop-h2up
# (upstream over h2c, http2: always), nginx, haproxy.
start_h2_proxy() {
  local proxy=$1 up=$2
  case "$proxy" in
    trafficcop) write_configs "$up" never ;;
    trafficcop-h2up) write_configs "$up" always ;;
    *) write_configs "$up" never ;;
  esac
  case "$proxy" in
    trafficcop|trafficcop-h2up)
      start_bg "$proxy" "$PROXY_CPUS" "$TC_BIN" -c "$TMP/h2-trafficcop.yaml" --log-level warn ;;
    nginx)
      start_bg nginx "$PROXY_CPUS" nginx -e "$TMP/nginx-h2/stderr" -p "$TMP/nginx-h2" \
        -c "$TMP/h2-nginx.conf" ;;
    haproxy) start_bg haproxy "$PROXY_CPUS" haproxy -db -f "$TMP/h2-haproxy.cfg" ;;
    *) die "unknown proxy $proxy" ;;
  esac
  PROXY_PID=$LAST_PID
  wait_h2 "https://127.0.0.1:$PORT_PROXY/small" "$proxy"
}

# ------------------------------------------------------------------ load

# h2_load CASE URL OUTFILE SECONDS: h2load on LOAD_CPUS, bounded by timeout.
h2_load() {
  local case=$1 url=$2 out=$3 secs=$4 opts
  if [ "$case" = h2-handshake ]; then
    # -r per 100 ms: connections start evenly; each makes one request and closes.
    local n=$((HS_RATE * secs))
    opts=(-c "$n" -n "$n" -m 1 -r $((HS_RATE / 10)) --rate-period 100ms)
  else
    opts=(-c "$H2_CONNS" -m "$H2_STREAMS" -D "$secs")
  fi
  H2LOAD_CMD="h2load ${opts[*]} --tls13-ciphers=$TLS13_CIPHER $url"
  timeout $((secs * 3 + 30)) taskset -c "$LOAD_CPUS" h2load "${opts[@]}" \
    --tls13-ciphers="$TLS13_CIPHER" "$url" >"$out" 2>&1 || log "h2load exited non-zero (see row errors)"
}

# ------------------------------------------------------------------ one row

# run_h2_row CASE PROXY: start the proxy, warm up, measure, stop.
run_h2_row() {
  local case=$1 proxy=$2 up=$PORT_BACKEND backend="nginx return 200 (64 B)" url cpu0 cpu1 hwm st0 st1
  if [ "$case" = h2-upstream ]; then
    up=$PORT_H2C
    backend="trafficcop-echo --h2c (answers with the request it got, ~0.4 KB)"
  fi
  plan_cpus 1
  start_h2_proxy "$proxy" "$up"
  url="https://127.0.0.1:$PORT_PROXY/small"
  if [ "$WARMUP" -gt 0 ]; then h2_load "$case" "$url" "$TMP/warmup.out" "$WARMUP"; fi
  cpu0=$("$PY" "$BENCH/lib/bench.py" cpu "$PROXY_PID")
  st0=$("$PY" "$BENCH/lib/bench.py" cpustat)
  h2_load "$case" "$url" "$TMP/h2load.out" "$DURATION"
  st1=$("$PY" "$BENCH/lib/bench.py" cpustat)
  cpu1=$("$PY" "$BENCH/lib/bench.py" cpu "$PROXY_PID")
  hwm=$("$PY" "$BENCH/lib/bench.py" hwm "$PROXY_PID")
  stop_pid "$PROXY_PID"
  h2py row --round "$ROUND" --case "$case" --proxy "$proxy" --workers 1 --pinning "$PINNING" \
    --backend "$backend" --h2load "$TMP/h2load.out" --h2load-cmd "$H2LOAD_CMD" \
    --cpu0 "$cpu0" --cpu1 "$cpu1" --hwm-kib "$hwm" --stat0 "$st0" --stat1 "$st1" \
    --proxy-cpus "$PROXY_CPUS" >>"$TMP/rows.jsonl"
  log "$(tail -1 "$TMP/rows.jsonl" | h2py summary)"
}

run_h2_matrix() {
  local p
  for p in trafficcop nginx haproxy; do run_h2_row h2-tls "$p"; done
  for p in trafficcop nginx haproxy; do run_h2_row h2-handshake "$p"; done
  for p in trafficcop-h2up trafficcop; do run_h2_row h2-upstream "$p"; done
}

# ------------------------------------------------------------------ profile

# profile_h2_row CASE PROXY: three passes over the row's load, the proxy freshly started:
#   perf record (cpu-clock, 1999 Hz, the proxy's processes): share of each library, top functions;
#   perf record --call-graph dwarf (499 Hz): kernel time by system call, malloc/free by calling
#     function, inclusive share of chosen frames (TLS handshake steps, h2 framing, upstream);
#   strace -c -f: system calls per request (strace slows the proxy: its own run).
# Appends markdown to $TMP/profile.md.
profile_h2_row() {
  local case=$1 proxy=$2 pids secs=$((DURATION > 4 ? DURATION : 4)) n_perf n_strace ld tracer
  plan_cpus 1
  start_h2_proxy "$proxy" "$PORT_BACKEND"
  local url="https://127.0.0.1:$PORT_PROXY/small"
  h2_load "$case" "$url" "$TMP/warmup.out" 1
  pids=$( { echo "$PROXY_PID"; descendants "$PROXY_PID"; } | paste -sd, -)
  h2_load "$case" "$url" "$TMP/perf-h2load.out" "$secs" & ld=$!
  sleep 0.5
  perf record -q -e cpu-clock -F 1999 -p "$pids" -o "$TMP/perf.data" -- sleep $((secs - 1)) \
    >/dev/null 2>&1 || true
  wait "$ld" || true
  h2_load "$case" "$url" "$TMP/perf-g-h2load.out" "$secs" & ld=$!
  sleep 0.5
  perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$pids" -o "$TMP/perf-g.data" \
    -- sleep $((secs - 1)) >/dev/null 2>&1 || true
  wait "$ld" || true
  strace -c -f -o "$TMP/strace.txt" -p "$pids" >/dev/null 2>&1 & tracer=$!
  sleep 0.5
  h2_load "$case" "$url" "$TMP/strace-h2load.out" "$secs"
  kill -INT "$tracer" 2>/dev/null || true
  wait "$tracer" 2>/dev/null || true
  stop_pid "$PROXY_PID"
  perf report -i "$TMP/perf.data" --sort dso --stdio 2>/dev/null >"$TMP/perf-dso.txt" || true
  perf report -i "$TMP/perf.data" --sort dso,symbol --stdio 2>/dev/null >"$TMP/perf-sym.txt" || true
  perf script --no-inline -i "$TMP/perf-g.data" -F ip,sym,dso 2>/dev/null >"$TMP/perf-g.txt" || true
  n_perf=$(h2py rate "$TMP/perf-h2load.out")
  n_strace=$(h2py count "$TMP/strace-h2load.out")
  h2py profile --case "$case" --proxy "$proxy" --rate "$n_perf" --dso "$TMP/perf-dso.txt" \
    --sym "$TMP/perf-sym.txt" --callgraph "$TMP/perf-g.txt" --strace "$TMP/strace.txt" \
    --strace-requests "$n_strace" >>"$TMP/profile.md"
}

# ------------------------------------------------------------------ parsing and the report

# h2py CMD ARGS...: h2load parsing, rows and the report (bench/lib/bench.py for the rest),
# from the Python program write_h2py keeps in $TMP (stdin stays free for "summary").
h2py() { BENCH_LIB="$BENCH/lib" "$PY" "$TMP/h2bench.py" "$@"; }

write_h2py() {
  cat >"$TMP/h2bench.py" <<'PYEOF'
import json, os, re, sys
sys.path.insert(0, os.environ["BENCH_LIB"])
import bench  # noqa: E402  (CLK_TCK, expand_cpus, parse_kv, fmt, ratio, fratio)


def parse_h2load(text):
    """h2load's summary: counts, time, TLS parameters, mean and max times."""
    r = {"requests": 0, "succeeded": 0, "seconds": None, "errors": 0}
    m = re.search(r"finished in ([\d.]+)(ms|s),", text)
    if m:
        r["seconds"] = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    if m:
        total, _, done, ok, failed, errored, timeout = (int(x) for x in m.groups())
        r.update(requests=done, succeeded=ok, total=total)
        r["errors"] = failed + errored + timeout
        r["error_detail"] = f"failed {failed}, errored {errored}, timeout {timeout}"
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if m:
        non2xx = sum(int(x) for x in m.groups()[1:])
        r["errors"] += non2xx
        r["error_detail"] = r.get("error_detail", "") + f", non-2xx {non2xx}"
    for key, label in (("tls_protocol", "TLS Protocol"), ("cipher", "Cipher"),
                       ("server_temp_key", "Server Temp Key"), ("alpn", "Application protocol")):
        m = re.search(rf"^{label}: (.+)$", text, re.M)
        r[key] = m.group(1).strip() if m else None

    def ms(v):
        m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else None
    for key, label in (("request", "time for request"), ("connect", "time for connect")):
        m = re.search(rf"^{label}:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
        if m:
            r[f"{key}_mean_ms"] = round(ms(m.group(3)), 2)
            r[f"{key}_max_ms"] = round(ms(m.group(2)), 2)
    return r


def row(kv):
    with open(kv["h2load"]) as f:
        h = parse_h2load(f.read())
    r = {k: kv.get(k) for k in ("case", "proxy", "pinning", "backend", "h2load_cmd")}
    r["workers"] = int(kv["workers"])
    r["round"] = int(kv["round"])
    secs = h["seconds"] or 0
    r.update(requests=h["succeeded"], seconds=secs,
             rps=round(h["succeeded"] / secs, 1) if secs else None,
             request_mean_ms=h.get("request_mean_ms"), request_max_ms=h.get("request_max_ms"),
             connect_mean_ms=h.get("connect_mean_ms"),
             errors=h["errors"] + (0 if h["alpn"] == "h2" else 1) + (0 if secs else 1),
             error_detail=h.get("error_detail", "no h2load summary") + f"; ALPN {h['alpn']}",
             tls=f"{h['tls_protocol']}, {h['cipher']}, {h['server_temp_key']}, ALPN {h['alpn']}")
    if r["case"] == "h2-handshake":
        r["handshakes"] = h["succeeded"]  # one connection (full handshake) per request
    s0, s1 = json.loads(kv["stat0"]), json.loads(kv["stat1"])
    cpus = bench.expand_cpus(kv["proxy_cpus"])
    delta = lambda i: sum(s1[f"cpu{c}"][i] - s0[f"cpu{c}"][i] for c in cpus) / bench.CLK_TCK
    window = delta(1) / len(cpus)
    r["window_s"] = round(window, 2)
    r["cpu_s"] = round(float(kv["cpu1"]) - float(kv["cpu0"]), 2)
    r["cpu_pct"] = round(100 * r["cpu_s"] / window) if window else None
    r["req_per_cpu_s"] = round(r["requests"] / r["cpu_s"]) if r["cpu_s"] else None
    r["rss_mib"] = round(int(kv["hwm_kib"]) / 1024, 1) if kv.get("hwm_kib") else None
    span = window * len(cpus)
    if span:
        r["proxy_cores_busy_pct"] = round(100 * delta(0) / span)
        r["proxy_cores_irq_pct"] = round(100 * delta(2) / span)
        r["proxy_cores_steal_pct"] = round(100 * delta(3) / span)
        r["other_on_proxy_cores_pct"] = max(0, round(100 * (delta(0) - r["cpu_s"]) / span))
    return r


CASES = {
    "h2-tls": ("TLS 1.3 + h2 downstream, {conns} connections × {streams} streams, 64 B "
               "responses; HTTP/1.1 keep-alive upstream", "req/s", "req/CPU-s"),
    "h2-handshake": ("a new TLS 1.3 connection (full handshake, {key} certificate) per h2 "
                     "request, {rate} connections/s offered", "handshakes/s", "handshakes/CPU-s"),
    "h2-upstream": ("h2-tls load; upstream over h2c (`http2: always`) vs HTTP/1.1 to the same "
                    "echo; trafficcop only (nginx has no h2 upstream)", "req/s", "req/CPU-s"),
}


def score(r):
    """What orders a row's rounds: requests (handshakes) per proxy CPU-second."""
    return r["req_per_cpu_s"] or 0


def median_rounds(all_rows):
    """Each (case, proxy) once: its median round by score(), not its best (issue 12: the
    best round flatters and hides the proxy's own variance; every round is in the table)."""
    groups = {}
    for r in all_rows:
        groups.setdefault((r["case"], r["proxy"]), []).append(r)
    return [sorted(rs, key=score)[(len(rs) - 1) // 2] for rs in groups.values()]


def find(rows, case, proxy):
    return next((r for r in rows if r["case"] == case and r["proxy"] == proxy), None)


def table(rows, all_rows, p):
    out, rounds = [], max(r["round"] for r in all_rows)
    fr = lambda a, b: bench.fratio(bench.ratio(a, b))
    for case, (title, unit, per) in CASES.items():
        rs = [r for r in rows if r["case"] == case]
        if not rs:
            continue
        title = title.format(conns=p.get("h2_connections"), streams=p.get("h2_streams"),
                             key=p.get("key"), rate=p.get("hs_rate"))
        out.append(f"\n**{case}** — {title}; backend: {rs[0]['backend']}  \n"
                   f"`{rs[0]['h2load_cmd']}` ({rs[0]['tls']})\n")
        base = "trafficcop (h1 upstream)" if case == "h2-upstream" else "nginx"
        out.append(f"| proxy | {unit} | mean / max request ms | mean connect ms "
                   f"| proxy CPU s (%) | {per} | peak RSS MiB | errors "
                   + ("| h2c ÷ h1 upstream (" if case == "h2-upstream" else "| tc ÷ nginx (")
                   + f"{unit}; {per}) "
                   + ("" if case == "h2-upstream" else f"| tc ÷ HAProxy ({unit}; {per}) ")
                   + "| proxy core busy % (not the proxy) "
                   + (f"| each round's {per} |"
                      if rounds > 1 else "|"))
        ncol = 10 if case == "h2-upstream" else 11
        out.append("|---|" + "--:|" * (ncol - 1) + ("--:|" if rounds > 1 else ""))
        for r in rs:
            cells = []
            if case == "h2-upstream":
                others = [("trafficcop", r["proxy"] == "trafficcop-h2up")]
            else:
                others = [("nginx", r["proxy"] == "trafficcop"),
                          ("haproxy", r["proxy"] == "trafficcop")]
            for other, applies in others:
                o = find(rows, case, other) if applies else None
                cells.append("–" if not o else
                             f"{fr(r['rps'], o['rps'])}; {fr(r['req_per_cpu_s'], o['req_per_cpu_s'])}")
            name = {"trafficcop-h2up": "trafficcop (h2c upstream)"}.get(r["proxy"], r["proxy"])
            if case == "h2-upstream" and r["proxy"] == "trafficcop":
                name = base
            lat = ("–" if r.get("request_mean_ms") is None
                   else f"{r['request_mean_ms']:.2f} / {r['request_max_ms']:.2f}")
            busy = r.get("proxy_cores_busy_pct")
            other = "–" if busy is None else f"{busy} ({r['other_on_proxy_cores_pct']})"
            each = " / ".join(bench.fmt(score(x)) for x in all_rows
                              if (x["case"], x["proxy"]) == (case, r["proxy"]))
            out.append(f"| {name} | {bench.fmt(r['rps'])} | {lat} "
                       f"| {bench.fmt(r.get('connect_mean_ms'), 2)} "
                       f"| {r['cpu_s']:.2f} ({r['cpu_pct']}%) | {bench.fmt(r['req_per_cpu_s'])} "
                       f"| {bench.fmt(r.get('rss_mib'), 1)} | {r['errors']} | "
                       + " | ".join(cells) + f" | {other} |" + (f" {each} |" if rounds > 1 else ""))
    return "\n".join(out)


def targets(rows, all_rows):
    """Each target from the median rounds (the table), and from each round's own pair: other
    sessions' load changes from one round to the next, so a pair from one round is the fairer
    comparison; a target is met only if every round's pair meets it."""
    res = []
    for case, name, goal in (
            ("h2-tls", "h2 over TLS: requests per proxy CPU-second ≥ 1.5× nginx", 1.5),
            ("h2-handshake", "TLS handshakes per proxy CPU-second ≥ nginx", 1.0)):
        t, n = find(rows, case, "trafficcop"), find(rows, case, "nginx")
        if not (t and n):
            continue
        a = bench.ratio(t["req_per_cpu_s"], n["req_per_cpu_s"])
        per_round = []
        for rnd in sorted({r["round"] for r in all_rows}):
            rt = next((r for r in all_rows if (r["case"], r["proxy"], r["round"])
                       == (case, "trafficcop", rnd)), None)
            rn = next((r for r in all_rows if (r["case"], r["proxy"], r["round"])
                       == (case, "nginx", rnd)), None)
            if rt and rn:
                per_round.append(bench.ratio(rt["req_per_cpu_s"], rn["req_per_cpu_s"]))
        ok = t["errors"] == 0 and per_round and all(x and x >= goal for x in per_round)
        res.append({"target": name,
                    "measured": f"{bench.fratio(a)} from the median rounds ({t['req_per_cpu_s']:,} "
                                f"vs {n['req_per_cpu_s']:,}); each round's own pair: "
                                + ", ".join(bench.fratio(x) for x in per_round),
                    "per_round": [round(x, 3) if x else None for x in per_round],
                    "met": bool(ok)})
    return res


def report(rows_path, meta_path, out_json, out_md):
    with open(rows_path) as f:
        all_rows = [json.loads(l) for l in f if l.strip()]
    rows = median_rounds(all_rows)
    with open(meta_path) as f:
        m = json.load(f)
    tg = targets(rows, all_rows)
    v, mc, p = m["versions"], m["machine"], m["parameters"]
    md = [f"### HTTP/2 benchmark run {m['date']}", "",
          f"`{m['command']}` — {mc['nproc']} CPUs ({mc['cpu_model']}), Linux {mc['kernel']}, "
          f"load average at start {' '.join(mc['loadavg_at_start'])}.  ",
          f"{v['trafficcop']} ({v['trafficcop_git']}), {v['nginx']}, "
          f"{v['haproxy'].split(' - ')[0]}, {v['h2load']}, {v['openssl']}.  ",
          f"Certificate: {p.get('key')} (self-signed, the same file for every proxy); TLS 1.3 "
          f"only suite offered {p.get('tls13_cipher')}; no session resumption ({p.get('resumption')}). "
          f"{p.get('duration')} s per row after {p.get('warmup')} s warm-up; each proxy freshly "
          f"started per row; 1 worker each; access log off; the matrix ran {p.get('rounds')} "
          f"time(s) and each row shows its median round by requests (handshakes) per proxy "
          f"CPU-second, with every round's figure in the last column. Pinning: "
          f"{p.get('pinning_note')}",
          table(rows, all_rows, p), "", "**HTTP/2 targets**", "",
          "| target | measured | met |", "|---|---|---|"]
    for t in tg:
        md.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    text = "\n".join(md) + "\n"
    with open(out_json, "w") as f:
        json.dump({**m, "rows": rows, "targets": tg, "all_rounds": all_rows}, f, indent=1)
        f.write("\n")
    with open(out_md, "w") as f:
        f.write(text)
    sys.stdout.write(text)


GROUPS = [("kernel", r"kernel|\[k\]|vmlinux"), ("libcrypto", r"^libcrypto"),
          ("libssl", r"^libssl"), ("libnghttp2", r"^libnghttp2"), ("libc", r"^libc[.-]"),
          ("libstdc++", r"^libstdc\+\+")]
MALLOC = re.compile(r"^(malloc|free|cfree|_int_\w+|unlink_chunk|malloc_consolidate|tcache\w*|"
                    r"operator new|operator delete|__libc_(malloc|free|calloc|realloc)|realloc|calloc)")
# Frames whose inclusive share is worth knowing (the first match in a sample's stack counts once).
FRAMES = [
    ("TLS handshake (SSL_do_handshake / asio handshake)", r"SSL_do_handshake|ssl::detail::handshake_op|ngx_ssl_handshake"),
    ("  signing (CertificateVerify)", r"tls_construct_cert_verify"),
    ("  key exchange (server key share)", r"tls_parse_ctos_key_share|tls_construct_stoc_key_share|ssl_derive|ssl_generate_pkey"),
    ("  session tickets (NewSessionTicket)", r"tls_construct_new_session_ticket"),
    ("SSL_new / SSL_free", r"^SSL_new$|^SSL_free$|^ossl_ssl_connection_free|SSL_clear"),
    ("SSL_read", r"^SSL_read"),
    ("SSL_write", r"^SSL_write"),
    ("nghttp2: receive (nghttp2_session_mem_recv)", r"nghttp2_session_mem_recv|ngx_http_v2_read_handler"),
    ("nghttp2: send (nghttp2_session_mem_send / send)", r"nghttp2_session_mem_send|nghttp2_session_send$|ngx_http_v2_send_output_queue"),
    ("upstream HTTP/1.1 exchange (trafficcop)", r"transport_impl::exchange"),
    ("epoll_wait", r"epoll_wait"),
]
# trafficcop's user-space time by part: the innermost trafficcop:: frame of a sample names it.
PARTS = [("h2 downstream (h2::session, h2_connection, h2_writer, nv_list)",
          r"h2::session|h2_connection|h2::nv_list|h2_writer|h2::add_fields|h2::event"),
         ("upstream HTTP/1.1 (transport, pool, head parser)",
          r"transport_impl|upstream::|http1::|outbound|response_impl|round_trip"),
         ("proxy, router, header rules, request id",
          r"proxy::|router|rules|header_map|forwarded|make_request_id|app::|http::|iequals|fill|watchdog"),
         ("socket/TLS io layer", r"trafficcop::io::|write_now")]


def parse_samples(path):
    """perf script --no-inline -F ip,sym,dso: each sample's frames (symbol, dso), leaf first."""
    fr = re.compile(r"^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$")
    with open(path) as f:
        text = f.read()
    out = []
    for s in text.split("\n\n"):
        frames = [(m.group(1), m.group(2)) for m in map(fr.match, s.splitlines()) if m]
        if frames:
            out.append(frames)
    return out


def syscall_of(syms):
    """The system call a kernel sample is in: the function do_syscall_64 called."""
    i = next((k for k, x in enumerate(syms) if x == "do_syscall_64"), None)
    if i is None:
        return "(no system call: interrupt, softirq)"
    callee = syms[i - 1] if i > 0 else "?"
    if callee == "x64_sys_call" and i > 1:
        callee = syms[i - 2]
    if "pvm_irq_enable" in callee:
        return "(system call entry/exit: pvm_irq_enable)"
    if callee in ("syscall_exit_to_user_mode", "exit_to_user_mode_loop", "__schedule", "schedule"):
        return "(return to user mode)"
    return re.sub(r"^(__x64_sys_|__do_sys_|__se_sys_|__sys_|ksys_|do_)", "", callee)


def callgraph(path):
    samples = parse_samples(path)
    n = len(samples)
    if not n:
        return ["(no call-graph samples)"]
    own = lambda d: not re.search(r"kernel|libc[.-]|libstdc|vdso|ld-linux", d)
    sysc, alloc, incl, parts = {}, {}, {}, {}
    for fs in samples:
        sym, dso = fs[0]
        user = not re.search(r"kernel|vdso", dso) and not re.match(
            r"(__libc_recv|__libc_send|__send|recv|send|__GI___\w+|epoll_wait)$", sym)
        caller = next((f[1] for f in fs if not re.search(r"libc[.-]|libstdc", f[1])), "")
        if user and ("trafficcop" in dso.split("/")[-1] or re.search(r"libc[.-]|libstdc", dso)
                     and not re.search(r"libssl|libcrypto|nghttp2", caller)):
            tc = next((f[0] for f in fs if f[0].startswith("trafficcop::")
                       and "trafficcop" in f[1].split("/")[-1]), None)
            part = ("asio scheduler and reactor (no trafficcop frame)" if tc is None else
                    next((lbl for lbl, rx in PARTS if re.search(rx, tc)), "other trafficcop"))
            if MALLOC.match(sym):
                part += ", in malloc/free"
            elif not re.search(r"trafficcop", dso):
                part += ", in libc (memcpy, ...)"
            parts[part] = parts.get(part, 0) + 1
        if "kernel" in dso:
            sc = syscall_of([f[0] for f in fs])
            sysc[sc] = sysc.get(sc, 0) + 1
        elif MALLOC.match(sym) and re.search(r"libc[.-]|libstdc", dso):
            site = next((f[0] for f in fs[1:] if own(f[1]) and not re.match(
                r"(std::|__gnu_cxx|boost::asio::(aligned_new|detail::(thread_info_base|"
                r"recycling_allocator|awaitable_frame_base<[^>]*>::operator new)))", f[0])), "?")
            alloc[site] = alloc.get(site, 0) + 1
        for label, rx in FRAMES:
            if any(re.search(rx, f[0]) for f in fs):
                incl[label] = incl.get(label, 0) + 1
    pct = lambda c: 100 * c / n
    k, m = sum(sysc.values()), sum(alloc.values())
    out = [f"Call graphs ({n} samples at 499 Hz): kernel {pct(k):.0f} % — by system call: "
           + ", ".join(f"{s} {pct(c):.1f} %" for s, c in sorted(sysc.items(), key=lambda x: -x[1])
                       if pct(c) >= 0.5) + ".  ",
           f"malloc/free {pct(m):.1f} % — by calling function: "
           + (", ".join(f"`{s[:80]}` {pct(c):.1f} %" for s, c in
                        sorted(alloc.items(), key=lambda x: -x[1])[:8] if pct(c) >= 0.3) or "–")
           + ".  ",
           "Inclusive (the frame and what it calls): "
           + ", ".join(f"{l.strip()} {pct(incl[l]):.1f} %" for l, _ in FRAMES
                       if pct(incl.get(l, 0)) >= 0.5) + "."]
    if parts and any(f[1].split("/")[-1] == "trafficcop" for fs in samples[:200] for f in fs):
        out[-1] += "  "
        out.append("trafficcop's own user space (its code, Asio and what they call in libc; "
                   "not nghttp2, OpenSSL, system calls), by the innermost trafficcop function: "
                   + ", ".join(f"{p} {pct(c):.1f} %" for p, c in
                               sorted(parts.items(), key=lambda x: -x[1]) if pct(c) >= 0.3) + ".")
    return out


def strace_summary(path, requests):
    """strace -c: system calls per request and the most frequent (>= 0.05 per request)."""
    total, calls, errs = 0, [], {}
    with open(path) as f:
        sep = 0
        for line in f:
            if line.startswith("-----"):
                sep += 1
                continue
            parts = line.split()
            if sep == 1 and len(parts) >= 5 and parts[3].isdigit():
                c = int(parts[3])
                total += c
                calls.append((c, parts[-1]))
                if len(parts) == 6 and parts[4].isdigit():
                    errs[parts[-1]] = int(parts[4])
    if not requests:
        return "strace: no requests counted"
    top = ", ".join(f"{name} {c / requests:.2f}"
                    + (f" ({errs[name] / requests:.2f} failed, e.g. EAGAIN)"
                       if errs.get(name, 0) / requests >= 0.05 else "")
                    for c, name in sorted(calls, reverse=True) if c / requests >= 0.05)
    return (f"System calls per request (strace -c -f, {requests} requests): "
            f"{total / requests:.1f} — {top}.")


def profile(kv):
    """One markdown block: share of samples per library, the top functions (self), the
    call-graph breakdown and the system calls per request."""
    shares = {}
    with open(kv["dso"]) as f:
        for line in f:
            m = re.match(r"\s+([\d.]+)%\s+(\S+)", line)
            if not m:
                continue
            pct, dso = float(m.group(1)), m.group(2)
            g = next((g for g, rx in GROUPS if re.search(rx, dso)), None)
            if g is None:
                g = "proxy code" if dso in ("trafficcop", "nginx", "haproxy") else "other"
            shares[g] = shares.get(g, 0) + pct
    top = []
    with open(kv["sym"]) as f:
        for line in f:
            m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)(\s+-\s+-)?\s*$", line)
            if m and len(top) < 20:
                top.append((float(m.group(1)), m.group(2), m.group(3).strip()))
    order = ["kernel", "proxy code", "libcrypto", "libssl", "libnghttp2", "libc", "libstdc++",
             "other"]
    out = [f"\n**{kv['case']} — {kv['proxy']}** ({kv['rate']} req/s under perf). Self time by "
           "library: " + ", ".join(f"{g} {shares[g]:.0f} %" for g in order
                                   if shares.get(g, 0) >= 0.5) + ".  "]
    out += callgraph(kv["callgraph"])
    out[-1] += "  "
    out += [strace_summary(kv["strace"], int(kv["strace_requests"] or 0)), "",
            "| self % | library | function |", "|--:|---|---|"]
    for pct, dso, sym in top:
        out.append(f"| {pct:.1f} | {dso} | `{sym[:110]}` |")
    return "\n".join(out) + "\n"


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "row":
        print(json.dumps(row(bench.parse_kv(args))))
    elif cmd == "summary":
        r = json.load(sys.stdin)
        print(f"round {r['round']} {r['case']:13} {r['proxy']:16} rate={r['rps']} "
              f"cpu={r['cpu_s']} ({r['cpu_pct']}%) per-cpu-s={r['req_per_cpu_s']} "
              f"rss={r['rss_mib']} errors={r['errors']} core-busy={r.get('proxy_cores_busy_pct')}"
              f"% (not proxy {r.get('other_on_proxy_cores_pct')}%) tls={r['tls']}")
    elif cmd == "count":
        with open(args[0]) as f:
            print(parse_h2load(f.read())["succeeded"])
    elif cmd == "rate":
        with open(args[0]) as f:
            h = parse_h2load(f.read())
        print(round(h["succeeded"] / h["seconds"]) if h["seconds"] else 0)
    elif cmd == "meta":
        with open(args[0]) as f:
            m = json.load(f)
        m["versions"]["h2load"] = args[1]
        m["versions"]["openssl"] = args[2]
        m["parameters"].pop("connections", None)
        m["parameters"].pop("upload_mib", None)
        m["parameters"].pop("workers", None)
        print(json.dumps(m, indent=1))
    elif cmd == "report":
        report(*args)
    elif cmd == "profile":
        sys.stdout.write(profile(bench.parse_kv(args)))
    else:
        sys.exit(f"h2py: unknown command {cmd}")


main()
PYEOF
}

# ------------------------------------------------------------------ main

# bin_git: BIN_GIT, what the measured binary was built from. The default binary was just
# brought up to date with the work tree (as in run.sh); a --bin-dir one is named by
# --bin-label (say, the commit it was built from), or only by its path.
bin_git() {
  local head
  head="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ "$TC_BIN" = "$ROOT/build-release/bin/trafficcop" ]; then
    BIN_GIT=$head
    git diff --quiet HEAD -- src include CMakeLists.txt 2>/dev/null ||
      BIN_GIT="$head + uncommitted changes in $(git diff --name-only HEAD -- src include CMakeLists.txt | tr '\n' ' ')"
  else
    BIN_GIT="${BIN_LABEL:-binary from $TC_BIN, work tree at $head}"
  fi
  BIN_GIT="$BIN_GIT; binary built $(date -u -r "$TC_BIN" '+%Y-%m-%d %H:%M UTC')"
}

h2_main() {
  parse_h2_args "$@"
  local started=$SECONDS stamp out
  TMP=$(mktemp -d /tmp/trafficcop-h2bench.XXXXXX)
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  write_h2py
  local pkgs=(nginx haproxy nghttp2-client curl openssl procps iproute2 util-linux binutils)
  [ "$PROFILE" = 1 ] && pkgs+=(linux-perf strace)
  ensure_packages "${pkgs[@]}"
  ensure_trafficcop
  check_no_resumption
  check_ports "$PORT_BACKEND" "$PORT_ECHO" "$PORT_H2C" "$PORT_PROXY"
  [ "$NCPU" -gt 1 ] || die "needs 2 CPUs: the proxy on CPU 0, load and backend on CPU 1"
  BACKEND_CPUS=$((NCPU - 1))
  make_cert
  start_backends "$BACKEND_CPUS"
  start_bg backend-h2c "$BACKEND_CPUS" "$ECHO_BIN" --listen "127.0.0.1:$PORT_H2C" --h2c
  wait_ready "http://127.0.0.1:$PORT_H2C/small" backend-h2c
  plan_cpus 1
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$BENCH/results"
  bin_git
  if [ "$PROFILE" = 1 ]; then
    out="$BENCH/results/$stamp-h2-profile.md"
    {
      echo "Where trafficcop's and nginx's CPU goes in the HTTP/2 rows ($(date -u '+%Y-%m-%d %H:%M UTC'), \`$COMMAND\`, $NCPU CPUs, $(uname -r); trafficcop $BIN_GIT): 1 worker on CPU 0, h2load and the backend on CPU 1, the loads of the h2-tls and h2-handshake rows ($KEY_LABEL certificate). Each proxy: perf record -e cpu-clock of its processes (shares are of its own samples; \"self %\" is a function's own time, not its callees'), a second run with DWARF call graphs, and strace -c in a third (strace slows the proxy)."
      for c in h2-tls h2-handshake; do
        for p in trafficcop nginx; do profile_h2_row "$c" "$p"; cat "$TMP/profile.md"; : >"$TMP/profile.md"; done
      done
    } >"$out"
    cat "$out"
    log "wrote $out in $((SECONDS - started)) s"
    return
  fi
  "$PY" "$BENCH/lib/bench.py" meta --date "$(date -u '+%Y-%m-%d %H:%M UTC')" \
    --command "$COMMAND" --tc-bin "$TC_BIN" --git "$BIN_GIT" --quick "$QUICK" \
    --duration "$DURATION" --warmup "$WARMUP" --rounds "$ROUNDS" \
    --h2-connections "$H2_CONNS" --h2-streams "$H2_STREAMS" --hs-rate "$HS_RATE" \
    --key "$KEY_LABEL" --tls13-cipher "$TLS13_CIPHER" \
    --resumption "h2load does not import SSL_set_session: every connection is a full handshake" \
    --pinning-note "$PINNING (taskset)." >"$TMP/meta0.json"
  h2py meta "$TMP/meta0.json" "$(h2load --version | head -1)" "$(openssl version)" >"$TMP/meta.json"
  log "trafficcop $BIN_GIT; $ROUNDS rounds of ${DURATION} s rows; $KEY_LABEL; scratch dir $TMP"
  for ROUND in $(seq "$ROUNDS"); do run_h2_matrix; done
  out="$BENCH/results/$stamp-h2"
  if [ "$QUICK" = 1 ]; then out="$out-quick"; fi
  h2py report "$TMP/rows.jsonl" "$TMP/meta.json" "$out.json" "$out.md"
  log "wrote $out.json and $out.md in $((SECONDS - started)) s"
}

h2_main "$@"
