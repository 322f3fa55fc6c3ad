#!/bin/bash
# trace_view.sh: a real-viewer check of a Chrome JSON trace (np's execution
# traces): opens it in speedscope inside headless Chromium (puppeteer-core),
# saves a 1400x900 screenshot and checks that every EXPECT_NAME track (the
# thread_name of a coroutine, e.g. "g2 pinger") is listed and drawn.
#   usage: tests/trace_view.sh TRACE.json OUT.png [EXPECT_NAME...]
#   e.g.   tests/trace_view.sh tests/trace_sample.json build/trace-view/sample.png 'g1 main' 'g2 pinger'
# Prints `ok   trace_view:CHECK` / `FAIL trace_view:CHECK (why)`; exits 1 on a
# failure. Offline: installs (once) Debian's nodejs, npm and chromium if
# missing, and pinned speedscope + puppeteer-core (no browser download) into
# build/npm. Scratch: build/trace-view/run.*, removed on exit.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
[ -r "$1" ] || { echo "FAIL trace_view:load (cannot read $1)"; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
SPEEDSCOPE=1.25.0 PUPPETEER=24.43.1   # both support Node >= 18 (Debian 12's nodejs)

need=()
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "trace_view: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

npm_dir=$root/build/npm
have() { node -p "require('$npm_dir/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(have speedscope)" != $SPEEDSCOPE ] || [ "$(have puppeteer-core)" != $PUPPETEER ]; then
  mkdir -p "$npm_dir"
  PUPPETEER_SKIP_DOWNLOAD=1 timeout 600 npm install --prefix "$npm_dir" --no-audit --no-fund \
    --save-exact --loglevel=error speedscope@$SPEEDSCOPE puppeteer-core@$PUPPETEER >&2
fi

# A fresh copy of speedscope's built page per run (runs may overlap);
# trace_view.js writes profile.js beside it.
mkdir -p "$root/build/trace-view"
scratch=$(mktemp -d "$root/build/trace-view/run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r "$npm_dir/node_modules/speedscope/dist/release/." "$scratch/"
mkdir -p "$(dirname "$2")"

# Bounded: each wait in trace_view.js is 30 s at most; timeout(1) is a backstop
# (SIGTERM lets puppeteer close Chromium).
NODE_PATH=$npm_dir/node_modules timeout -k 10 120 node "$root/tests/trace_view.js" "$scratch" "$@"
