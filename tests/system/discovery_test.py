#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""DNS service discovery through the binary (issue 9.2): an endpoint named by host name is
re-resolved every `resolve.refresh`, each A record becomes an endpoint, a changed answer moves
traffic within a refresh and drains the pooled connections to the address that left (HTTP/1.1
and HTTP/2), a failing DNS server leaves the last addresses in place, and the system resolver
(the hosts file) is used without `servers`. The DNS server is a small UDP server started here
on a loopback port; the endpoints are recording upstreams on 127.0.0.2, .3 and .4 sharing one
port, as the hosts behind one name do.

usage: discovery_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-dns-")
NAME = "api.trafficcop.test"


class DnsServer:
    """Answers A queries for the names in `.answers` ({name: [ipv4...]}) over UDP on a
    loopback port: NOERROR with the records, NXDOMAIN for other names, an empty NOERROR for
    AAAA. With `.silent` set it drops every query (a DNS outage). Counts `.queries`."""

    def __init__(self):
        self.answers = {}
        self.silent = False
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            self.queries += 1
            if self.silent or len(msg) < 12:
                continue
            self.sock.sendto(self._answer(msg), peer)

    def _answer(self, q):
        qid, _, qd = struct.unpack("!HHH", q[:6])
        at, labels = 12, []
        while q[at]:
            labels.append(q[at + 1:at + 1 + q[at]].decode().lower())
            at += 1 + q[at]
        qtype, _ = struct.unpack("!HH", q[at + 1:at + 5])
        question = q[12:at + 5]
        name = ".".join(labels)
        addrs = self.answers.get(name)
        rcode = 3 if addrs is None else 0
        records = b""
        count = 0
        if addrs and qtype == 1:
            for a in addrs:
                records += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(a)
                count += 1
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
        return head + question + records

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def upstreams_on_one_port(hosts, protocols):
    """Recording upstreams on each of `hosts`, all on the same port."""
    for _ in range(20):
        first = Upstream(protocols=protocols, host=hosts[0])
        ups = [first]
        try:
            for h in hosts[1:]:
                ups.append(Upstream(protocols=protocols, host=h, port=first.port))
            return ups
        except OSError:  # that port is taken on another address: try another
            for u in ups:
                u.stop()
    raise RuntimeError("no port free on every address")


def proxy(endpoint_url, resolve, proto="h1"):
    http2 = "always" if proto == "h2" else "never"

    def config(port):
        return "\n".join([
            "workers: 2",
            "listeners:", f"  - address: '127.0.0.1:{port}'",
            "upstreams:", "  - name: u", f"    endpoints: ['{endpoint_url}']",
            f"    http2: {http2}", f"    resolve: {resolve}",
            "routes:", "  - {path_prefix: /, upstream: u}"]) + "\n"
    return harness.Trafficcop(A.trafficcop, config, TMP)


