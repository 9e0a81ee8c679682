#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds (default 60) and prints one summary line each.
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -O
status=0
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  dict=()
  [ -f "dict/$target.dict" ] && dict=("-dict=dict/$target.dict")
  log="$(mktemp)"
  if cargo fuzz run -O "$target" "corpus/$target" "${seeds[@]}" -- -max_total_time="$seconds" \
       -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    summary=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1)
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "ok    $target execs=${execs:-?} ${summary#*DONE}"
  else
    echo "FAIL  $target (log: $log)"
    grep -E 'panicked|SUMMARY|ERROR' "$log" | head -5
    status=1
  fi
done
exit $status
