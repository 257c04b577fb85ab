#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""HTTP/2 stream and connection lifecycle through trafficcop, beyond the matrix: each check
asserts on what the upstream (h2_upstream.Upstream, which records every request and connection)
saw and on what the h2 client (h2_client.H2Client, h2c by prior knowledge) got.

  rst-cancels-one/{h1,h2}  a client RST_STREAM cancels that exchange only (docs/http2.md): of
                           3 gated streams on one connection the reset one is cancelled
                           upstream (h1: its connection closed; h2: RST_STREAM(CANCEL), the
                           connection stays up), the others complete whole; access log 499
  drain-goaway/{h1,h2}     SIGTERM: GOAWAY(NO_ERROR) notice, then the final one covering the
                           in-flight stream, which completes; a stream opened after the final
                           GOAWAY is not served; exit 0
  idle/no-streams          timeouts.idle: a connection without streams gets GOAWAY(NO_ERROR)
                           and EOF after ~1 s, also after a completed exchange
  idle/slow-stream         ... but not while a stream waits for its head or its body
  settings                 listener http2 keys in the SETTINGS frame; an 8th stream beyond
                           max_concurrent_streams 7 is refused and never forwarded; 431 beyond
                           max_header_list_size
  pool/multiplex-{warm,cold}  20 concurrent requests share ONE upstream h2 connection
  pool/peer-limit-2        the upstream's SETTINGS_MAX_CONCURRENT_STREAMS 2 is obeyed
  pool/own-limit-3         upstream `max_concurrent_streams: 3` is obeyed
  pool/upstream-goaway     an upstream GOAWAY: the in-flight stream completes, new requests go
                           to a new connection
  pool/refused-retry       RST_STREAM(REFUSED_STREAM) from the upstream: the GET is retried
                           on another connection
  pool/response-timeout-cancel  a response_timeout resets that upstream stream only
  pool/idle-timeout        `idle_timeout: 1s`: the proxy closes its idle upstream connection

usage: h2_lifecycle_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream, pattern_sha256  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
QUICK = A.quick
DL = harness.DEADLINE
TMP = tempfile.mkdtemp(prefix="tc-h2life-")
BODY = (64 if QUICK else 256) << 10  # response body of the gated streams
PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 1, 7, 8
NOTICE = 2 ** 31 - 1  # the last stream id of a shutdown notice GOAWAY
MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_HEADER_LIST_SIZE = 3, 4, 6
_ids = itertools.count(1)


def new_id(tag):
    return f"{tag}-{next(_ids)}"


def note(msg):
    print(f"         note: {msg}", flush=True)


def hs(path, tid=None, extra=()):
    return base_headers("GET", path, "lifecycle.test", "http",
                        ([("x-test-id", tid)] if tid else []) + list(extra))


def start(es, ups, listener="h2c: true", top=(), log=None):
    """trafficcop (stopped by the ExitStack `es`) with an h2c listener and a route /NAME per
    upstream; `ups` is [(name, Upstream, extra upstream keys)]."""
    def config(port):
        lines = ["workers: 1", "host_header: keep",
                 f"access_log: {{path: '{log}', format: json}}" if log
                 else "access_log: {path: 'off'}", *top, "listeners:",
                 f"  - address: '127.0.0.1:{port}'", f"    http2: {{{listener}}}", "upstreams:"]
        for name, up, extra in ups:
            lines.append(f"  - {{name: {name}, url: 'http://127.0.0.1:{up.port}'"
                         f"{', ' + extra if extra else ''}}}")
        lines.append("routes:")
        lines += [f"  - {{path_prefix: /{name}, upstream: {name}}}" for name, _, _ in ups]
        return "\n".join(lines) + "\n"
    tc = harness.Trafficcop(A.trafficcop, config, TMP)
    es.callback(tc.stop)
    return tc


def upstream(es, **kw):
    up = Upstream(**kw)
    es.callback(up.stop)
    return up


def client(es, tc, **kw):
    return es.enter_context(H2Client(tc.port, **kw))


def pump_for(c, pred, what, timeout=DL):
    """Keeps the client connection serviced until pred() is true; returns its value."""
    box = []
    c.pump(lambda: box.append(pred()) or box[-1], what, timeout)
    return box[-1]


def rec(up, tid):
    """The one upstream record of x-test-id `tid` (None if none yet)."""
    rs = up.find(tid)
    assert len(rs) <= 1, f"upstream saw {tid} {len(rs)} times: {rs}"
    return rs[0] if rs else None


def arrived(up, tids):
    return lambda: all((rec(up, t) or {}).get("complete") for t in tids)


def assert_body(st, n=BODY):
    assert st.status == 200 and st.reset is None and st.ended, st
    assert len(st.data) == n and st.sha256() == pattern_sha256(n), \
        f"stream {st.sid}: {len(st.data)} of {n} body bytes (or they differ)"


def assert_json(st, tid):
    assert st.status == 200 and st.reset is None, st
    assert json.loads(bytes(st.data))["id_header"] == tid, st


def summary(up):
    """Per upstream connection: requests served and refused, most streams at once, GOAWAY."""
    out = {}
    for r in up.records():
        c = out.setdefault(r["conn"], {"served": 0, "refused": 0})
        c["refused" if r["refused"] else "served"] += 1
    for cid, c in up.conns().items():
        out.setdefault(cid, {}).update(max_streams=c["max_streams"], error=c["error"],
                                       goaway=c["goaway"], closed=c["closed"] is not None)
    return out


def access_log(path, tids):
    """The JSON access-log lines of the requests whose target names id=TID, once all are in."""
    def lines():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            got = [json.loads(x) for x in f if x.strip()]
        by = {t: [x for x in got if f"id={t}" in x["target"]] for t in tids}
        return by if all(by.values()) else None
    return harness.wait_until(lines, f"access-log lines for {tids}")


# --- 1. RST_STREAM from the client ---------------------------------------------------------

