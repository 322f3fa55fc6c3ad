#!/usr/bin/env bash
# np-httpd against real clients (the http stage of tests/run.sh): curl (keep-alive,
# HTTP/1.0, HEAD, chunked upload, 100-continue, a static file, a graceful stop on
# SIGTERM), then tests/http_clients.py (Python's http.client, pipelining, 10,000 idle
# keep-alive connections with the RSS per connection, /debug/np/ in headless Chromium
# with a screenshot), then np-httpd --tls against curl --cacert (TLS 1.2 and 1.3, ALPN,
# keep-alive, an upload, verification failures). Loopback only; the server is started here and stopped by pid.
# Usage: tests/http.sh [BUILD_DIR]   (default build; artifacts in build/test-logs/http/artifacts/)
set -uo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
ART=$PWD/build/test-logs/http/artifacts
rm -rf "$ART"
mkdir -p "$ART/www"
pass=0 fail=0 skip=0
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT

ok() { echo "ok   http.sh:$1"; pass=$((pass + 1)); }
bad() { echo "FAIL http.sh:$1 ($2)"; fail=$((fail + 1)); }

. tests/lib.sh # ready, free_port

# the server, on one P, files from $ART/www
perl -e 'print map { chr(($_ * 31 + 7) % 251) } 0 .. 2999999' >"$ART/www/blob.bin"
port=$(free_port)
ulimit -n 20000 2>/dev/null
NP_PROCS=1 "$B/bin/np-httpd" -d "$ART/www" "$port" >"$ART/np-httpd.log" 2>&1 &
pid=$!
url=http://127.0.0.1:$port
ready curl -sf "$url/" || echo "np-httpd did not start: $(cat "$ART/np-httpd.log")"

# ---- curl --------------------------------------------------------------------------------
c() { curl -sS --max-time 20 "$@"; }
[ "$(c "$url/")" = "hello, world" ] && ok curl_get || bad curl_get "no hello"
# two URLs in one curl: the second goes over the first's connection
out=$(c -v "$url/" "$url/" 2>&1)
echo "$out" | grep -q "Re-using existing connection" && [ "$(echo "$out" | grep -c '^hello, world')" = 2 ] &&
    ok curl_keepalive || bad curl_keepalive "connection not reused"
out=$(c -v --http1.0 "$url/" 2>&1)
echo "$out" | grep -q "< Connection: close" && echo "$out" | grep -q "^hello, world" &&
    ok curl_http10 || bad curl_http10 "$(echo "$out" | tail -n 3)"
out=$(c -I "$url/")
echo "$out" | grep -q "Content-Length: 13" && ok curl_head || bad curl_head "$out"
c -H "Transfer-Encoding: chunked" --data-binary @"$ART/www/blob.bin" "$url/echo" -o "$ART/echo.out"
cmp -s "$ART/echo.out" "$ART/www/blob.bin" && ok curl_chunked_upload_3mb || bad curl_chunked_upload_3mb "echo differs"
out=$(c -v -H "Expect: 100-continue" --data-binary @"$ART/www/blob.bin" "$url/echo" -o "$ART/echo2.out" 2>&1)
echo "$out" | grep -q "HTTP/1.1 100 Continue" && cmp -s "$ART/echo2.out" "$ART/www/blob.bin" &&
    ok curl_expect_100_continue || bad curl_expect_100_continue "$(echo "$out" | grep '^<' | head -n 3)"
c "$url/static/blob.bin" -o "$ART/static.out"
cmp -s "$ART/static.out" "$ART/www/blob.bin" && ok curl_static_file || bad curl_static_file "differs"
out=$(c -s -o /dev/null -w '%{http_code}' -H "Content-Length: 3" -H "Transfer-Encoding: chunked" \
    --data-binary abc "$url/echo")
[ "$out" = 400 ] && ok curl_cl_te_400 || bad curl_cl_te_400 "answered $out"

