#!/usr/bin/env bash
# The tracer's cost on the echo bench (50 connections x 64 B, NP_PROCS=1, server on CPU
# 0, load on CPU 1; rounds interleaved, medians): np-echo built without trace points
# (make VARIANT=notrace, the reference), the normal build with tracing off, with the
# flight recorder on (NP_TRACE=ring:4M) and with full tracing (NP_TRACE=FILE).
# Targets: off <= 1 %, ring <= 5 %, full <= 15 % (ops/s, and the server's CPU per message).
# Usage: bench/trace.sh [ROUNDS] [SECS]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=${1:-5} secs=${2:-5}
ys=$root/build/yardstick
[ -x "$ys/echoload" ] || "$root/../shared/bench/build.sh" "$ys" >/dev/null || exit 1
make -s build/bin/np-echo >/dev/null && make -s VARIANT=notrace build/notrace/bin/np-echo >/dev/null || exit 1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ulimit -n 20000 2>/dev/null
out=$("$ys/cpuecho.sh" "$rounds" 50 64 "$secs" \
    "untraced=$root/build/notrace/bin/np-echo 7251" \
    "off=$root/build/bin/np-echo 7252" \
    "ring=env NP_TRACE=ring:4M $root/build/bin/np-echo 7253" \
    "full=env NP_TRACE=$tmp/full.json $root/build/bin/np-echo 7254")
echo "$out"
# the verdict: cost = 1 - ops ratio, and CPU per message over the untraced build
echo "$out" | awk -v lim_off=0.01 -v lim_ring=0.05 -v lim_full=0.15 '
    /ops_ratio=/ {
        n = $1; split($0, a, "ops_ratio="); split(a[2], b, " "); o = b[1]
        split($0, c, "cpu_per_op_ratio="); cp = c[2] + 0
        lim = (n == "off") ? lim_off : (n == "ring") ? lim_ring : (n == "full") ? lim_full : -1
        if (lim >= 0)
            printf "trace %-5s throughput cost %5.1f %%  CPU per message %+5.1f %%  (target <= %.0f %%)\n", n, (1 - o) * 100, (cp - 1) * 100, lim * 100
    }'
