#!/usr/bin/env bash
# The whole test suite (make test): builds every variant, runs every test binary of
# each, and ends with one line "N passed, N failed" (the totals). Exit status non-zero
# when a case failed, a build failed, or a binary crashed or printed no summary.
#
#   opt       make all: gcc -O2, assembly context switch (build/)
#   clang     the same built with clang (build/clang/)
#   asan      AddressSanitizer + UndefinedBehaviorSanitizer (build/asan/)
#   tsan      ThreadSanitizer (build/tsan/), NP_TEST_SCALE=10
#   ucontext  the ucontext context switch (build/ucontext/)
#   aarch64   cross-compiled, run under qemu-aarch64 (build/aarch64/), NP_TEST_SCALE=10;
#             the runtime tests (not test_net, and test_debug's dump cases only: the
#             rest exec other programs)
#   shared    gcc -O2 with the tests and examples linked against libnp.so (build/shared/);
#             the white-box tests (test_netpoll, test_timer) link its PIC objects
#   servers   tests/servers.sh: unmodified hiredis, libpq and libcurl in coroutines
#             (libnp-hook, static and shared) against redis-server, PostgreSQL 15
#             (pg_virtualenv) and nginx, started on loopback and stopped
#   http      tests/http.sh: np-httpd (build/) against curl, Python's http.client, 10,000
#             idle keep-alive connections and headless Chromium on /debug/np/ (chromedriver);
#             np-httpd traced (NP_TRACE), the trace in np-trace and in speedscope (Chromium)
#   install   tests/install.sh: make install into a DESTDIR, an out-of-tree program built
#             with pkg-config (shared and --static), exports, C++, make uninstall
#   mutate    make mutate: every planted bug of tests/mutants/ must be caught; a killed
#             mutant counts as passed, a surviving (or weakly caught) one as failed
#
# Usage: tests/run.sh [variant...]      (default: all of them, in that order)
# Logs: build/test-logs/<variant>/. test_netpoll and test_net run once per poller back end.
set -uo pipefail
cd "$(dirname "$0")/.."

ALL_VARIANTS=(opt clang asan tsan ucontext aarch64 shared servers http install mutate)
POLLERS=(epoll poll select)
JOBS=${JOBS:-2}
QEMU_PREFIX=/usr/aarch64-linux-gnu
if [ $# -gt 0 ]; then VARIANTS=("$@"); else VARIANTS=("${ALL_VARIANTS[@]}"); fi

# ---- tools: install what is missing (Debian; CI runs as root) ------------------------
ensure_tools() {
    local need=()
    command -v make >/dev/null || need+=(make)
    command -v gcc >/dev/null || need+=(gcc)
    command -v g++ >/dev/null || need+=(g++)
    command -v timeout >/dev/null || need+=(coreutils)
    [ -e /usr/share/llhttp/llhttp.c ] || need+=(node-llhttp) # compiled into libnp (src/http)
    dpkg -s "libssl-dev:$(dpkg --print-architecture)" >/dev/null 2>&1 || need+=(libssl-dev) # OpenSSL 3 (src/tls)
    command -v openssl >/dev/null || need+=(openssl)         # certificates, s_server, s_client
    command -v python3 >/dev/null || need+=(python3)         # test_trace's checks (tests/trace_check.py)
    local arm64=
    for v in "${VARIANTS[@]}"; do
        case $v in
        clang) command -v clang++ >/dev/null || need+=(clang) ;;
        install)
            command -v clang++ >/dev/null || need+=(clang)
            command -v pkg-config >/dev/null || need+=(pkgconf)
            command -v file >/dev/null || need+=(file)
            ;;
        aarch64)
            command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
            command -v aarch64-linux-gnu-g++ >/dev/null || need+=(g++-aarch64-linux-gnu)
            [ -e $QEMU_PREFIX/include/stdio.h ] || need+=(libc6-dev-arm64-cross)
            command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
            # OpenSSL for arm64 from Debian's multiarch packages (the architecture added)
            # (and C++'s runtime: the loader is then the multiarch one, see below)
            dpkg -s libssl-dev:arm64 >/dev/null 2>&1 || { need+=(libssl-dev:arm64); arm64=1; }
            dpkg -s libstdc++6:arm64 >/dev/null 2>&1 || { need+=(libstdc++6:arm64); arm64=1; }
            ;;
        servers)
            local p
            for p in redis-server nginx-light postgresql-15 postgresql-common libhiredis-dev libpq-dev \
                libcurl4-openssl-dev curl redis-tools; do
                dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
            done
            ;;
        http)
            local p
            for p in curl python3 perl chromium chromium-driver; do
                dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
            done
            # speedscope and puppeteer-core for tests/trace_view.sh (the machine's own
            # Node.js and npm if it has them, else Debian's)
            command -v node >/dev/null || need+=(nodejs)
            command -v npm >/dev/null || need+=(npm)
            ;;
        mutate)
            command -v patch >/dev/null || need+=(patch)
            command -v git >/dev/null || need+=(git)
            ;;
        esac
    done
    [ ${#need[@]} -eq 0 ] && return 0
    echo "installing: ${need[*]}"
    local sudo=
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    [ -n "$arm64" ] && $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq >/dev/null &&
        $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
        echo "run.sh: could not install ${need[*]}" >&2
        return 1
    }
}