def check_rst_cancels_one(kind):
    """Three gated streams on one client connection; the middle one is reset by the client.
    Upstream: that request is cancelled (h1: its connection closed; h2: RST_STREAM(CANCEL) on
    the connection the others share, a warm one, which stays up and serves the next request),
    the other two answered. Client: those two get 200 and their whole bodies, and the
    connection serves one more stream. Access log: 499 for the reset one, 200 for the others."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=(kind,))
        log = os.path.join(TMP, new_id("access") + ".log")
        tc = start(es, [("up", up, f"http2: {'always' if kind == 'h2' else 'never'}")], log=log)
        c = client(es, tc)
        if kind == "h2":  # one upstream connection for all (a cold burst may open several)
            warm = new_id("warm")
            assert_json(c.wait(c.request(hs(f"/up/warm?id={warm}", warm)))[0], warm)
        gate, tids = new_id("gate"), [new_id("rst") for _ in range(3)]
        sids = [c.request(hs(f"/up/bytes/{BODY}?gate={gate}&id={t}", t)) for t in tids]
        pump_for(c, arrived(up, tids), "the 3 requests at the upstream")
        c.reset_stream(sids[1], CANCEL)
        gone = pump_for(c, lambda: (rec(up, tids[1]) or {}).get("reset") and rec(up, tids[1]),
                        "the upstream to see the reset request cancelled")
        if kind == "h2":
            assert gone["reset_code"] == CANCEL, f"upstream stream reset with {gone}"
        else:
            pump_for(c, lambda: up.conns()[gone["conn"]]["closed"],
                     "the proxy to close the h1 upstream connection of the reset request")
        up.open_gate(gate)
        for st in c.wait(sids[0], sids[2]):
            assert_body(st)
        assert c.streams[sids[1]].status is None, c.streams[sids[1]]
        others = [rec(up, tids[0]), rec(up, tids[2])]
        assert all(r["responded"] == 200 and not r["reset"] for r in others), others
        assert gone["responded"] is None, gone
        if kind == "h2":
            cid = rec(up, warm)["conn"]
            assert {r["conn"] for r in others + [gone]} == {cid}, summary(up)
            assert up.conns()[cid]["closed"] is None, f"upstream connection closed: {summary(up)}"
        else:
            assert gone["conn"] not in {r["conn"] for r in others}, (gone, others)
        after = new_id("after")
        assert_json(c.wait(c.request(hs(f"/up/after?id={after}", after)))[0], after)
        if kind == "h2":
            assert rec(up, after)["conn"] == cid, f"not the same upstream connection: {summary(up)}"
        logged = access_log(log, tids)
        status = {t: [x["status"] for x in logged[t]] for t in tids}
        assert status == {tids[0]: [200], tids[1]: [499], tids[2]: [200]}, logged


# --- 2. graceful shutdown ------------------------------------------------------------------

def check_drain_goaway(kind):
    """SIGTERM with a gated stream in flight (timeouts.drain 5s). Client: GOAWAY(NO_ERROR, 2^31-1)
    then, a round trip later, the final GOAWAY(NO_ERROR) whose last stream id covers the
    in-flight stream (RFC 9113 §6.8, docs/http2.md); a stream opened after the final one (the
    server read it: a PING after it was acked) gets no response (ignored, or REFUSED_STREAM)
    and the upstream never sees it; the in-flight stream then completes with its whole body,
    the server closes the connection and the process exits 0 before the drain timeout."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=(kind,))
        tc = start(es, [("up", up, f"http2: {'always' if kind == 'h2' else 'never'}")],
                   top=["timeouts: {drain: 5s}"])
        c = client(es, tc, keep_after_goaway=True)
        gate, tid, late = new_id("gate"), new_id("drain"), new_id("late")
        sid = c.request(hs(f"/up/bytes/{BODY}?gate={gate}", tid))
        pump_for(c, arrived(up, [tid]), "the request at the upstream")
        t0 = time.time()
        tc.p.send_signal(signal.SIGTERM)
        pump_for(c, lambda: c.goaway and c.goaway[1] < NOTICE, "the final GOAWAY after SIGTERM")
        assert c.goaways[0] == (0, NOTICE) and len(c.goaways) == 2 and c.goaway[0] == 0 \
            and c.goaway[1] >= sid, f"GOAWAYs {c.goaways}; frames {c.log}"
        sid2 = c.request(hs("/up/late", late))
        c.ping()
        pump_for(c, lambda: c.pings_acked, "the PING ack after the late stream")
        up.open_gate(gate)
        assert_body(c.wait(sid)[0])
        assert rec(up, tid)["responded"] == 200, rec(up, tid)
        pump_for(c, lambda: c.closed, "the server to close the drained connection")
        st2 = c.streams[sid2]
        assert st2.status is None and st2.reset in (None, REFUSED_STREAM), (st2, c.log)
        note(f"client saw: {c.log}")
        assert rec(up, late) is None, f"the stream opened after GOAWAY was served: {rec(up, late)}"
        try:
            rc = tc.p.wait(DL)
        except subprocess.TimeoutExpired:
            raise AssertionError("trafficcop still runs after the drained connection closed")
        took = time.time() - t0
        assert rc == 0, f"exit status {rc}: {tc.stderr()[-1500:]}"
        assert took < 5.0, f"exited {took:.1f}s after SIGTERM: waited for the drain timeout: {tc.stderr()[-3000:]}"


# --- 3. idle client connections -----------------------------------------------------------

