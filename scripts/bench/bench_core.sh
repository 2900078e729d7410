#!/usr/bin/env bash
# bench_core.sh — float32 matmul GFLOP/s (spore through the FFI vs PyTorch, same run).
set -uo pipefail
cd "$(dirname "$0")/../.."
luajit scripts/bench/core_matmul.lua
