#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""sd_notify through the binary (issue 10.4): with NOTIFY_SOCKET set, trafficcop says READY=1
once its listeners are up, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP
reload, and STOPPING=1 when SIGTERM starts the drain, as a Type=notify unit expects. The
socket is a datagram socket this test binds, standing for systemd.

usage: systemd_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-systemd-")


def messages(sock, want, timeout=harness.DEADLINE):
    """Datagrams until one contains `want`; all of them."""
    got = []
    end = time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            got.append(sock.recv(4096).decode())
        except socket.timeout:
            break
        if want in got[-1]:
            return got
    raise AssertionError(f"no {want!r} among {got}")


def test_notify_protocol():
    path = os.path.join(TMP, "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    port = harness.free_port()
    cfg = os.path.join(TMP, "t.yaml")
    with open(cfg, "w") as f:
        f.write(f"listeners: [{{address: '127.0.0.1:{port}'}}]\n"
                "upstreams: [{name: u, url: 'http://127.0.0.1:1'}]\n"
                "routes: [{path_prefix: /, respond: {status: 200, body: ok}}]\n")
    env = dict(os.environ, NOTIFY_SOCKET=path)
    p = subprocess.Popen([A.trafficcop, "-c", cfg], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        ready = messages(sock, "READY=1")
        # READY=1 means serving: the port answers by then.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert any("STATUS=serving" in m for m in ready), ready
        p.send_signal(signal.SIGHUP)
        got = messages(sock, "READY=1")
        assert "RELOADING=1" in got[0] and "MONOTONIC_USEC=" in got[0], got
        assert "STATUS=serving; reloaded" in got[-1], got
        p.send_signal(signal.SIGTERM)
        got = messages(sock, "STOPPING=1")
        assert p.wait(harness.DEADLINE) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        sock.close()


def test_without_notify_socket():
    """No NOTIFY_SOCKET: nothing is sent and nothing fails."""
    port = harness.free_port()
    cfg = os.path.join(TMP, "t2.yaml")
    with open(cfg, "w") as f:
        f.write(f"listeners: [{{address: '127.0.0.1:{port}'}}]\n"
                "upstreams: [{name: u, url: 'http://127.0.0.1:1'}]\n"
                "routes: [{path_prefix: /, respond: {status: 200, body: ok}}]\n")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    p = subprocess.Popen([A.trafficcop, "-c", cfg], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        harness.wait_listening(port, p)
        p.send_signal(signal.SIGTERM)
        assert p.wait(harness.DEADLINE) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


R.check("READY, RELOADING and STOPPING reach NOTIFY_SOCKET", test_notify_protocol)
R.check("without NOTIFY_SOCKET it runs as before", test_without_notify_socket)
sys.exit(R.finish())
