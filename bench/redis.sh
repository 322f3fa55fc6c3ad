#!/usr/bin/env bash
# Redis clients side by side (issue 13): redis-server on CPU 1, each client on CPU 0, in
# interleaved rounds: redis-benchmark -c 50 -t set,get (the event-driven C client, the
# anchor), unmodified hiredis in 50 coroutines on NP_PROCS=1 (libnp-hook), hiredis with
# 50 threads; then hiredis at 1,000 connections, coroutines against threads (RSS).
# Requests/s, the client's CPU per request (user+sys over its run), medians of ROUNDS.
# Usage: bench/redis.sh [ROUNDS] [REQUESTS]
set -uo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
n=${2:-100000} # SETs and as many GETs
bin=build/bin
tmp=$(mktemp -d /tmp/np-redis-bench.XXXXXX)
ulimit -n 20000 2>/dev/null
port=$((30000 + RANDOM % 10000))
taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --maxclients 10000 \
    --dir "$tmp" >"$tmp/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

# redis-benchmark: its SET and GET rates combined (2n requests over the two phases' time),
# its CPU from the shell's accounting of the child.
rb() {
    local t out set get
    TIMEFORMAT='%U %S'
    t=$({ time taskset -c 0 redis-benchmark -p "$port" -c 50 -n "$n" -t set,get -q >"$tmp/rb.out" 2>/dev/null; } 2>&1)
    out=$(tr '\r' '\n' <"$tmp/rb.out" | grep 'requests per second')
    set=$(awk '/^SET:/ {print $2}' <<<"$out")
    get=$(awk '/^GET:/ {print $2}' <<<"$out")
    awk -v s="$set" -v g="$get" -v t="$t" -v n="$n" 'BEGIN { split(t, c, " ");
        printf "req_s=%.0f cpu_us_per_req=%.2f\n", 2 * n / (n / s + n / g), (c[1] + c[2]) * 1e6 / (2 * n) }'
}

rb_r=() rb_c=() np_r=() np_c=() th_r=() th_c=()
echo "== 50 connections, $((2 * n)) requests (SET and GET), client on CPU 0, redis-server on CPU 1"
for r in $(seq "$rounds"); do
    a=$(rb)
    b=$(NP_PROCS=1 taskset -c 0 "$bin/np-redisload" np 50 $((2 * n)) "$port")
    c=$(taskset -c 0 "$bin/np-redisload" threads 50 $((2 * n)) "$port")
    echo "round $r redis-benchmark: $a"
    echo "round $r np-hiredis:      $b"
    echo "round $r threads-hiredis: $c"
    rb_r+=("$(field req_s <<<"$a")") rb_c+=("$(field cpu_us_per_req <<<"$a")")
    np_r+=("$(field req_s <<<"$b")") np_c+=("$(field cpu_us_per_req <<<"$b")")
    th_r+=("$(field req_s <<<"$c")") th_c+=("$(field cpu_us_per_req <<<"$c")")
done
R=$(median "${rb_r[@]}") C=$(median "${rb_c[@]}")
NR=$(median "${np_r[@]}") NC=$(median "${np_c[@]}")
TR=$(median "${th_r[@]}") TC=$(median "${th_c[@]}")
echo "median req/s: redis-benchmark=$R np=$NR threads=$TR; client CPU us/req: redis-benchmark=$C np=$NC threads=$TC"
awk -v r="$R" -v c="$C" -v nr="$NR" -v nc="$NC" -v tr="$TR" 'BEGIN {
    printf "ratio np/redis-benchmark: req/s=%.3f (target >= 0.9)  CPU/req=%.3f (target <= 1.25)\n", nr / r, nc / c
    printf "ratio np/50 threads: req/s=%.3f (target >= 1.0)\n", nr / tr }'

echo "== 1000 connections, $((2 * n)) requests: coroutines vs threads"
m_np=() m_th=() r_np=() r_th=()
for r in $(seq "$rounds"); do
    b=$(NP_PROCS=1 taskset -c 0 "$bin/np-redisload" np 1000 $((2 * n)) "$port")
    c=$(taskset -c 0 "$bin/np-redisload" threads 1000 $((2 * n)) "$port")
    echo "round $r np-hiredis:      $b"
    echo "round $r threads-hiredis: $c"
    m_np+=("$(field maxrss_kib <<<"$b")") m_th+=("$(field maxrss_kib <<<"$c")")
    r_np+=("$(field req_s <<<"$b")") r_th+=("$(field req_s <<<"$c")")
done
awk -v a="$(median "${m_np[@]}")" -v b="$(median "${m_th[@]}")" -v x="$(median "${r_np[@]}")" -v y="$(median "${r_th[@]}")" 'BEGIN {
    printf "median RSS KiB: np=%d threads=%d  ratio np/threads: RSS=%.3f (target <= 0.100)  req/s=%.3f\n", a, b, a / b, x / y }'
