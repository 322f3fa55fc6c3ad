#!/usr/bin/env bash
# Unmodified client libraries from Debian in coroutines (libnp-hook), against real servers
# from Debian started here on loopback and stopped at the end: redis-server (hiredis),
# nginx (libcurl; np_http's client too), PostgreSQL 15 through pg_virtualenv (libpq; a throw-away cluster, also
# as root). Runs the srv_* test binaries of each build directory given (default: build,
# the static hook; build/shared: libnp-hook.so), prints their lines and the summary.
# Usage: tests/servers.sh [BUILD_DIR...]
set -uo pipefail
cd "$(dirname "$0")/.."
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(build)
tmp=$(mktemp -d /tmp/np-servers.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0 skip=0

. tests/lib.sh # ready, free_port

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --maxclients 4000 \
    --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
ready redis-cli -p "$rport" ping || { echo "redis-server did not start:"; cat "$tmp/redis.log"; }

hport=$(free_port)
mkdir -p "$tmp/www" "$tmp/nginx"
echo "hello from nginx" >"$tmp/www/hello.txt"
# byte i: (i * 31 + 7) % 251, as srv_curl checks
perl -e 'print map { chr(($_ * 31 + 7) % 251) } 0 .. 1048575' >"$tmp/www/big.bin"
head -c $((48 << 10)) "$tmp/www/big.bin" >"$tmp/www/slow.bin"
chmod -R a+rX "$tmp/www"
cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
user root root;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$hport;
        root $tmp/www;
        location = /slow.bin { limit_rate 16k; }
    }
}
EOF
nginx -c "$tmp/nginx/nginx.conf" -p "$tmp/nginx" >"$tmp/nginx.log" 2>&1 &
pids+=($!)
ready curl -sf "http://127.0.0.1:$hport/hello.txt" || { echo "nginx did not start:"; cat "$tmp/nginx.log" "$tmp/nginx/error.log"; }

# run LABEL CMD...: one test binary; its lines, counted.
run() {
    local label=$1 out line p f s
    shift
    out=$("$@" 2>&1)
    echo "$out" | grep -E '^(ok|FAIL|skip) ' | while IFS= read -r l; do echo "$l [$label]"; done
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "FAIL $label: no summary"
        echo "$out" | tail -n 30 | sed 's/^/      /'
        fail=$((fail + 1))
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    s=0
    [[ $line == *skipped* ]] && { s=${line#*failed, }; s=${s%% skipped*}; }
    pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
    [ "$f" -eq 0 ] || echo "$out" | grep -Ev '^(ok|skip) |^[0-9]+ passed' | head -n 40 | sed 's/^/      /'
}

for d in "${dirs[@]}"; do
    NP_REDIS_PORT=$rport run "$d" timeout 300 "$d/tests/srv_redis"
    NP_HTTP_PORT=$hport run "$d" timeout 300 "$d/tests/srv_curl"
    NP_HTTP_NGINX=http://127.0.0.1:$hport run "$d" timeout 300 "$d/tests/test_http" -r t_client_against_nginx
    run "$d" pg_virtualenv -o max_connections=250 timeout 300 "$d/tests/srv_pq"
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
