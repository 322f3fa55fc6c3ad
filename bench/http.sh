#!/usr/bin/env bash
# HTTP hello: np-httpd (NP_PROCS=1) against nginx with one worker (../shared/bench/nginx/
# nginx.conf) and Go net/http (go_http, GOMAXPROCS=1). Servers on CPU 0, wrk on CPU 1
# (-t1), rounds interleaved; at 50 and 1,000 connections, without and with pipelining
# (16 requests per write, ../shared/bench/http/pipeline.lua). Per server and case: median
# req/s, p99 latency, server CPU per request (its utime+stime over the run / requests),
# and the ratios to nginx.
# Usage: bench/http.sh [ROUNDS] [SECS] [CONNS...]   (CONNS default: 50 1000; DEPTHS env:
# the pipelining depths, default "1 16"; SERVERS env: default "np nginx go")
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ys_src=$(cd "$root/../shared/bench" && pwd)
ys=$root/build/yardstick
[ -x "$ys/go_http" ] || "$ys_src/build.sh" "$ys" >/dev/null || exit 1
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
rounds=${1:-5}
secs=${2:-5}
shift 2 2>/dev/null
conns_list=${*:-50 1000}
servers=${SERVERS:-np nginx go}
ulimit -n 20000 2>/dev/null
tmp=$(mktemp -d /tmp/np-bench-http.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

. tests/lib.sh # ready, free_port

# the three servers, each on CPU 0; spid[name]: the process whose CPU is counted
declare -A port spid
port[np]=$(free_port)
NP_PROCS=1 taskset -c 0 build/bin/np-httpd "127.0.0.1:${port[np]}" >"$tmp/np.log" 2>&1 &
pids+=($!) spid[np]=$!
port[nginx]=$(free_port)
mkdir -p "$tmp/nginx"
sed -e "s/127.0.0.1:7010/127.0.0.1:${port[nginx]}/" "$ys_src/nginx/nginx.conf" >"$tmp/nginx/nginx.conf"
taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
pids+=($!)
port[go]=$(free_port)
GOMAXPROCS=1 taskset -c 0 "$ys/go_http" "${port[go]}" >"$tmp/go.log" 2>&1 &
pids+=($!) spid[go]=$!
for s in np nginx go; do
    ready curl -sf "http://127.0.0.1:${port[$s]}/" || echo "$s did not start"
done
# nginx's worker (the master only waits)
spid[nginx]=$(pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -n 1)
[ -n "${spid[nginx]}" ] || { echo "nginx did not start"; cat "$tmp/nginx.log"; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
# p99 in µs from wrk's latency line ("99%  1.23ms")
us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }

for conns in $conns_list; do
    for depth in ${DEPTHS:-1 16}; do
        declare -A rps=() p99=() cpu=()
        script=()
        [ "$depth" -gt 1 ] && script=(-s "$ys_src/http/pipeline.lua")
        for r in $(seq "$rounds"); do
            for s in $servers; do
                t0=$(ticks "${spid[$s]}")
                out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency "${script[@]}" \
                    "http://127.0.0.1:${port[$s]}/" -- "$depth" 2>&1)
                t1=$(ticks "${spid[$s]}")
                n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
                q=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
                l=$(awk '$1 == "99%" {print $2}' <<<"$out" | us)
                c=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="${n:-0}" 'BEGIN{printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0)}')
                rps[$s]+="$q " p99[$s]+="$l " cpu[$s]+="$c "
                echo "round $r c=$conns depth=$depth $s: req/s=$q p99_us=$l cpu_us_per_req=$c"
            done
        done
        declare -A mr=() ml=() mc=()
        for s in $servers; do
            # shellcheck disable=SC2086
            mr[$s]=$(median ${rps[$s]}) ml[$s]=$(median ${p99[$s]}) mc[$s]=$(median ${cpu[$s]})
            printf 'median c=%-4s depth=%-2s %-5s req/s=%-10s p99_us=%-8s cpu_us_per_req=%s\n' \
                "$conns" "$depth" "$s" "${mr[$s]}" "${ml[$s]}" "${mc[$s]}"
        done
        awk -v a="${mr[np]:-0}" -v b="${mr[nginx]:-0}" -v g="${mr[go]:-0}" -v ca="${mc[np]:-0}" \
            -v cb="${mc[nginx]:-0}" -v cg="${mc[go]:-0}" -v c="$conns" -v d="$depth" 'BEGIN{
            printf "ratio c=%s depth=%s: np/nginx req/s=%.3f (target >= 1.0) cpu/req=%.3f (target <= 1.0); np/go req/s=%.3f (target >= 2.0) cpu/req=%.3f\n",
                c, d, b ? a/b : 0, cb ? ca/cb : 0, g ? a/g : 0, cg ? ca/cg : 0}'
    done
done