def check_idle_no_streams():
    """timeouts.idle 1s. A connection that never opens a stream gets GOAWAY(NO_ERROR, last 0)
    after about 1 s (not before 0.8 s) and EOF by 3 s; after one completed exchange, GOAWAY
    (last = that stream) again about 1 s after the response ended."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h1",))
        tc = start(es, [("up", up, "http2: never")], top=["timeouts: {idle: 1s}"])
        c = client(es, tc, keep_after_goaway=True)
        pump_for(c, lambda: c.closed, "the idle connection to be closed", timeout=10)
        assert c.goaway == (0, 0), f"frames {c.log}"
        g, e = c.goaway_at - c.opened_at, c.closed_at - c.opened_at
        assert 0.8 <= g <= 3.0 and e <= 3.0, f"GOAWAY after {g:.2f}s, EOF after {e:.2f}s"
        c2 = client(es, tc, keep_after_goaway=True)
        tid = new_id("idle")
        sid = c2.request(hs("/up/x", tid))
        assert_json(c2.wait(sid)[0], tid)
        done = time.time()
        pump_for(c2, lambda: c2.closed, "the connection to be closed after its stream", 10)
        g, e = c2.goaway_at - done, c2.closed_at - done
        assert c2.goaway == (0, sid), f"frames {c2.log}"
        assert 0.8 <= g <= 3.0 and e <= 3.0, f"GOAWAY {g:.2f}s, EOF {e:.2f}s after the response"


def check_idle_slow_stream():
    """timeouts.idle 1s. One stream held before its head and one paused after its first body
    bytes, for 2.5 s: no GOAWAY and no close meanwhile; both complete whole; the GOAWAY comes
    only after they ended."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h1",))
        tc = start(es, [("up", up, "http2: never")], top=["timeouts: {idle: 1s}"])
        c = client(es, tc, keep_after_goaway=True)
        gate, tids = new_id("gate"), [new_id("slow"), new_id("paused")]
        s1 = c.request(hs(f"/up/bytes/{BODY}?gate={gate}", tids[0]))
        s2 = c.request(hs(f"/up/bytes/{BODY}?pause={gate}&chunk=1000", tids[1]))
        pump_for(c, lambda: arrived(up, tids)() and len(c.streams[s2].data) > 0,
                 "the held request at the upstream and the first bytes of the paused one")
        end = time.time() + 2.5
        c.pump(lambda: time.time() >= end or c.goaway or c.closed, "2.5 s to pass")
        assert not c.goaway and not c.closed, f"closed while streams ran: frames {c.log}"
        up.open_gate(gate)
        for st in c.wait(s1, s2):
            assert_body(st)
        assert c.goaway is None, f"GOAWAY before the streams completed: frames {c.log}"
        pump_for(c, lambda: c.goaway, "the idle GOAWAY after the streams", 10)
        assert c.goaway == (0, s2), f"frames {c.log}"


# --- 4. SETTINGS from the listener config ---------------------------------------------------

