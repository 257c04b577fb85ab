#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Local rate limits and per-client connection limits through the binary (issue 11).

Both sides are checked: what the clients got (200s, 429s and their fields) and what the
upstream received; the access log and /metrics are checked against them. Loads are bounded in
time (a few seconds) and run on loopback.

usage: ratelimit_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-ratelimit-")


def proxy(up, limits, routes, top=""):
    """trafficcop with 2 workers, an admin listener and a JSON access log in TMP."""
    admin_port = harness.free_port()
    fd, log = tempfile.mkstemp(prefix="access-", suffix=".log", dir=TMP)  # one file per proxy
    os.close(fd)

    def config(port, limits=limits, routes=routes, top=top):
        return "\n".join([
            "workers: 2",
            f"admin: {{address: '127.0.0.1:{admin_port}'}}",
            f"access_log: {{path: '{log}'}}",
            "listeners:", f"  - address: '127.0.0.1:{port}'",
            "upstreams:", "  - name: api", f"    url: http://127.0.0.1:{up.port}",
            "    http2: never",
            "rate_limits:", *["  - " + x for x in limits],
            "routes:", *["  - " + x for x in routes],
            top]) + "\n"
    tc = harness.Trafficcop(A.trafficcop, config, TMP)
    tc.admin, tc.log, tc.config_for = admin_port, log, config
    harness.wait_listening(admin_port, tc.p)
    return tc


def clean_exit(tc):
    """Stops trafficcop: a graceful exit (0), with no sanitizer report in its stderr."""
    rc = tc.stop()
    err = tc.stderr()
    assert rc == 0 and "Sanitizer" not in err, f"exit {rc}; stderr:\n{err[-3000:]}"


def get(port, path, headers=None, conn=None):
    """(status, headers dict lower-cased, body); reuses `conn` when given."""
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    if conn is None:
        c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def scrape(tc):
    c = http.client.HTTPConnection("127.0.0.1", tc.admin, timeout=harness.DEADLINE)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    out = {}
    for m in re.finditer(r'^trafficcop_ratelimit_decisions_total\{limit="([^"]*)",'
                         r'decision="(\w+)"\} (\S+)$', body, re.M):
        out[(m.group(1), m.group(2))] = float(m.group(3))
    return out


def log_lines(tc, n):
    return harness.log_lines(tc.log, n)


