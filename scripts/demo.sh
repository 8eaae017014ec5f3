#!/usr/bin/env bash
# Builds plugd and runs a real plugin end to end: the Python echo example is
# checked for protocol conformance, installed into a throwaway home (scanned on
# the way), called in the sandbox, and listed in the history with its CPU time,
# peak memory and end reason.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet -p plugd-cli
plugd=target/release/plugd
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT

run() { printf '\n$ plugd %s\n' "$*"; "$plugd" --home "$home" "$@"; }

run doctor
run validate examples/python-echo
run test examples/python-echo
run install examples/python-echo --enable
run exec python-echo echo --args '{"message":"hello from plugd"}'
run exec python-echo reverse --args '{"message":"stressed"}'
run exec python-echo compute --args '{"op":"mul","a":6,"b":7}'
run list
run history
