#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault soak: N requests through trafficcop against an upstream that misbehaves on purpose,
asserting that no client ever gets a wrong body and that the proxy's descriptors and memory
come back after idle.

    tests/soak/soak.py --bin BUILD/bin [--requests 100000] [--concurrency 32] [--seed 1]
                       [--rss-tolerance-mib 32] [--fd-tolerance 4] [--sanitized]

Everything is on 127.0.0.1, on ports picked here; the run is bounded (--max-seconds, default
900) and stops by itself. Two processes besides the proxy: the fault upstream (asyncio, its own
process) and the load generator (asyncio, this one).

Fault mix, per request, chosen from a seeded RNG (the client tells the upstream by the path):
  ok_get          GET of N deterministic bytes (0..256 KiB), keep-alive
  ok_post         POST of N random bytes, echoed back by the upstream
  client_abort_req    the client sends the head and part of a declared body, then closes
  client_abort_resp   the client reads the head and part of a 1 MiB body, then closes (RST)
  up_reset_head   the upstream reads the request and resets the connection (RST) with no answer
  up_reset_body   the upstream sends the head and half the body, then resets
  up_close_head   the upstream reads the request and closes (FIN) with no answer
  up_close_body   the upstream sends the head (Content-Length N) and half the body, then closes
  up_stall_head   the upstream waits past the proxy's response_timeout before any answer
  up_stall_body   the upstream sends the head and half the body, then waits past it

What is asserted:
  - 0 wrong bodies: every response that completes by its framing with status 200 has exactly
    the expected bytes (SHA-256 of the body the client knows it asked for);
  - no fault ever completes as a 200 with a complete body (a cut upstream body must reach the
    client cut, never re-framed as whole);
  - up_*_head faults get 502 (reset, close) or 504 (stall) or are cut; ok_* get 200 (at most
    0.1 % of them may fail, e.g. a pooled connection the upstream closed at that moment);
  - after the run and an idle period (the proxy's idle timeouts are 1 s), the proxy's open
    descriptors (/proc/PID/fd) are at most --fd-tolerance above the warm baseline taken the
    same way after a warm-up, and its VmRSS at most --rss-tolerance-mib above that baseline.
Prints one summary line per fault kind and the figures; exit 0 on success, 1 on failure.
"""
import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

KINDS = [  # (kind, weight per 1000)
    ("ok_get", 690), ("ok_post", 100),
    ("client_abort_req", 40), ("client_abort_resp", 40),
    ("up_reset_head", 25), ("up_reset_body", 25),
    ("up_close_head", 25), ("up_close_body", 25),
    ("up_stall_head", 10), ("up_stall_body", 10),
]
RESPONSE_TIMEOUT_MS = 300  # the proxy's upstream response_timeout
STALL_S = 1.2              # how long a stalling upstream waits: well past the timeout, so
                           # that a proxy starved of CPU (sanitizers) still times out first
BLOCK = random.Random(20240229).randbytes(65521)


def pattern(n, salt):
    """n deterministic bytes for a request: BLOCK rotated by `salt`, repeated."""
    off = salt % len(BLOCK)
    rot = BLOCK[off:] + BLOCK[:off]
    return (rot * (n // len(rot) + 1))[:n]


# ---------------------------------------------------------------- the fault upstream

async def up_read_head(r):
    head = await r.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    fields = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    return method, target, fields


def up_reset(w):
    sock = w.get_extra_info("socket")
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    w.transport.abort()


async def up_conn(r, w):
    try:
        while True:
            try:
                method, target, fields = await up_read_head(r)
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
                return
            body = b""
            cl = int(fields.get("content-length", "0") or 0)
            if cl:
                try:
                    body = await r.readexactly(cl)
                except asyncio.IncompleteReadError:
                    return  # the client aborted mid-request and the proxy passed that on
            _, kind, n, salt = target.split("?")[0].split("/")[:4]
            n, salt = int(n), int(salt)
            data = body if kind == "ok_post" else pattern(n, salt)
            head = (f"HTTP/1.1 200 OK\r\nContent-Length: {len(data)}\r\n"
                    f"Content-Type: application/octet-stream\r\n\r\n").encode()
            if kind in ("ok_get", "ok_post", "client_abort_resp", "client_abort_req"):
                w.write(head + data)
                await w.drain()
                continue
            if kind == "up_reset_head":
                up_reset(w)
                return
            if kind == "up_close_head":
                w.close()
                return
            if kind == "up_stall_head":
                await asyncio.sleep(STALL_S)
                w.close()
                return
            w.write(head + data[: len(data) // 2])
            await w.drain()
            if kind == "up_reset_body":
                await asyncio.sleep(0.01)
                up_reset(w)
            elif kind == "up_close_body":
                w.close()
            else:  # up_stall_body
                await asyncio.sleep(STALL_S)
                w.close()
            return
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        if not w.is_closing():
            w.close()


def upstream_main(sock):
    async def main():
        srv = await asyncio.start_server(up_conn, sock=sock, limit=1 << 20, backlog=512)
        async with srv:
            await srv.serve_forever()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


# ---------------------------------------------------------------- the load generator

class Stats:
    def __init__(self):
        self.by_kind = {k: {} for k, _ in KINDS}
        self.wrong_bodies = 0
        self.keepalive_retries = 0
        self.fault_completed = 0
        self.problems = []

    def add(self, kind, outcome):
        d = self.by_kind[kind]
        d[outcome] = d.get(outcome, 0) + 1

    def problem(self, msg):
        if len(self.problems) < 20:
            self.problems.append(msg)


async def read_response(r, deadline):
    """(status, body, complete): complete when the body ended by its framing."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), deadline)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    fields = {}
    for l in lines[1:]:
        if ":" in l:
            k, v = l.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    body = bytearray()
    try:
        if "content-length" in fields:
            body += await asyncio.wait_for(r.readexactly(int(fields["content-length"])), deadline)
        elif fields.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await asyncio.wait_for(r.readuntil(b"\r\n"), deadline)).split(b";")[0], 16)
                if size == 0:
                    await asyncio.wait_for(r.readuntil(b"\r\n"), deadline)  # no trailers sent
                    break
                body += await asyncio.wait_for(r.readexactly(size + 2), deadline)
                del body[-2:]
        else:
            body += await asyncio.wait_for(r.read(), deadline)  # close-delimited
    except (asyncio.IncompleteReadError, ConnectionError):
        return status, bytes(body), False, fields
    return status, bytes(body), True, fields


