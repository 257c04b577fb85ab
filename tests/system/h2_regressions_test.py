#!/usr/bin/python3
"""HTTP/2 regressions found in review, each a scenario that used to wedge or leak:

- window-leak: downstream clients that reset streams whose upstream response was already
  buffered whole. The unread bytes were never given back to the shared upstream connection's
  window; after ~30 such streams every response on that connection stalled after its head.
- slow-clients: downstream clients that never open their window each hold one upstream stream
  window. The upstream connection window was smaller than the sum, so 20 of them starved every
  other client on that connection.
- finished-but-stalled: a response that fits in the proxy's queue, to a client whose window is
  0: the handler finished, and nothing ever reset the stream (docs/http2.md promises a reset
  after timeouts.idle).

usage: h2_regressions_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2.settings  # noqa: E402

import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-h2reg-")


def proxy_config(up_port, mode, idle="60s"):
    def config(port):
        return "\n".join([
            "workers: 1", "host_header: keep", "access_log: {path: 'off'}",
            f"timeouts: {{idle: {idle}}}", "listeners:",
            f"  - address: '127.0.0.1:{port}'", "    http2: {h2c: true}", "upstreams:",
            f"  - {{name: up, url: 'http://127.0.0.1:{up_port}', http2: {mode}}}",
            "routes:", "  - {path_prefix: /up, upstream: up}"]) + "\n"
    return config


def record(up, marker):
    recs = [r for r in up.records() if marker in r["path"]]
    return recs[0] if recs else None


def window_leak():
    n = 12 if A.quick else 30  # 30 x ~250 KiB left unread is past the old 4 MiB window
    up = Upstream()
    tc = harness.Trafficcop(A.trafficcop, proxy_config(up.port, "always"), TMP)
    try:
        for i in range(n):
            c = H2Client(tc.port)
            sid = c.request(base_headers("GET", f"/up/bytes/500000?leak={i}", "x"))
            # The client never reads: once the upstream has sent the whole response, the proxy
            # holds what the client's window did not take. Then the client gives up.
            harness.wait_until(lambda: (record(up, f"leak={i}") or {}).get("sent_all"),
                               f"upstream sent all of response {i}")
            c.reset_stream(sid)
            c.close()
        c = H2Client(tc.port)
        st = c.exchange(base_headers("GET", "/up/bytes/2000000?final=1", "x"), timeout=10)
        assert st.status == 200 and len(st.data) == 2000000 and st.ended, \
            (st.status, len(st.data), st.ended)
        assert len(up.conns()) == 1, "the final request must ride the same upstream connection"
    finally:
        tc.stop()
        up.stop()


def slow_clients():
    n = 20  # 20 x 256 KiB stream windows: more than the old 4 MiB connection window
    up = Upstream()
    tc = harness.Trafficcop(A.trafficcop, proxy_config(up.port, "always"), TMP)
    slow = []
    try:
        for i in range(n):
            c = H2Client(tc.port)
            c.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
            c._flush()
            c.request(base_headers("GET", f"/up/bytes/2000000?slow={i}", "x"))
            slow.append(c)
        harness.wait_until(lambda: len([r for r in up.records() if "slow=" in r["path"]]) == n,
                           "every slow request at the upstream")
        assert len(up.conns()) == 1, "the slow streams share one upstream connection"
        c = H2Client(tc.port)
        t0 = time.time()
        st = c.exchange(base_headers("GET", "/up/bytes/1000000?victim=1", "x"), timeout=8)
        assert st.status == 200 and len(st.data) == 1000000, (st.status, len(st.data))
        assert time.time() - t0 < 5, f"victim took {time.time() - t0:.1f} s"
    finally:
        for c in slow:
            c.close()
        tc.stop()
        up.stop()


def finished_but_stalled():
    up = Upstream(protocols=("h1",))
    tc = harness.Trafficcop(A.trafficcop, proxy_config(up.port, "never", idle="1s"), TMP)
    try:
        c = H2Client(tc.port)
        c.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        c._flush()
        sids = [c.request(base_headers("GET", f"/up/bytes/200000?i={i}", "x")) for i in range(5)]
        t0 = time.time()
        c.pump(lambda: all(c.streams[s].reset is not None for s in sids) or c.closed,
               "every stalled stream reset", timeout=10)
        took = time.time() - t0
        resets = [c.streams[s].reset for s in sids]
        assert resets == [8] * 5, resets  # RST_STREAM(CANCEL)
        assert 0.8 < took < 6, f"reset after {took:.1f} s with timeouts.idle 1s"
        assert all(r.get("complete") for r in up.records()), "the upstream answered in full"
    finally:
        tc.stop()
        up.stop()


R.check("window-leak", window_leak)
R.check("slow-clients", slow_clients)
R.check("finished-but-stalled", finished_but_stalled)
sys.exit(R.finish())
