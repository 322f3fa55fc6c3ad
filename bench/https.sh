#!/usr/bin/env bash
# HTTPS hello: np-httpd --tls (NP_PROCS=1) against nginx with one worker (../shared/bench/
# nginx/nginx.conf with `listen ... ssl`, session tickets on, its default), both with the
# same certificate (tests/certs.sh: ECDSA P-256, signed by a test CA) and the same TLS
# version (TLSVER, default TLSv1.3, or TLSv1.2: nginx's ssl_protocols, and the clients are
# held to it by an OpenSSL config, Min/MaxProtocol, so np negotiates it too). Servers on
# CPU 0, wrk on CPU 1 (-t1), rounds interleaved. Cases:
#   keepalive  keep-alive requests at CONNS connections (one full handshake per connection,
#              inside the measured window: at 1,000 connections about 0.3 s of server CPU)
#   resume     a new TCP+TLS connection per request at HS_CONNS connections: wrk -H
#              'Connection: close' reconnects after each response. wrk (4.1.0, src/ssl.c)
#              keeps one SSL object per connection and on reconnect calls SSL_shutdown then
#              SSL_clear, which keeps the session once close_notify is sent, so the next
#              SSL_connect offers it: wrk RESUMES whenever the server gave it something to
#              resume (TLS 1.3: the session ticket, PSK with (EC)DHE, no certificate and no
#              signature; TLS 1.2: the ticket, abbreviated handshake, no ECDHE either), and
#              makes a full handshake otherwise. Seen in nginx's $ssl_session_reused: all
#              but the first handshake of each wrk connection reused, TLS 1.2 and 1.3.
#   full       the same with a full handshake every time (ECDHE, certificate, ECDSA
#              signature): wrk with an LD_PRELOAD shim, compiled here, that drops the
#              session in SSL_clear, so none is offered.
# First, for each server, an openssl s_client probe: protocol, cipher, key exchange group,
# certificate verified, whether it resumes a session (if not, "resume" is full handshakes
# for it), whether it closes after `Connection: close`.
# Per server and case: median req/s (= handshakes/s in resume and full), p99 latency,
# server CPU per request (= per handshake there; the worker's utime+stime over the run /
# requests), and the ratios np/nginx.
# Usage: bench/https.sh [ROUNDS] [SECS] [CONNS...]   (CONNS default: 50 1000; SERVERS env:
# default "np nginx"; TLSVER env: TLSv1.3 or TLSv1.2; HS env: the handshake cases, default
# "resume full", HS= for none; HS_CONNS env: their connections, default 50)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ys_src=$(cd "$root/../shared/bench" && pwd) || exit 1
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
rounds=${1:-5}
secs=${2:-5}
shift 2 2>/dev/null
conns_list=${*:-50 1000}
servers=${SERVERS:-np nginx}
tlsver=${TLSVER:-TLSv1.3}
hs_cases=${HS-resume full}
hs_conns=${HS_CONNS:-50}
case $tlsver in TLSv1.2 | TLSv1.3) ;; *) echo "TLSVER: TLSv1.2 or TLSv1.3"; exit 1 ;; esac
ulimit -n 20000 2>/dev/null
tmp=$(mktemp -d /tmp/np-bench-https.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

. tests/lib.sh # ready, free_port

certs=$tmp/certs
bash tests/certs.sh "$certs" >/dev/null 2>&1 || { echo "tests/certs.sh failed"; exit 1; }
crt=$certs/server.pem key=$certs/server.key
# the clients (wrk, openssl s_client) speak exactly $tlsver
cat >"$tmp/openssl.cnf" <<EOF
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = tls
[tls]
MinProtocol = $tlsver
MaxProtocol = $tlsver
EOF
cli=(env "OPENSSL_CONF=$tmp/openssl.cnf") # the servers keep the system's config
# wrk without session resumption: SSL_clear forgets the session first (resolved at run
# time, no OpenSSL headers needed)
full_so=
if [[ " $hs_cases " == *" full "* ]]; then
    cat >"$tmp/fresh.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
int SSL_clear(void *s) {
    static int (*clear)(void *);
    static int (*set_session)(void *, void *);
    if (!clear) {
        clear = (int (*)(void *))dlsym(RTLD_NEXT, "SSL_clear");
        set_session = (int (*)(void *, void *))dlsym(RTLD_NEXT, "SSL_set_session");
    }
    set_session(s, 0);
    return clear(s);
}
EOF
    if cc -O2 -shared -fPIC -o "$tmp/fresh.so" "$tmp/fresh.c" -ldl 2>"$tmp/cc.log"; then
        full_so=$tmp/fresh.so
    else
        echo "no C compiler for the full-handshake shim: case full skipped"; cat "$tmp/cc.log"
        hs_cases=${hs_cases//full/}
    fi
fi

# the servers, each on CPU 0; spid[name]: the process whose CPU is counted
declare -A port spid resumes
for s in $servers; do
    port[$s]=$(free_port)
    case $s in
    np)
        NP_PROCS=1 taskset -c 0 build/bin/np-httpd --tls "$crt" "$key" "127.0.0.1:${port[np]}" \
            >"$tmp/np.log" 2>&1 &
        pids+=($!) spid[np]=$!
        ;;
    nginx)
        mkdir -p "$tmp/nginx"
        # the yardstick config; its listen line gains ssl and is followed by the TLS settings
        sed -e "s|^\( *\)listen 127.0.0.1:7010\(.*\);|\1listen 127.0.0.1:${port[nginx]} ssl\2;\n\1ssl_certificate $crt;\n\1ssl_certificate_key $key;\n\1ssl_protocols $tlsver;|" \
            "$ys_src/nginx/nginx.conf" >"$tmp/nginx/nginx.conf"
        grep -q "ssl_protocols $tlsver;" "$tmp/nginx/nginx.conf" ||
            { echo "nginx.conf: no listen 127.0.0.1:7010 line to make TLS"; exit 1; }
        taskset -c 0 nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
        pids+=($!)
        ;;
    *) echo "unknown server $s (np, nginx)"; exit 1 ;;
    esac