def check_settings():
    """Listener http2 {max_concurrent_streams: 7, initial_window_size: 32768,
    max_header_list_size: 8192}: the server's SETTINGS carry them. With 7 streams in flight at
    the upstream an 8th gets RST_STREAM(REFUSED_STREAM or PROTOCOL_ERROR), or the connection
    GOAWAY(PROTOCOL_ERROR) not covering it; the upstream never sees it; if the connection
    survived the 7 complete. A 9000-byte header on a new connection: 431, not forwarded."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h1",))
        tc = start(es, [("up", up, "http2: never")],
                   listener="h2c: true, max_concurrent_streams: 7, initial_window_size: 32768, "
                            "max_header_list_size: 8192")
        c = client(es, tc)
        pump_for(c, lambda: MAX_CONCURRENT_STREAMS in c.settings, "the server's SETTINGS")
        got = {k: c.settings.get(k) for k in (MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE,
                                              MAX_HEADER_LIST_SIZE)}
        assert got == {MAX_CONCURRENT_STREAMS: 7, INITIAL_WINDOW_SIZE: 32768,
                       MAX_HEADER_LIST_SIZE: 8192}, f"SETTINGS {c.settings}"
        gate, tids, eighth = new_id("gate"), [new_id("s") for _ in range(7)], new_id("eighth")
        sids = [c.request(hs(f"/up/bytes/1000?gate={gate}", t)) for t in tids]
        pump_for(c, arrived(up, tids), "7 streams at the upstream")
        s8 = c.request(hs("/up/eighth", eighth), force=True)
        pump_for(c, lambda: c.streams[s8].finished or c.goaway, "the 8th stream refused")
        st8 = c.streams[s8]
        if c.goaway:
            assert c.goaway[0] == PROTOCOL_ERROR and c.goaway[1] < s8, f"frames {c.log}"
        else:
            assert st8.reset in (REFUSED_STREAM, PROTOCOL_ERROR) and st8.status is None, st8
        note(f"the 8th stream ({s8}): {c.log[-1][1]}")
        up.open_gate(gate)
        if not c.goaway:
            for st in c.wait(*sids):
                assert_body(st, 1000)
        assert rec(up, eighth) is None, f"the 8th stream reached the upstream: {rec(up, eighth)}"
        big, c2 = new_id("big"), client(es, tc)
        st = c2.wait(c2.request(hs("/up/big", big, [("x-big", "b" * 9000)])))[0]
        assert st.status == 431, st
        assert rec(up, big) is None, "the request beyond max_header_list_size was forwarded"


# --- 5. the upstream h2 pool ----------------------------------------------------------------

def gated_burst(c, up, n, path="/up/x"):
    """n concurrent streams (sent in one write) held at one gate until all reached the
    upstream; then all answered with their own record (200). Returns their upstream records."""
    gate, tids = new_id("gate"), [new_id("burst") for _ in range(n)]
    with c.cork():  # one write: the proxy reads all the requests at once
        sids = [c.request(hs(f"{path}?gate={gate}", t)) for t in tids]
    try:
        pump_for(c, arrived(up, tids), f"{n} concurrent requests at the upstream")
    finally:
        up.open_gate(gate)
    for st, t in zip(c.wait(*sids), tids):
        assert_json(st, t)
    return [rec(up, t) for t in tids]


def check_multiplex(warm):
    """20 concurrent client streams (one write) to an `http2: always` upstream allowing 100
    streams: the upstream sees all 20 on ONE connection (warm: the one an earlier request
    opened; cold: the burst is the first traffic, and the proxy must not open a connection per
    request while its first one is being set up)."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",), max_concurrent_streams=100)
        tc = start(es, [("up", up, "http2: always")])
        c = client(es, tc)
        if warm:
            first = new_id("warm")
            assert_json(c.wait(c.request(hs("/up/warm", first)))[0], first)
        recs = gated_burst(c, up, 20)
        conns = {r["conn"] for r in recs}
        want = {rec(up, first)["conn"]} if warm else conns
        per = {cid: sum(r["conn"] == cid for r in recs) for cid in sorted(conns)}
        assert len(conns) == 1 and conns == want, \
            f"20 concurrent requests on {len(conns)} upstream connections (requests per " \
            f"connection: {per})"


def concurrent_slow(c, up, n, ms=300):
    tids = [new_id("slow") for _ in range(n)]
    with c.cork():
        sids = [c.request(hs(f"/up/delay/{ms}", t)) for t in tids]
    for st, t in zip(c.wait(*sids), tids):
        assert_json(st, t)
    return tids


