#!/usr/bin/env bash
# Side-by-side benchmark of `ocireg serve` and CNCF Distribution 2.8.2 (Debian's docker-registry).
# Builds both binaries (release by default; BENCH_PROFILE=dev for a debug smoke run), then runs
# target/<profile>/bench with the given flags, e.g.:
#   bench/run.sh                  # full run (< ~15 min on 2 cores)
#   bench/run.sh --quick          # smoke test (< 1 min)
#   bench/run.sh --only reference # Distribution alone
# The bench starts both registries on free 127.0.0.1 ports with fresh temp storage, kills them and
# removes their storage at the end (also on error, Ctrl-C or SIGTERM), prints a Markdown table on
# stdout and writes bench/results/<date>.json. Exit status: 0 ok, 2 finished with errors, 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${BENCH_PROFILE:-release}
case "$profile" in
  release) dir=target/release; flags=(--release) ;;
  dev) dir=target/debug; flags=() ;;
  *) echo "BENCH_PROFILE must be release or dev" >&2; exit 1 ;;
esac

only_ref=false
has_bin=false
prev=""
for a in "$@"; do
  case "$a" in
    --only=reference) only_ref=true ;;
    reference) [ "$prev" = "--only" ] && only_ref=true ;;
    --ocireg-bin|--ocireg-bin=*) has_bin=true ;;
  esac
  prev=$a
done

pkgs=(-p ocireg-bench)
$only_ref || pkgs+=(-p ocireg)
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build "${flags[@]}" "${pkgs[@]}"
fi

extra=()
$has_bin || extra+=(--ocireg-bin "$dir/ocireg")
export OCIREG_BENCH_COMMAND="bench/run.sh${*:+ $*}"
[ "$profile" = release ] || OCIREG_BENCH_COMMAND="BENCH_PROFILE=$profile $OCIREG_BENCH_COMMAND"
exec "$dir/bench" "${extra[@]}" "$@"
