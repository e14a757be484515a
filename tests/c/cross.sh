#!/usr/bin/env bash
# Cross-language tests, each side in its own process:
#   1. C producer (xlang.c, publish + claim)  -> Rust subscriber (ffi/examples/xlang.rs)
#   2. Rust producer (xlang.rs)               -> C subscriber (xlang.c)
#   3. C collector (examples/c/collector.c)   -> Rust subscriber (JSON payloads)
#   4. Rust publish example (core/examples)   -> C consumer (examples/c/consumer.c)
# Counts and checksums are verified on both sides. Every bus is removed on exit.
#
# Usage: tests/c/cross.sh C_BUILD_DIR RUST_XLANG RUST_PUBLISH [COUNT]
set -euo pipefail

C_BUILD=${1:?C build dir}
RUST_XLANG=${2:?path of the Rust xlang example}
RUST_PUBLISH=${3:?path of the core publish example}
COUNT=${4:-20000}
TIMEOUT_MS=10000

TMP=$(mktemp -d)
PREFIX="xlang-$$"
cleanup() {
    local pids
    pids=$(jobs -p)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    rm -f /dev/shm/shmbus."$PREFIX"-*
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "cross.sh: FAIL: $*" >&2; exit 1; }

# run_pair NAME "subscriber command..." "producer command..." : starts the
# subscriber, waits until it is subscribed, runs the producer, waits for both.
run_pair() {
    local name=$1 sub=$2 prod=$3
    $sub >"$TMP/$name.sub" 2>"$TMP/$name.sub.err" &
    local sub_pid=$!
    "$C_BUILD/xlang" wait-subs "$PREFIX-$name" 1 "$TIMEOUT_MS" || fail "$name: subscriber never appeared"
    $prod >"$TMP/$name.pub" 2>"$TMP/$name.pub.err" || { cat "$TMP/$name.pub.err" >&2; fail "$name: producer failed"; }
    wait "$sub_pid" || { cat "$TMP/$name.sub.err" >&2; fail "$name: subscriber failed"; }
}

# 1. C -> Rust, checksummed binary payloads.
run_pair c2rust "$RUST_XLANG sub $PREFIX-c2rust xl.# $COUNT $TIMEOUT_MS" \
    "$C_BUILD/xlang pub $PREFIX-c2rust xl.data $COUNT"
read -r _ n sum <"$TMP/c2rust.pub"
[ "$(cat "$TMP/c2rust.sub")" = "received $n $sum missed 0" ] ||
    fail "c2rust: published '$n $sum', subscriber saw '$(cat "$TMP/c2rust.sub")'"
echo "cross: C producer -> Rust subscriber: $n frames, checksum sum $sum ok"

# 2. Rust -> C, checksummed binary payloads.
run_pair rust2c "$C_BUILD/xlang sub $PREFIX-rust2c xl.# $COUNT $TIMEOUT_MS" \
    "$RUST_XLANG pub $PREFIX-rust2c xl.data $COUNT"
read -r _ n sum <"$TMP/rust2c.pub"
[ "$(cat "$TMP/rust2c.sub")" = "received $n $sum missed 0" ] ||
    fail "rust2c: published '$n $sum', subscriber saw '$(cat "$TMP/rust2c.sub")'"
echo "cross: Rust producer -> C subscriber: $n frames, checksum sum $sum ok"

# 3. C collector -> Rust subscriber checking every JSON payload in order.
run_pair collector "$RUST_XLANG sub-json $PREFIX-collector events.process.# $COUNT $TIMEOUT_MS c" \
    "$C_BUILD/collector $PREFIX-collector $COUNT"
read -r _ n _ _ missed <"$TMP/collector.sub"
[ "$n" = "$COUNT" ] && [ "$missed" = 0 ] || fail "collector: subscriber saw '$(cat "$TMP/collector.sub")'"
echo "cross: C collector -> Rust subscriber: $n JSON frames ok"

# 4. Rust publish example -> C consumer, every line checked.
run_pair consumer "$C_BUILD/consumer $PREFIX-consumer events.# $COUNT $TIMEOUT_MS" \
    "$RUST_PUBLISH $PREFIX-consumer events.process.lifecycle $COUNT"
awk -v count="$COUNT" '
    {
        want = sprintf("%d events.process.lifecycle {\"i\": %d, \"producer\": \"rust\", \"pid\": ", NR - 1, NR - 1)
        if (substr($0, 1, length(want)) != want || substr($0, length($0)) != "}") {
            print "line " NR " is wrong: " $0 > "/dev/stderr"; bad = 1; exit 1
        }
    }
    END { if (!bad && NR != count) { print NR " lines, want " count > "/dev/stderr"; exit 1 } }
' "$TMP/consumer.sub" || fail "consumer output"
grep -q "consumer: $COUNT frames, 0 missed" "$TMP/consumer.sub.err" || fail "consumer summary: $(cat "$TMP/consumer.sub.err")"
echo "cross: Rust producer -> C consumer: $COUNT lines ok"
