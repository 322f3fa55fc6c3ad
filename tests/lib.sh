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

# A free loopback TCP port (one nothing listens on now), below the ephemeral range
# (32768-60999): a port from there may be taken by some connection's local end before the
# server binds it (EADDRINUSE).
free_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % 22000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
