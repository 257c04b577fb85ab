#!/usr/bin/env python3
"""Helpers for bench/run.sh: process-tree CPU and memory, wrk parsing, the report.

  bench.py cpu PID             CPU seconds (utime+stime) of PID and all its descendants
  bench.py hwm PID             peak RSS (VmHWM) in KiB, summed over PID and its descendants
  bench.py cpustat             per-CPU busy and total jiffies from /proc/stat, as JSON
  bench.py row  [--key value ...]   one result row as a JSON line (see row())
  bench.py meta [--key value ...]   machine, versions and parameters as JSON
  bench.py report ROWS META OUT_JSON OUT_MD   markdown on stdout; JSON and markdown files

Only the standard library: it must run wherever run.sh runs.
"""
import json
import statistics
import os
import re
import subprocess
import sys

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process tree

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(pid):
    """PID and all its descendants (nginx master + workers, etc.)."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: the whole thread group
    return total / CLK_TCK


def hwm_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpustat():
    """{"cpu0": [busy, total, softirq+irq, steal], ...} in USER_HZ ticks from /proc/stat.
    busy = user+nice+system+irq+softirq; total also counts idle, iowait and steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu") or line.startswith("cpu "):
                continue
            name, *vals = line.split()
            u, n, s, idle, iow, irq, sirq, steal = (int(v) for v in vals[:8])
            out[name] = [u + n + s + irq + sirq, u + n + s + idle + iow + irq + sirq + steal,
                         irq + sirq, steal]
    return out


# ---------------------------------------------------------------- wrk output

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(text):
    r = {"requests": 0, "seconds": 0.0, "p50_ms": None, "p99_ms": None,
         "non2xx": 0, "socket_errors": 0}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = to_ms(m.group(2) + m.group(3)) / 1000.0
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
        r["socket_detail"] = "connect %s read %s write %s timeout %s" % m.groups()
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


# ---------------------------------------------------------------- rows

def parse_kv(argv):
    kv, i = {}, 0
    while i < len(argv):
        assert argv[i].startswith("--"), argv[i]
        kv[argv[i][2:].replace("-", "_")] = argv[i + 1]
        i += 2
    return kv


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def row(kv):
    """One measurement. Inputs: case proxy workers pinning [wrk FILE | upload fields]
    cpu0 cpu1 hwm_kib stat0 stat1 proxy_cpus resp_bytes note."""
    r = {k: kv.get(k) for k in ("case", "proxy", "workers", "pinning", "backend", "note")}
    r["workers"] = int(kv["workers"])
    r["pinned"] = kv.get("pinned", "1") == "1"
    r["round"] = int(kv.get("round", "1"))
    resp = int(kv.get("resp_bytes", "0"))
    if "wrk" in kv:
        with open(kv["wrk"]) as f:
            w = parse_wrk(f.read())
        secs = w["seconds"] or float(kv.get("duration", "1"))
        r.update(requests=w["requests"], seconds=round(secs, 3),
                 rps=round(w["requests"] / secs, 1) if secs else None,
                 p50_ms=w["p50_ms"], p99_ms=w["p99_ms"],
                 errors=w["non2xx"] + w["socket_errors"],
                 error_detail=f"non-2xx {w['non2xx']}, sockets: {w.get('socket_detail', '-')}")
        mib = w["requests"] * resp / 2**20 if resp >= 2**20 else None
        r["mib_s"] = round(mib / secs, 1) if mib is not None and secs else None
    else:  # upload
        secs = float(kv["upload_seconds"])
        size = int(kv["upload_bytes"])
        r.update(requests=1, seconds=round(secs, 3), rps=None, p50_ms=None, p99_ms=None,
                 mib_s=round(size / 2**20 / secs, 1) if secs else None,
                 errors=0 if kv.get("upload_ok") == "1" else 1,
                 error_detail=kv.get("upload_detail", ""))
    # The measuring window, from /proc/stat: slightly longer than wrk's own seconds.
    s0, s1 = json.loads(kv["stat0"]), json.loads(kv["stat1"])
    cpus = expand_cpus(kv["proxy_cpus"])
    delta = lambda i: sum(s1[f"cpu{c}"][i] - s0[f"cpu{c}"][i] for c in cpus) / CLK_TCK
    window = delta(1) / len(cpus)
    r["window_s"] = round(window, 2)
    c0, c1 = num(kv.get("cpu0")), num(kv.get("cpu1"))
    r["cpu_s"] = round(c1 - c0, 2) if c0 is not None and c1 is not None else None
    r["cpu_pct"] = round(100 * r["cpu_s"] / window) if r["cpu_s"] is not None else None
    if r["cpu_s"]:
        if r["rps"] is not None:
            r["req_per_cpu_s"] = round(r["requests"] / r["cpu_s"])
        if r["mib_s"] is not None:
            r["mib_per_cpu_s"] = round(r["mib_s"] * secs / r["cpu_s"], 1)
    r["rss_mib"] = round(int(kv["hwm_kib"]) / 1024, 1) if kv.get("hwm_kib") else None
    # How busy the proxy's core(s) were, and with what that was not the proxy's own time:
    # other processes (noise) and kernel work not charged to it (softirq in ksoftirqd or
    # on an idle CPU; the kernel samples at the tick without IRQ time accounting).
    if r["cpu_s"] is not None:
        span = window * len(cpus)
        r["proxy_cores_busy_pct"] = round(100 * delta(0) / span)
        r["proxy_cores_irq_pct"] = round(100 * delta(2) / span)
        r["proxy_cores_steal_pct"] = round(100 * delta(3) / span)
        r["other_on_proxy_cores_pct"] = max(0, round(100 * (delta(0) - r["cpu_s"]) / span))
    return r