done
for s in $servers; do
    ready "${cli[@]}" curl -sf --cacert "$certs/ca.pem" "https://127.0.0.1:${port[$s]}/" ||
        { echo "$s did not start"; tail -n 20 "$tmp/$s.log"; exit 1; }
done
# nginx's worker (the master only waits)
if [ -n "${port[nginx]:-}" ]; then
    spid[nginx]=$(pgrep -P "$(cat "$tmp/nginx/nginx.pid")" | head -n 1)
    [ -n "${spid[nginx]}" ] || { echo "nginx did not start"; cat "$tmp/nginx.log"; exit 1; }
fi

# what each server negotiates, and whether it resumes (a second connection offering the
# first one's session, received with the response) and closes after Connection: close
req='GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'
sclient() {
    # shellcheck disable=SC2059
    printf "$req" | timeout 5 "${cli[@]}" openssl s_client -connect "127.0.0.1:$1" -servername localhost \
        -CAfile "$certs/ca.pem" -verify_return_error -ign_eof "${@:2}" 2>&1
}
for s in $servers; do
    a=$(sclient "${port[$s]}" -sess_out "$tmp/sess.$s"); rc=$?
    b=$(sclient "${port[$s]}" -sess_in "$tmp/sess.$s")
    neg=$(sed -n 's/^New, \(.*\), Cipher is \(.*\)/\1 \2/p' <<<"$a" | head -n 1)
    grp=$(sed -n 's/^Server Temp Key: \([^,]*\).*/\1/p' <<<"$a" | head -n 1)
    ver=no; grep -q 'Verify return code: 0 (ok)' <<<"$a" && ver=yes
    res=no; grep -q '^Reused,' <<<"$b" && res=yes
    resumes[$s]=$res
    cls=yes; [ "$rc" = 124 ] && cls="no (wrk's handshake cases are not valid for $s)"
    body=$(grep -c 'hello' <<<"$a")
    echo "tls $s: ${neg:-handshake failed} ${grp:-?}; certificate verified: $ver; hello: $body;" \
        "resumes a session: $res; closes after Connection: close: $cls"
