#!/usr/bin/env bash
# abecho_procs.sh ROUNDS CONNS SIZE SECS "name=cmd PORT"...: like the yardstick's
# abecho.sh but with PROCS (default 2) processors for the servers (NP_PROCS and
# GOMAXPROCS), which run unpinned; the load runs on CPU 1. Prints median ops/s, p99
# and the median per-round ratio to the first server.
rounds=$1 conns=$2 size=$3 secs=$4; shift 4
procs=${PROCS:-2}
ys=$(cd "$(dirname "$0")/.." && pwd)/build/yardstick
declare -A ops p99
for r in $(seq "$rounds"); do
  for spec in "$@"; do
    name=${spec%%=*}; cmd=${spec#*=}; port=${cmd##* }
    GOMAXPROCS=$procs NP_PROCS=$procs $cmd >/dev/null 2>&1 & pid=$!
    for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
    out=$(taskset -c 1 "$ys/echoload" -p "$port" -c "$conns" -s "$size" -d "$secs")
    kill $pid; wait $pid 2>/dev/null
    ops[$name]+="$(sed 's/.*ops\/s=\([0-9]*\).*/\1/' <<<"$out") "
    p99[$name]+="$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$out") "
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
ref=${1%%=*}; read -ra refops <<<"${ops[$ref]}"
for spec in "$@"; do name=${spec%%=*}; read -ra o <<<"${ops[$name]}"
  ratios=""; for i in "${!o[@]}"; do ratios+="$(awk -v a="${o[$i]}" -v b="${refops[$i]}" 'BEGIN{printf "%.3f", (b>0)?a/b:0}') "; done
  printf "%-10s procs=%s ops/s=%-8s p99_us=%-6s ratio_to_%s=%s\n" "$name" "$procs" "$(median <<<"${ops[$name]}")" "$(median <<<"${p99[$name]}")" "$ref" "$(median <<<"$ratios")"
done