class Client:
    def __init__(self, port, stats, timeout):
        self.port, self.stats, self.timeout = port, stats, timeout
        self.conn = None

    async def close(self, reset=False):
        if self.conn:
            r, w = self.conn
            self.conn = None
            if reset:
                up_reset(w)
            else:
                w.close()
            try:
                await w.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def one(self, kind, i, rng, retry=True):
        reused = self.conn is not None
        if self.conn is None:
            self.conn = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, limit=1 << 21), self.timeout)
        r, w = self.conn
        n = rng.choice((0, 1, 100, 4096, 16384, 65536, 200000)) if kind.startswith("ok") else 65536
        if kind == "client_abort_resp":
            n = 1 << 20
        path = f"/{kind}/{n}/{i}"
        body = rng.randbytes(n) if kind == "ok_post" else b""
        if kind == "client_abort_req":
            w.write(f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n".encode()
                    + b"x" * rng.randrange(0, 50000))
            await w.drain()
            await self.close(reset=rng.random() < 0.5)
            self.stats.add(kind, "aborted")
            return
        method = "POST" if kind == "ok_post" else "GET"
        w.write(f"{method} {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)
        await w.drain()
        if kind == "client_abort_resp":
            await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), self.timeout)
            await asyncio.wait_for(r.read(rng.randrange(1, 200000)), self.timeout)
            await self.close(reset=True)
            self.stats.add(kind, "aborted")
            return
        try:
            status, got, complete, fields = await read_response(r, self.timeout)
        except asyncio.TimeoutError:
            await self.close(reset=True)
            self.stats.add(kind, "client_timeout")
            self.stats.problem(f"{path}: no answer within {self.timeout}s")
            return
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            await self.close(reset=True)
            # RFC 9112 §9.3.1: a keep-alive connection the proxy closed as idle just as the
            # request went out; a client retries an idempotent request once on a new one.
            # The proxy's idle timeout is 1 s: a starved client (sanitizers, a loaded
            # machine) can take that long between two requests.
            got_nothing = not getattr(e, "partial", b"")
            if reused and retry and method == "GET" and got_nothing:
                self.stats.keepalive_retries += 1
                await self.one(kind, i, rng, retry=False)
                return
            self.stats.add(kind, "cut_before_head")
            return
        if not complete or fields.get("connection", "").lower() == "close":
            await self.close()
        want = body if kind == "ok_post" else pattern(n, i)
        if status == 200 and complete:
            if hashlib.sha256(got).digest() != hashlib.sha256(want).digest():
                self.stats.wrong_bodies += 1
                self.stats.problem(f"{path}: WRONG BODY ({len(got)} bytes, want {len(want)})")
            if not kind.startswith("ok"):
                self.stats.fault_completed += 1
                self.stats.problem(f"{path}: a cut upstream body reached the client as whole")
        outcome = f"{status}" + ("" if complete else " cut")
        self.stats.add(kind, outcome)