def load_within_rate():
    """rate 50/s burst 10, 4 s of load from 4 keep-alive connections, 2 workers: the number
    allowed is burst + rate * elapsed within 5%, counted by the clients and by the upstream."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: all, key: route, rate: 50/s, burst: 10}"],
               ["{name: api, path_prefix: /, upstream: api, rate_limits: [all]}"])
    try:
        counts = {"200": 0, "429": 0, "other": 0}
        lock = threading.Lock()
        duration = 4.0
        start = time.monotonic()
        stamps = []

        def client():
            c = http.client.HTTPConnection("127.0.0.1", tc.port, timeout=harness.DEADLINE)
            first = last = None
            while time.monotonic() - start < duration:
                t = time.monotonic()
                status, _, _ = get(tc.port, "/load", conn=c)
                first = first if first is not None else t
                last = time.monotonic()
                with lock:
                    counts[str(status) if status in (200, 429) else "other"] += 1
            c.close()
            with lock:
                stamps.append((first, last))
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + harness.DEADLINE)
        elapsed = max(s[1] for s in stamps) - min(s[0] for s in stamps)
        expected = 10 + 50 * elapsed
        assert counts["other"] == 0, counts
        assert counts["429"] > counts["200"], f"the load did not exceed the rate: {counts}"
        assert abs(counts["200"] - expected) <= 0.05 * expected, \
            f"allowed {counts['200']}, expected {expected:.1f} ±5% over {elapsed:.2f}s: {counts}"
        received = len(up.wait_records(lambda rs: len(rs) >= counts["200"] and rs,
                                       "the allowed requests"))
        assert received == counts["200"], (received, counts)
        m = scrape(tc)
        assert m.get(("all", "allow")) == counts["200"], (m, counts)
        assert m.get(("all", "deny")) == counts["429"], (m, counts)
        assert m.get(("all", "error")) == 0, m
        print(f"    allowed {counts['200']} of {sum(counts.values())} in {elapsed:.2f}s "
              f"(expected {expected:.1f})", flush=True)
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def refusal_fields():
    """rate 1/m burst 3: the 4th request is refused with Retry-After 60, the policy, and t=180
    (until the bucket is full again); the access log names the limit on that line only."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: slow, rate: 1/m, burst: 3}"],
               ["{path_prefix: /, upstream: api, rate_limits: [slow]}"])
    try:
        for i in range(3):
            status, h, _ = get(tc.port, f"/ok{i}")
            assert status == 200, status
            assert "ratelimit" not in h and "retry-after" not in h, h
        status, h, body = get(tc.port, "/refused")
        assert status == 429, status
        assert h["retry-after"] == "60", h
        assert h["ratelimit-policy"] == '"slow";q=1;w=60', h
        assert h["ratelimit"] == '"slow";r=0;t=180', h
        assert body == b"Too Many Requests\n", body
        assert [r["path"] for r in up.records()] == ["/ok0", "/ok1", "/ok2"], up.records()
        # Each worker writes its own batches: lines of two workers may come in any order.
        lines = {x["target"]: (x["status"], x.get("rate_limit")) for x in log_lines(tc, 4)}
        assert lines == {"/ok0": (200, None), "/ok1": (200, None), "/ok2": (200, None),
                         "/refused": (429, "slow")}, lines
        m = scrape(tc)
        assert m == {("slow", "allow"): 3, ("slow", "deny"): 1, ("slow", "error"): 0}, m
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def key_by_header():
    """key: header:X-User: each user has a bucket of its own; requests without the header share
    one (leaving it out is no way around the limit)."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: per-user, key: 'header:X-User', rate: 1/m, burst: 2}"],
               ["{path_prefix: /, upstream: api, rate_limits: [per-user]}"])
    try:
        got = {}
        # Values over 64 bytes are keyed by a digest: two that share their first 64 bytes
        # still have buckets of their own.
        long_a, long_b = "x" * 64 + "a" * 4000, "x" * 64 + "b" * 4000
        for user in ["alice", "bob", None, long_a, long_b]:
            hdr = {"X-Test-Id": (user or "none")[-5:]}
            if user:
                hdr["X-User"] = user
            got[user] = [get(tc.port, "/", hdr)[0] for _ in range(3)]
        assert got == {u: [200, 200, 429] for u in got}, got
        ids = sorted(r["id_header"] for r in up.records())
        assert ids == ["aaaaa", "aaaaa", "alice", "alice", "bbbbb", "bbbbb", "bob", "bob",
                       "none", "none"], ids
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def key_by_client_after_trusted_proxies():
    """key: client_ip is the client the access log shows: behind a trusted proxy, the address
    X-Forwarded-For names."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: per-client, rate: 1/m, burst: 1}"],
               ["{path_prefix: /, upstream: api, rate_limits: [per-client]}"],
               top="trusted_proxies: [127.0.0.1]")
    try:
        seq = [get(tc.port, "/", {"X-Forwarded-For": ip})[0]
               for ip in ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.2"]]
        assert seq == [200, 200, 429, 429], seq
        lines = sorted((x["remote"].rsplit(":", 1)[0], x["status"]) for x in log_lines(tc, 4))
        assert lines == [("10.0.0.1", 200), ("10.0.0.1", 429), ("10.0.0.2", 200),
                         ("10.0.0.2", 429)], lines
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def limits_in_order():
    """Two limits on a route, both count; the first that refuses names itself."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: wide, key: route, rate: 1/m, burst: 3}",
                    "{name: narrow, key: 'header:X-User', rate: 1/m, burst: 1}"],
               ["{path_prefix: /, upstream: api, rate_limits: [wide, narrow]}"])
    try:
        seq = []
        for user in ["a", "a", "b", "c", "d"]:
            status, h, _ = get(tc.port, "/", {"X-User": user})
            seq.append((status, h.get("ratelimit-policy", "").split(";")[0]))
        # a: wide 1 narrow ok; a: wide 2, narrow refuses; b: wide 3 ok; c: wide refuses.
        assert seq == [(200, ""), (429, '"narrow"'), (200, ""), (429, '"wide"'),
                       (429, '"wide"')], seq
        m = scrape(tc)
        assert m[("wide", "allow")] == 3 and m[("wide", "deny")] == 2, m
        assert m[("narrow", "allow")] == 2 and m[("narrow", "deny")] == 1, m
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def reload(tc, limits, routes, n):
    """Rewrites the config with `limits` and `routes`, SIGHUP, waits for the n-th reload."""
    with open(tc.path, "w") as f:
        f.write(tc.config_for(tc.port, limits, routes))
    tc.p.send_signal(signal.SIGHUP)
    harness.wait_until(lambda: tc.stderr().count("SIGHUP: config reloaded") >= n, "the reload")


def reload_keeps_buckets():
    """A reload keeps the buckets of a limit configured as before (no fresh burst from a
    reload); a limit whose rate or burst changed starts full. Counts go on under the name."""
    up = Upstream(protocols=("h1",))
    routes = ["{path_prefix: /, upstream: api, rate_limits: [slow]}"]
    tc = proxy(up, ["{name: slow, rate: 1/m, burst: 2}"], routes)
    try:
        assert [get(tc.port, "/")[0] for _ in range(3)] == [200, 200, 429]
        reload(tc, ["{name: slow, rate: 1/m, burst: 2}", "{name: other, rate: 5/s}"], routes, 1)
        assert get(tc.port, "/")[0] == 429, "the reload refilled an unchanged limit"
        reload(tc, ["{name: slow, rate: 1/m, burst: 3}"], routes, 2)
        assert [get(tc.port, "/")[0] for _ in range(4)] == [200, 200, 200, 429]
        assert len(up.records()) == 5, up.records()
        m = scrape(tc)
        assert m[("slow", "allow")] == 5 and m[("slow", "deny")] == 3, m
        assert ("other", "allow") not in m, m  # the live config's limits only
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def raw_request(sock, path):
    """Sends a GET on `sock`; returns the status, or None when the server closed it first."""
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return int(head.split()[1])
    except (ConnectionResetError, BrokenPipeError):
        return None


def keepalive_log_after_refusal():
    """On one keep-alive connection, a request after a refused one is not logged as refused:
    the connection's log fields are reused, and rate_limit was not cleared with the others."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: one, rate: 1/m, burst: 1}"],
               ["{path_prefix: /free, upstream: api}",
                "{path_prefix: /, upstream: api, rate_limits: [one]}"])
    try:
        c = http.client.HTTPConnection("127.0.0.1", tc.port, timeout=harness.DEADLINE)
        assert get(tc.port, "/a", conn=c)[0] == 200
        assert get(tc.port, "/b", conn=c)[0] == 429
        assert get(tc.port, "/free/c", conn=c)[0] == 200
        c.close()
        lines = {x["target"]: (x["status"], x.get("rate_limit")) for x in log_lines(tc, 3)}
        assert lines == {"/a": (200, None), "/b": (429, "one"), "/free/c": (200, None)}, lines
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


