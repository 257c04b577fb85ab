#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Memory and descriptors of trafficcop before, during and after a burst of slow readers
(issue 14.5, 14.6): what slowhttptest -X does, from Python, on loopback.

trafficcop-echo is the upstream (/bytes/N streams N bytes). N slow readers connect with a 4 KiB
receive buffer, ask for a large body and read none of it for --hold seconds; then they all
close. The proxy's RSS (VmRSS) and open descriptors are sampled before, at the peak, and at
several points after the burst. Each --bin-dir (and each --preload, e.g. jemalloc) is measured
in turn, freshly started, so the rows of one run compare.

usage: bench/slow_readers.py [--bin-dir DIR]... [--preload LIB]... [--readers N] [--body BYTES]
                             [--hold S] [--workers W] [--nofile N]
e.g.   bench/slow_readers.py --bin-dir build/bin --bin-dir /tmp/base \\
                             --preload '' --preload /usr/lib/x86_64-linux-gnu/libjemalloc.so.2
"""
import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc):
    end = time.time() + 20
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"exited before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"nothing listening on {port}")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def run_one(bin_dir, preload, a):
    echo_port, port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="tc-slow-")
    echo = subprocess.Popen([os.path.join(bin_dir, "trafficcop-echo"), "--listen",
                             f"127.0.0.1:{echo_port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    env = dict(os.environ)
    if preload:
        env["LD_PRELOAD"] = preload

    def limit():
        if a.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, a.nofile))

    err = open(os.path.join(tmp, "stderr"), "w+")
    tc = subprocess.Popen([os.path.join(bin_dir, "trafficcop"), "--listen", f"127.0.0.1:{port}",
                           "--upstream", f"http://127.0.0.1:{echo_port}", "--workers",
                           str(a.workers), "--access-log", "off"],
                          stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=limit)
    socks = []
    try:
        wait_listening(echo_port, echo)
        wait_listening(port, tc)
        # Warm: one request of each kind, so that the baseline has the steady-state caches.
        for path in ("/small", f"/bytes/{a.body}"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
                while s.recv(1 << 16):
                    pass
        time.sleep(0.5)
        row = {"rss_before": rss_kib(tc.pid), "fds_before": fds(tc.pid)}
        shed = refused = 0
        for _ in range(a.readers):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(f"GET /bytes/{a.body} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
            except OSError:
                refused += 1
                s.close()
                continue
            socks.append(s)
        peak_rss, peak_fds = 0, 0
        end = time.time() + a.hold
        while time.time() < end:
            peak_rss = max(peak_rss, rss_kib(tc.pid))
            peak_fds = max(peak_fds, fds(tc.pid))
            time.sleep(0.1)
        for s in socks:
            s.setblocking(False)
            try:
                if s.recv(12).startswith(b"HTTP/1.1 503"):
                    shed += 1
            except OSError:
                pass
        row.update(rss_peak=peak_rss, fds_peak=peak_fds, shed=shed, refused=refused)
        t0 = time.time()
        for s in socks:
            s.close()
        socks = []
        for at in (1, 3, 15):
            time.sleep(max(0, t0 + at - time.time()))
            row[f"rss_{at}s"] = rss_kib(tc.pid)
        row["fds_15s"] = fds(tc.pid)
        return row
    finally:
        for s in socks:
            s.close()
        for p in (tc, echo):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        err.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", action="append")
    ap.add_argument("--preload", action="append")
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument("--body", type=int, default=16 << 20)
    ap.add_argument("--hold", type=float, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nofile", type=int, default=0)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bins = a.bin_dir or [os.path.join(root, "build", "bin")]
    preloads = a.preload or [""]
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    print(f"{a.readers} slow readers of {a.body} bytes, held {a.hold}s, {a.workers} workers"
          + (f", RLIMIT_NOFILE {a.nofile}" if a.nofile else ""))
    print("| binary | allocator | RSS before | peak | +1s | +3s | +15s | fds before | peak "
          "| +15s | shed (503) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for b in bins:
        for pre in preloads:
            r = run_one(b, pre, a)
            mib = lambda k: f"{r[k] / 1024:.1f} MiB"  # noqa: E731
            print(f"| {b} | {os.path.basename(pre) or 'glibc'} | {mib('rss_before')} | "
                  f"{mib('rss_peak')} | {mib('rss_1s')} | {mib('rss_3s')} | {mib('rss_15s')} | "
                  f"{r['fds_before']} | {r['fds_peak']} | {r['fds_15s']} | {r['shed']} |",
                  flush=True)


if __name__ == "__main__":
    main()