# ---- Python's http.client, raw sockets, Chromium ------------------------------------------
out=$(timeout 300 python3 tests/http_clients.py "$port" "$pid" "$ART" 2>&1)
echo "$out" | grep -E '^(ok|FAIL|skip|note)'
echo "$out" | grep -q '^FAIL' && echo "$out" | grep -Ev '^(ok|skip|note)' | head -n 40 | sed 's/^/      /'
line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
if [ -n "$line" ]; then
    p=${line%% passed*} f=${line#*passed, } f=${f%% failed*} s=${line#*failed, } s=${s%% skipped*}
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
else
    bad http_clients.py "no summary"
fi

# ---- SIGTERM: a graceful stop, a request in progress answered ------------------------------
(c -H "Expect:" --limit-rate 1M --data-binary @"$ART/www/blob.bin" "$url/echo" -o "$ART/term.out"; echo $? >"$ART/term.rc") &
cpid=$!
# (the echo has begun coming back: the request is in its handler)
ready test -s "$ART/term.out" || echo "the upload did not start"
kill -TERM "$pid"
wait "$cpid"
rc=0
wait "$pid" || rc=$?
pid=
cmp -s "$ART/term.out" "$ART/www/blob.bin" && [ "$rc" = 0 ] && grep -q "shutting down" "$ART/np-httpd.log" &&
    ok sigterm_graceful_request_finished || bad sigterm_graceful_request_finished "exit $rc, curl $(cat "$ART/term.rc")"

# ---- HTTPS: np-httpd --tls against curl -------------------------------------------------------
certs=$PWD/build/test-certs
bash tests/certs.sh "$certs" || bad certs "tests/certs.sh failed"
tport=$(free_port)
NP_PROCS=1 "$B/bin/np-httpd" --tls "$certs/server.pem" "$certs/server.key" -d "$ART/www" "$tport" \
    >"$ART/np-httpd-tls.log" 2>&1 &
pid=$!
turl=https://localhost:$tport
ready curl -sf --cacert "$certs/ca.pem" "$turl/" || echo "np-httpd --tls did not start: $(cat "$ART/np-httpd-tls.log")"
ct() { curl -sS --max-time 20 --cacert "$certs/ca.pem" "$@"; }
out=$(ct -v "$turl/" "$turl/" 2>&1)
echo "$out" | grep -q "SSL certificate verify ok" && echo "$out" | grep -q "ALPN: server accepted http/1.1" &&
    echo "$out" | grep -q "Re-using existing connection" && [ "$(echo "$out" | grep -c '^hello, world')" = 2 ] &&
    ok curl_https_verified_alpn_keepalive || bad curl_https_verified_alpn_keepalive "$(echo "$out" | grep -E '^\*' | tail -n 5)"
for v in 1.2 1.3; do
    out=$(ct -v --tlsv$v --tls-max $v "$turl/" 2>&1)
    echo "$out" | grep -q "SSL connection using TLSv$v" && echo "$out" | grep -q '^hello, world' &&
        ok curl_https_tls$v || bad curl_https_tls$v "$(echo "$out" | grep -E 'SSL connection|error' | head -n 2)"
done
ct -H "Transfer-Encoding: chunked" --data-binary @"$ART/www/blob.bin" "$turl/echo" -o "$ART/tls-echo.out"
cmp -s "$ART/tls-echo.out" "$ART/www/blob.bin" && ok curl_https_upload_3mb || bad curl_https_upload_3mb "echo differs"
ct "$turl/static/blob.bin" -o "$ART/tls-static.out"
cmp -s "$ART/tls-static.out" "$ART/www/blob.bin" && ok curl_https_static_file || bad curl_https_static_file "differs"
rc=0
curl -sS --max-time 20 "$turl/" >/dev/null 2>"$ART/tls-noca.err" || rc=$?
[ "$rc" = 60 ] && ok curl_https_unknown_ca_refused || bad curl_https_unknown_ca_refused "curl exit $rc"
rc=0
ct --resolve "wrong.example:$tport:127.0.0.1" "https://wrong.example:$tport/" >/dev/null 2>"$ART/tls-name.err" || rc=$?
[ "$rc" = 60 ] && grep -qi "subject" "$ART/tls-name.err" && ok curl_https_wrong_name_refused ||
    bad curl_https_wrong_name_refused "curl exit $rc: $(cat "$ART/tls-name.err")"
out=$(curl -sS --max-time 5 "http://127.0.0.1:$tport/" 2>&1)
[ "$out" != "hello, world" ] && ok plain_http_to_https_port_refused || bad plain_http_to_https_port_refused "answered"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] && ok https_sigterm_exit || bad https_sigterm_exit "exit $rc"

# ---- the tracer: np-httpd traced from start to exit (NP_TRACE=FILE), the trace read by
# np-trace and opened in speedscope in headless Chromium (tests/trace_view.sh) -----------------
trace=$ART/np-httpd-trace.json
tport=$(free_port)
NP_PROCS=2 NP_TRACE="$trace" "$B/bin/np-httpd" -d "$ART/www" "$tport" >"$ART/np-httpd-trace.log" 2>&1 &
pid=$!
ready curl -sf "http://127.0.0.1:$tport/" || echo "np-httpd (traced) did not start: $(cat "$ART/np-httpd-trace.log")"
for i in $(seq 20); do c "http://127.0.0.1:$tport/" "http://127.0.0.1:$tport/static/blob.bin" >/dev/null; done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] && [ -s "$trace" ] && ok traced_httpd_writes_trace_at_exit || bad traced_httpd_writes_trace_at_exit "exit $rc, $(ls -l "$trace" 2>&1)"
out=$(python3 tests/trace_check.py any "$trace" 2>&1) && ok trace_file_checks || bad trace_file_checks "$out"
out=$(python3 tools/np-trace -n 1000 "$trace" 2>&1)
echo "$out" >"$ART/np-trace.txt"
n=$(echo "$out" | grep -Ec '^g[0-9]+ .* np__http_conn$')
[ "$n" -ge 20 ] && echo "$out" | grep -Eq '^IO wait +[0-9]+' && ok np_trace_summary_of_httpd ||
    bad np_trace_summary_of_httpd "$n connection coroutines; $(echo "$out" | head -n 30)"
# in speedscope: the main coroutine's track and a connection's
names=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
n = [e["args"]["name"] for e in d["traceEvents"] if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == 3]
print(next(x for x in n if x.endswith(" np__http_conn")))
print(next(x for x in n if x.startswith("g1 ")))' "$trace")
mapfile -t tn <<<"$names"
out=$(bash tests/trace_view.sh "$trace" "$ART/trace-speedscope.png" "${tn[@]}" 2>&1)
echo "$out" | sed 's/^/    /' >"$ART/trace-view.log"
while read -r line; do
    case $line in
    "ok   trace_view:"*) ok "${line#ok   }" ;;
    "FAIL trace_view:"*) f=${line#FAIL }; bad "${f%% *}" "${f#* }" ;;
    esac
done <<<"$out"
echo "$out" | grep -q '^ok   trace_view:screenshot' || bad trace_view "$(echo "$out" | tail -n 5)"

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