done
[ -n "$hs_cases" ] && echo "note: in case resume, wrk resumes with servers that resume above, full handshakes otherwise"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
# p99 in µs from wrk's latency line ("99%  1.23ms")
us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }

cases=()
for conns in $conns_list; do cases+=("keepalive:$conns"); done
for h in $hs_cases; do cases+=("$h:$hs_conns"); done
for cs in "${cases[@]}"; do
    name=${cs%%:*} conns=${cs#*:}
    args=() pre=("${cli[@]}") unit=req
    case $name in
    keepalive) ;;
    resume) args=(-H 'Connection: close') unit=hs ;;
    full) args=(-H 'Connection: close') pre+=("LD_PRELOAD=$full_so") unit=hs ;;
    *) echo "unknown case $name (HS: resume full)"; continue ;;
    esac
    declare -A rps=() p99=() cpu=()
    for r in $(seq "$rounds"); do
        for s in $servers; do
            t0=$(ticks "${spid[$s]}")
            out=$(taskset -c 1 timeout -k 5 "$((secs + 30))" "${pre[@]}" wrk -t1 -c"$conns" \
                -d"${secs}s" --latency "${args[@]}" "https://127.0.0.1:${port[$s]}/" 2>&1)
            t1=$(ticks "${spid[$s]}")
            n=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$out")
            q=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' <<<"$out")
            l=$(awk '$1 == "99%" {print $2}' <<<"$out" | us)
            c=$(awk -v t="$((t1 - t0))" -v hz="$hz" -v n="${n:-0}" 'BEGIN{printf "%.2f", (n > 0 ? t / hz * 1e6 / n : 0)}')
            err=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' \n' ' ')
            rps[$s]+="${q:-0} " p99[$s]+="${l:-0} " cpu[$s]+="$c "
            echo "round $r $name c=$conns $s: $unit/s=${q:-0} p99_us=${l:-0} cpu_us_per_$unit=$c${err:+ ($err)}"
        done
    done
    declare -A mr=() mc=()
    for s in $servers; do
        # shellcheck disable=SC2086
        mr[$s]=$(median ${rps[$s]}) ml=$(median ${p99[$s]}) mc[$s]=$(median ${cpu[$s]})
        printf 'median %-9s c=%-4s %-5s %s/s=%-10s p99_us=%-8s cpu_us_per_%s=%s\n' \
            "$name" "$conns" "$s" "$unit" "${mr[$s]}" "$ml" "$unit" "${mc[$s]}"
    done
    if [ -n "${mr[np]:-}" ] && [ -n "${mr[nginx]:-}" ]; then
        w=
        [ "$name" = resume ] && [ "${resumes[np]}" != "${resumes[nginx]}" ] &&
            w=" (unlike handshakes: np resumes ${resumes[np]}, nginx ${resumes[nginx]})"
        awk -v a="${mr[np]}" -v b="${mr[nginx]}" -v ca="${mc[np]}" -v cb="${mc[nginx]}" \
            -v n="$name" -v c="$conns" -v u="$unit" -v v="$tlsver" -v w="$w" \
            -v tg="$([ "$unit" = hs ] && echo 0.9 || echo 1.0)" 'BEGIN{
            printf "ratio %s %s c=%s: np/nginx %s/s=%.3f (target >= %s) cpu/%s=%.3f%s\n",
                v, n, c, u, (b ? a/b : 0), tg, u, (cb ? ca/cb : 0), w}'
    fi
done
