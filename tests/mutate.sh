#!/usr/bin/env bash
# make mutate: does the suite catch what it claims to? Plants each bug of tests/mutants/
# in turn, in a scratch copy of the tree (build/mutate/tree), rebuilds there, runs the
# cases that mutant names, and prints killed or SURVIVED per bug. Exit status non-zero
# unless every mutant was killed.
#
# A mutant is a file tests/mutants/NAME.diff:
#     # mutant: the bug it plants, in one line
#     # run: BINARY[@POLLER,POLLER...] CASE [CASE...]      (one or more such lines)
#     <a unified diff, -p1, as git diff prints it>
# It is killed when one of the runs fails (a failed check, a crash or a timeout).
# First the same runs go once without any mutant: each must pass there, or a kill would
# prove nothing (reported as "baseline failed").
#
# Usage: tests/mutate.sh [NAME...]    (default: every mutant)
# Environment: NP_TEST_TIMEOUT per case (default 30 s), JOBS (make -j, default 2).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCRATCH=$ROOT/build/mutate/tree
LOGS=$ROOT/build/mutate/logs
JOBS=${JOBS:-2}
export NP_TEST_TIMEOUT=${NP_TEST_TIMEOUT:-30}
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

# runs_of FILE: its "# run:" lines, one "BINARY[@POLLERS] CASE..." a line
runs_of() { sed -n 's/^# run: *//p' "$1"; }

# run_cases LOG LINE: run one "# run:" line in the scratch build; 0 when every run passed
run_cases() {
    local log=$1 spec bin pollers cases rc=0
    read -r spec cases <<<"$2"
    bin=${spec%%@*}
    pollers=default
    [ "$spec" != "$bin" ] && pollers=${spec#*@}
    for pl in ${pollers//,/ }; do
        local env=()
        [ "$pl" != default ] && env=(NP_POLLER="$pl")
        echo "-- $bin ($pl): $cases" >>"$log"
        # shellcheck disable=SC2086
        env "${env[@]}" timeout -k 5 600 "$SCRATCH/build/tests/$bin" -r $cases >>"$log" 2>&1 || rc=1
    done
    return $rc
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
        if ! run_cases "$LOGS/baseline.log" "$line"; then
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
        if ! build "$LOGS/build-$name.log"; then
            verdict="ERROR (does not build)"
        else
            verdict=SURVIVED
            while IFS= read -r line; do
                if ! run_cases "$log" "$line"; then
                    verdict=killed
                    break # one failing run is enough
                fi
            done < <(runs_of "$m")
        fi
        patch -d "$SCRATCH" -p1 -R -s <"$m" >>"$log" 2>&1
    fi
    if [ "$verdict" = killed ]; then
        KILLED=$((KILLED + 1))
        why=$(grep -E '^FAIL ' "$log" | head -n 1)
    else
        SURVIVED=$((SURVIVED + 1))
        why=
    fi
    RESULTS+=("$(printf '%-34s %-22s %s' "$name" "$verdict" "$what")")
    printf '  %-34s %-9s (%ds) %s\n' "$name" "$verdict" $((SECONDS - t0)) "$why"
done

echo
echo "== mutate summary ($((SECONDS - T0))s; logs in build/mutate/logs)"
for r in "${RESULTS[@]}"; do echo "  $r"; done
echo "$KILLED killed, $SURVIVED survived"
[ $SURVIVED -eq 0 ]
