# Helpers for the scripts that start servers on loopback (tests/servers.sh, tests/http.sh,
# bench/http.sh): source it.

# until CMD succeeds, at most 10 s (a server's readiness)
ready() {
    local i
    for i in $(seq 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}

# A free loopback TCP port (one nothing listens on now).
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
