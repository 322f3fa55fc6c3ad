#!/usr/bin/env python3
"""Checks an np execution trace (Chrome JSON Trace Event Format) for tests/test_trace.c.

Usage: trace_check.py SCENARIO FILE [KEY=VALUE ...]
Always: the file parses with Python's json; every slice has a non-negative duration;
a coroutine's slices do not overlap; every async begin ("b") has its end ("e") with the
same name; every flow has both ends ("s" inside a slice of the waker's track, "f" at
the start of a running slice of the woken coroutine); every track used is named.
Then the scenario's own events, in order. Exit status 0 when all holds, else 1 with
the reason on standard output."""
import json
import os
import subprocess
import sys

scen, path = sys.argv[1], sys.argv[2]
kv = dict(a.split("=", 1) for a in sys.argv[3:])
EPS = 0.002  # us: timestamps are printed with ns precision


def fail(msg):
    print(f"trace_check {scen} {path}: {msg}")
    sys.exit(1)


try:
    with open(path) as f:
        doc = json.load(f)
except (OSError, ValueError) as e:
    fail(f"does not parse: {e}")
ev = doc.get("traceEvents")
if not isinstance(ev, list) or not ev:
    fail("no traceEvents")

names = {}  # (pid, tid) -> name
slices = {}  # (pid, tid) -> [X events] sorted
flows_s, flows_f, asyncs = {}, {}, {}
instants = []
for e in ev:
    for k in ("ph", "pid", "tid"):
        if k not in e:
            fail(f"event without {k}: {e}")
    ph, key = e["ph"], (e["pid"], e["tid"])
    if ph == "M":
        if e["name"] == "thread_name":
            names[key] = e["args"]["name"]
        continue
    if "ts" not in e:
        fail(f"event without ts: {e}")
    if ph == "X":
        if e["dur"] < 0:
            fail(f"negative duration: {e}")
        slices.setdefault(key, []).append(e)
    elif ph == "s":
        if e["id"] in flows_s:
            fail(f"flow id {e['id']} started twice")
        flows_s[e["id"]] = e
    elif ph == "f":
        if e["id"] in flows_f:
            fail(f"flow id {e['id']} ended twice")
        flows_f[e["id"]] = e
    elif ph in ("b", "e"):
        asyncs.setdefault((e["cat"], e["id"]), []).append(e)
    elif ph == "i":
        instants.append(e)
    else:
        fail(f"unexpected phase {ph}")
for v in slices.values():
    v.sort(key=lambda x: (x["ts"], x["dur"]))

# tracks are named
for key in list(slices) + [(e["pid"], e["tid"]) for e in instants]:
    if key not in names:
        fail(f"track {key} has no thread_name")
for (pid, tid), n in names.items():
    if pid == 3 and not n.startswith(f"g{tid}"):
        fail(f"coroutine track {tid} named {n!r}")
    if pid == 1 and n != f"P{tid}":
        fail(f"P track {tid} named {n!r}")

# a coroutine's slices follow one another
for (pid, tid), v in slices.items():
    if pid != 3:
        continue
    for a, b in zip(v, v[1:]):
        if b["ts"] < a["ts"] + a["dur"] - EPS:
            fail(f"coroutine {tid}: {a['name']} at {a['ts']} overlaps {b['name']} at {b['ts']}")


def within(key, ts, name=None):
    """the innermost slice of a track containing ts (optionally of that name prefix)"""
    best = None
    for x in slices.get(key, []):
        if x["ts"] - EPS <= ts <= x["ts"] + x["dur"] + EPS and (name is None or x["name"].startswith(name)):
            if best is None or x["dur"] <= best["dur"]:
                best = x
    return best


# async pairs
for k, v in asyncs.items():
    bs = [e for e in v if e["ph"] == "b"]
    es = [e for e in v if e["ph"] == "e"]
    if len(bs) != 1 or len(es) != 1:
        fail(f"async {k}: {len(bs)} begins, {len(es)} ends")
    if bs[0]["name"] != es[0]["name"] or es[0]["ts"] < bs[0]["ts"]:
        fail(f"async {k}: begin {bs[0]} does not match end {es[0]}")

# flows: both ends, the start inside a slice of the waker, the end where the woken runs
if set(flows_s) != set(flows_f):
    fail(f"flows without both ends: {sorted(set(flows_s) ^ set(flows_f))[:10]}")
