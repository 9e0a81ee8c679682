#!/usr/bin/env bash
# The whole test suite: unit, property, known-answer, transcript and interop tests, doc tests.
# Installs the peers the interop tests need (Debian packages) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-peers.sh
cargo test --all-targets
cargo test --doc
