#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Live reload through the binary (issue 10.2): 100 reloads alternating two configs that route
/r to different upstreams, during steady keep-alive load and an open WebSocket-style tunnel:
no request fails, the tunnel never drops, and every request after a reload's acknowledgement
goes where the new config says. A config that fails validation keeps the old one (POST /reload
answers 400 with the YAML path; the error counter moves); a kept listener's changed settings
need a restart, while listeners added or removed take effect (a removed one refuses new
connections and finishes the request in flight on it; the kept one never refuses);
an unchanged upstream keeps its warm connections; SIGHUP reloads too. With
timeouts.drain_on_reload, what started before a reload (a tunnel, an HTTP/1.1 request, an
HTTP/2 stream) is closed that long after it, and what started after is not.

usage: reload_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-reload-")


def yaml_for(port, admin_port, r_to, other_port, extra_route=""):
    """/r goes to upstream `r_to` ("a" or "b"); everything else to `stable`."""
    return "\n".join([
        "workers: 2",
        f"admin: {{address: '127.0.0.1:{admin_port}'}}",
        "access_log: {path: 'off'}",
        "listeners:", f"  - address: '127.0.0.1:{port}'",
        "upstreams:",
        f"  - {{name: a, url: 'http://127.0.0.1:{other_port['a']}', http2: never}}",
        f"  - {{name: b, url: 'http://127.0.0.1:{other_port['b']}', http2: never}}",
        f"  - {{name: stable, url: 'http://127.0.0.1:{other_port['stable']}', http2: never}}",
        "routes:",
        f"  - {{name: r, path: /r, upstream: {r_to}}}",
        "  - {name: rest, path_prefix: /, upstream: stable}",
        extra_route]) + "\n"


class Proxy:
    def __init__(self, ups):
        self.ports = {k: u.port for k, u in ups.items()}
        self.admin = harness.free_port()
        self.tc = harness.Trafficcop(
            A.trafficcop, lambda port: yaml_for(port, self.admin, "a", self.ports), TMP)
        harness.wait_listening(self.admin, self.tc.p)

    def write(self, r_to, extra_route=""):
        text = yaml_for(self.tc.port, self.admin, r_to, self.ports, extra_route)
        with open(self.tc.path + ".tmp", "w") as f:
            f.write(text)
        os.replace(self.tc.path + ".tmp", self.tc.path)

    def reload(self):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=harness.DEADLINE)
        c.request("POST", "/reload")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def metric(self, line_start):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=harness.DEADLINE)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        c.close()
        for line in body.splitlines():
            if line.startswith(line_start):
                return float(line.split()[-1])
        return 0.0


def metric_lines(self, line_start):
    c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=harness.DEADLINE)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    return [float(x.split()[-1]) for x in body.splitlines() if x.startswith(line_start)]


Proxy.metric_lines = metric_lines


def get(c, path):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status