def expand_cpus(spec):
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


# ---------------------------------------------------------------- meta

def run(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (p.stdout + p.stderr).strip()
    except Exception as e:  # a missing tool is a fact to report, not a crash
        return f"unavailable ({e.__class__.__name__})"


def meta(kv):
    cpu_model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    first = lambda s: s.splitlines()[0] if s else s
    return {
        "date": kv.get("date"),
        "command": kv.get("command"),
        "machine": {"nproc": os.cpu_count(), "cpu_model": cpu_model,
                    "kernel": run(["uname", "-r"]), "loadavg_at_start": load},
        "versions": {
            "trafficcop": first(run([kv["tc_bin"], "--version"])),
            "trafficcop_git": kv.get("git"),
            "nginx": first(run(["nginx", "-v"])),
            "haproxy": first(run(["haproxy", "-v"])),
            "wrk": first(run(["wrk", "-v"])),
            "curl": first(run(["curl", "--version"])),
        },
        "parameters": {k: v for k, v in kv.items()
                       if k not in ("date", "command", "tc_bin", "git")},
    }


# ---------------------------------------------------------------- report

CASES = {
    "small-keepalive": "64 B responses, keep-alive",
    "new-connection": "64 B responses, `Connection: close` (a new client connection per request)",
    "1mib": "1 MiB responses, keep-alive",
    "post-100k": "100 KiB POST bodies, keep-alive",
    "upload-1gib": "one streamed upload (chunked, from a pipe) to a discarding upstream",
}


def fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float) and nd:
        return f"{v:.{nd}f}"
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def ratio(a, b):
    return a / b if a and b else None


def fratio(x):
    return "–" if x is None else f"{x:.2f}×"


def key(r):
    return (r["case"], r["proxy"], r["workers"], r.get("pinned", True))


def find(rows, case, proxy, workers, pinned=True):
    for r in rows:
        if key(r) == (case, proxy, workers, pinned):
            return r
    return None


def throughput(r):
    return r.get("mib_s") if r.get("mib_s") is not None else r.get("rps")


def efficiency(r):
    return r.get("mib_per_cpu_s") if r.get("mib_s") is not None else r.get("req_per_cpu_s")


def lat(r):
    return "–" if r.get("p50_ms") is None else f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"


def spread(xs, nd):
    """A median (min–max) of the rounds' figures."""
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt(xs[0], nd)
    return f"{fmt(statistics.median(xs), nd)} ({fmt(xs[0], nd)}–{fmt(xs[-1], nd)})"


def rounds_of(all_rows, r):
    return [x for x in all_rows if key(x) == key(r)]


def pair_ratios(all_rows, r, other, metric):
    """r's figure ÷ other's, round by round (the two ran minutes apart in the same round)."""
    mine = {x["round"]: metric(x) for x in rounds_of(all_rows, r)}
    theirs = {x["round"]: metric(x) for x in rounds_of(all_rows, other)}
    return [ratio(mine[k], theirs[k]) for k in sorted(mine) if k in theirs]


def ratio_cell(all_rows, r, other):
    """median ÷ median (range of the per-round ratios), for throughput and per CPU-second."""
    def median_of(row, metric):
        xs = [metric(x) for x in rounds_of(all_rows, row) if metric(x) is not None]
        return statistics.median(xs) if xs else None

    def one(metric):
        med = ratio(median_of(r, metric), median_of(other, metric))
        per = sorted(x for x in pair_ratios(all_rows, r, other, metric) if x is not None)
        if len(per) < 2:
            return fratio(med)
        return f"{fratio(med)} ({per[0]:.2f}–{per[-1]:.2f})"
    return f"{one(throughput)}; {one(efficiency)}"


