#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The binary under descriptor pressure and slow clients (issue 14, item 5).

- fd_budget: trafficcop runs with RLIMIT_NOFILE 256 (soft and hard), and a flood of slow
  readers (large responses, never read) arrives after ten keep-alive clients connected. The
  requests those ten then send all succeed (without the budget they failed: the flood took
  every descriptor and their upstream connections met EMFILE); the flood's excess is shed with
  a 503 at once (not left hanging); the shedding is logged once a second at most; once the
  flood leaves, service resumes.
- request_buffering: clients that send small bodies slowly (slowhttptest -B) open no upstream
  connection until their body is complete; with `request_buffering: 0` each one holds an
  upstream connection meanwhile, which is what the option prevents.

The upstream is a threaded Python server that counts the connections it accepts. Loopback only,
every wait bounded by harness.DEADLINE.

usage: budget_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-budget-")
BIG = 8 << 20  # a response no slow reader takes in: the proxy stays busy with it


class Upstream:
    """HTTP/1.1 keep-alive upstream on a free port. GET /big: BIG bytes; anything else: 200
    with "<method> <path> <body length>" as the body. Counts accepted connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.lock = threading.Lock()
        self.big = b"x" * BIG
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(120)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                while len(buf) < length:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                buf = buf[length:]
                body = self.big if path == "/big" else f"{method} {path} {length}".encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stopping = True
        self.sock.close()


def start(config, nofile=None):
    """trafficcop -c CONFIG, optionally under RLIMIT_NOFILE `nofile` (soft and hard, so that
    raising the soft limit at start changes nothing). Returns (process, port, stderr path)."""
    port = harness.free_port()
    path = os.path.join(TMP, f"tc-{port}.yaml")
    with open(path, "w") as f:
        f.write(config.replace("PORT", str(port)))
    err_path = path + ".stderr"
    err = open(err_path, "w")

    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    p = subprocess.Popen([A.trafficcop, "-c", path, "--log-level", "info"],
                         stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit)
    err.close()
    try:
        harness.wait_listening(port, p)
    except Exception:
        stop(p)
        raise RuntimeError(open(err_path).read()[-2000:]) from None
    return p, port, err_path


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(harness.DEADLINE)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def read_response(s):
    """The status and body of one response with a Content-Length, or None on EOF first."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(65536)
        if not d:
            return None
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        d = s.recv(65536)
        if not d:
            return None
        body += d
    return int(head.split(b" ", 2)[1]), body[:n]


def get(host_port, path):
    return (f"GET {path} HTTP/1.1\r\nHost: a.example\r\n\r\n").encode()


CONFIG = """workers: 1
access_log: {{path: 'off'}}
{extra}
listeners: [{{address: '127.0.0.1:PORT'}}]
upstreams: [{{name: u, url: 'http://127.0.0.1:{up}'}}]
routes: [{{path_prefix: /, upstream: u}}]
"""


def fd_budget():
    up = Upstream()
    p, port, err_path = start(CONFIG.format(extra="", up=up.port), nofile=256)
    socks = []
    try:
        log = open(err_path).read()
        m = re.search(r"per worker at most (\d+) connections", log)
        assert m, log
        budget = int(m.group(1))
        assert 16 <= budget < 128, (budget, log)  # two descriptors a connection, and reserves

        # Ten keep-alive clients, connected and served once: in flight from now on.
        keep = []
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE)
            s.sendall(get(port, f"/warm{i}"))
            assert read_response(s)[0] == 200
            keep.append(s)

        # The flood: more slow readers than the budget holds. Each asks for BIG bytes and
        # reads none (a small receive buffer, so that the proxy's writes stall at once).
        t0 = time.time()
        flood = budget + 60
        for i in range(flood):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(harness.DEADLINE)
            s.connect(("127.0.0.1", port))
            s.sendall(get(port, "/big"))
            socks.append(s)

        # The excess is shed at once with a 503 (not parked, not reset before the answer).
        shed = 0
        for s in socks:
            s.settimeout(0.5 if shed == 0 else 0.2)
            try:
                head = s.recv(12)
            except socket.timeout:
                continue  # a slow reader being served: its response waits for it
            if head.startswith(b"HTTP/1.1 503"):
                shed += 1
        assert shed >= flood - budget, (shed, flood, budget)

        # The ten in-flight clients' next requests still succeed: their upstream connections
        # were reserved.
        for i, s in enumerate(keep):
            s.sendall(get(port, f"/after{i}"))
            r = read_response(s)
            assert r == (200, f"GET /after{i} 0".encode()), (i, r, open(err_path).read()[-1500:])

        # A new connection while the worker is full: a clean 503, not a hang.
        with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
            s.sendall(get(port, "/new"))
            assert read_response(s)[0] == 503

        # Shedding is logged once a second at most, not once per connection.
        elapsed = time.time() - t0
        lines = open(err_path).read().count("at its descriptor budget")
        assert 1 <= lines <= elapsed + 2, (lines, elapsed)
        assert "Too many open files" not in open(err_path).read()

        # The flood leaves: service resumes.
        for s in socks:
            s.close()
        socks = []

        def served():
            with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
                s.sendall(get(port, "/back"))
                return read_response(s) == (200, b"GET /back 0")
        harness.wait_until(served, "service after the flood")
        for s in keep:
            s.close()
    finally:
        for s in socks:
            s.close()
        stop(p)
        up.close()


def slow_senders(buffering):
    """Twenty clients send a 1,000-byte body in two parts a second apart: the upstream
    connections accepted while they are half-sent."""
    up = Upstream()
    extra = "" if buffering is None else f"request_buffering: {buffering}"
    p, port, err_path = start(CONFIG.format(extra=extra, up=up.port))
    socks = []
    try:
        for i in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE)
            s.sendall(f"POST /slow{i} HTTP/1.1\r\nHost: a.example\r\nContent-Length: 1000\r\n"
                      f"\r\n".encode() + b"b" * 100)
            socks.append(s)
        time.sleep(1.0)
        during = up.accepted
        for s in socks:
            s.sendall(b"b" * 900)
        for i, s in enumerate(socks):
            assert read_response(s) == (200, f"POST /slow{i} 1000".encode()), i
        return during, up.accepted
    finally:
        for s in socks:
            s.close()
        stop(p)
        up.close()


def request_buffering_default():
    during, after = slow_senders(None)
    assert during == 0, f"{during} upstream connections opened for unfinished bodies"
    assert after >= 1


def request_buffering_off():
    # The contrast: streaming bodies hold an upstream connection per slow sender.
    during, _ = slow_senders(0)
    assert during >= 20, during


def large_bodies_stream():
    # A body over the bound is streamed: its upstream connection opens before it is complete.
    up = Upstream()
    p, port, _ = start(CONFIG.format(extra="request_buffering: 1k", up=up.port))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
            s.sendall(b"POST /large HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2000\r\n\r\n"
                      + b"b" * 100)
            harness.wait_until(lambda: up.accepted >= 1, "an upstream connection")
            s.sendall(b"b" * 1900)
            assert read_response(s) == (200, b"POST /large 2000")
    finally:
        stop(p)
        up.close()


R.check("fd_budget", fd_budget)
R.check("request_buffering_default", request_buffering_default)
R.check("request_buffering_off", request_buffering_off)
R.check("large_bodies_stream", large_bodies_stream)
sys.exit(R.finish())