async def load(port, total, concurrency, seed, stats, first=0):
    rng_kinds = random.Random(seed)
    population = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    queue = [(first + i, rng_kinds.choices(population, weights)[0]) for i in range(total)]
    it = iter(queue)

    async def worker(wid):
        c = Client(port, stats, timeout=10.0)
        rng = random.Random(seed * 1000 + wid)
        for i, kind in it:
            try:
                await c.one(kind, i, rng)
            except (ConnectionError, OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as e:
                await c.close(reset=True)
                stats.add(kind, f"error {type(e).__name__}")
        await c.close()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))


# ---------------------------------------------------------------- the proxy and the checks

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_figures(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    return fds, rss


def settle(pid, seconds):
    """Idle: wait `seconds` (past the idle timeouts), then read fds and RSS."""
    time.sleep(seconds)
    return proc_figures(pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="directory holding the trafficcop binary")
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--fd-tolerance", type=int, default=4)
    ap.add_argument("--rss-tolerance-mib", type=int, default=32)
    ap.add_argument("--max-seconds", type=int, default=900)
    ap.add_argument("--sanitized", action="store_true",
                    help="ASan/UBSan binary: RSS tolerance 512 MiB (the quarantine keeps freed "
                         "blocks resident), longer client timeouts")
    ap.add_argument("--json", help="also write the figures here")
    a = ap.parse_args()
    if a.sanitized:
        a.rss_tolerance_mib = max(a.rss_tolerance_mib, 512)
    started = time.time()

    usock = socket.socket()
    usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    usock.bind(("127.0.0.1", 0))
    usock.listen(512)
    uport = usock.getsockname()[1]
    up = multiprocessing.get_context("fork").Process(target=upstream_main, args=(usock,),
                                                      daemon=True)
    up.start()
    usock.close()

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="tc-soak-")
    cfg = os.path.join(tmp, "soak.yaml")
    with open(cfg, "w") as f:
        f.write(f"""workers: {a.workers}
listeners:
  - address: 127.0.0.1:{port}
upstreams:
  - name: faulty
    url: http://127.0.0.1:{uport}
    response_timeout: {RESPONSE_TIMEOUT_MS}ms
    idle_timeout: 1s
    retries: {{attempts: 0}}
    outlier_detection: {{consecutive_failures: 0}}
routes:
  - path_prefix: /
    upstream: faulty
timeouts: {{idle: 1s, read_header: 2s, read_body: 1s}}
""")
    err = open(os.path.join(tmp, "trafficcop.stderr"), "w+")
    proxy = subprocess.Popen([os.path.join(a.bin, "trafficcop"), "-c", cfg],
                             stdout=subprocess.DEVNULL, stderr=err)
    ok = True
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proxy.poll() is not None:
                    raise SystemExit("trafficcop exited at start; see " + err.name)
                time.sleep(0.05)
        stats = Stats()
        warm = max(200, a.requests // 50)
        asyncio.run(asyncio.wait_for(load(port, warm, a.concurrency, a.seed + 7, Stats(), 10**9),
                                     a.max_seconds))
        fd0, rss0 = settle(proxy.pid, 2.5)
        t0 = time.time()
        asyncio.run(asyncio.wait_for(load(port, a.requests, a.concurrency, a.seed, stats),
                                     max(1, a.max_seconds - (time.time() - started))))
        elapsed = time.time() - t0
        fd_peak, rss_peak = proc_figures(proxy.pid)
        fd1, rss1 = settle(proxy.pid, 2.5)
        if proxy.poll() is not None:
            ok = False
            print(f"FAIL: trafficcop exited with {proxy.returncode}")

        total = 0
        print(f"{a.requests} requests in {elapsed:.1f}s ({a.requests / elapsed:.0f}/s), "
              f"concurrency {a.concurrency}, seed {a.seed}")
        ok_fail = 0
        ok_total = 0
        for kind, _ in KINDS:
            d = stats.by_kind[kind]
            n = sum(d.values())
            total += n
            print(f"  {kind:18} {n:7}  " + ", ".join(f"{k}: {v}" for k, v in sorted(d.items())))
            if kind.startswith("ok"):
                ok_total += n
                ok_fail += n - d.get("200", 0)
            if kind in ("up_reset_head", "up_close_head"):
                bad = {k: v for k, v in d.items() if k not in ("502", "502 cut")}
                if bad:
                    ok = False
                    print(f"FAIL: {kind} answered other than 502: {bad}")
            if kind == "up_stall_head":
                bad = {k: v for k, v in d.items() if k not in ("504",)}
                if bad:
                    ok = False
                    print(f"FAIL: {kind} answered other than 504: {bad}")
            if kind in ("up_reset_body", "up_close_body", "up_stall_body"):
                bad = {k: v for k, v in d.items() if k not in ("200 cut", "cut_before_head")}
                if bad:
                    ok = False
                    print(f"FAIL: {kind} not cut: {bad}")
        if total != a.requests:
            ok = False
            print(f"FAIL: {total} requests accounted for, {a.requests} sent")
        print(f"wrong bodies: {stats.wrong_bodies}; faults completed as whole: "
              f"{stats.fault_completed}; ok requests failed: {ok_fail} of {ok_total}; "
              f"GETs retried after a keep-alive close: {stats.keepalive_retries}")
        if stats.wrong_bodies or stats.fault_completed:
            ok = False
            print("FAIL: wrong bodies")
        if ok_fail > max(1, ok_total // 1000):
            ok = False
            print("FAIL: more than 0.1 % of the good requests failed")
        print(f"fds: {fd0} warm idle, {fd_peak} at the end of the load, {fd1} after idle "
              f"(tolerance +{a.fd_tolerance})")
        print(f"VmRSS MiB: {rss0} warm idle, {rss_peak} at the end of the load, {rss1} after idle "
              f"(tolerance +{a.rss_tolerance_mib})")
        if fd1 > fd0 + a.fd_tolerance:
            ok = False
            print("FAIL: descriptors grew")
        if rss1 > rss0 + a.rss_tolerance_mib:
            ok = False
            print("FAIL: RSS grew")
        for p in stats.problems:
            print("  " + p)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"requests": a.requests, "seconds": elapsed, "by_kind": stats.by_kind,
                           "wrong_bodies": stats.wrong_bodies, "fd": [fd0, fd_peak, fd1],
                           "rss_mib": [rss0, rss_peak, rss1]}, f, indent=1)
    finally:
        if proxy.poll() is None:
            proxy.send_signal(signal.SIGTERM)
            try:
                proxy.wait(15)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait()
        up.terminate()
        up.join(5)
        err.seek(0)
        tail = err.read()[-3000:]
        err.close()
        if "ERROR: AddressSanitizer" in tail or "runtime error:" in tail:
            ok = False
            print("FAIL: sanitizer report:\n" + tail)
    print("PASS" if ok else "FAIL", f"({time.time() - started:.0f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
