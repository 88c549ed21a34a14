#!/bin/sh
# Code size of the lmc C runtime (lmc_runtime.c, lmc_digest.c, lmc_threads.c) built with -Os,
# as in an artifact: prints `size` per object and the total of the .text sections.
# usage: scripts/runtime_size.sh [extra cc flags, e.g. -DLMC_NO_THREADS]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in lmc_runtime lmc_digest lmc_threads; do
  "$cc" -std=c11 -Os -fPIC -fvisibility=hidden "$@" -I"$root/runtime/include" \
    -c "$root/runtime/src/$f.c" -o "$tmp/$f.o"
done
cd "$tmp"
size lmc_runtime.o lmc_digest.o lmc_threads.o
text=0
for f in lmc_runtime.o lmc_digest.o lmc_threads.o; do
  t=$(size -A "$f" | awk '$1 ~ /^\.text/ {s += $2} END {print s + 0}')
  text=$((text + t))
done
all=$(size lmc_runtime.o lmc_digest.o lmc_threads.o | awk 'NR > 1 {s += $1} END {print s}')
echo "runtime .text: $text bytes (goal < 16384); text + rodata: $all bytes"