def check_limit(peer_limit, own_limit):
    """After one request (one upstream connection, its SETTINGS known), 10 concurrent slow
    requests (300 ms each, one write), twice, to an upstream advertising
    SETTINGS_MAX_CONCURRENT_STREAMS `peer_limit`, through an upstream config
    `max_concurrent_streams` `own_limit`: all get 200; no upstream connection ever has more
    than min(limits) streams open (streams the upstream refused before its SETTINGS were
    acknowledged, which RFC 9113 allows a client to send, are not counted: they are refused
    and must be retried), none hits a protocol error, and the first burst opened more
    connections."""
    limit = min(peer_limit, own_limit or peer_limit)
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",), max_concurrent_streams=peer_limit)
        extra = "http2: always" + (f", max_concurrent_streams: {own_limit}" if own_limit else "")
        tc = start(es, [("up", up, extra)])
        c = client(es, tc)
        first = new_id("warm")
        assert_json(c.wait(c.request(hs("/up/warm", first)))[0], first)
        tids = concurrent_slow(c, up, 10)
        served = {r["conn"] for r in up.records() if r["id_header"] in tids and not r["refused"]}
        tids += concurrent_slow(c, up, 10)
        s = summary(up)
        assert all(v.get("max_streams", 0) <= limit for v in s.values()), \
            f"more than {limit} streams at once on an upstream connection: {s}"
        assert not any(v.get("error") for v in s.values()), f"upstream protocol error: {s}"
        assert len(served) >= 2, f"the first burst went on one connection: {s}"
        refused = sum(v.get("refused", 0) for v in s.values())
        if refused:
            note(f"{refused} streams sent before the upstream's SETTINGS were refused: {s}")


def check_upstream_goaway():
    """The upstream sends GOAWAY(NO_ERROR, last = the in-flight stream) while holding it, then
    a PING; once the proxy acked it (so it read the GOAWAY), 3 more requests: all 200, on
    another connection (none opened on the old one: the upstream refuses such streams and
    counts them); the in-flight one then completes with 200 and its whole body."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",))
        tc = start(es, [("up", up, "http2: always")])
        c = client(es, tc)
        first, tid, gate = new_id("warm"), new_id("inflight"), new_id("gate")
        assert_json(c.wait(c.request(hs("/up/warm", first)))[0], first)
        old = rec(up, first)["conn"]
        sid = c.request(hs(f"/up/goaway-after?gate={gate}&bytes={BODY}", tid))
        pump_for(c, lambda: up.conns()[old]["goaway_acked"], "the proxy to read the GOAWAY")
        after = concurrent_slow(c, up, 3, ms=1)
        up.open_gate(gate)
        assert_body(c.wait(sid)[0])
        r = rec(up, tid)
        assert r["conn"] == old and r["responded"] == 200 and not r["reset"], r
        conns = {rec(up, t)["conn"] for t in after}
        assert old not in conns and up.conns()[old]["refused"] == 0, \
            f"new streams on the connection after its GOAWAY: {summary(up)}"
        pump_for(c, lambda: up.conns()[old]["closed"],
                 "the proxy to close the upstream connection after its last stream", 5)


def check_refused_retry():
    """The upstream answers a GET with RST_STREAM(REFUSED_STREAM) before anything else: the
    client still gets 200, and the upstream saw the request twice: refused, then answered on
    another connection (docs/http2.md, Upstream connections)."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",))
        tc = start(es, [("up", up, "http2: always")])
        c = client(es, tc)
        first, tid = new_id("warm"), new_id("refused")
        assert_json(c.wait(c.request(hs("/up/warm", first)))[0], first)
        st = c.wait(c.request(hs(f"/up/refuse/{tid}", tid)))[0]
        rs = up.find(tid)
        assert st.status == 200 and st.reset is None, (st, rs)
        assert [r["refused"] for r in rs] == [True, False] and rs[1]["responded"] == 200, rs
        assert json.loads(bytes(st.data))["id"] == rs[1]["id"], st
        assert rs[0]["conn"] != rs[1]["conn"], \
            f"retried on the connection that refused it ({rs[0]['conn']}): {summary(up)}"