flows = []
for i, s in flows_s.items():
    f = flows_f[i]
    if f["ts"] < s["ts"] - EPS:
        fail(f"flow {i} ends before it starts")
    if not within((s["pid"], s["tid"]), s["ts"]):
        fail(f"flow {i} starts outside any slice of track {(s['pid'], s['tid'])} at {s['ts']}")
    r = within((3, f["tid"]), f["ts"], "running")
    if f["pid"] != 3 or not r or abs(r["ts"] - f["ts"]) > EPS:
        fail(f"flow {i} does not end at a running slice of coroutine {f['tid']}")
    flows.append((s, f))
flows.sort(key=lambda sf: sf[0]["ts"])


def coroutine(fn):
    ids = [tid for (pid, tid), n in names.items() if pid == 3 and n.split(" ", 1)[-1] == fn]
    if len(ids) != 1:
        fail(f"{len(ids)} coroutines started with {fn}: {sorted(names.values())}")
    return ids[0]


def track(tid):
    return slices.get((3, tid), [])


def flows_into(tid):
    return [(s, f) for s, f in flows if f["tid"] == tid]


def seq(tid):
    """slice names of a coroutine, consecutive repeats merged"""
    out = []
    for x in track(tid):
        if not out or out[-1] != x["name"]:
            out.append(x["name"])
    return out


ms = float(kv.get("ms", 0)) * 1000  # us
if scen == "any":
    pass
elif scen == "pingpong":
    rounds = int(kv["rounds"])
    p, q = coroutine("pinger"), coroutine("ponger")
    for tid, who in ((p, "pinger"), (q, "ponger")):
        s = seq(tid)
        # runnable (created), then running / wait on a channel / runnable, round after round
        if s[0] != "runnable" or s[1] != "running" or s[-1] != "running":
            fail(f"{who}: {s}")
        for a, b in zip(s, s[1:]):
            ok = {("runnable", "running"), ("running", "wait: chan send"), ("running", "wait: chan receive"),
                  ("wait: chan send", "runnable"), ("wait: chan receive", "runnable"), ("running", "runnable")}
            if (a, b) not in ok:
                fail(f"{who}: {a} then {b} in {s}")
        waits = [x for x in track(tid) if x["name"].startswith("wait: chan")]
        if not rounds <= len(waits) <= 2 * rounds:
            fail(f"{who}: {len(waits)} channel waits for {rounds} rounds")
        for x in waits:
            if not x.get("args", {}).get("object"):
                fail(f"{who}: a channel wait without its channel: {x}")
    # the wake-ups go back and forth between the two, each by the other
    pq = [(s["tid"], f["tid"]) for s, f in flows if s["pid"] == 3 and {s["tid"], f["tid"]} == {p, q}]
    if len(pq) < 2 * rounds - 1:
        fail(f"{len(pq)} wake-ups between pinger and ponger for {rounds} rounds")
    for a, b in zip(pq, pq[1:]):
        if a == b:
            fail(f"two wake-ups in a row from {a[0]} to {a[1]}: {pq}")
    # created by main, which started them
    main = [tid for (pid, tid), n in names.items() if pid == 3 and n.endswith("pingpong_main")]
    for tid in (p, q):
        if not flows_into(tid) or flows_into(tid)[0][0]["tid"] not in main:
            fail(f"coroutine {tid}'s first wake-up is not main's go")
elif scen in ("sleeper", "env"):
    t = coroutine("sleeper")
    waits = [x for x in track(t) if x["name"] == "wait: sleep"]
    if len(waits) != 1:
        fail(f"sleeper: sleep waits {[(x['ts'], x['dur']) for x in waits]}, want one")
    w = waits[0]
    end = w["ts"] + w["dur"]
    # the sleep ends ms after the log that precedes it (the park itself is recorded a
    # little after the deadline is taken: slower under emulation)
    logs = [i for i in instants if i["name"] == "log" and i["tid"] == t and i["pid"] == 3]
    if len(logs) != 1 or not logs[0]["ts"] <= w["ts"] or end - logs[0]["ts"] < ms:
        fail(f"sleeper: the sleep ends {end - logs[0]['ts'] if logs else '?'} us after its log, want {ms} or more")
    fl = [(s, f) for s, f in flows_into(t) if s["ts"] >= end - EPS]
    if not fl:
        fail("sleeper: no wake-up after its sleep")
    s = fl[0][0]
    if s["pid"] != 2 or not within((2, s["tid"]), s["ts"], "timers"):
        fail(f"sleeper: woken from {(s['pid'], s['tid'])}, not a thread's timers: {s}")
    if seq(t)[-3:] != ["wait: sleep", "runnable", "running"]:
        fail(f"sleeper: {seq(t)}")
    if not any(i["name"] == "exit" for i in instants if i["pid"] == 3 and i["tid"] == t):
        fail("sleeper: no exit")
    if scen == "env" and doc.get("otherData", {}).get("mode") != "full":
        fail(f"mode {doc.get('otherData')}")
