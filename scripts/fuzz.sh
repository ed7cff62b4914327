#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for a time budget and prints, per
# target, the executions, the coverage (edges) and the crashes.
#
#   scripts/fuzz.sh SECONDS [TARGET...]      # all targets when none given
#   FUZZ_MERGE=1 scripts/fuzz.sh SECONDS     # then minimize into fuzz/corpus
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 600   # stop a target at 10^7 executions
#   FUZZ_SANITIZER=none scripts/fuzz.sh 60   # faster; default: address
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`);
# nothing else in the project does. Builds optimized with debug assertions
# and overflow checks, under AddressSanitizer unless FUZZ_SANITIZER says otherwise. New
# inputs go to target/fuzz/corpus/TARGET (the committed corpus under
# fuzz/corpus is read, not written, unless FUZZ_MERGE=1); crashes go to
# target/fuzz/artifacts/TARGET. Exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}
shift
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs a nightly toolchain and cargo-fuzz:" >&2
    echo "  rustup toolchain install nightly && cargo install cargo-fuzz" >&2
    exit 2
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi

san=${FUZZ_SANITIZER:-address}
build=(-O -a -s "$san" --fuzz-dir fuzz --target-dir "target/fuzz-$san")
fuzz=(cargo +nightly fuzz run "${build[@]}")
cargo +nightly fuzz build "${build[@]}" >&2

# libFuzzer options: a single allocation above 256 MiB or a process above
# 2 GiB is a failure (the "no unbounded allocation" property).
limits=(-rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=8192 -print_final_stats=1)
runs=()
if [ -n "${FUZZ_RUNS:-}" ]; then runs=(-runs="$FUZZ_RUNS"); fi

printf '%-20s %14s %8s %8s %8s\n' target executions exec/s edges crashes
failed=0
for t in "${targets[@]}"; do
    work=target/fuzz/corpus/$t art=target/fuzz/artifacts/$t
    log=target/fuzz/logs/$t.log
    mkdir -p "$work" "$art" target/fuzz/logs
    rc=0
    "${fuzz[@]}" "$t" "$work" "fuzz/corpus/$t" -- "${limits[@]}" "${runs[@]}" \
        -max_total_time="$secs" -artifact_prefix="$art/" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    edges=$(grep -oE '(DONE|pulse|NEW|REDUCE|INITED) +cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+$' || true)
    # cargo-fuzz passes its own -artifact_prefix (fuzz/artifacts/TARGET/)
    # before ours; count both places.
    crashes=$(find "$art" "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes="rc=$rc"; fi
    printf '%-20s %14s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "${edges:-?}" "$crashes"
    if [ "$crashes" != 0 ]; then
        failed=1
        echo "  log: $log; inputs: $art" >&2
    fi
    if [ "${FUZZ_MERGE:-0}" = 1 ]; then
        # Keep the seeds (written from the vectors by the corpus test), and
        # the smallest set of inputs that keeps every edge either reached.
        merged=target/fuzz/merged/$t
        rm -rf "$merged" && mkdir -p "$merged"
        "${fuzz[@]}" "$t" "$merged" "fuzz/corpus/$t" "$work" -- -merge=1 \
            "${limits[@]}" >>"$log" 2>&1
        find "fuzz/corpus/$t" -type f ! -name 'seed-*' -delete
        cp -n "$merged"/* "fuzz/corpus/$t/" 2>/dev/null || true
    fi
done
exit "$failed"