def check_response_timeout():
    """Upstream `response_timeout: 500ms` (http2: always), two requests on one warm upstream
    connection: one held at a gate gets 504 and the upstream sees RST_STREAM(CANCEL) on it;
    the other, a body dripping in 100 ms steps (the timeout also bounds each read, as
    nginx's proxy_read_timeout) for longer than that, completes whole on the same connection,
    which stays up (docs/http2.md, Upstream connections)."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",))
        tc = start(es, [("up", up, "http2: always, response_timeout: 500ms")])
        c = client(es, tc)
        first, slow, other = new_id("warm"), new_id("slow"), new_id("other")
        assert_json(c.wait(c.request(hs("/up/warm", first)))[0], first)
        cid = rec(up, first)["conn"]
        gate, n = new_id("gate"), 16384 * 15
        t0 = time.time()
        s1 = c.request(hs(f"/up/gate/{gate}", slow))
        s2 = c.request(hs(f"/up/bytes/{n}?drip=100", other))
        st = c.wait(s1)[0]
        took = time.time() - t0
        assert st.status == 504 and took < 3.0, f"{st} after {took:.1f}s"
        r = pump_for(c, lambda: (rec(up, slow) or {}).get("reset") and rec(up, slow),
                     "the upstream to see the timed-out stream reset")
        assert r["reset_code"] == CANCEL and r["conn"] == cid, r
        up.open_gate(gate)
        assert not c.streams[s2].finished, f"the other stream ended before the reset: {c.log}"
        assert_body(c.wait(s2)[0], n)
        assert rec(up, other)["conn"] == cid and up.conns()[cid]["closed"] is None, summary(up)


def check_upstream_idle():
    """Upstream `idle_timeout: 1s` (http2: always): after one exchange the upstream sees a
    GOAWAY(NO_ERROR) or EOF from the proxy between 0.5 s and 3 s after the response; the next
    request goes on a new connection and gets 200."""
    with contextlib.ExitStack() as es:
        up = upstream(es, protocols=("h2",))
        tc = start(es, [("up", up, "http2: always, idle_timeout: 1s")])
        c = client(es, tc)
        tid = new_id("idle")
        assert_json(c.wait(c.request(hs("/up/x", tid)))[0], tid)
        done, old = time.time(), rec(up, tid)["conn"]
        info = pump_for(c, lambda: (lambda x: (x["goaway"] or x["closed"]) and x)(
            up.conns()[old]), "the proxy to close its idle upstream connection", 10)
        when = info["goaway"][2] if info["goaway"] else info["closed"]
        assert 0.5 <= when - done <= 3.0, f"closed {when - done:.2f}s after the response: {info}"
        assert info["goaway"] is None or info["goaway"][0] == 0, info
        try:
            pump_for(c, lambda: up.conns()[old]["closed"], "EOF after the GOAWAY", 3)
            eof = True
        except TimeoutError:
            eof = False
        nxt = new_id("next")
        assert_json(c.wait(c.request(hs("/up/next", nxt)))[0], nxt)
        assert rec(up, nxt)["conn"] != old, summary(up)
        if not eof:
            closed = pump_for(c, lambda: up.conns()[old]["closed"], "EOF after the next request",
                              5)
            note(f"upstream saw GOAWAY {when - done:.2f}s after the response but EOF only at "
                 f"{closed - done:.2f}s, once the next request used the pool")


def main():
    try:
        run_all()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    return R.finish()


def run_all():
    for kind in ("h1", "h2"):
        R.check(f"rst-cancels-one/{kind}", check_rst_cancels_one, kind)
    for kind in ("h1",) if QUICK else ("h1", "h2"):
        R.check(f"drain-goaway/{kind}", check_drain_goaway, kind)
    R.check("idle/no-streams", check_idle_no_streams)
    R.check("idle/slow-stream", check_idle_slow_stream)
    R.check("settings", check_settings)
    R.check("pool/multiplex-warm", check_multiplex, True)
    R.check("pool/multiplex-cold", check_multiplex, False)
    R.check("pool/peer-limit-2", check_limit, 2, None)
    R.check("pool/own-limit-3", check_limit, 100, 3)
    R.check("pool/upstream-goaway", check_upstream_goaway)
    R.check("pool/refused-retry", check_refused_retry)
    R.check("pool/response-timeout-cancel", check_response_timeout)
    R.check("pool/idle-timeout", check_upstream_idle)


if __name__ == "__main__":
    sys.exit(main())
