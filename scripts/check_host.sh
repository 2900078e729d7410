#!/usr/bin/env bash
# check_host.sh — the long checks of the C host API (bindings/host), too slow for `make test`:
#   1. valgrind memcheck over frame_loop's 1,000 frames (LeNet5 from the MindSpore checkpoint):
#      no leak (definite, indirect, possible) and no invalid access, with no suppressions
#      (LuaJIT's heap comes from its own allocator, which the VM's counting allocator wraps)
#   2. the two-VM, two-thread mode (1,000 frames) and host_check under ThreadSanitizer
#      (make SANITIZE=thread, build/tsan): no report
# Needs the fixtures (SPORE_FIXTURES, default ../shared/fixtures). Exit 0 when both hold.
set -uo pipefail
cd "$(dirname "$0")/.."
export SPORE_FIXTURES=${SPORE_FIXTURES:-$PWD/../shared/fixtures}
FRAMES=${FRAMES:-1000}
log=$(mktemp -d)
rc=0
make -s host >/dev/null || exit 1
echo "check_host: valgrind memcheck, frame_loop --frames $FRAMES"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 --num-callers=30 \
  build/frame_loop --frames "$FRAMES" --dt-us 0 --budget-ms 60000 --overhead-calls 100 >"$log/vg.txt" 2>&1
vrc=$?
grep -E "^mode 1" "$log/vg.txt"
if [[ $vrc -ne 0 ]]; then echo "check_host: valgrind FAILED (exit $vrc):"; grep -E "==[0-9]+==" "$log/vg.txt" | head -60; rc=1
else echo "check_host: valgrind clean: no errors, no leaks"; fi
echo "check_host: ThreadSanitizer, frame_loop --mode 2 --frames $FRAMES and host_check"
make -s SANITIZE=thread host >/dev/null || exit 1
TSAN_OPTIONS="halt_on_error=0 exitcode=66" build/tsan/frame_loop --mode 2 --frames "$FRAMES" --dt-us 0 \
  --budget-ms 60000 >"$log/tsan.txt" 2>&1
trc=$?
TSAN_OPTIONS="halt_on_error=0 exitcode=66" build/tsan/host_check >"$log/tsan2.txt" 2>&1
trc2=$?
grep -E "^mode 2:" "$log/tsan.txt"
tail -1 "$log/tsan2.txt"
n=$(cat "$log/tsan.txt" "$log/tsan2.txt" | grep -c "WARNING: ThreadSanitizer")
if [[ $trc -ne 0 || $trc2 -ne 0 || $n -ne 0 ]]; then
  echo "check_host: ThreadSanitizer FAILED ($n reports, exits $trc/$trc2):"
  grep -A20 "WARNING: ThreadSanitizer" "$log/tsan.txt" "$log/tsan2.txt" | head -80; rc=1
else echo "check_host: ThreadSanitizer clean: 0 reports"; fi
rm -rf "$log"
exit $rc
