#!/usr/bin/env bash
# The whole test suite (README: "Run all tests").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets
