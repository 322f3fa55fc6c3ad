#!/usr/bin/env python3
"""np-httpd against real clients: Python's http.client, raw sockets (pipelining, 10,000
idle keep-alive connections, with the server's RSS per connection) and headless Chromium
on /debug/np/ driven through chromedriver's WebDriver protocol (plain HTTP, no package
needed), with a screenshot kept as an artifact.

Usage: http_clients.py PORT SERVER_PID ARTIFACT_DIR [CASE...]
Prints "ok NAME", "FAIL NAME (why)" or "skip NAME (why)" per case, then
"N passed, N failed, N skipped"."""
import base64
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

PORT = int(sys.argv[1])
PID = int(sys.argv[2])
ART = sys.argv[3]
ONLY = sys.argv[4:]
HOST = "127.0.0.1"


class Skip(Exception):
    pass


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def vars_():
    with urllib.request.urlopen(f"http://{HOST}:{PORT}/debug/np/vars", timeout=10) as r:
        return json.loads(r.read())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def until(cond, secs, what):
    """Wait for an event seen only by looking (bounded): cond() true within secs."""
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


# ---- cases --------------------------------------------------------------------------
def case_keepalive_http_client():
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    socks = set()
    for i in range(20):
        c.request("GET", "/", headers={"X-I": str(i)})
        r = c.getresponse()
        check(r.status == 200 and r.read() == b"hello, world\n", "hello")
        check(r.getheader("Content-Length") == "13", "Content-Length")
        socks.add(id(c.sock))
    check(len(socks) == 1, "one connection for 20 requests")
    c.request("GET", "/nothing-here")
    r = c.getresponse()
    check(r.status == 404 and r.read() == b"404 Not Found\n", "404")
    c.request("HEAD", "/")
    r = c.getresponse()
    check(r.status == 200 and r.read() == b"" and r.getheader("Content-Length") == "13", "HEAD")
    c.close()


def case_chunked_upload_download():
    data = bytes((i * 31 + 7) % 251 for i in range(300000))

    def gen():
        for i in range(0, len(data), 7001):
            yield data[i:i + 7001]
    c = http.client.HTTPConnection(HOST, PORT, timeout=20)
    c.request("POST", "/echo", body=gen(), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    check(r.status == 200, f"status {r.status}")
    check(r.getheader("Transfer-Encoding") == "chunked", "echo of 300 kB is chunked")
    body = r.read()
    check(body == data, f"echoed {len(body)} bytes, differ")
    # a short one has a length
    c.request("POST", "/echo", body=b"tiny")
    r = c.getresponse()
    check(r.read() == b"tiny" and r.getheader("Content-Length") == "4", "short echo")
    c.close()


def case_pipelining_raw():
    s = socket.create_connection((HOST, PORT), timeout=10)
    reqs = b"".join(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" %
                    (len(b"m%03d" % i), b"m%03d" % i) for i in range(50))
    reqs += b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    s.sendall(reqs)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    parts = got.split(b"HTTP/1.1 200 OK\r\n")[1:]
    check(len(parts) == 51, f"{len(parts)} responses to 51 pipelined requests")
    for i, p in enumerate(parts[:50]):
        check(p.endswith(b"\r\n\r\nm%03d" % i), f"response {i} out of order: {p[-20:]!r}")
    check(parts[50].endswith(b"hello, world\n") and b"Connection: close" in parts[50], "last")


def case_static_file_and_limits():
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    c.request("GET", "/static/blob.bin")
    r = c.getresponse()
    body = r.read()
    want = open(os.path.join(ART, "www", "blob.bin"), "rb").read()
    check(r.status == 200 and body == want, "static file")
    c.request("GET", "/static/../../etc/passwd")
    r = c.getresponse()
    r.read()
    check(r.status in (403, 404), f"traversal answered {r.status}")
    c.close()
    # a head over 64 KiB: 431
    c = http.client.HTTPConnection(HOST, PORT, timeout=10)
    c.request("GET", "/", headers={"X-Big": "a" * 70000})
    r = c.getresponse()
    check(r.status == 431, f"oversize head: {r.status}")
    c.close()


def case_idle_10000_keepalive():
    n = 10000
    base_rss = rss_kib(PID)
    base = vars_()
    socks = []
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    for i in range(n):
        s = socket.create_connection((HOST, PORT), timeout=20)
        s.sendall(req)
        socks.append(s)
    for s in socks:
        got = b""
        while not got.endswith(b"hello, world\n"):
            b = s.recv(4096)
            check(b, "a connection closed early")
            got += b
    v = vars_()
    rss = rss_kib(PID)
    per = (rss - base_rss) * 1024 / n
    print(f"note: {n} idle keep-alive connections: server RSS {base_rss} -> {rss} KiB, "
          f"{per / 1024:.1f} KiB per connection; fds {base['fds']} -> {v['fds']}, "
          f"coroutines {base['coroutines']} -> {v['coroutines']}")
    with open(os.path.join(ART, "idle-10000.txt"), "w") as f:
        f.write(f"connections {n}\nrss_before_kib {base_rss}\nrss_after_kib {rss}\n"
                f"kib_per_connection {per / 1024:.2f}\n")
    check(v["fds"] - base["fds"] >= n, "every connection held by the server")
    check(v["waiting_by"]["io"] >= n, "each connection's coroutine waits in io")
    # every one still answers
    for s in socks[::500]:
        s.sendall(req)
        got = b""
        while not got.endswith(b"hello, world\n"):
            b = s.recv(4096)
            check(b, "a kept connection was closed")
            got += b
    check(per < 64 * 1024, f"{per / 1024:.1f} KiB per idle connection")
    for s in socks:
        s.close()
    until(lambda: vars_()["fds"] <= base["fds"] + 5, 30, "the server to close 10,000 connections")


def webdriver(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())["value"]


def case_debug_page_in_chromium():
    drv = shutil.which("chromedriver")
    if not drv or not os.path.exists("/usr/bin/chromium"):
        raise Skip("chromium and chromium-driver are not installed")
    with socket.socket() as s:
        s.bind((HOST, 0))
        dport = s.getsockname()[1]
    prof = tempfile.mkdtemp(prefix="np-chromium.")
    log = open(os.path.join(ART, "chromedriver.log"), "w")
    p = subprocess.Popen([drv, f"--port={dport}"], stdout=log, stderr=subprocess.STDOUT)
    sid = None
    try:
        def up():
            try:
                return webdriver(dport, "GET", "/status")["ready"]
            except OSError:
                return False
        until(up, 20, "chromedriver")
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                     "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={prof}",
                     "--window-size=1100,800"]}}}}
        sid = webdriver(dport, "POST", "/session", caps)["sessionId"]
        webdriver(dport, "POST", f"/session/{sid}/url",
                  {"url": f"http://{HOST}:{PORT}/debug/np/"})

        def js(script):
            return webdriver(dport, "POST", f"/session/{sid}/execute/sync",
                             {"script": script, "args": []})
        # wait for the page to have refreshed itself (the first load, then the timer)
        until(lambda: int(js("return document.getElementById('refreshes').textContent") or 0) >= 3,
              30, "three refreshes of /debug/np/")
        shown = js("""const ids=['coroutines','running','runnable','waiting','procs','threads',
            'timers','fds','switches','polls','events','steals'];const o={};
            for(const k of ids)o[k]=document.getElementById('v-'+k).textContent;
            o.io=document.getElementById('w-io').textContent;
            o.last=window.npLast;o.rate=document.getElementById('r-switches').textContent;
            const c=document.getElementById('chart');
            const d=c.getContext('2d').getImageData(0,0,c.width,c.height).data;
            let ink=0;for(let i=3;i<d.length;i+=4)if(d[i])ink++;o.ink=ink;
            o.version=document.getElementById('version').textContent;return o;""")
        last = shown["last"]
        # the table shows the last /debug/np/vars the page fetched, field by field
        for k in ("coroutines", "running", "runnable", "waiting", "procs", "threads", "timers",
                  "fds", "switches", "polls", "events", "steals"):
            check(shown[k] == str(last[k]), f"{k}: shows {shown[k]}, fetched {last[k]}")
        check(shown["io"] == str(last["waiting_by"]["io"]), "io waiters")
        # and what np_stats says now agrees where it does not move by itself
        now = vars_()
        check(last["procs"] == now["procs"] == 1, f"Ps: page {last['procs']}, np_stats {now['procs']}")
        check(last["threads"] >= 1 and last["coroutines"] >= 2, "threads and coroutines counted")
        check(last["running"] + last["runnable"] + last["waiting"] == last["coroutines"],
              "running + runnable + waiting = coroutines")
        check(now["switches"] > last["switches"] - 1, "switches only grow")
        check(shown["rate"] != "", "a rate per second after a refresh")
        check(shown["ink"] > 50, f"the chart is drawn ({shown['ink']} pixels)")
        check(last["version"] in shown["version"], "version shown")
        png = base64.b64decode(webdriver(dport, "GET", f"/session/{sid}/screenshot"))
        path = os.path.join(ART, "debug-np.png")
        with open(path, "wb") as f:
            f.write(png)
        check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, "a screenshot")
        print(f"note: /debug/np/ in Chromium: {shown['coroutines']} coroutines, "
              f"{shown['procs']} P, {shown['switches']} switches; screenshot {path} "
              f"({len(png)} bytes, sha1 {hashlib.sha1(png).hexdigest()[:10]})")
    finally:
        if sid:
            try:
                webdriver(dport, "DELETE", f"/session/{sid}")
            except OSError:
                pass
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        log.close()
        shutil.rmtree(prof, ignore_errors=True)


CASES = [(n[5:], f) for n, f in list(globals().items()) if n.startswith("case_")]


def main():
    passed = failed = skipped = 0
    for name, fn in CASES:
        if ONLY and name not in ONLY:
            continue
        t0 = time.monotonic()
        try:
            fn()
            print(f"ok   http_clients:{name} ({time.monotonic() - t0:.2f}s)", flush=True)
            passed += 1
        except Skip as e:
            print(f"skip http_clients:{name} ({e})", flush=True)
            skipped += 1
        except Exception as e:  # noqa: BLE001 (a case's failure, whatever it is)
            traceback.print_exc()
            print(f"FAIL http_clients:{name} ({e})", flush=True)
            failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