# ---- running ---------------------------------------------------------------------------
TOTAL_P=0
TOTAL_F=0
TOTAL_S=0
SUMMARY=()
LOGROOT=build/test-logs

# run_bin VARIANT LABEL LOG CMD... : run one test binary once, add its counts to the
# variant's (VP, VF, VS). A binary without a summary line counts as one failure; so does
# one that exits non-zero after all its cases passed.
run_bin() {
    local variant=$1 label=$2 log=$3
    shift 3
    local t0=$SECONDS
    timeout -k 10 "$BIN_TIMEOUT" "$@" >"$log" 2>&1
    local rc=$? line p f sk
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
    sk=0
    if [ -n "$line" ]; then
        p=${line%% passed*}
        f=${line#*passed, }
        f=${f%% failed*}
        case $line in *skipped) sk=${line##*failed, } sk=${sk%% skipped} ;; esac
    else
        p=0
        f=1
    fi
    if [ -n "$line" ] && [ "$f" -eq 0 ] && [ $rc -ne 0 ]; then
        f=1 # all cases passed, yet the binary failed
    fi
    VP=$((VP + p))
    VF=$((VF + f))
    VS=$((VS + sk))
    local status="$p passed, $f failed"
    [ "$sk" -ne 0 ] && status="$status, $sk skipped"
    [ -z "$line" ] && status="no summary (exit status $rc): counted as 1 failed"
    printf '  [%s] %-24s %s (%ds)\n' "$variant" "$label" "$status" $((SECONDS - t0))
    if [ "$f" -ne 0 ]; then
        # the failing cases and what they printed (the whole log is in $log)
        grep -Ev '^ok   |^skip |^[0-9]+ passed, [0-9]+ failed' "$log" | head -n 60 | sed 's/^/      /'
    fi
}

# The mutation run: its per-mutant lines, its summary counted into the totals.
run_mutate() {
    local logs=$LOGROOT/mutate t0=$SECONDS
    rm -rf "$logs"
    mkdir -p "$logs"
    echo "== mutate: bash tests/mutate.sh"
    bash tests/mutate.sh >"$logs/mutate.log" 2>&1
    local rc=$? line k=0 sv=1
    grep -E '^  [a-z0-9-]+ +(killed|WEAK|SURVIVED|ERROR).*\([0-9]+s\)' "$logs/mutate.log" | sed 's/^/  [mutate]/' | head -n 60
    line=$(grep -E '^[0-9]+ killed, [0-9]+ survived$' "$logs/mutate.log" | tail -n 1)
    if [ -n "$line" ]; then
        k=${line%% killed*}
        sv=${line#*killed, }
        sv=${sv%% survived*}
    else
        tail -n 20 "$logs/mutate.log" | sed 's/^/      /'
    fi
    [ "$sv" -eq 0 ] && [ $rc -ne 0 ] && sv=1
    TOTAL_P=$((TOTAL_P + k))
    TOTAL_F=$((TOTAL_F + sv))
    SUMMARY+=("$(printf '%-9s %4d killed (passed), %d survived (failed) (%ds)' mutate "$k" "$sv" $((SECONDS - t0)))")
}

# A stage that runs one script: its logs directory ($logs, $t0 are run_variant's), and
# its counts into the totals and the summary.
stage_begin() {
    logs=$LOGROOT/$1 t0=$SECONDS
    rm -rf "$logs"
    mkdir -p "$logs"
    VP=0 VF=0 VS=0
}
stage_end() {
    TOTAL_P=$((TOTAL_P + VP))
    TOTAL_F=$((TOTAL_F + VF))
    TOTAL_S=$((TOTAL_S + VS))
    SUMMARY+=("$(printf '%-9s %4d passed, %d failed, %d skipped (%ds)' "$1" $VP $VF $VS $((SECONDS - t0)))")
}

run_variant() {
    local v=$1 make_args=() runner=() scale=1 tmo=60 logs t0
    if [ "$v" = mutate ]; then
        run_mutate
        return
    fi
    if [ "$v" = install ]; then
        stage_begin install
        echo "== install: bash tests/install.sh"
        run_bin install install.sh "$logs/install.log" bash tests/install.sh
        stage_end install
        return
    fi
    if [ "$v" = http ]; then
        stage_begin http
        echo "== http: make all; bash tests/http.sh"
        if make -j"$JOBS" all >"$logs/build.log" 2>&1; then
            run_bin http http.sh "$logs/http.log" bash tests/http.sh build
        else
            echo "  [http] build failed:"
            grep -E 'error|Error' "$logs/build.log" | head -n 30 | sed 's/^/      /'
            VF=1
        fi
        stage_end http
        return
    fi
    if [ "$v" = servers ]; then
        stage_begin servers
        echo "== servers: make srv (libnp-hook static, then shared); bash tests/servers.sh"
        if make -j"$JOBS" srv >"$logs/build.log" 2>&1 && make -j"$JOBS" VARIANT=shared srv >>"$logs/build.log" 2>&1; then
            run_bin servers servers.sh "$logs/servers.log" bash tests/servers.sh build build/shared
        else
            echo "  [servers] build failed:"
            grep -E 'error|Error' "$logs/build.log" | head -n 30 | sed 's/^/      /'
            VF=1
        fi
        stage_end servers
        return
    fi
    case $v in
    opt) make_args=(all) ;;
    clang) make_args=(VARIANT=clang CC=clang tests) ;;
    asan) make_args=(VARIANT=asan tests) tmo=120 scale=2 ;;
    tsan) make_args=(VARIANT=tsan tests) scale=10 ;;
    ucontext) make_args=(VARIANT=ucontext tests) ;;
    shared) make_args=(VARIANT=shared tests) ;;
    aarch64)
        make_args=(VARIANT=aarch64 tests)
        # With Debian's arm64 libraries installed (multiarch: OpenSSL and the libc it
        # brings) the loader must be theirs too: a cross prefix's ld.so with the
        # multiarch libc.so.6 hangs at fork.
        if [ -e /lib/ld-linux-aarch64.so.1 ]; then
            runner=(qemu-aarch64 -L /)
        else
            runner=(qemu-aarch64 -L $QEMU_PREFIX)
        fi
        scale=10
        ;;
    *)
        echo "run.sh: unknown variant $v (one of: ${ALL_VARIANTS[*]})" >&2
        TOTAL_F=$((TOTAL_F + 1))
        SUMMARY+=("$(printf '%-9s unknown variant: counted as 1 failed' "$v")")
        return
        ;;
    esac
    # the examples too where the Makefile has them (some tests run them)
    if [ "$v" != opt ] && grep -q '^examples:' Makefile; then
        make_args+=(examples)
    fi
    local dir=build/$v
    [ "$v" = opt ] && dir=build
    local logs=$LOGROOT/$v t0=$SECONDS
    rm -rf "$logs" # (a skip listed at the end is one of this run's)
    mkdir -p "$logs"
    VP=0
    VF=0
    VS=0
    echo "== $v: make ${make_args[*]}"
    if ! make -j"$JOBS" "${make_args[@]}" >"$logs/build.log" 2>&1; then
        echo "  [$v] build failed:"
        grep -E 'error|Error' "$logs/build.log" | head -n 30 | sed 's/^/      /'
        VF=1
    else
        local bins=("$dir"/tests/test_*)
        if [ ! -e "${bins[0]}" ]; then
            echo "  [$v] no test binaries in $dir/tests"
            VF=1
        fi
        for b in "${bins[@]}"; do
            [ -x "$b" ] || continue
            local name=${b##*/}
            # Under qemu-user, the runtime tests: the end-to-end ones start other
            # aarch64 programs (np-echo, np-netlog), which need binfmt to execute.
            # test_debug's dumps read stacks through a pipe there (qemu-user lacks
            # process_vm_readv): its in-process dump cases run.
            if [ "$v" = aarch64 ]; then
                case $name in
                test_net | test_net_hooked)
                    SUMMARY_NOTE="aarch64: test_net not run, test_debug's dump cases only (the rest exec aarch64 helpers)"
                    continue
                    ;;
                test_debug)
                    NP_TEST_SCALE=$scale NP_TEST_TIMEOUT=$tmo run_bin "$v" "$name(dumps)" "$logs/$name.log" \
                        "${runner[@]}" "$b" -r t_dump_to_fd_names_coroutines_and_waits \
                        t_stats_and_dump_from_another_thread_across_runs \
                        t_dump_from_another_thread_while_stacks_come_and_go
                    continue
                    ;;
                esac
            fi
            if [ "$name" = test_netpoll ] || [ "$name" = test_net ]; then
                for pl in "${POLLERS[@]}"; do
                    NP_POLLER=$pl NP_TEST_SCALE=$scale NP_TEST_TIMEOUT=$tmo run_bin "$v" "$name($pl)" \
                        "$logs/$name.$pl.log" "${runner[@]}" "$b"
                done
            else
                NP_TEST_SCALE=$scale NP_TEST_TIMEOUT=$tmo run_bin "$v" "$name" "$logs/$name.log" "${runner[@]}" "$b"
            fi
        done
    fi
    TOTAL_P=$((TOTAL_P + VP))
    TOTAL_F=$((TOTAL_F + VF))
    TOTAL_S=$((TOTAL_S + VS))
    SUMMARY+=("$(printf '%-9s %4d passed, %d failed, %d skipped (%ds)' "$v" $VP $VF $VS $((SECONDS - t0)))")
}

T_START=$SECONDS
ensure_tools || TOTAL_F=$((TOTAL_F + 1))
# one binary may not run forever even if its harness hangs (each case has its alarm)
BIN_TIMEOUT=${BIN_TIMEOUT:-1800}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66}
unset NP_PROCS NP_STACK NP_POLLER NP_TEST_SCALE NP_TEST_TIMEOUT
for v in "${VARIANTS[@]}"; do
    run_variant "$v"
done

echo
echo "== summary ($((SECONDS - T_START))s)"
for s in "${SUMMARY[@]}"; do
    echo "  $s"
done
[ -n "${SUMMARY_NOTE:-}" ] && echo "  note: $SUMMARY_NOTE"
# the skipped cases by name: each one is something this run did not test
for v in "${VARIANTS[@]}"; do cat "$LOGROOT/$v"/*.log 2>/dev/null; done | grep '^skip ' | sed 's/ ([0-9.]*s)$//; s/^/  /' | sort | uniq -c | sed 's/^/ /'
echo "$TOTAL_P passed, $TOTAL_F failed, $TOTAL_S skipped"
[ "$TOTAL_F" -eq 0 ]