def probe_settled(tc):
    """True once the server accepted one connection and has none open."""
    c = http.client.HTTPConnection("127.0.0.1", tc.admin, timeout=harness.DEADLINE)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    total = sum(float(x) for x in re.findall(r'^trafficcop_connections_total\{[^}]*\} (\S+)$',
                                              body, re.M))
    open_now = sum(float(x) for x in re.findall(r'^trafficcop_connections\{[^}]*\} (\S+)$',
                                                 body, re.M))
    return total == 1 and open_now == 0


def connections_per_client():
    """max_connections_per_client 3, 2 workers: the 4th connection from 127.0.0.1 is closed
    before it is served; once one of the 3 closes, a new one is served. Counted and logged."""
    up = Upstream(protocols=("h1",))
    tc = proxy(up, ["{name: unused, rate: 1/s}"], ["{path_prefix: /, upstream: api}"],
               top="limits: {max_connections_per_client: 3}")
    try:
        # The harness's readiness probe connected to this port and closed: it must be taken and
        # released before counting, or a worker whose accept loop started late admits (or, once
        # the 3 below are open, refuses) it behind the test's back.
        harness.wait_until(lambda: probe_settled(tc), "the readiness probe accepted and closed")
        socks = [socket.create_connection(("127.0.0.1", tc.port), timeout=harness.DEADLINE)
                 for _ in range(3)]
        for i, s in enumerate(socks):  # served: each one is counted
            assert raw_request(s, f"/keep{i}") == 200
        extra = socket.create_connection(("127.0.0.1", tc.port), timeout=harness.DEADLINE)
        assert raw_request(extra, "/over") is None, "the 4th connection was served"
        extra.close()
        refused = 1
        socks.pop().close()
        # The server counts the close when it sees it: poll with new connections until one is
        # served, counting those closed meanwhile.
        def served():
            nonlocal refused
            s = socket.create_connection(("127.0.0.1", tc.port), timeout=harness.DEADLINE)
            status = raw_request(s, "/after")
            if status is None:
                refused += 1
                s.close()
                return None
            socks.append(s)
            return status
        assert harness.wait_until(served, "a connection served after one closed") == 200
        # Full again.
        extra = socket.create_connection(("127.0.0.1", tc.port), timeout=harness.DEADLINE)
        assert raw_request(extra, "/over") is None, "a 4th connection was served"
        extra.close()
        refused += 1
        paths = sorted(r["path"] for r in up.records())
        assert paths == ["/after", "/keep0", "/keep1", "/keep2"], paths
        c = http.client.HTTPConnection("127.0.0.1", tc.admin, timeout=harness.DEADLINE)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        m = re.search(r'^trafficcop_connections_rejected_total\{reason="per_client"\} (\S+)$',
                      body, re.M)
        assert m and float(m.group(1)) == refused, (m and m.group(0), refused)
        assert "max_connections_per_client: 127.0.0.1 has 3 connections open" in tc.stderr()
        for s in socks:
            s.close()
        clean_exit(tc)
    finally:
        tc.stop()
        up.stop()


R.check("local limit, 2 workers: allowed = burst + rate x elapsed within 5%", load_within_rate)
R.check("429: Retry-After, RateLimit, RateLimit-Policy; access log rate_limit", refusal_fields)
R.check("keep-alive: the request after a refusal is not logged as refused",
        keepalive_log_after_refusal)
R.check("key header:X-User separates clients", key_by_header)
R.check("key client_ip after trusted_proxies", key_by_client_after_trusted_proxies)
R.check("a route's limits run in order, each counted", limits_in_order)
R.check("reload keeps unchanged limits' buckets, a changed limit starts full",
        reload_keeps_buckets)
R.check("max_connections_per_client: N+1st closed, served again after one closes",
        connections_per_client)
sys.exit(R.finish())