elif scen == "socket":
    t = coroutine("reader")
    fd = int(kv["fd"])
    waits = [x for x in track(t) if x["name"] == "wait: IO wait"]
    if len(waits) != 1 or waits[0]["dur"] < ms or waits[0].get("args", {}).get("fd") != fd:
        fail(f"reader: IO waits {waits}, want one on fd {fd} of {ms} us or more")
    end = waits[0]["ts"] + waits[0]["dur"]
    fl = [(s, f) for s, f in flows_into(t) if s["ts"] >= end - EPS]
    if not fl:
        fail("reader: no wake-up after its wait")
    s = fl[0][0]
    poll = within((2, s["tid"]), s["ts"], "netpoll") if s["pid"] == 2 else None
    if not poll or poll["args"]["readied"] < 1:
        fail(f"reader: woken from {s}, not inside a netpoll that readied it")
    if seq(t) != ["runnable", "running", "wait: IO wait", "runnable", "running"]:
        fail(f"reader: {seq(t)}")
elif scen == "blocking":
    b, tk = coroutine("blocker"), coroutine("ticker")
    bl = [x for x in track(b) if x["name"] == "np_blocking"]
    if len(bl) != 1 or bl[0]["dur"] < ms:
        fail(f"blocker: np_blocking slices {bl}")
    t0, t1 = bl[0]["ts"], bl[0]["ts"] + bl[0]["dur"]
    before = [x for x in track(b) if x["name"] == "running" and x["ts"] + x["dur"] <= t0 + EPS]
    if not before:
        fail("blocker: did not run before its call")
    thread = before[-1]["args"]["thread"]
    m = [x for x in slices.get((2, thread), []) if x["name"] == f"np_blocking g{b}"]
    if len(m) != 1 or abs(m[0]["ts"] - t0) > EPS or m[0]["dur"] < ms:
        fail(f"thread {thread}: np_blocking slices {m}")
    ho = [i for i in instants if i["pid"] == 1 and i["name"] == "handoff" and t0 <= i["ts"] <= t1]
    if len(ho) != 1 or ho[0]["args"]["g"] != b:
        fail(f"handoffs of the blocker's P: {ho}")
    # the ticker ran on another thread meanwhile
    during = [x for x in track(tk) if x["name"] == "running" and t0 < x["ts"] < t1]
    if not during or any(x["args"]["thread"] == thread for x in during):
        fail(f"ticker during the call: {during}")
elif scen == "steal":
    st = [i for i in instants if i["pid"] == 1 and i["name"] == "steal"]
    if not st:
        fail("no steal")
    workers = [tid for (pid, tid), n in names.items() if pid == 3 and n.endswith(" worker")]
    if len(workers) != int(kv["workers"]):
        fail(f"workers {workers}")
    ps = {x["args"]["p"] for w in workers for x in track(w) if x["name"] == "running"}
    if ps != {0, 1}:
        fail(f"workers ran on Ps {ps}")
    for i in st:
        if i["args"]["g"] not in workers or i["args"]["from"] == i["tid"]:
            fail(f"steal {i}")
        # the stolen one next runs on the thief
        r = [x for x in track(i["args"]["g"]) if x["name"] == "running" and x["ts"] >= i["ts"] - EPS]
        if not r or r[0]["args"]["p"] != i["tid"]:
            fail(f"stolen g{i['args']['g']} did not run next on P{i['tid']}")
