#!/usr/bin/env bash
# Runs every cargo-fuzz target of crate/core/fuzz for SECONDS each (default 20), one after
# the other, each seeded from the fixtures; prints per target the executions, coverage
# (libFuzzer's cov = edges, ft = features), corpus size and crashes, and exits non-zero on
# any crash, sanitizer report, leak, OOM or timeout (the input is kept under artifacts/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain (libFuzzer, AddressSanitizer); installs cargo-fuzz (pinned,
# --locked) when missing. Everything it keeps lives outside the clone, in
# $TORCHSAVE_FUZZ_DIR (default ~/.cache/torchsave/fuzz):
#   seeds/<target>/      rebuilt each run from the fixtures (committed ones, the generated
#                        __test__/fixtures/generated, crate/core/tests/wild, the peer corpus
#                        at ../shared/peer-corpus when present, the fuzz regressions)
#   corpus/<target>/     what libFuzzer adds; kept between runs, so runs build on each other
#   artifacts/<target>/  crash-*, oom-*, timeout-*, leak-* inputs
#   logs/<target>.log    the full libFuzzer output of the last run
# The fuzz build goes to crate/core/fuzz/target (ignored by git). A crash: replay it with
# `crate/core/fuzz/target/x86_64-unknown-linux-gnu/release/<target> FILE`, fix the core,
# and commit FILE under crate/core/tests/fuzz_regressions/<target>/ (fuzz_smoke.rs replays it).
# Environment: TORCHSAVE_FUZZ_JOBS (parallel libFuzzer workers per target, default 1),
# TORCHSAVE_FUZZ_RSS_MB (default 2048), TORCHSAVE_FUZZ_TIMEOUT (seconds per input, default 10),
# TORCHSAVE_FUZZ_TARGET (the fuzz build's target dir, default crate/core/fuzz/target).
set -euo pipefail

# All in one function, called on the last line: bash parses it whole before running it, so
# editing this file while a long run is going does not break that run.
main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."

  secs=${1:-20}
  shift || true
  CARGO_FUZZ_VERSION=0.13.2
  fuzz_dir=crate/core/fuzz
  cache=${TORCHSAVE_FUZZ_DIR:-$HOME/.cache/torchsave/fuzz}
  jobs=${TORCHSAVE_FUZZ_JOBS:-1}
  rss=${TORCHSAVE_FUZZ_RSS_MB:-2048}
  per_input=${TORCHSAVE_FUZZ_TIMEOUT:-10}
  t0=$SECONDS
  repo=$(pwd)

  if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain (libFuzzer needs it)"
    rustup toolchain install nightly --profile minimal
  fi
  if [[ "$(cargo fuzz --version 2>/dev/null || true)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
    echo "fuzz.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
  fi

  # Every target the fuzz crate declares, unless named on the command line.
  all=$(cargo +nightly fuzz list --fuzz-dir "$fuzz_dir")
  if [[ $# -gt 0 ]]; then targets=("$@"); else mapfile -t targets <<<"$all"; fi

  echo "fuzz.sh: building ${#targets[@]} targets (nightly, AddressSanitizer, release + debug assertions)"
  target_dir=${TORCHSAVE_FUZZ_TARGET:-$repo/$fuzz_dir/target}
  build=(cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir")
  if [[ ${#targets[@]} -eq 1 ]]; then "${build[@]}" "${targets[0]}"; else "${build[@]}"; fi
  bin_dir=$target_dir/x86_64-unknown-linux-gnu/release
  t_build=$((SECONDS - t0))

  # Seeds per target, from the content of each fixture (never its name).
  rm -rf "$cache/seeds"
  mkdir -p "$cache/seeds" "$cache/corpus" "$cache/artifacts" "$cache/logs"
  # The Python oracle (torch + safetensors) writes the safetensors seeds: none are committed.
  py=${TORCHSAVE_PYTHON:-$(bash scripts/python-env.sh)}
  "$py" "$fuzz_dir/seeds.py" "$cache/seeds" "${targets[@]}"

  failed=()
  rows=()
  for t in "${targets[@]}"; do
    mkdir -p "$cache/corpus/$t" "$cache/artifacts/$t"
    log=$cache/logs/$t.log
    before=$(find "$cache/artifacts/$t" -type f | wc -l)
    echo "fuzz.sh: $t for ${secs}s"
    rc=0
    # -jobs=N runs N workers (logs fuzz-N.log in the cwd): run in the log folder.
    # CPU seconds (user + sys of the fuzzer and its workers) beside the wall time: on a
    # shared machine they differ, and the CPU time is what a target really got.
    {
      TIMEFORMAT='%U %S'
      time (cd "$cache/logs" && TORCHSAVE_FUZZ_TMP=${TMPDIR:-/tmp} \
        "$bin_dir/$t" "$cache/corpus/$t" "$cache/seeds/$t" \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout="$per_input" \
        -artifact_prefix="$cache/artifacts/$t/" -print_final_stats=1 \
        $([[ $jobs -gt 1 ]] && echo "-jobs=$jobs -workers=$jobs") >"$log" 2>&1)
    } 2>"$cache/logs/$t.cpu" || rc=$?
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$cache/logs/$t.cpu")
    if [[ $jobs -gt 1 ]]; then
      cat "$cache"/logs/fuzz-*.log >>"$log" 2>/dev/null || true
      rm -f "$cache"/logs/fuzz-*.log
    fi
    after=$(find "$cache/artifacts/$t" -type f | wc -l)
    crashes=$((after - before))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s+=$2} END {print s+0}')
    last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(find "$cache/corpus/$t" -type f | wc -l)
    rows+=("$(printf '%-20s %6ss %6ss %11s %7s %7s %7s %7s' "$t" "$secs" "$cpu" "$execs" "${cov:--}" "${ft:--}" "$corp" "$crashes")")
    if [[ $rc -ne 0 || $crashes -gt 0 ]] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY: ' "$log"; then
      failed+=("$t")
      echo "fuzz.sh: $t FAILED (exit $rc); tail of $log:"
      tail -40 "$log"
    fi
  done

  echo
  printf '%-20s %7s %7s %11s %7s %7s %7s %7s\n' target wall cpu execs cov ft corpus crashes
  printf '%s\n' "${rows[@]}"
  echo "fuzz.sh: build ${t_build}s, total $((SECONDS - t0))s; corpus and logs in $cache"
  if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $cache/artifacts/)"
    exit 1
  fi
}

main "$@"
