#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The admin API and metrics through the binary (issue 10.1): /metrics counts exactly what was
sent and what the upstreams recorded (per route, per endpoint, connect failures, retries,
health, pools, connections, bytes, histograms), in the Prometheus and OpenMetrics formats;
/healthz, /ready, /config (secrets redacted), /upstreams; POST /reload and /drain; the allow
list; and `check` errors for the admin block.

usage: admin_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-admin-")


def proxy(extra_upstream="", admin_extra="", endpoints=None, tls_key=None):
    admin_port = harness.free_port()
    eps = ", ".join(f"'http://127.0.0.1:{p}'" for p in endpoints)

    def config(port):
        lines = ["workers: 2",
                 f"admin: {{address: '127.0.0.1:{admin_port}'{admin_extra}}}",
                 "listeners:", f"  - address: '127.0.0.1:{port}'"]
        if tls_key:
            lines += ["    tls:", "      certificates:",
                      f"        - {{cert_file: '{tls_key[0]}', key_file: '{tls_key[1]}'}}"]
        lines += ["upstreams:", "  - name: api", f"    endpoints: [{eps}]", "    http2: never",
                  *["    " + x for x in extra_upstream.strip().splitlines()],
                  "routes:",
                  "  - {name: items, path_prefix: /items, upstream: api}",
                  "  - {path_prefix: /other, upstream: api}",
                  "  - {name: hello, path: /hello, respond: {status: 200, body: hi}}"]
        return "\n".join(lines) + "\n"
    tc = harness.Trafficcop(A.trafficcop, config, TMP)
    tc.admin = admin_port
    harness.wait_listening(admin_port, tc.p)  # it opens after the traffic listeners
    return tc


