#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs every test of
# the workspace — unit, integration, the KCL differential test and the end-to-end tests against
# the real ocireg binary, skopeo, oras and CNCF Distribution.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
# Release-mode dependencies keep the I/O-heavy end-to-end tests fast; see [profile.dev.package."*"].
cargo build --workspace --all-targets --locked
cargo test --workspace --locked -- "$@"
