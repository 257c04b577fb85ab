#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Targets for the HTTP/2 suites in tests/h2/: the command-line options (--target, --nghttpd,
--bin), the servers started here (nghttpd with a docroot; trafficcop-echo + trafficcop with an
h2c listener), and VmRSS sampling of the server process."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from h2util import BIG_SIZE, Target

# ---------------------------------------------------------------------------------------------
# Targets: an external server, or nghttpd / trafficcop started here

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc=None, seconds=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)  # poll interval of the connect loop, bounded by `end`
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def add_target_args(ap):
    g = ap.add_argument_group("target (one of --target, --nghttpd, --bin)")
    g.add_argument("--target", metavar="HOST:PORT", help="a running server (h2c prior knowledge)")
    g.add_argument("--tls", action="store_true", help="TLS with ALPN h2, certificate not checked")
    g.add_argument("--pid", type=int, help="the server's pid, for VmRSS")
    g.add_argument("--nghttpd", action="store_true", help="start nghttpd here (reference run)")
    g.add_argument("--bin", metavar="DIR", help="start DIR/trafficcop-echo and DIR/trafficcop here")
    g.add_argument("--big-path", help=f"path of a >= {BIG_SIZE >> 20} MiB response "
                                      f"(default /bytes/{BIG_SIZE})")
    g.add_argument("--idle", type=float, default=3.0,
                   help="the server's timeouts.idle in seconds (default 3, as --bin configures)")
    g.add_argument("--keep", action="store_true", help="keep the started servers' files")
    ap.add_argument("--timeout", type=float, default=3.0,
                    help="seconds to wait for each expected event (default 3)")


class Servers:
    """Context manager: starts the servers it was asked to start (stopping them at the end);
    `.target` is the Target to test, `.dead()` says whether the server is gone."""

    def __init__(self, args):
        self.args = args
        self.procs = []
        self.dir = None
        self.target = None

    def __enter__(self):
        a = self.args
        chosen = [x for x in (a.target, a.nghttpd, a.bin) if x]
        if len(chosen) != 1:
            sys.exit("give exactly one of --target HOST:PORT, --nghttpd, --bin DIR")
        if a.target:
            host, _, port = a.target.rpartition(":")
            self.target = Target(host, int(port), a.tls, a.pid, a.big_path, a.idle)
            return self
        self.dir = tempfile.mkdtemp(prefix="h2tests-")
        try:
            self.target = self._nghttpd() if a.nghttpd else self._trafficcop()
            return self
        except BaseException as e:
            self.__exit__(None, None, None)
            sys.exit(f"cannot start the servers: {e}")

    def _start(self, args, name):
        out = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def _certificate(self):
        """A self-signed key and certificate for 127.0.0.1: [key path, cert path]."""
        key, crt = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                        "2", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", crt],
                       check=True, capture_output=True)
        return [key, crt]

    def _nghttpd(self):
        a = self.args
        root = os.path.join(self.dir, "www")
        os.makedirs(os.path.join(root, "bytes"))
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("hello from the h2 test docroot\n" * 8)
        with open(os.path.join(root, "bytes", str(BIG_SIZE)), "wb") as f:
            f.truncate(BIG_SIZE)  # sparse: no disk space used
        port = free_port()
        cmd = ["nghttpd", "-a", "127.0.0.1", "-d", root, str(port)]
        if a.tls:
            cmd += self._certificate()
        else:
            cmd.insert(1, "--no-tls")
        p = self._start(cmd, "nghttpd")
        wait_listening(port, p)
        return Target("127.0.0.1", port, a.tls, p.pid, a.big_path, a.idle)

    def _trafficcop(self):
        a = self.args
        bindir = os.path.abspath(a.bin)
        echo_port, port = free_port(), free_port()
        echo = self._start([os.path.join(bindir, "trafficcop-echo"), "--listen",
                            f"127.0.0.1:{echo_port}"], "echo")
        wait_listening(echo_port, echo)
        cfg = os.path.join(self.dir, "trafficcop.yaml")
        if a.tls:  # h2 through ALPN
            key, crt = self._certificate()
            listener = f"""tls: {{certificates: [{{cert_file: '{crt}', key_file: '{key}'}}]}}
    http2: {{max_concurrent_streams: 100}}"""
        else:      # h2c by prior knowledge
            listener = "http2: {h2c: true, max_concurrent_streams: 100}"
        with open(cfg, "w") as f:
            f.write(f"""listeners:
  - address: 127.0.0.1:{port}
    {listener}
upstreams: [{{name: e, url: 'http://127.0.0.1:{echo_port}'}}]
routes: [{{path_prefix: /, upstream: e}}]
timeouts: {{idle: {a.idle:g}s}}
access_log: {{path: 'off'}}
""")
        p = self._start([os.path.join(bindir, "trafficcop"), "-c", cfg], "trafficcop")
        wait_listening(port, p)
        return Target("127.0.0.1", port, a.tls, p.pid, a.big_path, a.idle)

    def dead(self, target):
        """Why the server is gone (a started process exited, or --pid vanished), or None."""
        for p in self.procs:
            if p.poll() is not None:
                return f"{os.path.basename(p.args[0])} exited with {p.returncode}"
        if target.pid and not os.path.exists(f"/proc/{target.pid}"):
            return f"pid {target.pid} is gone"
        return None

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        crashed = [p for p in self.procs if p.returncode not in (0, -15)]
        for p in crashed:
            print(f"note: {p.args[0]} exited with {p.returncode}; logs in {self.dir}")
        if self.dir and not self.args.keep and not crashed:
            shutil.rmtree(self.dir, ignore_errors=True)
        elif self.dir:
            print(f"server files and logs: {self.dir}")
        return False


# ---------------------------------------------------------------------------------------------
# Memory

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssWatch:
    """Samples a process's VmRSS every 20 ms on a thread; peak and start values in KiB."""

    def __init__(self, pid):
        self.pid = pid
        self.start = self.peak = rss_kib(pid) if pid else None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if self.start is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            v = rss_kib(self.pid)
            if v is None:
                return
            self.peak = max(self.peak, v)

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()
        return False

    def growth_mib(self):
        return None if self.start is None else (self.peak - self.start) / 1024
