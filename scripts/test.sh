#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every unit and integration test
# (the integration tests drive the real plugd binary and real plugin processes).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast
fi
