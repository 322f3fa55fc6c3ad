#!/usr/bin/env bash
# make mutate: does the suite catch what it claims to? Plants each bug of tests/mutants/
# in turn, in a scratch copy of the tree (build/mutate/tree), rebuilds there, runs the
# cases that mutant names, and prints killed or SURVIVED per bug. Exit status non-zero
# unless every mutant was killed.
#
# A mutant is a file tests/mutants/NAME.diff:
#     # mutant: the bug it plants, in one line
#     # run: BINARY[@POLLER,POLLER...] CASE [CASE...]      (one or more such lines)
#   (BINARY is a test binary of build/tests, or a script of tests/ such as install.sh,
#   which takes the names of its cases as arguments)
#     <a unified diff, -p1, as git diff prints it>
# Each "# run:" line runs once per poller named (once with the default if none). The
# mutant is killed when every one of those runs fails (a failed check, a crash or a
# timeout): a bug caught on one poller only, or now and then, is reported as "weak
# (k of n runs)" and counts as survived.
# First the same runs go once without any mutant: each must pass there, or a kill would
# prove nothing (reported as "baseline failed").
#
# Usage: tests/mutate.sh [NAME...]    (default: every mutant)
# Environment: NP_TEST_TIMEOUT per case (default 15 s), JOBS (make -j, default 2).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=$ROOT/build/mutate/tree
LOGS=$ROOT/build/mutate/logs
JOBS=${JOBS:-2}
export NP_TEST_TIMEOUT=${NP_TEST_TIMEOUT:-15} # the longest baseline case takes 5 s
unset NP_PROCS NP_STACK NP_POLLER NP_TEST_SCALE

if [ $# -gt 0 ]; then
    MUTANTS=()
    for n in "$@"; do MUTANTS+=("tests/mutants/${n%.diff}.diff"); done
else
    MUTANTS=(tests/mutants/*.diff)
fi
[ -e "${MUTANTS[0]}" ] || { echo "mutate: no mutants in tests/mutants" >&2; exit 1; }

# ---- the scratch tree: the working tree's files (committed or not), built once -------
rm -rf "$SCRATCH" "$LOGS"
mkdir -p "$SCRATCH" "$LOGS"
git ls-files -co --exclude-standard -z | grep -zv '^build/' | xargs -0 cp --parents -t "$SCRATCH"
build() { make -C "$SCRATCH" -j"$JOBS" all >"$1" 2>&1; }
# What a mutant's runs need: its test binaries and the examples (test_net runs np-echo)
# (relinking every binary after every patch took most of the stage), or everything when
# a run is a script (install.sh).
targets_of() {
    local spec rest bin t=(examples)
    while read -r spec rest; do
        bin=${spec%%@*}
        [ "${bin%.sh}" != "$bin" ] && { echo all; return; }
        t+=("build/tests/$bin")
    done < <(runs_of "$1")
    echo "${t[@]}"
}

# runs_of FILE: its "# run:" lines, one "BINARY[@POLLERS] CASE..." a line
runs_of() { sed -n 's/^# run: *//p' "$1"; }

# run_cases LOG LINE: run one "# run:" line in the scratch build, once per poller; sets
# RUNS (how many) and FAILS (how many failed)
run_cases() {
    local log=$1 spec bin pollers cases
    read -r spec cases <<<"$2"
    bin=${spec%%@*}
    pollers=default
    [ "$spec" != "$bin" ] && pollers=${spec#*@}
    RUNS=0
    FAILS=0
    for pl in ${pollers//,/ }; do
        local env=()
        [ "$pl" != default ] && env=(NP_POLLER="$pl")
        echo "-- $bin ($pl): $cases" >>"$log"
        RUNS=$((RUNS + 1))
        local cmd=("$SCRATCH/build/tests/$bin" -r)
        [ "${bin%.sh}" != "$bin" ] && cmd=(bash "$SCRATCH/tests/$bin") # a script: CASE... as arguments
        # shellcheck disable=SC2086
        env "${env[@]}" timeout -k 5 600 "${cmd[@]}" $cases >>"$log" 2>&1 ||
            FAILS=$((FAILS + 1))
    done
}

T0=$SECONDS
echo "== mutate: building the scratch copy"
if ! build "$LOGS/build-baseline.log"; then
    echo "mutate: the unmutated tree does not build (see $LOGS/build-baseline.log)"
    exit 1
fi
echo "== baseline: every mutant's cases without the mutant"
BASE_BAD=0
for m in "${MUTANTS[@]}"; do
    name=$(basename "$m" .diff)
    [ -e "$m" ] || { echo "  $name: no such mutant"; BASE_BAD=1; continue; }
    while IFS= read -r line; do
        run_cases "$LOGS/baseline.log" "$line"
        if [ $FAILS -ne 0 ]; then
            echo "  baseline failed: $line (see $LOGS/baseline.log)"
            BASE_BAD=1
        fi
    done < <(runs_of "$m")
done
[ $BASE_BAD -eq 0 ] || { echo "mutate: fix the baseline first"; exit 1; }

KILLED=0
SURVIVED=0
RESULTS=()
for m in "${MUTANTS[@]}"; do
    name=$(basename "$m" .diff)
    what=$(sed -n 's/^# mutant: *//p' "$m" | head -n 1)
    log=$LOGS/$name.log
    t0=$SECONDS
    verdict=
    if [ -z "$(runs_of "$m")" ]; then
        verdict="ERROR (no '# run:' line)"
    elif ! patch -d "$SCRATCH" -p1 --dry-run -s <"$m" >"$log" 2>&1; then
        verdict="ERROR (does not apply)"
    else
        patch -d "$SCRATCH" -p1 -s <"$m" >>"$log" 2>&1
        # shellcheck disable=SC2046
        if ! make -C "$SCRATCH" -j"$JOBS" $(targets_of "$m") >"$LOGS/build-$name.log" 2>&1; then
            verdict="ERROR (does not build)"
        else
            n=0
            k=0
            while IFS= read -r line; do
                run_cases "$log" "$line"
                n=$((n + RUNS))
                k=$((k + FAILS))
            done < <(runs_of "$m")
            if [ $k -eq $n ]; then
                verdict="killed ($k of $n runs)"
            elif [ $k -gt 0 ]; then
                verdict="WEAK ($k of $n runs)"
            else
                verdict="SURVIVED (0 of $n runs)"
            fi
        fi
        patch -d "$SCRATCH" -p1 -R -s <"$m" >>"$log" 2>&1
    fi
    if [ "${verdict%% *}" = killed ]; then
        KILLED=$((KILLED + 1))
        why=$(grep -E '^FAIL ' "$log" | head -n 1)
    else
        SURVIVED=$((SURVIVED + 1))
        why=
    fi
    RESULTS+=("$(printf '%-34s %-22s %s' "$name" "$verdict" "$what")")
    printf '  %-34s %-22s (%ds) %s\n' "$name" "$verdict" $((SECONDS - t0)) "$why"
done

echo
echo "== mutate summary ($((SECONDS - T0))s; logs in build/mutate/logs)"
for r in "${RESULTS[@]}"; do echo "  $r"; done
echo "$KILLED killed, $SURVIVED survived"
[ $SURVIVED -eq 0 ]
