#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 10 part 6 through the binary: PROXY protocol on listeners (v1 and v2, before TLS too),
trusted_proxies (nginx's real_ip_recursive) and send_proxy_protocol towards upstreams.

Both sides are asserted: the access log's "remote" and what the recording upstream received
(X-Forwarded-For, or the PROXY header itself for send_proxy_protocol), or that a connection
without a valid header was closed and nothing reached the upstream.

usage: proxy_protocol_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import ipaddress
import json
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-proxyproto-")
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst=None, dport=443):
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("2001:db8::1" if fam == "TCP6" else "198.51.100.1")
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, sport, dst=None, dport=443, tlvs=b""):
    a = ipaddress.ip_address(src)
    d = ipaddress.ip_address(dst or ("198.51.100.1" if a.version == 4 else "2001:db8::1"))
    fam = 0x11 if a.version == 4 else 0x21
    block = a.packed + d.packed + struct.pack(">HH", sport, dport) + tlvs
    return SIG + bytes([0x21, fam]) + struct.pack(">H", len(block)) + block


V2_LOCAL = SIG + bytes([0x20, 0x00, 0, 0])


def request(path, test_id, extra=()):
    head = f"GET {path} HTTP/1.1\r\nHost: a.example\r\nX-Test-Id: {test_id}\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in extra)
    return (head + "\r\n").encode()


