#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ on the stable toolchain.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]     (defaults: all, 600 seconds per target)
#
# Targets: api_path digest_reference manifest range config (logic in crates/fuzz-targets).
# Each target runs for SECONDS under `nice -n 10` with AddressSanitizer and debug assertions,
# starting from fuzz/corpus/<t>/ (grown in place) plus the hand-written fuzz/seeds/<t>/; then
# `cargo fuzz cmin` shrinks fuzz/corpus/<t>/ to the inputs that add coverage (edge coverage
# only, `-use_counters=0`, when the result is still over ~2,000 files / 2 MiB). fuzz/dicts/<t>.dict
# (tokens of the input language) is passed to libFuzzer when present. Crash inputs land
# in fuzz/artifacts/<t>/ (git-ignored) and make the script exit 1. Logs and a summary line per
# target go to fuzz/target/fuzz-logs/. cargo-fuzz is installed if missing.
#
# No nightly toolchain is needed: RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Z flags
# cargo-fuzz passes (sanitizer, coverage instrumentation).
set -euo pipefail

ALL=(api_path digest_reference manifest range config)
target="${1:-all}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if [[ "$target" == "all" ]]; then
    targets=("${ALL[@]}")
elif [[ " ${ALL[*]} " == *" $target "* ]]; then
    targets=("$target")
else
    echo "unknown target $target (one of: ${ALL[*]} all)" >&2
    exit 2
fi
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be an integer" >&2; exit 2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
# -O: optimised; -a: debug assertions (integer overflow checks) on.
FUZZ_FLAGS=(-O -a)
logs="$root/fuzz/target/fuzz-logs"
mkdir -p "$logs"

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="$logs/$t.log"
    echo "== $t: ${seconds}s, log $log"
    dict=()
    [[ -f "dicts/$t.dict" ]] && dict=(-dict="dicts/$t.dict")
    start=$(date +%s)
    set +e
    nice -n 10 cargo fuzz run "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${dict[@]}" >"$log" 2>&1
    rc=$?
    set -e
    wall=$(( $(date +%s) - start ))
    nice -n 10 cargo fuzz cmin "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" >"$logs/$t.cmin.log" 2>&1
    corpus_size() {
        files=$(find "corpus/$t" -type f | wc -l)
        size=$(du -s --apparent-size --block-size=1K "corpus/$t" | cut -f1)
    }
    corpus_size
    if (( files > 2000 || size > 2048 )); then
        # Over budget: keep one input per covered edge (hit-count buckets ignored).
        nice -n 10 cargo fuzz cmin "${FUZZ_FLAGS[@]}" "$t" "corpus/$t" -- -use_counters=0 \
            >>"$logs/$t.cmin.log" 2>&1
        corpus_size
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    line="| $t | $wall | ${execs:-?} | ${rate:-?} | $files (${size} KiB) | $crashes | rc=$rc |"
    echo "$line" | tee "$logs/$t.summary"
    if (( rc != 0 || crashes != 0 )); then
        echo "!! $t: fuzzer exit $rc, $crashes artifact(s) in fuzz/artifacts/$t" >&2
        status=1
    fi
    if (( files > 2000 || size > 2048 )); then
        echo "!! $t: corpus is $files files / ${size} KiB (limit ~2000 files / 2 MiB)" >&2
        status=1
    fi
done
exit "$status"