def table(rows, all_rows):
    out = []
    rounds = max(r["round"] for r in all_rows)
    for case, title in CASES.items():
        rs = [r for r in rows if r["case"] == case]
        if not rs:
            continue
        mib = any(r.get("mib_s") is not None for r in rs)
        nd = 1 if mib else 0
        unit = "MiB/s" if mib else "req/s"
        per = "MiB/CPU-s" if mib else "req/CPU-s"
        out.append(f"\n**{case}** — {title}; backend: {rs[0].get('backend')}\n")
        out.append(f"| proxy | workers | pinning | {unit} | {per} | p50 / p99 ms "
                   f"| proxy CPU s (%) | peak RSS MiB | errors | tc ÷ nginx ({unit}; {per}) "
                   f"| tc ÷ HAProxy ({unit}; {per}) | proxy core busy % (not the proxy) |")
        out.append("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for r in rs:
            rn = rh = "–"
            if r["proxy"].startswith("trafficcop"):
                n = find(rows, case, "nginx", r["workers"], r.get("pinned", True))
                h = find(rows, case, "haproxy", r["workers"], r.get("pinned", True))
                if n:
                    rn = ratio_cell(all_rows, r, n)
                if h:
                    rh = ratio_cell(all_rows, r, h)
            rr = rounds_of(all_rows, r)
            cpu = "–" if r.get("cpu_s") is None else f"{r['cpu_s']:.2f} ({r['cpu_pct']}%)"
            busy = r.get("proxy_cores_busy_pct")
            other = "–" if busy is None else f"{busy} ({r['other_on_proxy_cores_pct']})"
            out.append(
                f"| {r['proxy']} | {r['workers'] or '–'} | {r['pinning']} "
                f"| {spread([throughput(x) for x in rr], nd)} "
                f"| {spread([efficiency(x) for x in rr], nd)} | {lat(r)} | {cpu} "
                f"| {fmt(r.get('rss_mib'), 1)} | {sum(x['errors'] for x in rr)} | {rn} | {rh} "
                f"| {other} |")
    out.append(f"\nThroughput and per-CPU-second columns: median (min–max) over {rounds} "
               "round(s); ratios: median ÷ median (range of the round-by-round ratios). "
               "Latency, CPU, RSS and core columns: the round with the median per-CPU-second "
               "figure. Errors: all rounds.")
    return "\n".join(out)


def targets(rows):
    """Issue 3's targets, each judged from this run's rows (1-worker rows are the pinned ones)."""
    res = []

    def add(name, measured, ok):
        res.append({"target": name, "measured": measured,
                    "met": None if ok is None else bool(ok)})

    for pinned in (True, False):
        how = "pinned" if pinned else "unpinned"
        t, n, h = (find(rows, "small-keepalive", p, 1, pinned)
                   for p in ("trafficcop", "nginx", "haproxy"))
        if t and n and h:
            a, b = ratio(efficiency(t), efficiency(n)), ratio(efficiency(t), efficiency(h))
            add(f"small keep-alive, {how}: requests per proxy CPU-second ≥ 1.5× nginx and "
                "≥ 1.5× HAProxy", f"{fratio(a)} nginx, {fratio(b)} HAProxy",
                a and b and a >= 1.5 and b >= 1.5)
            add(f"small keep-alive, {how}: p99 ≤ nginx's",
                f"{t['p99_ms']:.2f} ms vs {n['p99_ms']:.2f} ms", t["p99_ms"] <= n["p99_ms"])
        t, n = (find(rows, "new-connection", p, 1, pinned) for p in ("trafficcop", "nginx"))
        if t and n:
            a, b = ratio(efficiency(t), efficiency(n)), ratio(throughput(t), throughput(n))
            add(f"new connection per request, {how}: ≥ 1.2× nginx (requests per proxy "
                "CPU-second)", f"{fratio(a)} per CPU-s ({fratio(b)} req/s)", a and a >= 1.2)
    t, n = find(rows, "1mib", "trafficcop", 1), find(rows, "1mib", "nginx", 1)
    if t and n:
        a = ratio(efficiency(t), efficiency(n))
        add("1 MiB responses: MiB per proxy CPU-second ≥ 1.5× nginx", fratio(a), a and a >= 1.5)
    t, n = find(rows, "upload-1gib", "trafficcop", 1), find(rows, "upload-1gib", "nginx", 1)
    if t and n:
        add("upload: trafficcop peak RSS ≤ 16 MiB", f"{t['rss_mib']:.1f} MiB",
            t["rss_mib"] is not None and t["rss_mib"] <= 16 and t["errors"] == 0)
        add("upload: throughput ≥ nginx's", f"{t['mib_s']} vs {n['mib_s']} MiB/s",
            t["mib_s"] and n["mib_s"] and t["mib_s"] >= n["mib_s"] and t["errors"] == 0)
    t1 = find(rows, "small-keepalive", "trafficcop", 1)
    t2 = (find(rows, "small-keepalive", "trafficcop", 2)
          or find(rows, "small-keepalive", "trafficcop", 2, False))
    if t1 and t2:
        a = ratio(t2["rps"], t1["rps"])
        pinned = not t2["pinning"].startswith("unpinned")
        add("2 workers ≥ 1.8× 1 worker (small keep-alive req/s)"
            + ("" if pinned else " — not measurable here: no free core for the load generator"),
            fratio(a), (a and a >= 1.8) if pinned else None)
    return res


def median_rounds(all_rows):
    """Each (case, proxy, workers, pinning) once: the round with the median figure per proxy
    CPU-second (throughput where CPU was not measured). Not the best round: other work on the
    machine slows some rounds, but so does the proxy's own variance, and the best round hides
    it (issue 12). Rounds with errors count like the others; the table sums their errors."""
    groups = {}
    for r in all_rows:
        groups.setdefault(key(r), []).append(r)
    out = []
    for rs in groups.values():  # in the order of the first round
        rs = sorted(rs, key=lambda r: efficiency(r) or throughput(r) or 0)
        out.append(rs[(len(rs) - 1) // 2])
    return out


def report(rows_path, meta_path, out_json, out_md):
    with open(rows_path) as f:
        all_rows = [json.loads(l) for l in f if l.strip()]
    rows = median_rounds(all_rows)
    with open(meta_path) as f:
        m = json.load(f)
    tg = targets(rows)
    v, mc, p = m["versions"], m["machine"], m["parameters"]
    md = [f"### Benchmark run {m['date']}", "",
          f"`{m['command']}` — {mc['nproc']} CPUs ({mc['cpu_model']}), Linux {mc['kernel']}, "
          f"load average at start {' '.join(mc['loadavg_at_start'])}.  ",
          f"{v['trafficcop']} ({v['trafficcop_git']}), {v['nginx']}, "
          f"{v['haproxy'].split(' - ')[0]}, {v['wrk'].split(' [')[0]}.  ",
          f"wrk `-t1 -c{p.get('connections')}`, {p.get('duration')} s per row after "
          f"{p.get('warmup')} s warm-up; each proxy freshly started per row; the matrix ran "
          f"{p.get('rounds')} time(s); medians and ranges over the rounds. "
          f"Pinning: {p.get('pinning_note')}", table(rows, all_rows), "", "**Targets (issues 3 and 12)**", "",
          "| target | measured | met |", "|---|---|---|"]
    for t in tg:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        md.append(f"| {t['target']} | {t['measured']} | {met} |")
    text = "\n".join(md) + "\n"
    with open(out_json, "w") as f:
        json.dump({**m, "rows": rows, "targets": tg, "all_rounds": all_rows}, f, indent=1)
        f.write("\n")
    with open(out_md, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cpu":
        print(f"{cpu_seconds(int(args[0])):.2f}")
    elif cmd == "hwm":
        print(hwm_kib(int(args[0])))
    elif cmd == "cpustat":
        print(json.dumps(cpustat(), separators=(",", ":")))
    elif cmd == "row":
        print(json.dumps(row(parse_kv(args))))
    elif cmd == "summary":  # one progress line from a row on stdin
        r = json.load(sys.stdin)
        print(f"round {r['round']} {r['case']:16} {r['proxy']:15} w={r['workers']} req/s={r['rps']} "
              f"MiB/s={r['mib_s']} p99={r['p99_ms']} cpu={r['cpu_s']} ({r['cpu_pct']}%) "
              f"rss={r['rss_mib']} errors={r['errors']} core-busy={r.get('proxy_cores_busy_pct')}"
              f"% (not proxy {r.get('other_on_proxy_cores_pct')}%, irq {r.get('proxy_cores_irq_pct')}%)")
    elif cmd == "meta":
        print(json.dumps(meta(parse_kv(args)), indent=1))
    elif cmd == "report":
        report(*args)
    else:
        sys.exit(f"bench.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