class Load(threading.Thread):
    """Keep-alive GETs of /steady until stopped; counts answers and failures."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.stopping = port, 0, [], False

    def run(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=harness.DEADLINE)
        deadline = time.time() + 120  # bounded whatever happens
        while not self.stopping and time.time() < deadline:
            try:
                s = get(c, "/steady")
                if s == 200:
                    self.ok += 1
                else:
                    self.failed.append(s)
            except Exception as e:  # noqa: BLE001 - a failure to count
                self.failed.append(repr(e))
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=harness.DEADLINE)
        c.close()


def tunnel(port):
    """A WebSocket-style upgrade to the stable upstream's /ws echo: the raw socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        more = s.recv(4096)
        assert more, "closed before the 101"
        head += more
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def echo(s, data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        more = s.recv(len(data) - len(got))
        assert more, "the tunnel closed"
        got += more
    assert got == data, got


def test_hundred_reloads_under_load():
    ups = {k: Upstream(protocols=("h1",)) for k in ("a", "b", "stable")}
    p = Proxy(ups)
    try:
        ws = tunnel(p.tc.port)
        echo(ws, b"before")
        load = Load(p.tc.port)
        load.start()
        c = http.client.HTTPConnection("127.0.0.1", p.tc.port, timeout=harness.DEADLINE)
        n = 20 if A.quick else 100
        for i in range(n):
            to = "b" if i % 2 == 0 else "a"
            p.write(to)
            status, body = p.reload()
            assert status == 200, (i, status, body)
            before = {k: len(u.records()) for k, u in ups.items()}
            assert get(c, "/r") == 200
            after = {k: len(u.records()) for k, u in ups.items()}
            assert after[to] == before[to] + 1, f"reload {i}: /r went elsewhere than {to}"
            echo(ws, f"tunnel {i}".encode())
        load.stopping = True
        load.join(30)
        c.close()
        echo(ws, b"after")
        ws.close()
        assert load.failed == [], load.failed[:5]
        assert load.ok > n, load.ok
        assert p.metric('trafficcop_config_reloads_total{result="ok"}') == n
        # The stable upstream's pools stayed warm: the load kept one connection (per worker it
        # ran on) however many reloads happened.
        assert ups["stable"].connections <= 3, ups["stable"].connections
    finally:
        p.tc.stop()
        for u in ups.values():
            u.stop()


def test_bad_config_keeps_the_old():
    ups = {k: Upstream(protocols=("h1",)) for k in ("a", "b", "stable")}
    p = Proxy(ups)
    try:
        p.write("nowhere")
        status, body = p.reload()
        assert status == 400 and "routes[0].upstream" in body, (status, body)
        assert p.metric('trafficcop_config_reloads_total{result="error"}') == 1
        c = http.client.HTTPConnection("127.0.0.1", p.tc.port, timeout=harness.DEADLINE)
        assert get(c, "/r") == 200 and len(ups["a"].records()) == 1, "the old config serves"
        # A kept listener's settings are not changed live (its socket stays as it is).
        text = yaml_for(p.tc.port, p.admin, "b", p.ports).replace(
            f"address: '127.0.0.1:{p.tc.port}'",
            f"address: '127.0.0.1:{p.tc.port}'\n    proxy_protocol: true")
        with open(p.tc.path, "w") as f:
            f.write(text)
        status, body = p.reload()
        assert status == 400 and "listeners[0].proxy_protocol changed" in body, (status, body)
        assert get(c, "/r") == 200 and len(ups["a"].records()) == 2
        c.close()
        assert "not reloaded, the running config stays" in p.tc.stderr()
    finally:
        p.tc.stop()
        for u in ups.values():
            u.stop()


def test_sighup_reloads():
    ups = {k: Upstream(protocols=("h1",)) for k in ("a", "b", "stable")}
    p = Proxy(ups)
    try:
        p.write("b")
        p.tc.p.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "SIGHUP: config reloaded" in p.tc.stderr(), "the reload")
        c = http.client.HTTPConnection("127.0.0.1", p.tc.port, timeout=harness.DEADLINE)
        assert get(c, "/r") == 200
        c.close()
        assert len(ups["b"].records()) == 1 and len(ups["a"].records()) == 0
    finally:
        p.tc.stop()
        for u in ups.values():
            u.stop()


def yaml_listeners(admin_port, ports, listeners):
    """`listeners`: (name, port) pairs. /only2 is limited to the listener named "second" (when
    there is one) and goes to upstream b; everything else to `stable`."""
    only2 = ["  - {name: only2, path: /only2, listeners: [second], upstream: b}"] if any(
        n == "second" for n, _ in listeners) else []
    return "\n".join([
        "workers: 2",
        f"admin: {{address: '127.0.0.1:{admin_port}'}}",
        "access_log: {path: 'off'}",
        "listeners:"] + [f"  - {{name: {n}, address: '127.0.0.1:{p}'}}" for n, p in listeners] + [
        "upstreams:",
        f"  - {{name: b, url: 'http://127.0.0.1:{ports['b']}', http2: never}}",
        f"  - {{name: stable, url: 'http://127.0.0.1:{ports['stable']}', http2: never}}",
        "routes:"] + only2 + [
        "  - {name: rest, path_prefix: /, upstream: stable}"]) + "\n"


