#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Global rate limits through the binary (issue 11): two trafficcop instances sharing one
limit in a real redis-server (started here on a free loopback port), and redis killed,
stopped (SIGSTOP) and restarted under a bounded load, for both failure modes.

Both sides are checked: what the clients got and what the upstream received, and /metrics'
decision counts against them. Loads are bounded in time and run on loopback.

usage: ratelimit_global_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv, flags=("--sanitized",))
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-rl-global-")
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis:
    """redis-server on 127.0.0.1:port, no persistence; stop/cont/kill/start on the same port."""

    def __init__(self):
        self.port = harness.free_port()
        self.p = None
        self.start()

    def start(self):
        self.p = subprocess.Popen(
            [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_until(self.ping, f"redis-server on port {self.port}")

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def cpu_seconds(self):
        with open(f"/proc/{self.p.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def signal(self, sig):
        self.p.send_signal(sig)

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.kill()
            self.p.wait()


def proxy(up, redis, limit, failure_mode="open", timeout_ms=100):
    """trafficcop with 2 workers, an admin listener and a JSON access log (tc.log): one route
    under one global limit."""
    admin_port = harness.free_port()
    # A file of its own per proxy: a later check may get the same free port back, and its
    # lines must not follow the last check's in one file.
    fd, log = tempfile.mkstemp(prefix="access-", suffix=".log", dir=TMP)
    os.close(fd)

    def config(port):
        return "\n".join([
            "workers: 2",
            f"admin: {{address: '127.0.0.1:{admin_port}'}}",
            f"access_log: {{path: '{log}', format: json}}",
            "listeners:", f"  - address: '127.0.0.1:{port}'",
            "upstreams:", "  - name: api", f"    url: http://127.0.0.1:{up.port}",
            "    http2: never",
            "rate_limits:", f"  - {limit}",
            "routes:", "  - {name: api, path_prefix: /, upstream: api, rate_limits: [g]}",
            f"redis: {{address: '127.0.0.1:{redis.port}', timeout: {timeout_ms}ms, "
            f"failure_mode: {failure_mode}}}"]) + "\n"
    tc = harness.Trafficcop(A.trafficcop, config, TMP)
    tc.admin, tc.log = admin_port, log
    harness.wait_listening(admin_port, tc.p)
    return tc


def scrape(tc):
    c = http.client.HTTPConnection("127.0.0.1", tc.admin, timeout=harness.DEADLINE)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    out = {"allow": 0.0, "deny": 0.0, "error": 0.0}
    for m in re.finditer(r'^trafficcop_ratelimit_decisions_total\{limit="g",'
                         r'decision="(\w+)"\} (\S+)$', body, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


class Load:
    """`n` keep-alive clients per port sending GETs until stop(); every answer is kept as
    (send time, latency, status, headers)."""

    def __init__(self, ports, n=2):
        self.results = []
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(p,)) for p in ports
                        for _ in range(n)]
        for t in self.threads:
            t.start()

    def client(self, port):
        c = None
        while not self.done.is_set():
            t = time.monotonic()
            try:
                c = c or http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
                c.request("GET", "/load")
                r = c.getresponse()
                r.read()
                got = (t, time.monotonic() - t, r.status, {k.lower(): v for k, v in r.getheaders()})
            except (OSError, http.client.HTTPException) as e:
                got = (t, time.monotonic() - t, repr(e), {})
                if c:
                    c.close()
                c = None
            with self.lock:
                self.results.append(got)
        if c:
            c.close()

    def since(self, t0, t1=None):
        with self.lock:
            return [r for r in self.results if r[0] >= t0 and (t1 is None or r[0] < t1)]

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(harness.DEADLINE)


def two_instances_share_the_rate():
    """rate 50/s burst 10, one key, two instances of 2 workers each, 2 clients on each for
    10 s: the number allowed over both is burst + rate * elapsed within 5%, counted by the
    clients, by the upstream, and by both instances' metrics."""
    redis, up = Redis(), Upstream(protocols=("h1",))
    limit = "{name: g, key: route, rate: 50/s, burst: 10, scope: global}"
    tcs = []
    try:
        # 1 s: this check is about the rate, and a worker's first lookup (its connect) may
        # exceed 100 ms on a loaded machine.
        tcs = [proxy(up, redis, limit, timeout_ms=1000), proxy(up, redis, limit, timeout_ms=1000)]
        duration = 4.0 if A.quick else 10.0
        load = Load([tc.port for tc in tcs])
        time.sleep(duration)  # the measured window: the load runs meanwhile
        load.stop()
        res = load.results
        ok = sum(1 for r in res if r[2] == 200)
        refused = sum(1 for r in res if r[2] == 429)
        other = [r for r in res if r[2] not in (200, 429)]
        assert not other, other[:5]
        elapsed = max(r[0] + r[1] for r in res) - min(r[0] for r in res)
        expected = 10 + 50 * elapsed
        assert refused > ok, f"the load did not exceed the rate: {ok} allowed, {refused} refused"
        assert abs(ok - expected) <= 0.05 * expected, \
            f"allowed {ok}, expected {expected:.1f} ±5% over {elapsed:.2f}s ({refused} refused)"
        received = len(up.wait_records(lambda rs: len(rs) >= ok and rs, "the allowed requests"))
        assert received == ok, (received, ok)
        ms = [scrape(tc) for tc in tcs]
        assert sum(m["allow"] for m in ms) == ok, (ms, ok)
        assert sum(m["deny"] for m in ms) == refused, (ms, refused)
        assert all(m["allow"] > 0 for m in ms), ms  # both instances let some through
        assert all(m["error"] == 0 for m in ms), ms
        print(f"    allowed {ok} of {ok + refused} in {elapsed:.2f}s (expected {expected:.1f}); "
              f"per instance {[m['allow'] for m in ms]}", flush=True)
    finally:
        for tc in tcs:
            tc.stop()
        up.stop()
        redis.kill()


def faults(mode):
    """redis stopped (SIGSTOP), resumed, killed and restarted on its port under a bounded load
    (2 clients): with failure_mode `mode`, while redis is gone every request is answered within
    the timeout (+ slack) — open: 200 and counted as error; closed: 503 with Retry-After — and
    after each fault the limit decides again (allow) within the back-off (at most 2 s)."""
    timeout = 0.25 if A.flags["--sanitized"] else 0.1
    slack = 1.0 if A.flags["--sanitized"] else 0.4  # a loaded 2-core machine, Python clients
    redis, up = Redis(), Upstream(protocols=("h1",))
    limit = "{name: g, key: route, rate: 100000/s, burst: 100000, scope: global}"
    tc = None
    load = None
    try:
        tc = proxy(up, redis, limit, mode, int(timeout * 1000))
        load = Load([tc.port])
        failed_status = 200 if mode == "open" else 503

        def phase(what, seconds, expect):
            t0 = time.monotonic()
            time.sleep(seconds)  # the load runs meanwhile
            res = load.since(t0, time.monotonic())
            assert len(res) > 5, f"{what}: only {len(res)} requests"
            statuses = {r[2] for r in res}
            assert statuses <= expect, \
                f"{what}: statuses {statuses}, expected {expect}; log:\n{tc.stderr()[-1500:]}"
            # Seen from the Python clients, which share a GIL with the upstream on a loaded
            # 2-core machine: a loose bound here, the strict one on the proxy's own log below.
            worst = max(r[1] for r in res)
            assert worst < timeout + 2.0, f"{what}: a request took {worst:.3f}s"
            lat = sorted(r[1] for r in res)
            print(f"    {what}: {len(res)} requests, latency median {lat[len(lat) // 2]:.3f}s, "
                  f"p99 {lat[len(lat) * 99 // 100]:.3f}s, max {worst:.3f}s", flush=True)
            return res

        def recovers(what):
            # Allowed again within the back-off (2 s at most) + slack. Each worker has its own
            # connection and back-off, and its first lookup after it connects (and loads the
            # script) may exceed the timeout on a loaded machine: recovered is 50 answers in a
            # row that the store allowed.
            t0 = time.monotonic()
            before = scrape(tc)["allow"]

            def recovered():
                last = load.since(t0)[-50:]
                return (len(last) == 50 and all(r[2] == 200 for r in last)
                        and scrape(tc)["allow"] >= before + 50)
            harness.wait_until(recovered, f"{what}: recovery", timeout=2.0 + 3.0)
            print(f"    {what}: allowed again after {time.monotonic() - t0:.2f}s", flush=True)

        # Each worker connects at its first lookup: under load, that one may exceed the timeout.
        harness.wait_until(lambda: scrape(tc)["allow"] > 10, "the first allowed requests")
        errors_before = scrape(tc)["error"]
        phase("healthy", 1.0, {200})
        m = scrape(tc)
        assert m["error"] == errors_before and m["allow"] > 0, (m, errors_before)
        redis.signal(signal.SIGSTOP)
        res = phase("stopped", 2.0, {failed_status})
        errors_stopped = scrape(tc)["error"]
        assert errors_stopped >= len(res) - 4, (errors_stopped, len(res))
        if mode == "closed":
            assert all(r[3].get("retry-after") == "1" for r in res), res[:3]
        redis.signal(signal.SIGCONT)
        recovers("after SIGCONT")
        phase("resumed", 1.0, {200})
        redis.kill()
        t0 = time.monotonic()
        res = phase("killed", 1.5, {failed_status})
        m = scrape(tc)
        assert m["error"] > errors_stopped, (m, errors_stopped)
        redis.start()
        recovers("after restart")
        phase("restarted", 1.0, {200})
        load.stop()
        allowed_at_client = sum(1 for r in load.results if r[2] == 200)
        received = len(up.wait_records(lambda rs: len(rs) >= allowed_at_client and rs,
                                       "the allowed requests"))
        assert received == allowed_at_client, (received, allowed_at_client)
        assert tc.p.poll() is None, "trafficcop exited"
        # Every request was decided once: allowed, or a store error (then 200 or 503 by mode).
        statuses = {}
        for r in load.results:
            statuses[r[2]] = statuses.get(r[2], 0) + 1
        assert set(statuses) <= {200, failed_status}, statuses
        m = scrape(tc)
        assert m["allow"] + m["error"] == len(load.results) and m["deny"] == 0, (m, statuses)
        if mode == "closed":
            assert m["error"] == statuses.get(503, 0), (m, statuses)
        # The proxy's own view: outside the upstream exchange (the Python upstream shares a
        # GIL with the clients and is the slow part here), no request took much longer than
        # the timeout.
        tc.stop()
        with open(tc.log) as f:
            entries = [json.loads(x) for x in f if x.strip()]
        assert len(entries) == len(load.results), (len(entries), len(load.results))
        durations = sorted(e["duration_ms"] - (e.get("upstream_ms") or 0) for e in entries)
        assert durations[-1] < (timeout + slack) * 1000, durations[-10:]
        err = tc.stderr()
        assert "redis 127.0.0.1:" in err, err[-2000:]
        # Logged at most once a second: a few lines over the ~6 s of faults, not one per failure.
        lines = err.count("redis 127.0.0.1:")
        assert lines <= 12, f"{lines} log lines about redis"
        print(f"    in the proxy, outside the upstream exchange: max {durations[-1]:.1f} ms, "
              f"p99.9 {durations[len(durations) * 999 // 1000]:.1f} ms", flush=True)
        print(f"    {len(load.results)} requests, {m['error']:.0f} store errors, "
              f"{lines} log lines, slowest {max(r[1] for r in load.results):.3f}s "
              f"(since kill: {max(r[1] for r in load.since(t0)):.3f}s)", flush=True)
    finally:
        if load:
            load.stop()
        if tc:
            tc.stop()
        up.stop()
        redis.kill()


R.check("two instances share one global limit (rate within 5%)", two_instances_share_the_rate)
R.check("redis stopped, killed, restarted: failure_mode open", faults, "open")
R.check("redis stopped, killed, restarted: failure_mode closed", faults, "closed")
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(R.finish())
