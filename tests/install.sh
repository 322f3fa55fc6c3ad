#!/usr/bin/env bash
# np as an installed library, seen from outside its tree: make install into a DESTDIR,
# then a program in a temporary directory built with pkg-config (shared and --static),
# the shared library's exports, C++ against the installed header, a second PREFIX, and
# make uninstall. Prints "ok   install:CASE" / "FAIL install:CASE" and the summary line.
# Usage: tests/install.sh [CASE...]   (default: every case; make_install_layout always runs)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tmp=$(mktemp -d /tmp/np-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { echo "ok   install:$1"; pass=$((pass + 1)); }
bad() { echo "FAIL install:$1: $2"; fail=$((fail + 1)); }
only=" $* "
# check NAME CMD...: the case passes when CMD succeeds; its output is shown when not.
check() {
    local name=$1 out
    shift
    [ "$only" = "  " ] || [ "$name" = make_install_layout ] || [[ $only == *" $name "* ]] || return 0
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$(printf '%s' "$out" | head -n 20)"; fi
}

dest=$tmp/dest
prefix=/usr/local
lib=$dest$prefix/lib
export PKG_CONFIG_PATH=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
unset PKG_CONFIG_LIBDIR

installed() {
    make -s install DESTDIR="$dest" PREFIX=$prefix >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; return 1; }
    local ver f
    ver=$(sed -n 's/^#define NP_VERSION_STRING "\(.*\)"/\1/p' include/np.h)
    for f in include/np.h include/np_http.h include/np_tls.h lib/libnp.a "lib/libnp.so.$ver" lib/pkgconfig/np.pc bin/np-echo bin/np-telnet \
        bin/np-chat bin/np-netlog bin/np-httpd lib/libnp-hook.a "lib/libnp-hook.so.$ver" lib/pkgconfig/np-hook.pc; do
        [ -f "$dest$prefix/$f" ] || { echo "missing $prefix/$f"; return 1; }
    done
    [ "$(readlink "$lib/libnp.so.${ver%%.*}")" = "libnp.so.$ver" ] || { echo "libnp.so.${ver%%.*} link wrong"; return 1; }
    [ "$(readlink "$lib/libnp.so")" = "libnp.so.${ver%%.*}" ] || { echo "libnp.so link wrong"; return 1; }
    readelf -d "$lib/libnp.so.$ver" | grep "Library soname: \[libnp.so.${ver%%.*}\]" >/dev/null || { echo "soname"; return 1; }
    [ "$(pkg-config --modversion np)" = "$ver" ] || { echo "pkg-config --modversion: $(pkg-config --modversion np)"; return 1; }
}
check make_install_layout installed

# Only np_ names leave the shared library (nm -D), and every function np.h, np_http.h and
# np_tls.h declare does;
# besides them, the np__hook_ interface of libnp-hook (src/fd/fd.h) and nothing else.
exports() {
    local so=$lib/libnp.so names decl missing
    names=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^np__hook_' | sort)
    hookabi=$(nm -D --defined-only "$so" | awk '{print $3}' | grep '^np__hook_' | sort)
    [ "$hookabi" = "$(grep -oE 'NP_HOOK_ABI [a-z_ 0-9*]*np__hook_[a-z_]+\(' src/fd/fd.h | grep -oE 'np__hook_[a-z_]+' | sort)" ] ||
        { echo "np__hook_ exports differ from src/fd/fd.h: $hookabi"; return 1; }
    [ -n "$names" ] || { echo "no exports"; return 1; }
    if grep -v '^np_[a-z]' <<<"$names"; then echo "^ exported but not public API"; return 1; fi
    decl=$(cat include/np.h include/np_http.h include/np_tls.h | grep -oE '^[A-Za-z_][A-Za-z_0-9 *]*[ *]np_[a-z_0-9]+\(' | grep -oE 'np_[a-z_0-9]+\($' | tr -d '(' | sort -u)
    missing=$(comm -23 <(echo "$decl") <(echo "$names"))
    [ -z "$missing" ] || { echo "declared in np.h but not exported: $missing"; return 1; }
    extra=$(comm -13 <(echo "$decl") <(echo "$names"))
    [ -z "$extra" ] || { echo "exported but not declared in np.h: $extra"; return 1; }
}
check shared_exports_only_api exports

proj=$tmp/proj
mkdir -p "$proj"
cp tests/outoftree/prog.c "$proj/"
shared_prog() {
    cd "$proj" || return 1
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror prog.c $(pkg-config --cflags --libs np) -o prog-shared || return 1
    LD_LIBRARY_PATH=$lib ldd ./prog-shared >ldd.out || return 1
    grep -q "libnp.so.0 => $lib/libnp.so.0" ldd.out || {
        echo "not linked against the installed libnp.so:"
        cat ldd.out
        return 1
    }
    LD_LIBRARY_PATH=$lib timeout 60 ./prog-shared
}
check outoftree_pkgconfig_shared shared_prog

static_prog() {
    cd "$proj" || return 1
    # shellcheck disable=SC2046
    cc -static -std=c11 -Wall -Wextra -Werror prog.c $(pkg-config --static --cflags --libs np) -o prog-static \
        2>"$tmp/static.log" || { cat "$tmp/static.log"; return 1; }
    file ./prog-static | grep 'statically linked' >/dev/null || { file ./prog-static; return 1; }
    timeout 60 ./prog-static
}
check outoftree_pkgconfig_static static_prog