class Connects(threading.Thread):
    """A new connection per GET until stopped: counts refusals and failures."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.stopping = port, 0, [], False

    def run(self):
        deadline = time.time() + 120
        while not self.stopping and time.time() < deadline:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=harness.DEADLINE)
            try:
                if get(c, "/steady") == 200:
                    self.ok += 1
                else:
                    self.failed.append("status")
            except Exception as e:  # noqa: BLE001 - a failure to count (refusals too)
                self.failed.append(repr(e))
            c.close()


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def test_listeners_added_and_removed():
    ups = {k: Upstream(protocols=("h1",)) for k in ("b", "stable")}
    ports = {k: u.port for k, u in ups.items()}
    admin = harness.free_port()
    second = harness.free_port()
    tc = harness.Trafficcop(
        A.trafficcop, lambda port: yaml_listeners(admin, ports, [("main", port)]), TMP)
    harness.wait_listening(admin, tc.p)
    p = Proxy.__new__(Proxy)  # its reload() and metric() on this process
    p.tc, p.admin = tc, admin

    def write(listeners):
        with open(tc.path + ".tmp", "w") as f:
            f.write(yaml_listeners(admin, ports, listeners))
        os.replace(tc.path + ".tmp", tc.path)
    try:
        assert refused(second)
        load, connects = Load(tc.port), Connects(tc.port)
        load.start()
        connects.start()
        # Added: it serves at once, and routes limited to its name match on it only.
        write([("main", tc.port), ("second", second)])
        assert p.reload() == (200, "reloaded\n")
        c2 = http.client.HTTPConnection("127.0.0.1", second, timeout=harness.DEADLINE)
        assert get(c2, "/only2") == 200 and len(ups["b"].records()) == 1, "/only2 on second"
        c1 = http.client.HTTPConnection("127.0.0.1", tc.port, timeout=harness.DEADLINE)
        assert get(c1, "/only2") == 200 and len(ups["b"].records()) == 1, "not on main"
        c1.close()
        # Removed while a request on it is in flight (held at the upstream): the request
        # finishes, its connection then closes, new connections are refused.
        c2.request("GET", "/held?gate=g1", headers={"x-test-id": "held"})
        ups["stable"].wait_records(lambda rs: any(r["id_header"] == "held" for r in rs),
                                   "the held request")
        write([("main", tc.port)])
        assert p.reload() == (200, "reloaded\n")
        assert refused(second), "the removed listener still accepts"
        ups["stable"].open_gate("g1")
        r = c2.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("connection") == "close", r.getheaders()
        c2.close()
        # Added again (a new socket, a new id): serves, and /only2 still matches by name.
        write([("main", tc.port), ("second", second)])
        assert p.reload() == (200, "reloaded\n")
        c2 = http.client.HTTPConnection("127.0.0.1", second, timeout=harness.DEADLINE)
        assert get(c2, "/only2") == 200 and len(ups["b"].records()) == 2
        c2.close()
        # Metrics: one series per address, whatever the ids: the removed listener's
        # connection and the re-added one's are summed (a counter never goes back).
        totals = p.metric_lines(f'trafficcop_connections_total{{listener="127.0.0.1:{second}"}}')
        assert totals == [2.0], totals
        time.sleep(0.3)  # the load goes on across the three reloads and after
        load.stopping = connects.stopping = True
        load.join(30)
        connects.join(30)
        # The kept listener never refused nor failed a request.
        assert load.failed == [] and connects.failed == [], (load.failed[:3], connects.failed[:3])
        assert load.ok > 0 and connects.ok > 0
        log = tc.stderr()
        assert f"listener 127.0.0.1:{second} added" in log
        assert f"listener 127.0.0.1:{second} removed" in log
    finally:
        tc.stop()
        for u in ups.values():
            u.stop()


def yaml_drain(port, admin_port, r_to, ports, drain=None):
    """yaml_for with h2c on the listener and timeouts.drain_on_reload: `drain` (if any)."""
    return yaml_for(port, admin_port, r_to, ports).replace(
        f"address: '127.0.0.1:{port}'", f"address: '127.0.0.1:{port}'\n    http2: {{h2c: true}}"
    ) + (f"timeouts: {{drain_on_reload: {drain}}}\n" if drain else "")


def held_h1(port, gate):
    """A fresh HTTP/1.1 connection with GET /held?gate=GATE sent (its answer not read yet)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    c.request("GET", f"/held?gate={gate}", headers={"x-test-id": gate})
    return c


def closed_at(s):
    """Blocks until the peer closes the socket `s`; the time it did."""
    s.settimeout(harness.DEADLINE)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.time()


