#!/usr/bin/env bash
# Runs every fuzz target (or the ones named after SECONDS) for SECONDS seconds each (default
# 60), seeded from seeds/<target> (made by make-seeds.py) with the protocol dictionaries in
# dict/, keeping what it finds in corpus/<target>. Prints one line per target: executions,
# coverage (edges), features and corpus size. A crash leaves its input in artifacts/<target>/.
# cargo fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cargo fuzz build -O
# Run the binaries just built (cargo fuzz run would rebuild from a tree that may be changing).
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="${CARGO_TARGET_DIR:-target}/$triple/release"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

# The dictionaries each family of targets gets (libFuzzer takes one file: they are joined).
dicts_for() {
  case "$1" in
    smtp_client | smtp_server) echo "dict/smtp.dict dict/sasl.dict dict/wire.dict" ;;
    pop3_client | pop3_server) echo "dict/pop3.dict dict/sasl.dict dict/wire.dict" ;;
    smtp_*) echo "dict/smtp.dict" ;;
    pop3_*) echo "dict/pop3.dict dict/wire.dict" ;;
    sasl_*) echo "dict/sasl.dict" ;;
    wire_*) echo "dict/wire.dict dict/sasl.dict" ;;
  esac
}

status=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  dict="$(mktemp)"
  # shellcheck disable=SC2046
  cat $(dicts_for "$target") /dev/null >"$dict"
  log="$(mktemp)"
  mkdir -p "artifacts/$target"
  if "$bin_dir/$target" -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" \
       -print_final_stats=1 -dict="$dict" -max_len=4096 "corpus/$target" "${seeds[@]}" >"$log" 2>&1; then
    summary=$(grep -E '^#[0-9]+.*DONE' "$log" | tail -1 | sed -E 's/.*DONE +//; s/ exec\/s.*//')
    execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "ok    $target execs=${execs:-?} $summary"
    rm -f "$log"
  else
    echo "FAIL  $target (log: $log)"
    grep -E -A3 'panicked|SUMMARY|ERROR' "$log" | head -12 || true
    status=1
  fi
  rm -f "$dict"
done
exit $status
