#!/usr/bin/env bash
# guide.sh DIR CC-ARGS...: extract every ```c block of docs/guide.md into DIR/NAME.c
# (NAME: guide_1, guide_2, ...), print the names. Used by tests/install.sh, which builds
# and runs each against the installed np.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
mkdir -p "$dir"
awk -v dir="$dir" '
    /^```c$/ { n++; f = sprintf("%s/guide_%d.c", dir, n); inblk = 1; next }
    /^```$/ && inblk { inblk = 0; close(f); print "guide_" n; next }
    inblk { print > f }
' docs/guide.md
