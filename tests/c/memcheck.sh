#!/usr/bin/env bash
# Run the C test program and the C examples under valgrind memcheck: no leaks,
# no invalid reads or writes (any error makes valgrind exit 1).
# The collector and the consumer run as a pair, in two processes.
#
# Usage: tests/c/memcheck.sh C_BUILD_DIR [VALGRIND]
set -euo pipefail

C_BUILD=${1:?C build dir}
VALGRIND=${2:-valgrind}
FLAGS=(--quiet --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect,possible
       --errors-for-leak-kinds=definite,indirect,possible)
NAME="memcheck-$$"
TMP=$(mktemp -d)
cleanup() {
    local pids
    pids=$(jobs -p)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    rm -f /dev/shm/shmbus."$NAME"
    rm -rf "$TMP"
}
trap cleanup EXIT

"$VALGRIND" "${FLAGS[@]}" "$C_BUILD/test_ffi" >"$TMP/test_ffi.out" ||
    { cat "$TMP/test_ffi.out"; echo "memcheck: test_ffi failed under valgrind" >&2; exit 1; }
echo "memcheck: test_ffi clean"

# The publish and recv paths allocate nothing per frame: 10 and 3000 round
# trips make exactly as many heap allocations.
allocs() {
    "$VALGRIND" "$C_BUILD/xlang" loop "$NAME" "$1" 2>&1 >/dev/null | sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p'
}
few=$(allocs 10)
many=$(allocs 3000)
[ -n "$few" ] && [ "$few" = "$many" ] ||
    { echo "memcheck: publish/recv allocate per frame: $few allocations for 10 frames, $many for 3000" >&2; exit 1; }
echo "memcheck: publish and recv allocate nothing per frame ($few allocations for 10 or 3000 frames)"

COUNT=500
"$VALGRIND" "${FLAGS[@]}" "$C_BUILD/consumer" "$NAME" 'events.process.#' "$COUNT" 20000 >"$TMP/consumer.out" &
consumer=$!
"$C_BUILD/xlang" wait-subs "$NAME" 1 60000
"$VALGRIND" "${FLAGS[@]}" "$C_BUILD/collector" "$NAME" "$COUNT" ||
    { echo "memcheck: collector failed under valgrind" >&2; exit 1; }
wait "$consumer" || { echo "memcheck: consumer failed under valgrind" >&2; exit 1; }
lines=$(wc -l <"$TMP/consumer.out")
[ "$lines" -eq "$COUNT" ] || { echo "memcheck: consumer printed $lines lines, want $COUNT" >&2; exit 1; }
echo "memcheck: collector and consumer clean ($COUNT frames)"
