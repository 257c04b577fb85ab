#!/usr/bin/env bash
# Sets up, builds, then runs the demo upstream on 127.0.0.1:9000 and trafficcop on
# 127.0.0.1:8080 with examples/quickstart.yaml. In another terminal: curl -i localhost:8080/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --no-tests --build-dir build-release
# Two demo upstreams: the proxy balances over both (the Host each one receives says which).
build-release/bin/trafficcop-echo --listen 127.0.0.1:9000 &
echo_pids=$!
build-release/bin/trafficcop-echo --listen 127.0.0.1:9001 &
echo_pids="$echo_pids $!"
trap 'kill $echo_pids 2>/dev/null || true' EXIT
echo "trafficcop: proxying http://127.0.0.1:8080 -> 127.0.0.1:9000 and :9001 (Ctrl-C stops)"
build-release/bin/trafficcop -c examples/quickstart.yaml