# libnp-hook from outside: a program whose coroutines call libc's nanosleep, built with
# pkg-config np-hook, shared then static (NP_PROCS=1: the sleeps must park, not block).
hook_prog() {
    cd "$proj" || return 1
    cp "$root/tests/outoftree/sleepers.c" . || return 1
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror sleepers.c $(pkg-config --cflags --libs np-hook) -o sleepers-shared || return 1
    LD_LIBRARY_PATH=$lib ldd ./sleepers-shared >ldd-hook.out || return 1
    grep "libnp-hook.so.0 => $lib/libnp-hook.so.0" ldd-hook.out >/dev/null || { cat ldd-hook.out; return 1; }
    NP_PROCS=1 LD_LIBRARY_PATH=$lib timeout 30 ./sleepers-shared || return 1
    # shellcheck disable=SC2046
    cc -static -std=c11 -Wall -Wextra -Werror sleepers.c $(pkg-config --static --cflags --libs np-hook) \
        -o sleepers-static 2>"$tmp/hook-static.log" || { cat "$tmp/hook-static.log"; return 1; }
    NP_PROCS=1 timeout 30 ./sleepers-static
}
check outoftree_np_hook hook_prog

# A plugin-style load: dlopen the installed libnp.so.0 (its TLS is initial-exec: glibc's
# static TLS reserve must take it) and run a coroutine through dlsym'd functions.
dlopen_prog() {
    cat >"$proj/dl.c" <<'C'
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
static int (*sleep_fn)(int64_t);
static int slept;
static void co(void *arg) { (void)arg; slept = sleep_fn(1000000) == 0; }
int main(int argc, char **argv)
{
    (void)argc;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    int (*run)(void (*)(void *), void *) = (int (*)(void (*)(void *), void *))dlsym(h, "np_run");
    sleep_fn = (int (*)(int64_t))dlsym(h, "np_sleep");
    if (!run || !sleep_fn || dlsym(h, "np__park")) { fprintf(stderr, "symbols wrong\n"); return 1; }
    if (run(co, NULL) != 0 || !slept) { fprintf(stderr, "run failed\n"); return 1; }
    return dlclose(h);
}
C
    cc -std=c11 -Wall -Wextra -Werror "$proj/dl.c" -o "$proj/dl" -ldl || return 1
    timeout 30 "$proj/dl" "$lib/libnp.so.0"
}
check dlopen_shared dlopen_prog

# The C++ test program against the installed header and library, with each compiler and
# standard (the header alone), then linked and run.
cxx_prog() {
    local cxx std
    for cxx in g++ clang++; do
        command -v $cxx >/dev/null || { echo "no $cxx"; return 1; }
        for std in c++11 c++14 c++17 c++20; do
            # shellcheck disable=SC2046
            $cxx -std=$std -Wall -Wextra -Werror -pedantic -fsyntax-only $(pkg-config --cflags np) \
                "$root/tests/test_cpp.cpp" || { echo "$cxx -std=$std"; return 1; }
        done
        # shellcheck disable=SC2046
        $cxx -std=c++17 -O2 "$root/tests/test_cpp.cpp" $(pkg-config --cflags --libs np) -o "$proj/cpp-$cxx" || return 1
        LD_LIBRARY_PATH=$lib timeout 60 "$proj/cpp-$cxx" >"$proj/cpp-$cxx.out" || return 1
        # as many cases as the in-tree build of it has, all passed
        grep -Eq "^$(grep -c '^    *{"t_cpp_' "$root/tests/test_cpp.cpp") passed, 0 failed" "$proj/cpp-$cxx.out" ||
            { cat "$proj/cpp-$cxx.out"; return 1; }
    done
}
check cxx_against_installed cxx_prog

# Every program of docs/guide.md, built as a reader would (pkg-config, C11, warnings as
# errors) and run: exit status 0 within 30 s.
guide_prog() {
    local name=$1
    cd "$proj/guide" || return 1
    # the TLS section's program reads certs/ (tests/certs.sh: a CA and a localhost certificate)
    bash "$root/tests/certs.sh" certs >/dev/null || return 1
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror "$name.c" $(pkg-config --cflags --libs np) -o "$name" || return 1
    LD_LIBRARY_PATH=$lib timeout 30 "./$name"
}
for g in $(bash tests/guide.sh "$proj/guide"); do
    check "$g" guide_prog "$g"
done

# The guide's tracing program left trace.json: the installed np-trace summarises it.
np_trace_installed() {
    local out
    out=$("$dest$prefix/bin/np-trace" "$proj/guide/trace.json") || return 1
    echo "$out" | grep -Eq '^g[0-9]+ .* fetcher$' || { echo "$out"; return 1; }
    echo "$out" | grep -Eq '^sleep +3 ' || { echo "$out"; return 1; }
}
check np_trace_summarises_guide_trace np_trace_installed

# Another PREFIX: np.pc points there.
other_prefix() {
    make -s install DESTDIR="$tmp/opt" PREFIX=/opt/np >/dev/null || return 1
    grep -qx 'prefix=/opt/np' "$tmp/opt/opt/np/lib/pkgconfig/np.pc" || { cat "$tmp/opt/opt/np/lib/pkgconfig/np.pc"; return 1; }
    [ -f "$tmp/opt/opt/np/include/np.h" ] && [ -x "$tmp/opt/opt/np/bin/np-echo" ]
}
check install_honours_prefix other_prefix

uninstalled() {
    make -s uninstall DESTDIR="$dest" PREFIX=$prefix >/dev/null || return 1
    local left
    left=$(find "$dest" -type f -o -type l)
    [ -z "$left" ] || { echo "left behind: $left"; return 1; }
}
check make_uninstall_removes_all uninstalled

echo "$pass passed, $fail failed, 0 skipped"
[ "$fail" -eq 0 ]
