#!/usr/bin/env bash
# run_tests.sh — C-level engine checks, then the busted specs under LuaJIT; prints
# one combined closing line "N passed, N failed, N skipped" (the device is named on the line
# before it, so that CI reads the closing line as it is).
# SPORE_DEVICE (cpu by default; "sim" the simulated device) is the default device of every
# network, optimizer state and dataset batch the specs build; the C checks run the same.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export SPORE_DEVICE=${SPORE_DEVICE:-cpu}
export SPORE_LIB="$PWD/$BUILD/libspore.so"
pre=()
if [[ "${SANITIZE:-}" == "1" ]]; then
  asan=$(gcc -print-file-name=libasan.so); ubsan=$(gcc -print-file-name=libubsan.so)
  pre=(env LD_PRELOAD="$asan:$ubsan" ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1
       UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
fi
log=$(mktemp -d)
c_pass=0; c_fail=0
"$BUILD/test_engine" | tee "$log/c.txt"
rc=${PIPESTATUS[0]}
if line=$(grep -E '^engine: [0-9]+ passed, [0-9]+ failed' "$log/c.txt" | tail -1); then
  c_pass=$(sed -E 's/^engine: ([0-9]+) passed.*/\1/' <<<"$line")
  c_fail=$(sed -E 's/^engine: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
fi
[[ $rc -ne 0 && $c_fail -eq 0 ]] && c_fail=1

"${pre[@]}" luajit /usr/bin/busted -o utfTerminal "$@" 2>&1 | tee "$log/busted.txt"
b=$(sed 's/\x1b\[[0-9;]*m//g' "$log/busted.txt" | grep -aE '[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -1)
if [[ -z "$b" ]]; then
  echo "busted produced no summary (crashed?)"; b_pass=0; b_fail=1; b_skip=0
else
  b_pass=$(grep -oE '[0-9]+ success' <<<"$b" | grep -oE '[0-9]+')
  b_f=$(grep -oE '[0-9]+ failure' <<<"$b" | grep -oE '[0-9]+')
  b_e=$(grep -oE '[0-9]+ error' <<<"$b" | grep -oE '[0-9]+')
  b_skip=$(grep -oE '[0-9]+ pending' <<<"$b" | grep -oE '[0-9]+')
  b_fail=$((b_f + b_e))
fi
rm -rf "$log"
echo
echo "device: ${SPORE_DEVICE}"
echo "$((c_pass + b_pass)) passed, $((c_fail + b_fail)) failed, ${b_skip} skipped"
[[ $((c_fail + b_fail)) -eq 0 ]]
