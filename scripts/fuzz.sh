#!/usr/bin/env bash
# fuzz.sh [SECONDS] — build one libFuzzer target per reader of untrusted bytes (checkpoints,
# JPEG, PNG, .npy) with
# clang -fsanitize=fuzzer,address,undefined and run each on a seed corpus (spec/fixtures
# plus the crash corpus spec/fuzz/crashes/<target>/). SECONDS per target: $1, or
# $FUZZ_SECONDS, default 60. $FUZZ_TARGETS: a subset of "ckpt safetensors pth jpeg png npy".
# Every target runs; the script exits 1 when any of them found a crash, a leak or a
# timeout (an input slower than $FUZZ_TIMEOUT s, default 20), after printing the input's
# path. Needs clang (installed here on demand: this is the only place that installs it,
# not `make deps`). .ci/run runs it with FUZZ_SECONDS=20 before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${FUZZ_SECONDS:-60}}
TIMEOUT=${FUZZ_TIMEOUT:-20}
# libFuzzer reads -max_total_time=0 as "forever": 0 means no fuzzing here
if [[ "$SECS" == 0 ]]; then echo "fuzz: skipped (0 seconds)"; exit 0; fi
if ! command -v clang >/dev/null; then
  echo "fuzz: installing clang"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
make -s build/gen/checkpoint.pb-c.c build/gen/checkpoint.pb-c.h >/dev/null
OUT=build/fuzz
mkdir -p "$OUT/obj"
SRC=$(ls engine/core/*.c engine/ops/*.c engine/cpu/*.c engine/io/*.c)
FLAGS=(-std=c11 -O1 -g -D_GNU_SOURCE -fopenmp -Iengine/include -Iengine -Ibuild/gen -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -w)
LIBS=(-lopenblas -lprotobuf-c -lz -lcrypto -lcjson -ljpeg -lpng -lm -lpthread)
# the engine once (-fsanitize=fuzzer-no-link: instrumented, no main), linked into each target
OBJ_FLAGS=("${FLAGS[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}")
objs=()
for f in $SRC build/gen/checkpoint.pb-c.c; do
  o="$OUT/obj/$(echo "$f" | tr / _).o"
  if [[ ! -f "$o" || "$f" -nt "$o" || engine/include/spore.h -nt "$o" ]] || [[ -n $(find engine -name '*.h' -newer "$o" -print -quit) ]]; then
    clang "${OBJ_FLAGS[@]}" -c "$f" -o "$o" &
    while (( $(jobs -rp | wc -l) >= $(nproc) )); do wait -n; done
  fi
  objs+=("$o")
done
wait
failed=()
for t in ${FUZZ_TARGETS:-ckpt safetensors pth jpeg png npy}; do
  clang "${FLAGS[@]}" -o "$OUT/fuzz_$t" spec/fuzz/fuzz_$t.c "${objs[@]}" "${LIBS[@]}"
  corpus="$OUT/corpus_$t"
  mkdir -p "$corpus"
  if [[ $t == ckpt ]]; then cp -n spec/fixtures/*.ckpt "$corpus"/ 2>/dev/null || true
  elif [[ $t == pth ]]; then
    for f in spec/fixtures/pth/*.pth; do [[ $(stat -c %s "$f") -le 65536 ]] && cp -n "$f" "$corpus"/; done
  elif [[ $t == jpeg ]]; then cp -n spec/fixtures/images/*.jpg "$corpus"/ 2>/dev/null || true
  elif [[ $t == png ]]; then cp -n spec/fixtures/images/*.png "$corpus"/ 2>/dev/null || true
  elif [[ $t == npy ]]; then
    for f in spec/fixtures/images/*.npy; do [[ $(stat -c %s "$f") -le 8192 ]] && cp -n "$f" "$corpus"/; done
  else cp -n spec/fixtures/*.safetensors "$corpus"/ 2>/dev/null || true; fi
  crashes=()
  [[ -d spec/fuzz/crashes/$t ]] && crashes=(spec/fuzz/crashes/$t)
  start=$(date +%s)
  if "$OUT/fuzz_$t" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout="$TIMEOUT" -print_final_stats=1 \
       -artifact_prefix="$OUT/crash_$t-" "$corpus" "${crashes[@]}" 2>"$OUT/fuzz_$t.log"; then
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$OUT/fuzz_$t.log" | grep -oE '[0-9]+$' || echo "?")
    echo "fuzz: $t clean for $(( $(date +%s) - start )) s, $runs executions, corpus $(ls "$corpus" | wc -l) files"
  else
    tail -40 "$OUT/fuzz_$t.log"
    art=$(grep -oE "Test unit written to [^ ]+" "$OUT/fuzz_$t.log" | tail -1 | sed 's/Test unit written to //')
    echo "fuzz: $t FAILED${art:+: the input is $art (fix the reader, then keep it under spec/fuzz/crashes/$t/)}"
    failed+=("$t")
  fi
done
if (( ${#failed[@]} )); then echo "fuzz: crashes found by: ${failed[*]}"; exit 1; fi
