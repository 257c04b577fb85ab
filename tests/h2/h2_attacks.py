#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""HTTP/2 attack-resistance suite: one test per row of the "Abuse limits" table in
docs/http2.md.

Each test opens a bystander connection first (a POST whose body is still being sent), runs the
attack on its own connection and checks three things:
  1. the server's answer: the GOAWAY code of the table (or the stream reset, for the window row);
  2. the server's VmRSS (sampled every 20 ms when the pid is known) grows by less than
     --rss-mib over the test;
  3. the bystander then finishes its POST and gets 200, and a new GET on it gets 200 too.
Every count and wait is bounded. Exit status 1 on any failure.

  /usr/bin/python3 tests/h2/h2_attacks.py --nghttpd                # reference run
  /usr/bin/python3 tests/h2/h2_attacks.py --bin build-dev/bin      # trafficcop + echo
  /usr/bin/python3 tests/h2/h2_attacks.py --target 127.0.0.1:8080 --pid 1234
"""
import argparse
import os
import socket
import ssl
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2util import *  # noqa: E402,F401,F403
from h2servers import RssWatch, Servers, add_target_args  # noqa: E402

RESET_LIMIT = 200          # client-reset streams per 10 s before GOAWAY(ENHANCE_YOUR_CALM)
CONTINUATION_LIMIT = 8     # CONTINUATION frames per header block
EMPTY_FRAME_LIMIT = 100    # empty DATA frames per connection
# A SETTINGS / PING flood sends at most this much without reading, then reads. It must fill
# the server's socket buffers with acks and then some (a server that writes acks between
# reads, e.g. per TLS record, detects the flood only after several MB), and stay below what
# the server drains while lingering to deliver its GOAWAY (trafficcop: 16 MiB / 1 s): a
# GOAWAY cannot reach a client whose receive window stays shut.
ACK_FLOOD_BYTES = 12 << 20
FLOOD_SECONDS = 20.0       # cap on the time a flood may take, and on the wait for its GOAWAY
DEFAULT_HEADER_LIST = 16384  # limits.max_header_bytes, when the server does not advertise one


class Bystander:
    """A connection opened before the attack with a request in flight (stream 1, body half
    sent), so an idle timeout cannot close it while the attack runs."""

    def __init__(self, t, timeout):
        self.c = connect(t, timeout=timeout)
        self.c.request(1, "/", "POST", [("content-length", "10")], end_stream=False)
        self.c.send(data(1, b"first"))

    def check(self):
        c = self.c
        c.send(data(1, b"later", end_stream=True))
        r = expect_response(c, 1)
        c.request(3)
        r3 = expect_response(c, 3)
        if (r.status, r3.status) != ("200", "200"):
            raise Fail(f"bystander got {r.status} and {r3.status}")
        return "bystander 200 + 200"

    def close(self):
        self.c.close()


def fast_drain(c, deadline, want=(GOAWAY,)):
    """Reads frames without tracking them (floods answer with hundreds of thousands) until a
    frame of a `want` type: returns (frame or None at close, frames read). Raises Timeout."""
    n = 0
    while True:
        buf = c.inbuf
        off = 0
        while len(buf) - off >= 9:
            length = int.from_bytes(buf[off:off + 3], "big")
            if len(buf) - off < 9 + length:
                break
            if buf[off + 3] in want:
                f = Rx(buf[off + 3], buf[off + 4],
                       int.from_bytes(buf[off + 5:off + 9], "big") & 0x7FFFFFFF,
                       bytes(buf[off + 9:off + 9 + length]))
                del buf[:off + 9 + length]
                return f, n
            off += 9 + length
            n += 1
        del buf[:off]
        if c.eof:
            return None, n
        c._fill(deadline)


def flood(c, frame, max_frames, seconds):
    """Sends frame over and over without reading. Returns (frames sent, why it stopped)."""
    per_write = min(1000, max_frames)
    chunk = frame * per_write
    sent = 0
    end = time.monotonic() + seconds
    c.sock.settimeout(1.0)  # no progress for 1 s: the server stopped reading
    while sent < max_frames:
        if time.monotonic() > end:
            return sent, f"{seconds:.0f} s passed"
        try:
            c.sock.sendall(chunk)
        except socket.timeout:
            return sent, "the server stopped reading"
        except (OSError, ssl.SSLError) as e:
            return sent, f"send failed: {type(e).__name__}"
        sent += per_write
    return sent, "cap reached"


def goaway_after_flood(c, code, what):
    """After a flood: read what the server sent (fast), expect GOAWAY(code) and the close."""
    try:
        f, n = fast_drain(c, c.deadline(FLOOD_SECONDS))
    except Timeout:
        alive = "connection still open"
        raise Fail(f"{what}: no GOAWAY, {alive} after {FLOOD_SECONDS:.0f} s") from None
    if f is None:
        raise Fail(f"{what}: closed ({c.eof}) without GOAWAY after {n} frames read (a client "
                   f"that is not reading only gets the GOAWAY if the server stops reading and "
                   f"flushes it before closing, instead of closing with input unread)")
    if f.code != code:
        raise Fail(f"{what}: got {f}, expected GOAWAY({errname(code)})")
    try:
        fast_drain(c, c.deadline(), want=())
    except Timeout:
        raise Fail(f"{what}: {f} but the connection stayed open") from None
    return f"{what}; GOAWAY({errname(code)}) after {n} frames read, closed"


# --- the attacks -------------------------------------------------------------------------------

def rapid_reset(t, args):
    """CVE-2023-44487: HEADERS then RST_STREAM(CANCEL), over and over."""
    c = connect(t, timeout=args.timeout)
    blk = block(t.request())
    sid = 1

    def burst(n):
        nonlocal sid
        frames = []
        for _ in range(n):
            frames += [headers(sid, blk), rst(sid, CANCEL)]
            sid += 2
        return c.send(*frames)

    burst(RESET_LIMIT)
    try:
        expect_alive(c)
    except Fail as e:
        raise Fail(f"{RESET_LIMIT} resets (the limit itself) already ended the connection: "
                   f"{e}") from None
    for _ in range(10):  # up to 1000 more, 100 per write
        if not burst(100):
            break
    got = goaway_or_close(c, ENHANCE_YOUR_CALM, f"{(sid - 1) // 2} resets sent")
    # The GOAWAY names the last stream processed: the limit tripped near RESET_LIMIT + 1
    # (twice that allows for a server that counts per read batch or refills a token bucket).
    if c.goaway is not None and c.goaway.last_sid > 4 * RESET_LIMIT + 1:
        raise Fail(f"{got}, but only after stream {c.goaway.last_sid} "
                   f"({(c.goaway.last_sid + 1) // 2} streams; the limit is {RESET_LIMIT})")
    return f"{got} (last stream {c.goaway.last_sid})" if c.goaway else got


def goaway_or_close(c, code, what, seconds=10.0):
    """GOAWAY(code) (any code if None) and the connection closed, within seconds."""
    try:
        codes = () if code is None else (code,)
        return what + ": " + expect_conn_error(c, *codes, seconds=seconds,
                                               ignore_rst=True, need_goaway=True)
    except Fail as e:
        raise Fail(f"{what}: {e}") from None


def continuation_flood(t, args):
    """A header block continued forever (CVE-2024-27316 / CVE-2024-28182)."""
    c = connect(t, timeout=args.timeout)
    req = block(t.request())
    # At the limit: HEADERS + 8 CONTINUATION frames make one request, answered.
    frames = [headers(1, req, end_headers=False)]
    for i in range(CONTINUATION_LIMIT):
        frames.append(continuation(1, hp_lit(f"x-part-{i}", "v" * 100),
                                   end_headers=i == CONTINUATION_LIMIT - 1))
    c.send(*frames)
    try:
        expect_response(c, 1)
    except Fail as e:
        raise Fail(f"a block of {CONTINUATION_LIMIT} CONTINUATION frames was refused: {e}") \
            from None
    # One past it, with a small header list: the connection ends.
    frames = [headers(3, req, end_headers=False)]
    frames += [continuation(3, hp_lit(f"x-part-{i}", "v" * 100), end_headers=False)
               for i in range(CONTINUATION_LIMIT + 1)]
    c.send(*frames)
    results, failed = [], False
    try:
        results.append(goaway_or_close(c, None, f"{CONTINUATION_LIMIT + 1} small CONTINUATION "
                                                f"frames", seconds=args.timeout))
    except Fail as e:
        results.append(str(e))
        failed = True
    # A flood on a new connection: up to 200 CONTINUATION frames of 16 KB, never ending.
    c = connect(t, timeout=args.timeout)
    c.send(headers(1, req, end_headers=False))
    size = c.server_settings.get(S_MAX_FRAME_SIZE, 16384) - 20
    sent = 0
    for i in range(200):
        if not c.send(continuation(1, hp_lit(f"x-flood-{i}", "f" * size), end_headers=False)):
            break
        sent += 1
    try:
        results.append(goaway_or_close(c, None, f"flood: {sent} CONTINUATION frames sent"))
    except Fail as e:
        results.append(str(e))
        failed = True
    if failed:
        raise Fail("; ".join(results))
    return "; ".join(results)


def ack_flood(frame, name):
    def run(t, args):
        c = Conn(t, timeout=args.timeout, rcvbuf=4096)
        c.handshake()
        t0 = time.monotonic()
        sent, why = flood(c, frame, ACK_FLOOD_BYTES // len(frame), FLOOD_SECONDS)
        what = f"{sent} {name} sent in {time.monotonic() - t0:.1f} s ({why})"
        return goaway_after_flood(c, ENHANCE_YOUR_CALM, what)
    return run


def empty_data_flood(t, args):
    """DATA frames without payload and without END_STREAM on an open request."""
    c = connect(t, timeout=args.timeout)
    c.request(1, "/", "POST", end_stream=False)
    c.send(*[data(1, b"") for _ in range(EMPTY_FRAME_LIMIT)])
    try:
        expect_alive(c)
    except Fail as e:
        raise Fail(f"{EMPTY_FRAME_LIMIT} empty DATA frames (the limit itself) already ended "
                   f"the connection: {e}") from None
    c.send(data(1, b""))
    try:
        return goaway_or_close(c, ENHANCE_YOUR_CALM, f"empty DATA frame {EMPTY_FRAME_LIMIT + 1}",
                               seconds=args.timeout)
    except Fail as e:
        first = str(e)
    # Not at the limit: does a flood of 1000 more end it at all?
    sent = EMPTY_FRAME_LIMIT + 1
    for _ in range(10):
        if not c.send(*[data(1, b"") for _ in range(100)]):
            break
        sent += 100
    try:
        later = goaway_or_close(c, ENHANCE_YOUR_CALM, f"{sent} sent")
    except Fail as e:
        later = str(e)
    raise Fail(f"{first}; then {later}")


def hpack_bomb(t, args):
    """One big field in the dynamic table, then a block that references it again and again:
    a few KB on the wire, megabytes decoded."""
    c = connect(t, timeout=args.timeout)
    limit = c.server_settings.get(S_MAX_HEADER_LIST_SIZE, DEFAULT_HEADER_LIST)
    value = "a" * 1000
    entry = len("x-bomb") + len(value) + 32  # RFC 9113 §6.5.2 size of one field
    problems, notes = [], []
    # 1: the field enters the table with a normal request.
    c.send(headers(1, block(t.request()) + hp_lit_indexed("x-bomb", value)))
    expect_response(c, 1)
    # 2: between 1x and 4x the limit: 431 on that stream, the connection stays.
    refs = (limit * 2) // entry + 1
    c.send(headers(3, block(t.request()) + hp_indexed(62) * refs))
    what = f"{refs * entry}-byte header list (limit {limit})"
    try:
        r = expect_response(c, 3)
        (notes if r.status == "431" else problems).append(f"{what}: :status {r.status}")
        expect_alive(c)
    except Fail as e:
        problems.append(f"{what}, expected 431: {e}")
        c = connect(t, timeout=args.timeout)  # part 3 on a fresh connection
        c.send(headers(1, block(t.request()) + hp_lit_indexed("x-bomb", value)))
        expect_response(c, 1)
    # 3: far beyond 4x: a 3000-byte field referenced ~13000 times (~40 MB decoded).
    big = hp_lit_indexed("x-bomb2", "b" * 3000)
    room = c.server_settings.get(S_MAX_FRAME_SIZE, 16384) - len(big) - 200
    blk = block(t.request()) + big + hp_indexed(62) * room
    c.send(headers(5, blk))
    decoded = room * (3000 + 7 + 32)
    try:
        notes.append(goaway_or_close(c, ENHANCE_YOUR_CALM,
                                     f"{len(blk)}-byte block decoding to {decoded >> 20} MiB"))
    except Fail as e:
        problems.append(str(e))
    if problems:
        raise Fail("; ".join(problems + [f"(ok: {n})" for n in notes]))
    return "; ".join(notes)


def window_never_opened(t, args):
    """A large response to a client that never opens its stream window."""
    c = connect(t, timeout=args.timeout)  # the default window: 65535 octets, never updated
    c.auto_window = False
    start = time.monotonic()
    c.request(1, t.big_path)
    wait_s = t.idle * 2 + 5
    try:
        f = wait_for(c, lambda f: f.type == RST_STREAM and f.sid == 1, "RST_STREAM",
                     seconds=wait_s)
    except Fail as e:
        raise Fail(f"stream not reset within {wait_s:.0f} s (idle {t.idle:g} s): {e}") from None
    took = time.monotonic() - start
    if f.code != CANCEL:
        raise Fail(f"got {f} after {took:.1f} s, expected RST_STREAM(CANCEL)")
    r = c.responses[1]
    return f"RST_STREAM(CANCEL) after {took:.1f} s, {len(r.body)} body bytes sent"


ATTACKS = [
    ("rapid-reset", "rapid reset (CVE-2023-44487)",
     f"GOAWAY(ENHANCE_YOUR_CALM) past {RESET_LIMIT} resets / 10 s", rapid_reset),
    ("continuation", "CONTINUATION flood",
     f"GOAWAY past {CONTINUATION_LIMIT} CONTINUATION frames, closed", continuation_flood),
    ("settings-flood", "SETTINGS flood, client never reads",
     "GOAWAY(ENHANCE_YOUR_CALM)", ack_flood(settings(), "SETTINGS")),
    ("ping-flood", "PING flood, client never reads",
     "GOAWAY(ENHANCE_YOUR_CALM)", ack_flood(ping(b"floodpng"), "PING")),
    ("empty-data", "empty DATA frames",
     f"GOAWAY(ENHANCE_YOUR_CALM) past {EMPTY_FRAME_LIMIT}", empty_data_flood),
    ("hpack-bomb", "HPACK bomb",
     "431 past max_header_list_size, GOAWAY(ENHANCE_YOUR_CALM) past 4x", hpack_bomb),
    ("window", "window never opened (64 MiB response)",
     "RST_STREAM(CANCEL) after timeouts.idle", window_never_opened),
]


def run_one(t, args, attack):
    key, title, expect, fn = attack
    problems, notes = [], []
    bystander = None
    try:
        bystander = Bystander(t, args.timeout)
    except Exception as e:  # noqa: BLE001
        return [f"bystander could not start: {e}"], notes
    with RssWatch(t.pid) as rss:
        try:
            notes.append(fn(t, args))
        except Fail as e:
            problems.append(str(e))
        except Exception as e:  # noqa: BLE001 - report, keep going
            problems.append(f"{type(e).__name__}: {e}")
            if args.verbose:
                traceback.print_exc()
        try:
            notes.append(bystander.check())
        except Fail as e:
            problems.append(f"bystander: {e}")
        finally:
            bystander.close()
    growth = rss.growth_mib()
    if growth is None:
        notes.append("RSS not checked (no pid)")
    else:
        line = f"RSS {rss.start >> 10} MiB, peak +{growth:.1f} MiB (bound {args.rss_mib})"
        (problems if growth > args.rss_mib else notes).append(line)
    return problems, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_target_args(ap)
    ap.add_argument("--rss-mib", type=float, default=32.0,
                    help="allowed VmRSS growth per test in MiB (default 32)")
    ap.add_argument("--only", action="append", default=[],
                    help="run the tests whose key contains this: " +
                    ", ".join(a[0] for a in ATTACKS))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    attacks = [a for a in ATTACKS if not args.only or any(o in a[0] for o in args.only)]
    failed = []
    with Servers(args) as servers:
        t = servers.target
        try:
            Bystander(t, args.timeout).check()
        except (Fail, OSError) as e:
            print(f"the server is not usable before any test: {e}")
            return 2
        print(f"target {t.authority} ({'TLS' if t.tls else 'h2c'}), pid {t.pid}, "
              f"{len(attacks)} tests", flush=True)
        for attack in attacks:
            t0 = time.monotonic()
            problems, notes = run_one(t, args, attack)
            why = servers.dead(t)
            if why:
                problems.append(f"server gone: {why}")
            verdict = "FAIL" if problems else "PASS"
            print(f"[{verdict}] {attack[0]:14} {attack[1]} "
                  f"({time.monotonic() - t0:.1f} s)\n         expected {attack[2]}", flush=True)
            for p in problems:
                print(f"         FAILED: {p}")
            for n in notes:
                print(f"         ok: {n}")
            if problems:
                failed.append(attack[0])
    print(f"\n{len(attacks) - len(failed)} passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
