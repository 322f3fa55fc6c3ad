#!/usr/bin/env bash
# The tracer's cost on the echo bench (50 connections x 64 B, NP_PROCS=1, server on CPU
# 0, load on CPU 1; rounds interleaved, medians): np-echo built without trace points
# (make VARIANT=notrace, the reference), the normal build with tracing off, with the
# flight recorder on (NP_TRACE=ring:4M) and with full tracing (NP_TRACE=FILE).
# Targets: off <= 1 %, ring <= 5 %, full <= 15 % (ops/s, and the server's CPU per message).
# Then the counts: user-space instructions per message under callgrind.
# Usage: bench/trace.sh [ROUNDS] [SECS]   (env PARTS: "ops counts" by default)
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
parts=${PARTS:-ops counts}
if [[ $parts == *ops* ]]; then
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
fi
[[ $parts == *counts* ]] || exit 0

# Counts, which hardly move: user-space instructions per echoed message under callgrind
# (a loaded run minus an idle one: start-up left out), for each of the four.
command -v valgrind >/dev/null || { echo "(no valgrind: instruction counts skipped)"; exit 0; }
cg() { # NAME PORT SECS TRACE BIN: Ir of the server's run, messages echoed
    local name=$1 port=$2 d=$3 trace=$4 bin=$5 pid out ops
    env NP_PROCS=1 ${trace:+NP_TRACE=$trace} valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$name.$d" \
        "$bin" "$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
    ops=0
    if [ "$d" -gt 0 ]; then
        out=$(taskset -c 1 "$ys/echoload" -p "$port" -c 50 -s 64 -d "$d")
        ops=$(sed 's/.*ops\/s=\([0-9]*\).*/\1/' <<<"$out")
    fi
    kill "$pid"; wait "$pid" 2>/dev/null
    echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$tmp/cg.$name.$d") $((ops * d))"
}
ref=
for spec in "untraced||$root/build/notrace/bin/np-echo" "off||$root/build/bin/np-echo" \
    "ring|ring:4M|$root/build/bin/np-echo" "full|$tmp/cg-full.json|$root/build/bin/np-echo"; do
    IFS='|' read -r name trace bin <<<"$spec"
    read -r idle _ < <(cg "$name" 7255 0 "$trace" "$bin")
    read -r busy msgs < <(cg "$name" 7256 3 "$trace" "$bin")
    per=$(awk -v b="$busy" -v i="$idle" -v m="$msgs" 'BEGIN{printf "%.0f", (m>0)?(b-i)/m:0}')
    [ -z "$ref" ] && ref=$per
    printf "trace %-8s instructions per message %5s  ratio to untraced %s\n" "$name" "$per" \
        "$(awk -v a="$per" -v b="$ref" 'BEGIN{printf "%.3f", (b>0)?a/b:0}')"
done
