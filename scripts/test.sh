#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then runs every test of
# the workspace — unit, integration, the KCL differential test and the end-to-end tests against
# the real ocireg binary, skopeo, oras and CNCF Distribution.
#
# OCIREG_TEST_TIMES=1 also prints each test's duration (libtest's --report-time, allowed on the
# stable toolchain through RUSTC_BOOTSTRAP in the test binaries' environment); the README's
# slowest tests come from such a run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
# Release-mode dependencies keep the I/O-heavy end-to-end tests fast; see [profile.dev.package."*"].
cargo build --workspace --all-targets --locked
# The tests run the binary just built instead of building it again from each test process.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
export OCIREG_BIN="${OCIREG_BIN:-$target_dir/debug/ocireg}"
if [ -n "${OCIREG_TEST_TIMES:-}" ]; then
  # Set for the test binaries through the runner, not for cargo: build scripts that probe the
  # compiler rerun when RUSTC_BOOTSTRAP changes, which would rebuild the workspace.
  CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="env RUSTC_BOOTSTRAP=1" \
    cargo test --workspace --locked --tests -- -Z unstable-options --report-time "$@"
  cargo test --workspace --locked --doc -- "$@"
else
  cargo test --workspace --locked -- "$@"
fi
# The spec suite, skopeo and oras once more against three replicas on one S3 bucket (moto)
# behind HAProxy: every request may land on another replica.
OCIREG_TEST_TARGET=replicas cargo test -p ocireg --locked --test it -- spec:: e2e_clients:: "$@"
