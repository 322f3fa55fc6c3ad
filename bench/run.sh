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
rounds=${BENCH_ROUNDS:-5}
secs=${BENCH_SECS:-5}

echo "== runtime: NP_PROCS=1 vs GOMAXPROCS=1 (go_ctx)"
np=$(NP_PROCS=1 "$bin/np-bench-runtime")
go=$("$ys/go_ctx")
echo "np: $np"
echo "$go" | sed 's/^/go: /'
gsw=$(sed -n 's/.*pingpong: \([0-9.]*\).*/\1/p' <<<"$go")
gsp=$(sed -n 's/.*spawn+exit: \([0-9.]*\).*/\1/p' <<<"$go")
gpk=$(sed -n 's/.*goroutine: \([0-9.]*\) KiB.*/\1/p' <<<"$go")
nsw=$(sed -n 's/.*switch_ns=\([0-9.]*\).*/\1/p' <<<"$np")
nsp=$(sed -n 's/.*spawn_ns=\([0-9.]*\).*/\1/p' <<<"$np")
npk=$(sed -n 's/.*parked_kib=\([0-9.]*\).*/\1/p' <<<"$np")
awk -v a="$nsw" -v b="$gsw" -v c="$nsp" -v d="$gsp" -v e="$npk" -v f="$gpk" 'BEGIN{
  printf "ratio np/go: switch=%.3f (target <= 0.100)  spawn=%.3f (target <= 0.067)  parked=%.2f KiB vs %.2f KiB (target <= 4.5)\n", a/b, c/d, e, f }'

echo "== echo 50 conns x 64 B, NP_PROCS=1, server on CPU 0, load on CPU 1"
"$ys/abecho.sh" "$rounds" 50 64 "$secs" "epoll=$ys/echo_epoll 7201" "np=$bin/np-echo 7202" \
    "libuv=$ys/echo_uv 7203" "go=$ys/go_echo 7204"
echo "== echo 1000 conns x 4 KiB"
"$ys/abecho.sh" "$rounds" 1000 4096 "$secs" "epoll=$ys/echo_epoll 7211" "np=$bin/np-echo 7212" \
    "libuv=$ys/echo_uv 7213" "go=$ys/go_echo 7214"
echo "== echo 50 x 64 B, NP_PROCS=2 vs GOMAXPROCS=2 (server on both CPUs, load on CPU 1)"
PROCS=2 bash bench/abecho_procs.sh "$rounds" 50 64 "$secs" "go=$ys/go_echo 7224" "np=$bin/np-echo 7222"
echo "== RSS per idle connection (10,000)"
mgo=$("$ys/memconn.sh" 10000 "$ys/go_echo 7231"); echo "$mgo"
mnp=$("$ys/memconn.sh" 10000 "$bin/np-echo 7232"); echo "$mnp"
awk -v a="$(sed -n 's/.*per_conn_kib=\([0-9.]*\).*/\1/p' <<<"$mnp")" \
    -v b="$(sed -n 's/.*per_conn_kib=\([0-9.]*\).*/\1/p' <<<"$mgo")" \
    'BEGIN{ printf "ratio np/go: per idle connection=%.3f (target <= 0.6)\n", (b>0)?a/b:0 }'
