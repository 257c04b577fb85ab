# SPDX-License-Identifier: MIT
"""Shared pieces of the HTTP/2 system tests (matrix_test.py, grpc_test.py).

A named-check runner with `--only` filters, free ports, the test certificates, trafficcop
started from a YAML config (a config the binary refuses fails the check with its stderr), and
a deadline helper. Every wait here is bounded by DEADLINE.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE = 20.0  # seconds any single wait may take before the check fails


class Args:
    """`SCRIPT BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]... [flags]`."""

    def __init__(self, argv, flags=()):
        if len(argv) < 3:
            sys.exit(f"usage: {argv[0]} BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...")
        self.bin, self.src = argv[1], argv[2]
        self.quick = "--quick" in argv
        self.only = [argv[i + 1] for i, a in enumerate(argv) if a == "--only" and i + 1 < len(argv)]
        self.flags = {f: f in argv for f in flags}
        self.trafficcop = os.path.join(self.bin, "trafficcop")

    def wanted(self, name):
        return not self.only or any(o in name for o in self.only)


class Runner:
    """Runs named checks, prints `[ PASS ] name` / `[ FAIL ] name: why`, counts them."""

    def __init__(self, args):
        self.args = args
        self.passed, self.failed, self.failures = 0, 0, []

    def check(self, name, fn, *a):
        if not self.args.wanted(name):
            return
        t0 = time.time()
        try:
            fn(*a)
            self.passed += 1
            print(f"[ PASS ] {name} ({time.time() - t0:.1f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            self.failed += 1
            self.failures.append(name)
            msg = str(e)
            if len(msg) > 1500:
                msg = msg[:1500] + "..."
            print(f"[ FAIL ] {name}: {type(e).__name__}: {msg}", flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        for f in self.failures:
            print(f"  failed: {f}")
        return 1 if self.failed or not self.passed else 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RefusingPort:
    """A loopback port that is bound but not listening: connects to it are refused for as
    long as this object lives, and no other process can take the port meanwhile."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def wait_until(pred, what, timeout=DEADLINE, interval=0.01):
    """Polls `pred` until true; raises TimeoutError naming `what` after `timeout` seconds."""
    end = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() >= end:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(interval)


def log_lines(path, n):
    """The first `n` JSON access-log lines of `path`, once there are that many (the log is
    written in batches: wait for them)."""
    def read():
        try:
            with open(path) as f:
                lines = [json.loads(x) for x in f if x.strip()]
        except FileNotFoundError:
            return None
        return lines if len(lines) >= n else None
    return wait_until(read, f"{n} access-log lines of {path}")[:n]


def wait_listening(port, proc=None, timeout=DEADLINE):
    def up():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False
    wait_until(up, f"a listener on port {port}", timeout)


_certs = []


def test_certs(src):
    """The test CA and certificates (tests/system/make_certs.sh), made once per run."""
    if not _certs:
        d = tempfile.mkdtemp(prefix="tc-certs-")
        subprocess.run([os.path.join(src, "tests/system/make_certs.sh"), d], check=True,
                       timeout=60)
        _certs.append(d)
    return _certs[0]


class Trafficcop:
    """`trafficcop -c FILE` on a config written to a temp dir; `config_for(port)` returns the
    YAML for the listener port picked here. Raises with trafficcop's stderr if it exits (a
    refused config) or does not listen in time."""

    def __init__(self, binary, config_for, tmpdir=None):
        self.tmp = tmpdir or tempfile.mkdtemp(prefix="tc-h2-")
        self.port = free_port()
        self.config = config_for(self.port)
        self.path = os.path.join(self.tmp, f"trafficcop-{self.port}.yaml")
        with open(self.path, "w") as f:
            f.write(self.config)
        self.err_path = self.path + ".stderr"
        self.err = open(self.err_path, "w+")
        self.p = subprocess.Popen([binary, "-c", self.path], stdout=subprocess.DEVNULL,
                                  stderr=self.err)
        try:
            wait_listening(self.port, self.p)
        except Exception as e:
            self.stop()
            raise RuntimeError(f"trafficcop did not start ({e}); config:\n{self.config}\n"
                               f"stderr:\n{self.stderr()[-2000:]}") from None

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()
        return self.p.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run(args, timeout=60, **kw):
    """A client process with a hard timeout; stdout/stderr captured (bytes)."""
    env = dict(os.environ)
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(k, None)
    return subprocess.run(args, capture_output=True, timeout=timeout, env=env, **kw)
