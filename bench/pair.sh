#!/usr/bin/env bash
# pair.sh ROUNDS SECS "name=cmd PORT" "name=cmd PORT": the two servers run at the same
# time, both on CPU 0 (NP_PROCS=1), each loaded by its own echoload (50 x 64 B) on CPU 1.
# Both see the same machine at every instant, so the ratio of their ops/s is immune to
# this VM's drift between fast and slow modes (which sequential rounds only average
# out). For single-threaded servers only: a runtime with spinning threads would take
# CPU 0 time from the other. Prints per-round and median ratio second/first.
rounds=$1 secs=$2 a=$3 b=$4
ys=$(cd "$(dirname "$0")/.." && pwd)/build/yardstick
na=${a%%=*} ca=${a#*=} nb=${b%%=*} cb=${b#*=}
pa=${ca##* } pb=${cb##* }
ratios=()
for r in $(seq "$rounds"); do
  NP_PROCS=1 taskset -c 0 $ca >/dev/null 2>&1 & ia=$!
  NP_PROCS=1 taskset -c 0 $cb >/dev/null 2>&1 & ib=$!
  for p in $pa $pb; do
    for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.05; done
  done
  taskset -c 1 "$ys/echoload" -p "$pa" -c 50 -s 64 -d "$secs" >"$ys/pair.$pa.out" & la=$!
  taskset -c 1 "$ys/echoload" -p "$pb" -c 50 -s 64 -d "$secs" >"$ys/pair.$pb.out" & lb=$!
  wait $la $lb
  kill $ia $ib; wait $ia $ib 2>/dev/null
  oa=$(sed 's/.*ops\/s=\([0-9]*\).*/\1/' "$ys/pair.$pa.out")
  ob=$(sed 's/.*ops\/s=\([0-9]*\).*/\1/' "$ys/pair.$pb.out")
  ratios+=("$(awk -v x="$ob" -v y="$oa" 'BEGIN{printf "%.3f", (y>0)?x/y:0}')")
  echo "round $r: $na ops/s=$oa $nb ops/s=$ob"
done
echo "ratio $nb/$na per round: ${ratios[*]}  median=$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}')"