elif scen == "regions":
    t = coroutine("annotator")
    mine = sorted((e for v in asyncs.values() for e in v if e["tid"] == t), key=lambda e: (e["ts"], e["ph"] == "b"))
    got = [(e["ph"], e["name"]) for e in mine]
    want = [("b", "outer"), ("b", 'inner "quoted"'), ("e", 'inner "quoted"'), ("e", "outer"),
            ("b", "left open"), ("e", "left open")]
    if got != want:
        fail(f"regions {got}")
    logs = [i for i in instants if i["name"] == "log"]
    if len(logs) != 1 or logs[0]["tid"] != t or logs[0]["args"] != {"category": "phase", "message": "step 3"}:
        fail(f"logs {logs}")
    outer = [e for e in mine if e["name"] == "outer"]
    if not outer[0]["ts"] <= logs[0]["ts"] <= outer[1]["ts"]:
        fail("the log is outside its regions")
elif scen == "ring":
    size = os.path.getsize(path)
    if size > int(kv["max_bytes"]):
        fail(f"{size} bytes, over {kv['max_bytes']}")
    if doc.get("otherData", {}).get("mode") != "flight recorder":
        fail(f"mode {doc.get('otherData')}")
    msgs = [i["args"]["message"] for i in instants if i["name"] == "log"]
    if kv["last"] not in msgs:
        fail(f"the last events are missing: {msgs}")
    if kv["absent"] in msgs:
        fail(f"the first events are still there: {msgs}")
    if not any(x["name"] == "running" for v in slices.values() for x in v):
        fail("no running slice")
elif scen == "spinning":
    m, ch = coroutine("spinning_main"), coroutine("spun_child")
    if seq(m) != ["running"]:
        fail(f"spinning_main: {seq(m)}, want one running slice over the whole trace")
    fl = flows_into(ch)
    if len(fl) != 1 or fl[0][0]["tid"] != m or fl[0][0]["pid"] != 3:
        fail(f"spun_child's creation: {fl}")
    r = track(ch)[-1]
    if r["name"] != "running" or r["args"]["p"] == track(m)[0]["args"]["p"]:
        fail(f"spun_child ran on {r}, main on {track(m)[0]}")
elif scen == "marks":
    msgs = [i["args"]["message"] for i in instants if i["name"] == "log"]
    for m in kv["want"].split(","):
        if m not in msgs:
            fail(f"mark {m!r} missing: {msgs}")
elif scen == "window":
    msgs = [i["args"]["message"] for i in instants if i["name"] == "log"]
    if msgs != ["first", "last"]:
        fail(f"marks {msgs}, want first and last")
    t = coroutine("foreign_child")
    fl = flows_into(t)
    if not fl or fl[0][0]["pid"] != 2 or not names[(2, fl[0][0]["tid"])].startswith("thread "):
        fail(f"foreign_child not created by a foreign thread: {fl[:1]}")
elif scen == "logonly":
    logs = [i for i in instants if i["name"] == "log"]
    if [i["args"]["message"] for i in logs] != ["alone"]:
        fail(f"logs {logs}, want the one 'alone'")
    if logs[0]["pid"] != 3 or not names.get((3, logs[0]["tid"]), "").endswith("log_only_main"):
        fail(f"the log is not on log_only_main's track: {logs[0]}")
elif scen == "summary":
    tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "np-trace")
    out = subprocess.run([sys.executable, tool, path], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        fail(f"np-trace exit {out.returncode}: {out.stderr}")
    text = out.stdout
    print(text)
    t = coroutine("sleeper")
    row = [l for l in text.splitlines() if l.split()[:1] == [f"g{t}"]]
    if not row or "sleeper" not in row[0]:
        fail(f"no row for the sleeper g{t}")
    # columns: g, running, runnable, waiting (ms), function: the trace's own sums
    cols = row[0].split()
    for k, name in ((1, "running"), (2, "runnable"), (3, "wait")):
        want = sum(x["dur"] for x in track(t) if x["name"].startswith(name)) / 1000
        if abs(float(cols[k]) - want) > 0.002:
            fail(f"np-trace says {name} {cols[k]} ms for the sleeper, the trace {want:.3f}")
    if not any(l.split()[:1] == ["sleep"] for l in text.splitlines()):
        fail("no per-reason row for sleep")
    longest = text.split("longest waits", 1)[-1]
    if f"g{t}" not in longest or "sleep" not in longest:
        fail("the sleeper's sleep is not among the longest waits")
else:
    fail(f"unknown scenario {scen}")
print(f"trace_check {scen}: ok ({len(ev)} events, {len(flows)} flows)")