def admin(tc, path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", tc.admin, timeout=harness.DEADLINE)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, r.getheader("content-type"), body


def scrape(tc, headers=None):
    """{(name, frozenset(labels)): value} of /metrics."""
    status, _, body = admin(tc, "/metrics", headers=headers)
    assert status == 200, status
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def requests(port, paths, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    statuses = []
    for p in paths:
        c.request(method, p, body=body)
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
    c.close()
    return statuses


def test_metrics_count_both_sides():
    a, b = Upstream(protocols=("h1",)), Upstream(protocols=("h1",))
    dead = harness.RefusingPort()
    try:
        with proxy(endpoints=[a.port, b.port, dead.port],
                   extra_upstream="outlier_detection: {consecutive_failures: 0}") as tc:
            st = requests(tc.port, [f"/items/{i}" for i in range(30)])
            st += requests(tc.port, ["/other"] * 6, method="POST", body=b"x" * 1000)
            st += requests(tc.port, ["/hello", "/nowhere"])
            assert st[:36] == [200] * 36 and st[36:] == [200, 404], st
            m = scrape(tc)
            assert val(m, "trafficcop_requests_total", route="items", upstream="api",
                       code="200") == 30
            assert val(m, "trafficcop_requests_total", route="1", upstream="api", code="200") == 6
            assert val(m, "trafficcop_requests_total", route="hello", upstream="", code="200") == 1
            assert val(m, "trafficcop_requests_total", route="", upstream="", code="404") == 1
            # The upstream side: each endpoint's count is what it recorded.
            for up in (a, b):
                n = val(m, "trafficcop_upstream_requests_total", upstream="api",
                        endpoint=f"127.0.0.1:{up.port}", code="200")
                assert n == len(up.records()) and n > 0, (n, len(up.records()))
            fails = val(m, "trafficcop_upstream_connect_failures_total", upstream="api",
                        endpoint=f"127.0.0.1:{dead.port}")
            retries = val(m, "trafficcop_upstream_retries_total", upstream="api")
            assert fails > 0 and retries == fails, (fails, retries)  # each went elsewhere
            assert len(a.records()) + len(b.records()) == 36
            # POST bodies: 6 x 1000 bytes in; the respond route's "hi" is among the bytes out.
            assert val(m, "trafficcop_bytes_total", direction="in") == 6000
            assert val(m, "trafficcop_bytes_total", direction="out") > 0
            hist = val(m, "trafficcop_request_duration_seconds_count", route="items",
                       upstream="api")
            inf = val(m, "trafficcop_request_duration_seconds_bucket", route="items",
                      upstream="api", le="+Inf")
            up_hist = val(m, "trafficcop_upstream_duration_seconds_count", route="items",
                          upstream="api")
            assert hist == 30 and inf == 30 and up_hist == 30, (hist, inf, up_hist)
            assert val(m, "trafficcop_connections_total", listener=f"127.0.0.1:{tc.port}") >= 4
            assert val(m, "trafficcop_endpoint_healthy", upstream="api",
                       endpoint=f"127.0.0.1:{a.port}") == 1
            idle = val(m, "trafficcop_upstream_pool_connections", upstream="api", state="idle")
            assert idle >= 1, "keep-alive upstream connections wait in the pools"
            assert val(m, "trafficcop_build_info", version=re.sub(
                r"^trafficcop ", "", subprocess.run([A.trafficcop, "--version"],
                                                    capture_output=True, text=True).stdout.strip())) == 1
            assert val(m, "process_open_fds") > 0 and val(m, "process_resident_memory_bytes") > 0
            # No spawned coroutine ended by an exception (each would be logged and counted).
            assert ("trafficcop_coroutine_failures_total", frozenset()) in m
            assert val(m, "trafficcop_coroutine_failures_total") == 0
    finally:
        a.stop()
        b.stop()
        dead.close()


def test_ejected_endpoint_is_unhealthy():
    a = Upstream(protocols=("h1",))
    dead = harness.RefusingPort()
    try:
        with proxy(endpoints=[a.port, dead.port],
                   extra_upstream="outlier_detection: {consecutive_failures: 2}") as tc:
            requests(tc.port, ["/items"] * 10)
            m = scrape(tc)
            assert val(m, "trafficcop_endpoint_healthy", upstream="api",
                       endpoint=f"127.0.0.1:{dead.port}") == 0
            _, _, body = admin(tc, "/upstreams")
            ups = json.loads(body)["upstreams"]
            eps = {e["endpoint"]: e for e in ups[0]["endpoints"]}
            assert eps[f"127.0.0.1:{dead.port}"]["ejected"] is True, eps
            assert eps[f"127.0.0.1:{a.port}"]["responses"] == len(a.records())
    finally:
        a.stop()
        dead.close()


def test_openmetrics_format():
    a = Upstream(protocols=("h1",))
    try:
        with proxy(endpoints=[a.port]) as tc:
            requests(tc.port, ["/items"])
            status, ctype, body = admin(tc, "/metrics",
                                        headers={"Accept": "application/openmetrics-text"})
            assert status == 200 and ctype.startswith("application/openmetrics-text"), ctype
            assert body.endswith("# EOF\n")
            assert "# TYPE trafficcop_requests counter" in body
            status, ctype, body = admin(tc, "/metrics")
            assert ctype.startswith("text/plain; version=0.0.4"), ctype
            assert "# TYPE trafficcop_requests_total counter" in body and "# EOF" not in body
    finally:
        a.stop()


def test_endpoints_and_methods():
    a = Upstream(protocols=("h1",))
    certs = harness.test_certs(A.src)
    cert, key = os.path.join(certs, "server.pem"), os.path.join(certs, "server.key")
    try:
        with proxy(endpoints=[a.port], tls_key=(cert, key)) as tc:
            assert admin(tc, "/healthz")[0] == 200
            assert admin(tc, "/ready")[:1] == (200,)
            status, ctype, body = admin(tc, "/config")
            cfg = json.loads(body)
            assert status == 200 and ctype == "application/json"
            tls = cfg["listeners"][0]["tls"]["certificates"][0]
            assert tls["key_file"] == "<redacted>" and tls["cert_file"] == cert, tls
            assert cfg["workers"] == 2 and cfg["routes"][0]["name"] == "items"
            assert admin(tc, "/nope")[0] == 404
            assert admin(tc, "/metrics", method="POST")[0] == 405
            assert admin(tc, "/reload")[0] == 405
            status, _, body = admin(tc, "/reload", method="POST")
            assert status == 200, body
            m = scrape(tc)
            assert val(m, "trafficcop_config_reloads_total", result="ok") == 1
    finally:
        a.stop()


def test_allow_list():
    a = Upstream(protocols=("h1",))
    try:
        with proxy(endpoints=[a.port], admin_extra=", allow: ['10.0.0.0/8']") as tc:
            status, _, body = admin(tc, "/metrics")
            assert status == 403, (status, body)
        with proxy(endpoints=[a.port], admin_extra=", allow: ['127.0.0.0/8', '::1']") as tc:
            assert admin(tc, "/metrics")[0] == 200
    finally:
        a.stop()


def test_drain_stops_gracefully():
    a = Upstream(protocols=("h1",))
    try:
        tc = proxy(endpoints=[a.port])
        status, _, _ = admin(tc, "/drain", method="POST")
        assert status == 202
        tc.p.wait(harness.DEADLINE)
        assert tc.p.returncode == 0, tc.stderr()[-500:]
        assert "SIGTERM: draining" in tc.stderr()
        tc.stop()
    finally:
        a.stop()


def test_check_errors():
    cases = {
        "admin.allow": "admin: {address: '0.0.0.0:9901'}",
        "admin.allow[0]": "admin: {address: '127.0.0.1:9901', allow: ['10.0.0.0/33']}",
        "admin.address": "admin: {allow: ['10.0.0.0/8']}",
        "routes[1].name": None,
    }
    for path, line in cases.items():
        cfg = os.path.join(TMP, "bad.yaml")
        routes = ("routes: [{name: a, path_prefix: /, upstream: u}, "
                  "{name: a, path: /x, upstream: u}]") if line is None else \
            "routes: [{path_prefix: /, upstream: u}]"
        with open(cfg, "w") as f:
            f.write((line or "") + "\nlisteners: [{address: '127.0.0.1:0'}]\n"
                    "upstreams: [{name: u, url: 'http://127.0.0.1:1'}]\n" + routes + "\n")
        r = subprocess.run([A.trafficcop, "check", "-c", cfg], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and path in r.stderr, f"{path}: {r.returncode} {r.stderr}"


R.check("metrics count what the client sent and the upstreams got",
        test_metrics_count_both_sides)
R.check("an ejected endpoint reads unhealthy (metrics and /upstreams)",
        test_ejected_endpoint_is_unhealthy)
R.check("OpenMetrics on Accept, Prometheus 0.0.4 otherwise", test_openmetrics_format)
R.check("healthz, ready, config (redacted), reload, 404 and 405", test_endpoints_and_methods)
R.check("admin.allow answers only the listed clients", test_allow_list)
R.check("POST /drain stops gracefully", test_drain_stops_gracefully)
R.check("check names the bad admin keys", test_check_errors)
sys.exit(R.finish())
