#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 10 part 5 and the small items of part 4, through the binary: the request id, W3C
Trace Context, the access log's fields, SIGUSR1 log reopening, and the CLI's --help and
--log-level. Both sides are asserted: what the recording upstream (h2_upstream.py) received,
what the client got back, and what the access log says, over HTTP/1.1 and h2c downstream and
HTTP/1.1 and HTTP/2 upstream.

usage: identity_test.py BIN_DIR SOURCE_DIR [--quick] [--only SUBSTR]...
"""
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2_client import H2Client, base_headers  # noqa: E402
from h2_upstream import Upstream  # noqa: E402

A = harness.Args(sys.argv)
R = harness.Runner(A)
TMP = tempfile.mkdtemp(prefix="tc-identity-")
DEAD = harness.RefusingPort()  # the "dead" upstream: connections refused, 502

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
TP_RX = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
GENERATED_RX = re.compile(r"^[0-9a-f]{20}$")
ALL_FIELDS = ["time", "id", "trace_id", "span_id", "remote", "host", "method", "target", "proto",
              "protocol", "status", "bytes_in", "bytes_out", "duration_ms", "upstream",
              "endpoint", "upstream_status", "upstream_ms", "tries", "error", "user_agent",
              "referer", "tls_version", "tls_client"]


def log_path(name):
    return os.path.join(TMP, f"{name}-{time.time_ns()}.log")


def config(up_port, log, extra="", fields=None, fmt="json", upstream_extra="http2: never",
           listener_extra="http2: {h2c: true}"):
    fields_yaml = "" if fields is None else f", fields: [{', '.join(fields)}]"

    def make(port):
        return "\n".join([
            "workers: 2", f"access_log: {{path: '{log}', format: {fmt}{fields_yaml}}}", extra,
            "listeners:", f"  - {{address: '127.0.0.1:{port}', {listener_extra}}}",
            "upstreams:",
            f"  - {{name: e, url: 'http://127.0.0.1:{up_port}', {upstream_extra}}}",
            f"  - {{name: dead, url: 'http://127.0.0.1:{DEAD.port}'}}",
            "routes:",
            "  - {path_prefix: /up, upstream: e}",
            "  - {path_prefix: /dead, upstream: dead}",
            "  - {path_prefix: /local, respond: {status: 200, body: hi}}"]) + "\n"
    return make


def h1(port, target, headers=(), host="a.example"):
    """One HTTP/1.1 request on its own connection: (status, [(name, value)] lowercased names)."""
    head = f"GET {target} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{n}: {v}\r\n" for n, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=harness.DEADLINE) as s:
        s.sendall((head + "Connection: close\r\n\r\n").encode("latin-1"))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = [(n.strip().lower(), v.strip()) for n, v in (x.split(":", 1) for x in lines[1:])]
    return int(lines[0].split(" ")[1]), fields


def h2c(port, path, headers=(), authority="a.example"):
    with H2Client(port) as c:
        st = c.exchange(base_headers("GET", path, authority,
                                     extra=[(n.lower(), v) for n, v in headers]))
    assert st.status is not None, st
    fields = [(n.decode() if isinstance(n, bytes) else n, v.decode() if isinstance(v, bytes) else v)
              for n, v in st.headers]
    return int(st.status), [(n, v) for n, v in fields if not n.startswith(":")]


def values(fields, name):
    return [v for n, v in fields if n == name.lower()]


def read_log(path, n, what="access log lines"):
    """Waits until `path` holds at least n lines (batches are flushed within 100 ms)."""
    def ready():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            lines = [x for x in f.read().splitlines() if x.strip()]
        return lines if len(lines) >= n else None
    return harness.wait_until(ready, f"{n} {what} in {path}")


def json_log_line(path, rid):
    def find():
        if not os.path.exists(path):
            return None
        with open(path) as f:
            for x in f:
                if x.strip() and json.loads(x).get("id") == rid:
                    return json.loads(x)
        return None
    return harness.wait_until(find, f"the log line of request {rid}")




def upstream_record(up, test_id):
    recs = up.wait_records(lambda rs: [r for r in rs if r["id_header"] == test_id],
                           f"request {test_id} upstream")
    assert len(recs) == 1, recs
    return recs[0]


def header_values(rec, name):
    return [v for n, v in rec["headers"] if n.lower() == name]


# --- the request id and the trace, both sides ---------------------------------------------

def continued_trace(send, upstream_extra):
    up = Upstream(protocols=("h1", "h2"))
    log = log_path("continued")
    fields = ["id", "trace_id", "span_id", "status", "endpoint", "tries", "upstream"]
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log, fields=fields,
                                                     upstream_extra=upstream_extra), TMP) as tc:
            status, got = send(tc.port, "/up/a", [
                ("x-test-id", "t1"), ("X-Request-Id", "client-id:1/ok=="),
                ("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)])
            assert status == 200, (status, got)
            rec = upstream_record(up, "t1")
            # Upstream: the client's sane id, the same trace with a new parent, tracestate kept.
            assert header_values(rec, "x-request-id") == ["client-id:1/ok=="], rec["headers"]
            tps = header_values(rec, "traceparent")
            assert len(tps) == 1 and TP_RX.match(tps[0]), tps
            trace, span, flags = TP_RX.match(tps[0]).groups()
            assert trace == TRACE and span != PARENT and flags == "01", tps
            assert header_values(rec, "tracestate") == [TRACESTATE], rec["headers"]
            # Client: the id back, once.
            assert values(got, "x-request-id") == ["client-id:1/ok=="], got
            # Log: the same id and trace, the span id the upstream got as parent.
            line = json_log_line(log, "client-id:1/ok==")
            assert list(line) == fields, line
            assert line["trace_id"] == TRACE and line["span_id"] == span, (line, tps)
            assert line["endpoint"] == f"127.0.0.1:{up.port}" and line["tries"] == 1, line
            assert line["status"] == 200, line
    finally:
        up.stop()


def new_trace_and_generated_id(send):
    up = Upstream(protocols=("h1",))
    log = log_path("new")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log), TMP) as tc:
            cases = [
                # (test id, request id sent, traceparent lines sent)
                ("n1", None, []),
                ("n2", "has space", ["00-" + TRACE.upper() + f"-{PARENT}-01"]),  # uppercase
                ("n3", "x" * 129, [f"ff-{TRACE}-{PARENT}-01"]),  # version ff
                ("n4", 'q"uote', [f"00-{'0' * 32}-{PARENT}-01"]),  # zero trace id
                ("n5", "caf\xe9", [TRACEPARENT, TRACEPARENT]),  # two lines: not one traceparent
                ("n6", "", [TRACEPARENT + "-x"]),  # 00 with more after it
            ]
            for tid, rid, tps in cases:
                hdrs = [("x-test-id", tid), ("tracestate", TRACESTATE)]
                if rid is not None:
                    hdrs.append(("X-Request-Id", rid))
                hdrs += [("traceparent", tp) for tp in tps]
                status, got = send(tc.port, "/up/x", hdrs)
                assert status == 200, (tid, status)
                rec = upstream_record(up, tid)
                ids = header_values(rec, "x-request-id")
                assert len(ids) == 1 and GENERATED_RX.match(ids[0]), (tid, ids)
                assert values(got, "x-request-id") == ids, (tid, got, ids)
                sent = header_values(rec, "traceparent")
                assert len(sent) == 1 and TP_RX.match(sent[0]), (tid, sent)
                trace, span, flags = TP_RX.match(sent[0]).groups()
                assert trace != TRACE and trace != "0" * 32 and flags == "01", (tid, sent)
                assert header_values(rec, "tracestate") == [], (tid, rec["headers"])
                line = json_log_line(log, ids[0])
                assert line["trace_id"] == trace, (tid, line)
    finally:
        up.stop()


for name, send in (("h1", h1), ("h2c", h2c)):
    R.check(f"continued_trace_{name}_to_h1", continued_trace, send, "http2: never")
    R.check(f"continued_trace_{name}_to_h2", continued_trace, send, "http2: always")
    R.check(f"new_trace_and_generated_id_{name}", new_trace_and_generated_id, send)


def local_answers_carry_the_id():
    # 404 (no route), 502 (dead upstream) and a respond: route: the id reaches the client too,
    # and the log has it. The 404 line's combined urt is "-", not -0.000.
    up = Upstream(protocols=("h1",))
    log = log_path("local")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log), TMP) as tc:
            for target, want in (("/nowhere", 404), ("/dead/x", 502), ("/local", 200)):
                for send in (h1, h2c):
                    status, got = send(tc.port, target, [("X-Request-Id", f"id-{want}")])
                    assert status == want, (target, status)
                    assert values(got, "x-request-id") == [f"id-{want}"], (target, got)
            lines = [json.loads(x) for x in read_log(log, 6)]
            by = {(x["target"], x["proto"]): x for x in lines}
            dead = by[("/dead/x", "HTTP/1.1")]
            assert dead["status"] == 502 and dead["endpoint"] == "" and dead["tries"] >= 1, dead
            assert by[("/nowhere", "HTTP/2.0")]["upstream_ms"] is None, lines
    finally:
        up.stop()


R.check("local_answers_carry_the_id", local_answers_carry_the_id)


class EchoIdUpstream:
    """An HTTP/1.1 upstream that answers with its own X-Request-Id and records what it got."""

    def __init__(self):
        self.got = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.got.append(list(self.headers.items()))
                self.send_response(200)
                self.send_header("X-Request-Id", "from-upstream")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def options_change_the_behaviour():
    up = EchoIdUpstream()
    try:
        # Default: the upstream's own X-Request-Id is dropped; the client sees ours once.
        with harness.Trafficcop(A.trafficcop, config(up.port, "off"), TMP) as tc:
            _, got = h1(tc.port, "/up/1", [("X-Request-Id", "mine")])
            assert values(got, "x-request-id") == ["mine"], got
        # trust_incoming off, another header name, nothing back, no trace context.
        extra = ("request_id: {header: X-Correlation-Id, trust_incoming: false, response: false}\n"
                 "trace_context: {enabled: false}")
        with harness.Trafficcop(A.trafficcop, config(up.port, "off", extra), TMP) as tc:
            bad_tp = "00-" + TRACE.upper() + f"-{PARENT}-01"
            _, got = h1(tc.port, "/up/2", [("X-Correlation-Id", "sane-but-untrusted"),
                                           ("X-Request-Id", "other"), ("traceparent", bad_tp),
                                           ("tracestate", TRACESTATE)])
            seen = {n.lower(): v for n, v in up.got[-1]}
            assert GENERATED_RX.match(seen["x-correlation-id"]), seen
            assert seen["x-request-id"] == "other", seen  # just another field now
            assert seen["traceparent"] == bad_tp and seen["tracestate"] == TRACESTATE, seen
            # response: false: the upstream's own field passes, ours is not added.
            assert values(got, "x-correlation-id") == [], got
            assert values(got, "x-request-id") == ["from-upstream"], got
        # sampled: false: traces started here say so; continued ones keep the client's flags.
        with harness.Trafficcop(A.trafficcop, config(up.port, "off",
                                                     "trace_context: {sampled: false}"), TMP) as tc:
            h1(tc.port, "/up/3")
            tp = {n.lower(): v for n, v in up.got[-1]}["traceparent"]
            assert TP_RX.match(tp).group(3) == "00", tp
            h1(tc.port, "/up/4", [("traceparent", f"00-{TRACE}-{PARENT}-03")])
            tp = {n.lower(): v for n, v in up.got[-1]}["traceparent"]
            assert TP_RX.match(tp).group(1) == TRACE and TP_RX.match(tp).group(3) == "03", tp
            h1(tc.port, "/up/5", [("traceparent", f"00-{TRACE}-{PARENT}-ff")])
            tp = {n.lower(): v for n, v in up.got[-1]}["traceparent"]
            assert TP_RX.match(tp).group(3) == "03", tp  # unknown flag bits zeroed
    finally:
        up.stop()


R.check("options_change_the_behaviour", options_change_the_behaviour)


# --- access log fields --------------------------------------------------------------------

def every_field_in_the_listed_order():
    up = Upstream(protocols=("h1",))
    certs = harness.test_certs(A.src)
    log = log_path("fields")
    order = list(reversed(ALL_FIELDS))
    listener = (f"tls: {{certificates: [{{cert_file: '{certs}/server.pem', "
                f"key_file: '{certs}/server.key'}}]}}")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log, fields=order,
                                                     listener_extra=listener), TMP) as tc:
            r = harness.run(["curl", "-sS", "-o", "/dev/null", "--cacert", f"{certs}/ca.pem",
                             "--resolve", f"localhost:{tc.port}:127.0.0.1", "--http1.1",
                             "-A", "agent/1.0 (x)", "-e", "https://ref.example/p?q=1",
                             "-H", "X-Request-Id: f1", f"https://localhost:{tc.port}/up/f"])
            assert r.returncode == 0, r.stderr
            line = json_log_line(log, "f1")
            assert list(line) == order, list(line)
            assert line["host"] == f"localhost:{tc.port}", line
            assert line["user_agent"] == "agent/1.0 (x)", line
            assert line["referer"] == "https://ref.example/p?q=1", line
            assert line["tls_version"] in ("TLSv1.2", "TLSv1.3"), line
            assert line["protocol"] == line["proto"] == "HTTP/1.1", line
            assert line["endpoint"] == line["upstream"] == f"127.0.0.1:{up.port}", line
            assert line["tries"] == 1 and line["upstream_status"] == 200, line
            assert re.match(r"^[0-9a-f]{32}$", line["trace_id"]), line
            assert re.match(r"^[0-9a-f]{16}$", line["span_id"]), line
            assert line["tls_client"] == "" and line["error"] == "", line
    finally:
        up.stop()


def default_json_line_keeps_its_keys_first():
    up = Upstream(protocols=("h1",))
    log = log_path("default")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log), TMP) as tc:
            h1(tc.port, "/up/d", [("X-Request-Id", "d1")])
            with open(read_log_file(log, "d1")) as f:
                raw = f.read()
            keys = list(json.loads(raw.splitlines()[0]))
            assert keys == ["time", "id", "remote", "method", "target", "proto", "status",
                            "bytes_in", "bytes_out", "duration_ms", "upstream", "upstream_status",
                            "upstream_ms", "tries", "error", "trace_id", "host", "user_agent",
                            "referer", "tls_version", "endpoint"], keys
    finally:
        up.stop()


def read_log_file(path, rid):
    json_log_line(path, rid)
    return path


def combined_keeps_its_format():
    up = Upstream(protocols=("h1",))
    log = log_path("combined")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log, fmt="combined"), TMP) as tc:
            h1(tc.port, "/up/c", [("X-Request-Id", "c1"), ("User-Agent", "ua")])
            h1(tc.port, "/nowhere", [("X-Request-Id", "c2")])
            lines = read_log(log, 2)
        rx = (r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /up/c HTTP/1\.1" '
              r'200 \d+ "-" "ua" id=c1 rt=\d+\.\d{3} upstream=127\.0\.0\.1:' + str(up.port) +
              r' upstream_status=200 urt=\d+\.\d{3} bytes_in=0$')
        line = [x for x in lines if "id=c1" in x][0]
        assert re.match(rx, line), line
        line = [x for x in lines if "id=c2" in x][0]
        assert re.search(r' id=c2 rt=\d+\.\d{3} upstream=- upstream_status=0 urt=- bytes_in=0 '
                         r'error="no route"$', line), line
        assert "-0.000" not in line, line
        # fields: pairs after the fixed part, before error.
        log2 = log_path("combined-fields")
        with harness.Trafficcop(A.trafficcop, config(up.port, log2, fmt="combined",
                                                     fields=["trace_id", "tries", "endpoint",
                                                             "user_agent", "upstream_ms"]),
                                TMP) as tc:
            h1(tc.port, "/up/c", [("X-Request-Id", "c3"), ("User-Agent", 'a "q"'),
                                  ("traceparent", TRACEPARENT)])
            h1(tc.port, "/nowhere", [("X-Request-Id", "c4")])
            lines = read_log(log2, 2)
        line = [x for x in lines if "id=c3" in x][0]
        assert line.endswith(f' bytes_in=0 trace_id="{TRACE}" tries=1 '
                             f'endpoint="127.0.0.1:{up.port}" user_agent="a \\x22q\\x22" '
                             f'upstream_ms=' + line.rsplit("upstream_ms=", 1)[1]), line
        assert re.search(r' upstream_ms=\d+\.\d{3}$', line), line
        line = [x for x in lines if "id=c4" in x][0]
        assert re.search(r' bytes_in=0 trace_id="[0-9a-f]{32}" tries=0 endpoint=- user_agent=- '
                         r'upstream_ms=- error="no route"$', line), line
    finally:
        up.stop()


R.check("every_field_in_the_listed_order", every_field_in_the_listed_order)
R.check("default_json_line_keeps_its_keys_first", default_json_line_keeps_its_keys_first)
R.check("combined_keeps_its_format", combined_keeps_its_format)


# --- SIGUSR1 ------------------------------------------------------------------------------

def ids_in(path):
    with open(path) as f:
        return [json.loads(x)["id"] for x in f.read().splitlines() if x.strip()]


def sigusr1_reopens_the_log():
    up = Upstream(protocols=("h1",))
    log = log_path("rotate")
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log), TMP) as tc:
            before = [f"old-{i}" for i in range(20)]
            for rid in before:
                h1(tc.port, "/up/r", [("X-Request-Id", rid)])
            read_log(log, len(before))  # flushed (100 ms batches)
            os.rename(log, log + ".1")
            tc.p.send_signal(signal.SIGUSR1)
            harness.wait_until(lambda: os.path.exists(log), "the log reopened at its path")
            after = [f"new-{i}" for i in range(20)]
            for rid in after:
                h1(tc.port, "/up/r", [("X-Request-Id", rid)])
            read_log(log, len(after))
            assert tc.p.poll() is None, "SIGUSR1 must not stop the process"
        assert sorted(ids_in(log + ".1")) == sorted(before), ids_in(log + ".1")
        assert sorted(ids_in(log)) == sorted(after), ids_in(log)
        assert "access log reopened" in tc.stderr(), tc.stderr()[-2000:]
    finally:
        up.stop()


def sigusr1_under_load_loses_nothing():
    # Requests keep coming on 4 connections while the file is renamed and reopened, 3 times:
    # every request's line is in exactly one of the files, whole.
    up = Upstream(protocols=("h1",))
    log = log_path("rotate-load")
    sent, stop = [], threading.Event()
    try:
        with harness.Trafficcop(A.trafficcop, config(up.port, log), TMP) as tc:
            def load(k):
                i = 0
                while not stop.is_set():
                    rid = f"L{k}-{i}-" + "p" * 200  # long lines: batches of many KiB
                    h1(tc.port, "/up/l", [("X-Request-Id", rid[:128])])
                    sent.append(rid[:128])
                    i += 1
            threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for n in range(1, 4):
                time.sleep(0.3)
                os.rename(log, f"{log}.{n}")
                tc.p.send_signal(signal.SIGUSR1)
                harness.wait_until(lambda: os.path.exists(log), "the log reopened")
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join()
        # The process has stopped: every batch is written.
        got = []
        for p in [log] + [f"{log}.{n}" for n in range(1, 4)]:
            got += ids_in(p)  # each line parses: none split or mixed
        assert len(sent) > 40, len(sent)
        assert sorted(got) == sorted(sent), (len(got), len(sent))
        assert all(ids_in(f"{log}.{n}") for n in range(1, 4)) and ids_in(log)
    finally:
        up.stop()


R.check("sigusr1_reopens_the_log", sigusr1_reopens_the_log)
R.check("sigusr1_under_load_loses_nothing", sigusr1_under_load_loses_nothing)


# --- CLI ----------------------------------------------------------------------------------

def help_names_the_signals_and_log_level_is_checked():
    r = harness.run([A.trafficcop, "--help"])
    out = r.stdout.decode()
    assert r.returncode == 0, r
    for s in ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "docs/config.md", "logrotate"):
        assert s in out, (s, out)
    r = harness.run([A.trafficcop, "--log-level", "verbose", "--upstream", "http://127.0.0.1:1"])
    err = r.stderr.decode()
    assert r.returncode != 0 and "--log-level" in err and "verbose" in err, (r.returncode, err)
    port = harness.free_port()
    p = subprocess.Popen([A.trafficcop, "--log-level", "debug", "--listen", f"127.0.0.1:{port}",
                          "--upstream", "http://127.0.0.1:1", "--access-log", "off"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        harness.wait_listening(port, p)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(harness.DEADLINE)


def check_reports_bad_fields_with_their_path():
    path = os.path.join(TMP, "bad-fields.yaml")
    with open(path, "w") as f:
        f.write("listeners: [{address: '127.0.0.1:0'}]\nupstreams: [{name: e, url: 'http://x'}]\n"
                "routes: [{upstream: e}]\naccess_log: {fields: [id, agent]}\n"
                "request_id: {header: 'a b'}\ntrace_context: {sampeld: true}\n")
    r = harness.run([A.trafficcop, "check", "-c", path])
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert f'{path}: access_log.fields[1]: unknown access log field "agent"' in err, err
    assert f'{path}: request_id.header: "a b" is not a valid header name' in err, err
    assert f"{path}: trace_context.sampeld: unknown key" in err, err


R.check("help_names_the_signals_and_log_level_is_checked",
        help_names_the_signals_and_log_level_is_checked)
R.check("check_reports_bad_fields_with_their_path", check_reports_bad_fields_with_their_path)

DEAD.close()
sys.exit(R.finish())