def get(port, n, path="/"):
    """n keep-alive GETs; the statuses."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    statuses = []
    for i in range(n):
        c.request("GET", f"{path}?i={i}")
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
    c.close()
    return statuses


def counts(ups):
    return [len(u.records()) for u in ups]


def wait_log(tc, text):
    harness.wait_until(lambda: text in tc.stderr(), f"'{text}' in trafficcop's log")


def test_records_become_endpoints_and_changes_drain(proto):
    dns = DnsServer()
    ups = upstreams_on_one_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"], (proto,))
    port = ups[0].port
    dns.answers[NAME] = ["127.0.0.2", "127.0.0.3"]
    resolve = f"{{refresh: 300ms, timeout: 200ms, servers: ['127.0.0.1:{dns.port}']}}"
    try:
        with proxy(f"http://{NAME}:{port}", resolve, proto) as tc:
            # Resolved before the listener opened: both A records serve at once.
            assert get(tc.port, 40) == [200] * 40
            c = counts(ups)
            assert c[0] > 0 and c[1] > 0 and c[2] == 0, f"requests per address: {c}"
            assert abs(c[0] - c[1]) <= 2, f"round robin over the two records: {c}"
            rec = ups[0].records()[0]
            hosts = [v for k, v in rec["headers"] if k.lower() in ("host", ":authority")]
            assert hosts == [f"{NAME}:{port}"], f"Host names the upstream, not the IP: {hosts}"
            live = [k for k, x in ups[0].conns().items() if x["closed"] is None]
            assert live, "a pooled connection to 127.0.0.2 is open"

            dns.answers[NAME] = ["127.0.0.3", "127.0.0.4"]
            wait_log(tc, f"left 127.0.0.2:{port}")
            before = counts(ups)
            assert get(tc.port, 40) == [200] * 40
            after = counts(ups)
            moved = [a - b for a, b in zip(after, before)]
            assert moved[0] == 0 and moved[1] > 0 and moved[2] > 0, f"after the change: {moved}"
            # The connections to the address that left are closed (drained), not kept idle.
            ups[0].wait_conns(lambda cs: all(x["closed"] for x in cs.values()),
                              "every connection to 127.0.0.2 closed", timeout=5)
            if proto == "h2":
                cs = ups[0].conns()
                assert any(x["goaway"] is not None for x in cs.values()), \
                    f"HTTP/2 connections end with a GOAWAY: {cs}"

            # A DNS outage: the last addresses stay.
            dns.silent = True
            wait_log(tc, f"resolve {NAME} of u: ")
            before = counts(ups)
            assert get(tc.port, 20) == [200] * 20
            moved = [a - b for a, b in zip(counts(ups), before)]
            assert moved[0] == 0 and moved[1] > 0 and moved[2] > 0, f"during the outage: {moved}"
            assert "keeping its addresses (127.0.0.3, 127.0.0.4)" in tc.stderr()
    finally:
        dns.stop()
        for u in ups:
            u.stop()


def test_nxdomain_at_start_then_appears():
    """A name that does not resolve yet: 502 (its connect fails), then served once DNS has
    it, without a restart."""
    dns = DnsServer()
    ups = upstreams_on_one_port(["127.0.0.2"], ("h1",))
    resolve = f"{{refresh: 200ms, timeout: 200ms, servers: ['127.0.0.1:{dns.port}']}}"
    try:
        with proxy(f"http://{NAME}:{ups[0].port}", resolve) as tc:
            assert get(tc.port, 1) == [502]
            assert "no such name" in tc.stderr()
            dns.answers[NAME] = ["127.0.0.2"]
            wait_log(tc, f"{NAME} of u resolves to 127.0.0.2")
            assert get(tc.port, 3) == [200] * 3
            assert len(ups[0].records()) == 3
    finally:
        dns.stop()
        ups[0].stop()


def test_system_resolver_reads_the_hosts_file():
    """Without servers, getaddrinfo answers: localhost from /etc/hosts."""
    up = Upstream(protocols=("h1",))
    try:
        with proxy(f"http://localhost:{up.port}", "{refresh: 1s}") as tc:
            assert "localhost of u resolves to 127.0.0.1" in tc.stderr(), tc.stderr()[-1000:]
            statuses = get(tc.port, 4)
            assert 200 in statuses, statuses
            assert len(up.records()) == statuses.count(200)
    finally:
        up.stop()


def test_check_names_the_bad_key():
    bad = {
        "upstreams[0].resolve.servers[0]": "servers: ['dns.example:53']",
        "upstreams[0].resolve.refresh": "refresh: 10ms",
        "upstreams[0].resolve.bogus": "bogus: 1",
    }
    for path, line in bad.items():
        cfg = os.path.join(TMP, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("listeners: [{address: '127.0.0.1:0'}]\n"
                    "upstreams:\n  - name: u\n    url: http://a.test:80\n"
                    f"    resolve: {{{line}}}\n"
                    "routes: [{path_prefix: /, upstream: u}]\n")
        r = subprocess.run([A.trafficcop, "check", "-c", cfg], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and path in r.stderr, f"{line}: {r.returncode} {r.stderr}"


R.check("A records become endpoints; a change moves traffic and drains (HTTP/1.1)",
        test_records_become_endpoints_and_changes_drain, "h1")
R.check("A records become endpoints; a change moves traffic and drains (HTTP/2)",
        test_records_become_endpoints_and_changes_drain, "h2")
R.check("a name that does not resolve yet is served once it does",
        test_nxdomain_at_start_then_appears)
R.check("without servers the system resolver answers (hosts file)",
        test_system_resolver_reads_the_hosts_file)
R.check("check names the bad resolve key", test_check_names_the_bad_key)
sys.exit(R.finish())
