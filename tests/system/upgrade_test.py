#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Zero-downtime binary upgrade and socket activation through the binary (issue 10.3).

- SIGUSR2 during a steady load (keep-alive clients and a new connection per request): no
  connection is refused and no request fails; the new process serves (its request ids carry
  other worker seeds, the admin API answers from it), the old one exits 0.
- SIGUSR2 with a config that no longer loads: the new process exits, the old one logs why and
  goes on serving, with no failure under the same load.
- Socket activation: a socket the test binds (without SO_REUSEPORT, and kept open by the
  test, so trafficcop cannot have bound the port itself) passed as fd 3 with LISTEN_FDS: the
  listener on that address serves through it; an inherited socket no listener has is closed.

A keep-alive request the old process closed the connection under before reading it (the
keep-alive race every HTTP/1.1 server has when it closes an idle connection, RFC 9112 §9.3.1)
is retried on a new connection, as curl and browsers do; the test checks that such a request
never reached the upstream, so the retry hides no failure.

usage: upgrade_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.client
import os
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

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-upgrade-")


def yaml_for(port, admin_port, up_port, workers=2):
    return "\n".join([
        f"workers: {workers}",
        f"admin: {{address: '127.0.0.1:{admin_port}'}}",
        "access_log: {path: 'off'}",
        "timeouts: {drain: '5s'}",
        "listeners:", f"  - {{name: main, address: '127.0.0.1:{port}'}}",
        "upstreams:", f"  - {{name: u, url: 'http://127.0.0.1:{up_port}', http2: never}}",
        "routes:", "  - {path_prefix: /, upstream: u}"]) + "\n"


