#!/usr/bin/env bash
# fuzz.sh [SECONDS] — build one libFuzzer target per checkpoint reader with
# clang -fsanitize=fuzzer,address and run each on a seed corpus (spec/fixtures).
# SECONDS per target: $1, or $FUZZ_SECONDS, default 60. $FUZZ_TARGETS: a subset of "ckpt safetensors pth". Needs clang (installed here
# on demand: this is the only place that installs it, not `make deps`).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${FUZZ_SECONDS:-60}}
if ! command -v clang >/dev/null; then
  echo "fuzz: installing clang"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends clang >/dev/null
fi
make -s build/gen/checkpoint.pb-c.c build/gen/checkpoint.pb-c.h >/dev/null
OUT=build/fuzz
mkdir -p "$OUT"
SRC=$(ls engine/core/*.c engine/ops/*.c engine/cpu/*.c engine/io/*.c)
FLAGS=(-std=c11 -O1 -g -D_GNU_SOURCE -fopenmp -Iengine/include -Iengine -Ibuild/gen -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -w)
LIBS=(-lopenblas -lprotobuf-c -lz -lcrypto -lcjson -lm -lpthread)
for t in ${FUZZ_TARGETS:-ckpt safetensors pth}; do
  clang "${FLAGS[@]}" -o "$OUT/fuzz_$t" spec/fuzz/fuzz_$t.c $SRC build/gen/checkpoint.pb-c.c "${LIBS[@]}"
  corpus="$OUT/corpus_$t"
  mkdir -p "$corpus"
  if [[ $t == ckpt ]]; then cp -n spec/fixtures/*.ckpt "$corpus"/ 2>/dev/null || true
  elif [[ $t == pth ]]; then
    for f in spec/fixtures/pth/*.pth; do [[ $(stat -c %s "$f") -le 65536 ]] && cp -n "$f" "$corpus"/; done
  else cp -n spec/fixtures/*.safetensors "$corpus"/ 2>/dev/null || true; fi
  start=$(date +%s)
  "$OUT/fuzz_$t" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
     -artifact_prefix="$OUT/crash_$t-" "$corpus" 2>"$OUT/fuzz_$t.log" || { tail -40 "$OUT/fuzz_$t.log"; echo "fuzz: $t FAILED"; exit 1; }
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$OUT/fuzz_$t.log" | grep -oE '[0-9]+$' || echo "?")
  echo "fuzz: $t clean for $(( $(date +%s) - start )) s, $runs executions, corpus $(ls "$corpus" | wc -l) files"
done
