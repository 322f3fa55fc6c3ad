#!/usr/bin/env bash
# make bench: np side by side with the yardstick (../shared/bench), in one run.
# Ratios, not absolute figures, are what to compare on a shared machine.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ys_src=$(cd "$root/../shared/bench" 2>/dev/null && pwd) || { echo "no ../shared/bench"; exit 1; }
ys=$root/build/yardstick
[ -x "$ys/go_ctx" ] && [ -x "$ys/echoload" ] || "$ys_src/build.sh" "$ys" >/dev/null || exit 1
bin=$root/build/bin
ulimit -n 20000 2>/dev/null
rounds=${BENCH_ROUNDS:-7}
secs=${BENCH_SECS:-5}

echo "== runtime: NP_PROCS=1 vs GOMAXPROCS=1 (go_ctx), both on CPU 0, $rounds rounds interleaved"
field() { sed -n "s/.*$1\([0-9.]*\).*/\1/p"; }
sw=() sp=() pk=()
for r in $(seq "$rounds"); do
    np=$(NP_PROCS=1 taskset -c 0 "$bin/np-bench-runtime")
    go=$(taskset -c 0 "$ys/go_ctx")
    echo "round $r np: $np"
    echo "$go" | sed "s/^/round $r go: /"
    gsw=$(field 'pingpong: ' <<<"$go"); gsp=$(field 'spawn+exit: ' <<<"$go"); gpk=$(field 'goroutine: ' <<<"$go")
    nsw=$(field 'switch_ns=' <<<"$np"); nsp=$(field 'spawn_ns=' <<<"$np"); npk=$(field 'parked_kib=' <<<"$np")
    sw+=("$(awk -v a="$nsw" -v b="$gsw" 'BEGIN{printf "%.3f", a/b}')")
    sp+=("$(awk -v a="$nsp" -v b="$gsp" 'BEGIN{printf "%.3f", a/b}')")
    pk+=("$npk/$gpk")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
echo "ratio np/go per round: switch ${sw[*]}  spawn ${sp[*]}  parked KiB np/go ${pk[*]}"
echo "ratio np/go median: switch=$(median "${sw[@]}") (target <= 0.100)  spawn=$(median "${sp[@]}") (target <= 0.067)  parked=${pk[0]%/*} KiB (target <= 4.5)"

echo "== echo 50 conns x 64 B, NP_PROCS=1, server on CPU 0, load on CPU 1"
"$ys/abecho.sh" "$rounds" 50 64 "$secs" "epoll=$ys/echo_epoll 7201" "np=$bin/np-echo 7202" \
    "libuv=$ys/echo_uv 7203" "go=$ys/go_echo 7204"
echo "== echo 50 conns x 64 B: np-echo linked statically vs against libnp.so (server CPU per message)"
"$ys/cpuecho.sh" "$rounds" 50 64 "$secs" "np-static=$bin/np-echo 7241" "np-shared=$bin/np-echo-shared 7242"
echo "== echo 50 x 64 B, np and epoll served at the same time (both on CPU 0, drift-immune)"
bash bench/pair.sh "$rounds" 3 "epoll=$ys/echo_epoll 7205" "np=$bin/np-echo 7206"
echo "== echo 1000 conns x 4 KiB"
"$ys/abecho.sh" "$rounds" 1000 4096 "$secs" "epoll=$ys/echo_epoll 7211" "np=$bin/np-echo 7212" \
    "libuv=$ys/echo_uv 7213" "go=$ys/go_echo 7214"
echo "== echo 50 x 64 B, NP_PROCS=2 vs GOMAXPROCS=2 (server on both CPUs, load on CPU 1)"
PROCS=2 bash bench/abecho_procs.sh "$rounds" 50 64 "$secs" "go=$ys/go_echo 7224" "np=$bin/np-echo 7222"
echo "== the tracer's cost: echo 50 x 64 B, np-echo without trace points vs tracing off, flight recorder, full"
bash bench/trace.sh "$rounds" "$secs"
echo "== RSS per idle connection (10,000)"
mgo=$("$ys/memconn.sh" 10000 "$ys/go_echo 7231"); echo "$mgo"
mnp=$("$ys/memconn.sh" 10000 "$bin/np-echo 7232"); echo "$mnp"
awk -v a="$(sed -n 's/.*per_conn_kib=\([0-9.]*\).*/\1/p' <<<"$mnp")" \
    -v b="$(sed -n 's/.*per_conn_kib=\([0-9.]*\).*/\1/p' <<<"$mgo")" \
    'BEGIN{ printf "ratio np/go: per idle connection=%.3f (target <= 0.6)\n", (b>0)?a/b:0 }'

echo "== Redis: unmodified hiredis in coroutines (libnp-hook) vs redis-benchmark and threads"
dpkg -s libhiredis-dev >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libhiredis-dev >/dev/null
command -v redis-benchmark >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
make -s build/bin/np-redisload >/dev/null && bash bench/redis.sh "$rounds"

echo "== HTTP hello: np-httpd vs nginx (one worker) and Go net/http, wrk on CPU 1"
bash bench/http.sh "$rounds" "$secs"
bash bench/https.sh "$rounds" "$secs"