def alive(pid):
    """True while `pid` runs (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Load(threading.Thread):
    """GETs until stopped, each with a unique x-test-id; keep-alive or a new connection each.
    Counts refused connections, failures and keep-alive-race retries."""

    def __init__(self, port, keepalive, tag):
        super().__init__(daemon=True)
        self.port, self.keepalive, self.tag = port, keepalive, tag
        self.ok, self.refused, self.failed, self.raced = 0, 0, [], []
        self.ids = []  # (time, request id of the response)
        self.stopping = False

    def run(self):
        c, used, i = None, 0, 0
        deadline = time.time() + 60  # bounded whatever happens
        while not self.stopping and time.time() < deadline:
            i += 1
            tid = f"{self.tag}-{i}"
            if c is None or not self.keepalive:
                if c is not None:
                    c.close()
                c, used = http.client.HTTPConnection("127.0.0.1", self.port,
                                                     timeout=harness.DEADLINE), 0
            try:
                c.request("GET", f"/load/{tid}", headers={"x-test-id": tid})
                r = c.getresponse()
                r.read()
                used += 1
                if r.status == 200:
                    self.ok += 1
                    self.ids.append((time.time(), r.getheader("x-request-id")))
                else:
                    self.failed.append((tid, r.status))
            except ConnectionRefusedError:
                self.refused += 1
                c = None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                if used > 0:  # a reused keep-alive connection closed under the request
                    self.raced.append(tid)
                else:
                    self.failed.append((tid, repr(e)))
                c.close()
                c = None
            except Exception as e:  # noqa: BLE001 - a failure to count
                self.failed.append((tid, repr(e)))
                c.close()
                c = None
        if c is not None:
            c.close()


class Fleet:
    """Two keep-alive clients and two that connect for every request."""

    def __init__(self, port):
        self.loads = [Load(port, k, f"{'ka' if k else 'new'}{n}")
                      for n, k in enumerate((True, True, False, False))]
        for t in self.loads:
            t.start()

    def stop(self):
        for t in self.loads:
            t.stopping = True
        for t in self.loads:
            t.join(30)

    def total(self, attr):
        return sum(getattr(t, attr) if isinstance(getattr(t, attr), int)
                   else len(getattr(t, attr)) for t in self.loads)

    def check(self, up):
        failed = [f for t in self.loads for f in t.failed]
        assert self.total("refused") == 0, f"{self.total('refused')} connections refused"
        assert failed == [], failed[:5]
        assert self.total("ok") > 50, self.total("ok")
        seen = {r["id_header"] for r in up.records()}
        raced = [tid for t in self.loads for tid in t.raced]
        reached = [tid for tid in raced if tid in seen]
        assert reached == [], f"requests lost after reaching the upstream: {reached}"
        return len(raced)


def seeds(ids, lo, hi):
    """The worker seeds (first 10 hex digits: process seed and worker) of ids in [lo, hi)."""
    return {rid[:10] for t, rid in ids if lo <= t < hi and rid}


def admin_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=harness.DEADLINE)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def new_pid(tc):
    """The pid the old process announced as its successor."""
    def found():
        for line in tc.stderr().splitlines():
            if "SIGUSR2: upgrade: pid " in line and " serves" in line:
                return int(line.split("SIGUSR2: upgrade: pid ")[1].split()[0])
        if "upgrade failed" in tc.stderr():
            raise AssertionError("the upgrade failed:\n" + tc.stderr()[-2000:])
        return None
    return harness.wait_until(found, "the upgrade's announcement", timeout=40)


def stop_pid(pid):
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        harness.wait_until(lambda: not alive(pid), f"pid {pid} to stop")


def test_upgrade_under_load():
    up = Upstream(protocols=("h1",))
    admin = harness.free_port()
    tc = harness.Trafficcop(A.trafficcop, lambda p: yaml_for(p, admin, up.port), TMP)
    pid = None
    try:
        harness.wait_listening(admin, tc.p)
        fleet = Fleet(tc.port)
        # A request held at the upstream keeps the old process draining until the test lets
        # it go: it must then finish there, and meanwhile the admin API is the new one's.
        held = http.client.HTTPConnection("127.0.0.1", tc.port, timeout=harness.DEADLINE)
        held.request("GET", "/held?gate=held", headers={"x-test-id": "held"})
        up.wait_records(lambda rs: any(r["id_header"] == "held" for r in rs), "the held one")
        time.sleep(1.0)  # steady load before (the load is the point of the test)
        t_signal = time.time()
        tc.p.send_signal(signal.SIGUSR2)
        pid = new_pid(tc)
        assert pid != tc.p.pid and alive(pid)
        harness.wait_until(lambda: "SIGUSR2: draining" in tc.stderr(), "the old one's drain")
        for _ in range(20):  # never the draining process's 503
            assert admin_get(admin, "/ready") == (200, "ready\n")
        assert tc.p.poll() is None, "the old process waits for its request in flight"
        up.open_gate("held")
        r = held.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("connection") == "close", r.getheaders()
        held.close()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        assert argv[0].endswith(b"trafficcop") and tc.path.encode() in argv, argv
        assert tc.p.wait(harness.DEADLINE) == 0, "the old process exits 0"
        t_old_gone = time.time()
        time.sleep(1.0)  # steady load after
        fleet.stop()
        raced = fleet.check(up)
        before = seeds([x for t in fleet.loads for x in t.ids], 0, t_signal)
        after = seeds([x for t in fleet.loads for x in t.ids], t_old_gone, 1e12)
        assert before and after and not (before & after), (before, after)
        # The admin listener was handed over too.
        assert admin_get(admin, "/ready") == (200, "ready\n")
        log = tc.stderr()
        assert "inherited (LISTEN_FDS)" in log and "SIGUSR2: draining" in log, log[-2000:]
        print(f"  {fleet.total('ok')} requests, 0 refused, 0 failed; {raced} keep-alive "
              "races retried (none had reached the upstream)")
    finally:
        tc.stop()
        if pid:
            stop_pid(pid)
        up.stop()


def test_failed_upgrade_keeps_serving():
    up = Upstream(protocols=("h1",))
    admin = harness.free_port()
    tc = harness.Trafficcop(A.trafficcop, lambda p: yaml_for(p, admin, up.port), TMP)
    try:
        harness.wait_listening(admin, tc.p)
        fleet = Fleet(tc.port)
        time.sleep(0.5)
        with open(tc.path, "w") as f:
            f.write(yaml_for(tc.port, admin, up.port).replace("upstream: u", "upstream: nowhere"))
        tc.p.send_signal(signal.SIGUSR2)
        harness.wait_until(lambda: "upgrade failed" in tc.stderr(), "the failed upgrade")
        time.sleep(0.5)
        fleet.stop()
        fleet.check(up)
        assert tc.p.poll() is None, "the old process still runs"
        log = tc.stderr()
        assert "routes[0].upstream" in log, log[-2000:]  # the new one said why
        assert "exited with status 1 before it was ready" in log, log[-2000:]
        assert admin_get(admin, "/ready") == (200, "ready\n")
        c = http.client.HTTPConnection("127.0.0.1", tc.port, timeout=harness.DEADLINE)
        c.request("GET", "/after", headers={"x-test-id": "after"})
        assert c.getresponse().status == 200 and up.find("after")
        c.close()
    finally:
        tc.stop()
        up.stop()


def test_socket_activation():
    up = Upstream(protocols=("h1",))
    # Bound and listening here, no SO_REUSEPORT: trafficcop cannot bind this port itself.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    port = s.getsockname()[1]
    extra = socket.socket()  # no listener of the config has this one
    extra.bind(("127.0.0.1", 0))
    extra.listen(8)
    path = os.path.join(TMP, "activated.yaml")
    with open(path, "w") as f:
        f.write(yaml_for(port, harness.free_port(), up.port).replace(
            "admin: {", "# admin: {"))
    err = open(path + ".stderr", "w+")
    fds = (s.fileno(), extra.fileno())

    def to_3_and_4():  # in the child, before exec: the sockets at fds 3 and 4
        tmp = [os.dup(fd) for fd in fds]
        for n, fd in enumerate(tmp):
            os.dup2(fd, 3 + n)
    env = dict(os.environ, LISTEN_FDS="2", LISTEN_FDNAMES="web:extra")
    # LISTEN_PID must be the pid of the process that reads it: the shell's, which exec keeps.
    p = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", A.trafficcop,
                          "-c", path], env=env, pass_fds=(3, 4) + fds, preexec_fn=to_3_and_4,
                         stdout=subprocess.DEVNULL, stderr=err)
    try:
        harness.wait_until(lambda: "listening on" in open(err.name).read() or p.poll() is not None,
                           "trafficcop to start")
        for n in range(4):  # both workers' share of the socket
            r = harness.run(["curl", "-sS", "-H", f"x-test-id: act{n}", "-o", "/dev/null",
                             "-w", "%{http_code}", f"http://127.0.0.1:{port}/act"])
            assert r.stdout == b"200", (r.stdout, r.stderr, open(err.name).read()[-2000:])
            assert up.find(f"act{n}"), f"act{n} did not reach the upstream"
        log = open(err.name).read()
        assert "2 listening socket(s) inherited" in log, log[-2000:]
        assert "closed 1 inherited listening socket(s)" in log, log[-2000:]
        assert p.poll() is None
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(harness.DEADLINE)
        err.close()
        s.close()
        extra.close()
        up.stop()
    assert p.returncode == 0, p.returncode


def test_systemd_mainpid():
    """Under systemd (NOTIFY_SOCKET) the old process hands the service over with MAINPID=;
    the new one, not yet the main process, sends no READY=1 of its own."""
    up = Upstream(protocols=("h1",))
    admin = harness.free_port()
    sock_path = os.path.join(TMP, f"notify-{admin}")
    n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    n.bind(sock_path)
    os.environ["NOTIFY_SOCKET"] = sock_path
    pid = None
    try:
        tc = harness.Trafficcop(A.trafficcop, lambda p: yaml_for(p, admin, up.port), TMP)
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        got = []

        def until(want):
            end = time.time() + harness.DEADLINE
            while time.time() < end:
                n.settimeout(max(0.05, end - time.time()))
                try:
                    got.append(n.recv(4096).decode())
                except socket.timeout:
                    break
                if want in got[-1]:
                    return
            raise AssertionError(f"no {want!r} among {got}")
        until("READY=1")
        tc.p.send_signal(signal.SIGUSR2)
        pid = new_pid(tc)
        until(f"MAINPID={pid}")
        # sd_notify_barrier: a pipe passed with BARRIER=1; receiving it (without taking the
        # descriptor) closes it, which tells the old process the MAINPID was read.
        t0 = time.time()
        until("BARRIER=1")
        assert tc.p.wait(harness.DEADLINE) == 0
        assert time.time() - t0 < 4, "the old process waited the barrier's timeout out"
        readies = [m for m in got if "READY=1" in m]
        assert len(readies) == 1, got  # the first start's only
        assert not any("STOPPING=1" in m for m in got), got  # the service did not stop
    finally:
        tc.stop()
        if pid:
            stop_pid(pid)
        n.close()
        up.stop()


R.check("SIGUSR2 under load: 0 refused, 0 failed, the new process serves, the old exits 0",
        test_upgrade_under_load)
R.check("a failed upgrade (bad config) leaves the old process serving",
        test_failed_upgrade_keeps_serving)
R.check("socket activation: LISTEN_FDS sockets serve their listeners", test_socket_activation)
R.check("under systemd the old process hands over MAINPID", test_systemd_mainpid)
sys.exit(R.finish())