def read_response(s):
    """One response with a Content-Length body (or up to EOF): (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() == b"content-length":
            length = int(v)
    while length is not None and len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def exchange(port, prefix, path, test_id, extra=(), pieces=1):
    """Connects, sends `prefix` (in `pieces` writes a little apart) and one request: status."""
    with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
        step = max(1, -(-len(prefix) // pieces))
        for i in range(0, len(prefix), step):
            s.sendall(prefix[i:i + step])
            if pieces > 1:
                time.sleep(0.05)
        s.sendall(request(path, test_id, extra))
        return read_response(s)[0]


def closed_without_answer(port, data, within):
    """Sends `data` and asserts the proxy closes the connection, answering nothing, within
    `within` seconds."""
    with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
        t0 = time.time()
        if data:
            s.sendall(data)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        took = time.time() - t0
    assert got == b"", f"expected a close without an answer, got {got[:200]!r}"
    assert took < within, f"closed after {took:.1f}s, expected within {within}s"
    return took


def xff(rec):
    return [v for n, v in rec["headers"] if n.lower() == "x-forwarded-for"]


def log_entries(path, tids):
    """The access log's JSON lines of the requests with these ids (X-Request-Id = X-Test-Id
    is not used: the log has no test id, so requests are told apart by their target)."""
    def entries():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        found = {e["target"].rsplit("/", 1)[-1]: e for e in lines}
        return found if all(t in found for t in tids) else None
    return harness.wait_until(entries, f"access log lines for {tids}")


class Setup:
    """An upstream, and trafficcop with: a plain proxy_protocol listener, a TLS one, and a
    plain listener without it; trusted_proxies 10.0.0.0/8 and 2001:db8:ffff::/48."""

    def __init__(self, extra=""):
        self.up = Upstream(protocols=("h1",))
        fd, self.log = tempfile.mkstemp(prefix="access-", suffix=".log", dir=TMP)  # one per proxy
        os.close(fd)
        self.tls_port = harness.free_port()
        self.plain_port = harness.free_port()
        certs = harness.test_certs(A.src)
        cert, key = os.path.join(certs, "server.pem"), os.path.join(certs, "server.key")

        def config(port):
            return "\n".join([
                "workers: 1", f"access_log: {{path: '{self.log}', format: json}}",
                "timeouts: {read_header: 1s}",
                "trusted_proxies: [10.0.0.0/8, '2001:db8:ffff::/48']", extra,
                "listeners:",
                f"  - {{address: '127.0.0.1:{port}', proxy_protocol: true}}",
                f"  - {{address: '127.0.0.1:{self.tls_port}', proxy_protocol: true,",
                f"      tls: {{certificates: [{{cert_file: '{cert}', key_file: '{key}'}}]}}}}",
                f"  - {{address: '127.0.0.1:{self.plain_port}'}}",
                "upstreams:",
                f"  - {{name: e, url: 'http://127.0.0.1:{self.up.port}', http2: never}}",
                "routes:", "  - {upstream: e}"]) + "\n"
        try:
            self.tc = harness.Trafficcop(A.trafficcop, config, TMP)
        except Exception:
            self.up.stop()
            raise
        self.port = self.tc.port

    def close(self):
        self.tc.stop()
        self.up.stop()

    def rec(self, tid):
        self.up.wait_records(lambda rs: any(r["id_header"] == tid for r in rs), tid)
        return self.up.find(tid)[0]


def with_setup(fn, extra=""):
    def run():
        s = Setup(extra)
        try:
            fn(s)
        finally:
            s.close()
    return run


def v1_and_v2_name_the_client(s):
    spoof = [("X-Forwarded-For", "6.6.6.6")]
    assert exchange(s.port, v1("203.0.113.7", 5555), "/a/v1tcp4", "v1tcp4", spoof) == 200
    assert exchange(s.port, v1("2001:db8::7", 6666), "/a/v1tcp6", "v1tcp6") == 200
    assert exchange(s.port, v2("192.0.2.44", 7777), "/a/v2tcp4", "v2tcp4", spoof) == 200
    assert exchange(s.port, v2("2001:db8::8", 8888), "/a/v2tcp6", "v2tcp6") == 200
    # TLVs (ALPN, authority, an AWS VPC endpoint id) are skipped.
    tlvs = b"\x01\x00\x02h2" + b"\x02\x00\x0bexample.com" + b"\xea\x00\x05\x01vpce"
    assert exchange(s.port, v2("192.0.2.45", 1), "/a/v2tlv", "v2tlv", (), 1) == 200
    assert exchange(s.port, v2("192.0.2.46", 2, tlvs=tlvs), "/a/v2tlvs", "v2tlvs") == 200
    # A header trickling in, a few bytes at a time.
    assert exchange(s.port, v1("203.0.113.9", 9), "/a/v1slow", "v1slow", (), 8) == 200
    assert exchange(s.port, v2("192.0.2.47", 10), "/a/v2slow", "v2slow", (), 6) == 200
    # The client is not a trusted proxy: the X-Forwarded-For it sent is replaced.
    want = {"v1tcp4": "203.0.113.7", "v1tcp6": "2001:db8::7", "v2tcp4": "192.0.2.44",
            "v2tcp6": "2001:db8::8", "v2tlv": "192.0.2.45", "v2tlvs": "192.0.2.46",
            "v1slow": "203.0.113.9", "v2slow": "192.0.2.47"}
    for tid, ip in want.items():
        assert xff(s.rec(tid)) == [ip], (tid, xff(s.rec(tid)))
    logged = log_entries(s.log, list(want))
    remotes = {t: logged[t]["remote"] for t in want}
    assert remotes == {"v1tcp4": "203.0.113.7:5555", "v1tcp6": "[2001:db8::7]:6666",
                       "v2tcp4": "192.0.2.44:7777", "v2tcp6": "[2001:db8::8]:8888",
                       "v2tlv": "192.0.2.45:1", "v2tlvs": "192.0.2.46:2",
                       "v1slow": "203.0.113.9:9", "v2slow": "192.0.2.47:10"}, remotes


def local_and_unknown_keep_the_peer(s):
    assert exchange(s.port, V2_LOCAL, "/a/local", "local") == 200
    assert exchange(s.port, b"PROXY UNKNOWN\r\n", "/a/unknown", "unknown") == 200
    for tid in ("local", "unknown"):
        assert xff(s.rec(tid)) == ["127.0.0.1"], (tid, xff(s.rec(tid)))
    logged = log_entries(s.log, ["local", "unknown"])
    for tid in ("local", "unknown"):
        assert logged[tid]["remote"].startswith("127.0.0.1:"), logged[tid]


def without_a_valid_header_the_connection_is_closed(s):
    # Plain HTTP, a TLS ClientHello, a malformed v1 line, a wrong v2 version: closed at once.
    closed_without_answer(s.port, request("/a/nohdr", "nohdr"), 0.9)
    closed_without_answer(s.port, bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), 0.9)
    closed_without_answer(s.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n" +
                          request("/a/badv1", "badv1"), 0.9)
    closed_without_answer(s.port, SIG + bytes([0x31, 0x11, 0, 12]) + bytes(12), 0.9)
    closed_without_answer(s.port, SIG + bytes([0x21, 0x11, 0xff, 0xff]), 0.9)  # 64 KiB: too large
    # A v1 line that never ends: closed once 107 bytes came without a CRLF.
    closed_without_answer(s.port, b"PROXY TCP4 " + b"1" * 200, 0.9)
    # A partial header, then silence, or nothing at all: closed at timeouts.read_header (1s).
    took = closed_without_answer(s.port, v1("203.0.113.7", 1)[:20], 3.0)
    assert took >= 0.8, f"closed after {took:.2f}s, before the 1s timeout"
    took = closed_without_answer(s.port, b"", 3.0)
    assert took >= 0.8, took
    # Nothing of it reached the upstream, and the proxy still serves.
    assert exchange(s.port, v1("203.0.113.7", 2), "/a/after", "after") == 200
    assert [r["id_header"] for r in s.up.records()] == ["after"], s.up.records()


def proxy_header_comes_before_tls(s):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for tid, hdr in (("tlsv1", v1("203.0.113.20", 2020)), ("tlsv2", v2("203.0.113.21", 2121))):
        with socket.create_connection(("127.0.0.1", s.tls_port), timeout=harness.DEADLINE) as raw:
            raw.sendall(hdr)
            with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                t.sendall(request(f"/a/{tid}", tid))
                assert read_response(t)[0] == 200
    assert xff(s.rec("tlsv1")) == ["203.0.113.20"]
    assert xff(s.rec("tlsv2")) == ["203.0.113.21"]
    logged = log_entries(s.log, ["tlsv1", "tlsv2"])
    assert logged["tlsv1"]["remote"] == "203.0.113.20:2020", logged["tlsv1"]
    assert logged["tlsv2"]["remote"] == "203.0.113.21:2121", logged["tlsv2"]
    # TLS straight away, without the header: closed, no handshake.
    with socket.create_connection(("127.0.0.1", s.tls_port), timeout=harness.DEADLINE) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="localhost")
            raise AssertionError("a TLS handshake without a PROXY header succeeded")
        except (ssl.SSLError, OSError):
            pass


def trusted_proxies_chains(s):
    chain = [("X-Forwarded-For", "6.6.6.6, 198.51.100.9"), ("X-Forwarded-For", "10.9.9.9")]
    # From a trusted proxy (the PROXY header's source, 10.1.2.3): its chain is kept and the
    # client is the first untrusted hop from the right.
    assert exchange(s.port, v1("10.1.2.3", 4000), "/a/trusted", "trusted", chain) == 200
    # Every hop trusted: the leftmost.
    assert exchange(s.port, v2("10.1.2.3", 4001), "/a/alltrusted", "alltrusted",
                    [("X-Forwarded-For", "10.7.7.7, 10.8.8.8")]) == 200
    # IPv6 chain through a trusted IPv6 proxy.
    assert exchange(s.port, v2("2001:db8:ffff::2", 4002), "/a/trusted6", "trusted6",
                    [("X-Forwarded-For", "2001:db8::99")]) == 200
    # A hop that is not an address stops the walk at the trusted proxy that wrote it.
    assert exchange(s.port, v1("10.1.2.3", 4003), "/a/garbage", "garbage",
                    [("X-Forwarded-For", "198.51.100.9, unknown")]) == 200
    # An untrusted source with the same chain: replaced by that source.
    assert exchange(s.port, v1("203.0.113.50", 4004), "/a/untrusted", "untrusted", chain) == 200
    # The plain listener without proxy_protocol: the TCP peer (127.0.0.1) is not trusted.
    assert exchange(s.plain_port, b"", "/a/plain", "plain", chain) == 200
    assert xff(s.rec("trusted")) == ["6.6.6.6, 198.51.100.9, 10.9.9.9, 10.1.2.3"]
    assert xff(s.rec("alltrusted")) == ["10.7.7.7, 10.8.8.8, 10.1.2.3"]
    assert xff(s.rec("trusted6")) == ["2001:db8::99, 2001:db8:ffff::2"]
    assert xff(s.rec("garbage")) == ["198.51.100.9, unknown, 10.1.2.3"]
    assert xff(s.rec("untrusted")) == ["203.0.113.50"]
    assert xff(s.rec("plain")) == ["127.0.0.1"]
    tids = ["trusted", "alltrusted", "trusted6", "garbage", "untrusted", "plain"]
    logged = log_entries(s.log, tids)
    remotes = {t: logged[t]["remote"] for t in tids}
    assert remotes["plain"].startswith("127.0.0.1:"), remotes
    remotes.pop("plain")
    assert remotes == {"trusted": "198.51.100.9:0", "alltrusted": "10.7.7.7:0",
                       "trusted6": "[2001:db8::99]:0", "garbage": "10.1.2.3:4003",
                       "untrusted": "203.0.113.50:4004"}, remotes


def replace_sends_the_resolved_client(s):
    chain = [("X-Forwarded-For", "6.6.6.6, 198.51.100.9")]
    assert exchange(s.port, v1("10.1.2.3", 4000), "/a/rtrusted", "rtrusted", chain) == 200
    assert exchange(s.port, v1("203.0.113.50", 1), "/a/runtrusted", "runtrusted", chain) == 200
    assert xff(s.rec("rtrusted")) == ["198.51.100.9"]
    assert xff(s.rec("runtrusted")) == ["203.0.113.50"]


# --- send_proxy_protocol -----------------------------------------------------------------------

class ProxyProtocolUpstream:
    """An HTTP/1.1 keep-alive upstream that expects a PROXY header (v1 or v2) first on each
    connection and records it: .conns = [{"header": ..., "requests": [(target, xff)]}]."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read_exact(c, buf, n):
        while len(buf) < n:
            chunk = c.recv(65536)
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _header(self, c):
        buf = self._read_exact(c, b"", 16)
        if buf.startswith(SIG):
            ln = struct.unpack(">H", buf[14:16])[0]
            buf = self._read_exact(c, buf, 16 + ln)
            cmd, fam = buf[12], buf[13]
            h = {"version": 2, "command": "PROXY" if cmd == 0x21 else "LOCAL"}
            if cmd == 0x21 and fam in (0x11, 0x21):
                n = 4 if fam == 0x11 else 16
                body = buf[16:16 + ln]
                src = ipaddress.ip_address(body[:n])
                dst = ipaddress.ip_address(body[n:2 * n])
                sp, dp = struct.unpack(">HH", body[2 * n:2 * n + 4])
                h.update(src=f"{src}:{sp}", dst=f"{dst}:{dp}")
            return h, buf[16 + ln:]
        while b"\r\n" not in buf:
            buf = self._read_exact(c, buf, len(buf) + 1)
        line, _, rest = buf.partition(b"\r\n")
        f = line.decode().split(" ")
        h = {"version": 1, "line": line.decode()}
        if f[1] in ("TCP4", "TCP6"):
            h.update(src=f"{f[2]}:{f[4]}", dst=f"{f[3]}:{f[5]}")
        return h, rest

    def _serve(self, c):
        rec = {"header": None, "requests": []}
        with self.lock:
            self.conns.append(rec)
        try:
            rec["header"], buf = self._header(c)
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = c.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = [ln.partition(":") for ln in lines[1:]]
                got = [v.strip() for n, _, v in fields if n.lower() == "x-forwarded-for"]
                with self.lock:
                    rec["requests"].append((lines[0].split(" ")[1], got))
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (EOFError, OSError, IndexError, ValueError) as e:
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()

    def snapshot(self):
        with self.lock:
            return [dict(r, requests=list(r["requests"])) for r in self.conns]

    def stop(self):
        self.sock.close()