def test_drain_on_reload():
    ups = {k: Upstream(protocols=("h1",)) for k in ("a", "b", "stable")}
    p = Proxy.__new__(Proxy)
    p.ports = {k: u.port for k, u in ups.items()}
    p.admin = harness.free_port()
    p.tc = harness.Trafficcop(A.trafficcop, lambda port: yaml_drain(port, p.admin, "a", p.ports),
                              TMP)
    harness.wait_listening(p.admin, p.tc.p)
    stable = ups["stable"]
    h2 = None
    try:
        # Before the reload: a tunnel, a held HTTP/1.1 request and a held HTTP/2 stream.
        ws = tunnel(p.tc.port)
        echo(ws, b"before")
        ws_conn = stable.wait_records(lambda rs: [r for r in rs if r["responded"] == 101],
                                      "the tunnel")[0]["conn"]
        old1 = held_h1(p.tc.port, "old1")
        h2 = H2Client(p.tc.port)
        auth = f"127.0.0.1:{p.tc.port}"
        h2_old = h2.request(
            base_headers("GET", "/held?gate=h2old", auth, extra=[("x-test-id", "h2old")]))
        stable.wait_records(lambda rs: {r["id_header"] for r in rs} >= {"old1", "h2old"},
                            "the requests before the reload")
        with open(p.tc.path + ".tmp", "w") as f:
            # Set by the reload itself: the key needs no restart, and the new value applies.
            f.write(yaml_drain(p.tc.port, p.admin, "b", p.ports, "1s"))
        os.replace(p.tc.path + ".tmp", p.tc.path)
        sent = time.time()
        assert p.reload() == (200, "reloaded\n")
        acked = time.time()
        # After it: the same kinds of slow requests, the stream on the same connection.
        new1 = held_h1(p.tc.port, "new1")
        h2_new = h2.request(
            base_headers("GET", "/held?gate=h2new", auth, extra=[("x-test-id", "h2new")]))
        stable.wait_records(lambda rs: {r["id_header"] for r in rs} >= {"new1", "h2new"},
                            "the requests after the reload")
        # The old ones are closed about 1 s after the reload.
        ws_closed = closed_at(ws)
        old1_closed = closed_at(old1.sock)
        h2.pump(lambda: h2.streams[h2_old].reset is not None, "the old stream's reset", 5)
        h2_reset = time.time()
        for what, t in (("tunnel", ws_closed), ("HTTP/1.1", old1_closed), ("HTTP/2", h2_reset)):
            assert t - sent >= 0.9, f"{what} closed {t - sent:.3f} s after the reload: too early"
            assert t - acked < 3.0, f"{what} closed {t - acked:.3f} s after the reload: too late"
        assert h2.streams[h2_old].reset == 8, h2.streams[h2_old]  # CANCEL
        assert h2.streams[h2_old].status is None, "no response for the cut stream"
        # The upstream saw them go: the held request's connection and the tunnel's closed.
        stable.wait_records(lambda rs: all(r["reset"] for r in rs
                                           if r["id_header"] in ("old1", "h2old")),
                            "the upstream to see the old requests leave", 5)
        stable.wait_conns(lambda cs: cs[ws_conn]["closed"], "the tunnel's upstream side", 5)
        # Every worker's timer fired (they share the deadline): the new requests still run.
        time.sleep(0.3)
        assert not h2.closed and not h2.streams[h2_new].finished, h2.streams[h2_new]
        stable.open_gate("new1")
        stable.open_gate("h2new")
        r = new1.getresponse()
        r.read()
        assert r.status == 200, r.status
        new1.close()
        (st,) = h2.wait(h2_new)
        assert st.status == 200 and st.reset is None and st.ended, st
        assert all(r["responded"] == 200 and not r["reset"]
                   for r in stable.records() if r["id_header"] in ("new1", "h2new"))
        assert "requests started before this reload are closed if still running in 1000 ms" in \
            p.tc.stderr()
        h2.close()
        rc = p.tc.stop()  # a sanitizer's report makes it non-zero
        assert rc == 0, f"exit status {rc}: {p.tc.stderr()[-3000:]}"
    finally:
        if h2:
            h2.close()
        p.tc.stop()
        for u in ups.values():
            u.stop()


R.check("100 reloads under load: none fails, the tunnel stays, routes follow",
        test_hundred_reloads_under_load)
R.check("a bad config or a kept listener's changed settings keep the old config",
        test_bad_config_keeps_the_old)
R.check("SIGHUP reloads the file", test_sighup_reloads)
R.check("listeners added and removed by a reload; a kept one never refuses",
        test_listeners_added_and_removed)
R.check("drain_on_reload: what started before a reload is closed 1 s after it, not what after",
        test_drain_on_reload)
sys.exit(R.finish())
