#!/usr/bin/env bash
# Builds rust-echo in release mode and puts the binary where its manifest points
# (entry_point: bin/rust-echo). Run from anywhere inside the plugd checkout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."
cargo build --release -p plugd-example-rust-echo
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
mkdir -p "$here/bin"
install -m 0755 "${target_dir:-target}/release/rust-echo" "$here/bin/rust-echo"
echo "built $here/bin/rust-echo"