def keep_alive_requests(port, prefix, paths):
    """Several requests on one client connection: the statuses."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
        s.sendall(prefix)
        for p in paths:
            s.sendall(request(p, p.rsplit("/", 1)[-1]))
            out.append(read_response(s)[0])
    return out


def send_proxy_protocol(version):
    up = ProxyProtocolUpstream()
    plain = harness.free_port()

    def config(port):
        return "\n".join([
            "workers: 1", "access_log: {path: 'off'}",
            "listeners:",
            f"  - {{address: '127.0.0.1:{port}', proxy_protocol: true}}",
            f"  - {{address: '127.0.0.1:{plain}'}}",
            "upstreams:",
            f"  - {{name: e, url: 'http://127.0.0.1:{up.port}', send_proxy_protocol: {version}}}",
            "routes:", "  - {upstream: e}"]) + "\n"
    try:
        with harness.Trafficcop(A.trafficcop, config, TMP) as tc:
            # Two requests of one client connection, then another client, then the first
            # client's address again on a new connection (same header: may share).
            a = keep_alive_requests(tc.port, v1("203.0.113.7", 5555, "198.51.100.1", 443),
                                    ["/x/a1", "/x/a2"])
            b = keep_alive_requests(tc.port, v2("2001:db8::7", 6666, "2001:db8::1", 8443),
                                    ["/x/b1"])
            c = keep_alive_requests(tc.port, v1("203.0.113.7", 5555, "198.51.100.1", 443),
                                    ["/x/a3"])
            d = keep_alive_requests(plain, b"", ["/x/p1"])
            assert a + b + c + d == [200] * 5, (a, b, c, d)
            conns = harness.wait_until(
                lambda: (lambda s: s if sum(len(x["requests"]) for x in s) == 5 else None)(
                    up.snapshot()), "five requests upstream")
            assert not up.errors, up.errors
            by_src = {}
            for x in conns:
                h = x["header"]
                assert h["version"] == (1 if version == "v1" else 2), h
                by_src.setdefault(h.get("src"), []).append(x)
            # The client (and the address it reached) of each request is in the header of
            # the connection that carried it; one client's connection never carries another's.
            a_conns = by_src["203.0.113.7:5555"]
            assert len(a_conns) == 1, conns
            assert a_conns[0]["header"]["dst"] == "198.51.100.1:443", a_conns
            assert [t for t, _ in a_conns[0]["requests"]] == ["/x/a1", "/x/a2", "/x/a3"], a_conns
            b_conns = by_src["2001:db8::7:6666"]
            assert [t for t, _ in b_conns[0]["requests"]] == ["/x/b1"], b_conns
            assert b_conns[0]["header"]["dst"] == "2001:db8::1:8443", b_conns
            p_conns = [x for s, xs in by_src.items() if s and s.startswith("127.0.0.1:")
                       for x in xs]
            assert [t for x in p_conns for t, _ in x["requests"]] == ["/x/p1"], conns
            assert p_conns[0]["header"]["dst"] == f"127.0.0.1:{plain}", p_conns
            assert len(conns) == 3, conns
    finally:
        up.stop()


R.check("PROXY v1 and v2 name the client (log and X-Forwarded-For)",
        with_setup(v1_and_v2_name_the_client))
R.check("PROXY v2 LOCAL and v1 UNKNOWN keep the connection's peer",
        with_setup(local_and_unknown_keep_the_peer))
R.check("no valid PROXY header: closed, nothing upstream",
        with_setup(without_a_valid_header_the_connection_is_closed))
R.check("PROXY header before TLS", with_setup(proxy_header_comes_before_tls))
R.check("trusted_proxies: real_ip_recursive chains", with_setup(trusted_proxies_chains))
R.check("trusted_proxies with forwarded: replace",
        with_setup(replace_sends_the_resolved_client, "forwarded: replace"))
R.check("send_proxy_protocol: v1, per-client pooling", send_proxy_protocol, "v1")
R.check("send_proxy_protocol: v2, per-client pooling", send_proxy_protocol, "v2")
sys.exit(R.finish())
