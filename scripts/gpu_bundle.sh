#!/usr/bin/env bash
# scripts/gpu_bundle.sh — run HERE (the development machine, `make deps` done) before a GPU
# session: packs what the bare GPU machine lacks into .gpu.tar.xz (git-ignored through
# .git/info/exclude), for the device tool's `carry`. The GPU machine's image has nvcc, the
# CUDA libraries and PyTorch but not spore's Debian dependencies, cannot fetch anything, and
# does not receive ../shared. The bundle holds:
#   lib/       libopenblas, libgfortran, libquadmath, libprotobuf-c, libcjson, libluajit (+ link names)
#   include/   cblas.h, openblas_config.h, protobuf-c/, cjson/, openssl/, zlib.h, luajit-2.1/
#   bin/       luajit, busted
#   lua/, clua/  busted and its modules, argparse, dkjson, cjson (Lua 5.1 / LuaJIT)
#   gen/       the protobuf-c sources generated here (no protoc-c there)
#   fixtures/  ../shared/fixtures (the MindSpore LeNet checkpoint, MNIST)
#   fashion-mnist/  the Fashion-MNIST idx files, when they fit (FMNIST=0 leaves them out)
# Then, in the GPU session:  run(command="bash scripts/gpu_check.sh", carry=[".gpu.tar.xz"], timeout_s=540)
# (scripts/gpu_check.sh unpacks it to /tmp/spore_gpu and sets the paths).
set -euo pipefail
cd "$(dirname "$0")/.."
FIX=${SPORE_FIXTURES:-../shared/fixtures}
FM=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
B=$(mktemp -d)/gpu
mkdir -p "$B"/{lib,include,bin,lua,clua,gen,fixtures}
so() { ldconfig -p | awk -v n="$1" '$1 == n && !f { print $NF; f = 1 }'; }
for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0 libprotobuf-c.so.1 libcjson.so.1 libluajit-5.1.so.2; do
  p=$(so "$l"); [ -n "$p" ] || { echo "gpu_bundle: $l not found (make deps first)" >&2; exit 1; }
  cp -L "$p" "$B/lib/$l"
done
ln -s libopenblas.so.0 "$B/lib/libopenblas.so"; ln -s libprotobuf-c.so.1 "$B/lib/libprotobuf-c.so"
ln -s libcjson.so.1 "$B/lib/libcjson.so"; ln -s libluajit-5.1.so.2 "$B/lib/libluajit-5.1.so"
inc=/usr/include/x86_64-linux-gnu
cp -L "$inc/cblas.h" "$inc/openblas_config.h" "$B/include/" 2>/dev/null ||
  cp -L "$(dirname "$(readlink -f "$inc/cblas.h")")"/{cblas.h,openblas_config.h} "$B/include/"
cp -rL /usr/include/protobuf-c /usr/include/cjson /usr/include/luajit-2.1 /usr/include/openssl /usr/include/zlib.h \
  /usr/include/zconf.h "$B/include/"
cp -L "$inc/openssl/"*.h "$B/include/openssl/" 2>/dev/null || true
cp -L "$(command -v luajit)" "$B/bin/luajit"
cp -L /usr/bin/busted "$B/bin/busted"
for m in busted luassert say pl cliargs term system mediator.lua dkjson.lua argparse.lua; do
  [ -e "/usr/share/lua/5.1/$m" ] && cp -rL "/usr/share/lua/5.1/$m" "$B/lua/"
done
for d in /usr/lib/x86_64-linux-gnu/lua/5.1; do cp -rL "$d"/. "$B/clua/"; done
make -s "build/cuda/gen/checkpoint.pb-c.c" CUDA=1 >/dev/null
cp build/cuda/gen/*.pb-c.[ch] "$B/gen/"
[ -d "$FIX/mnist" ] || { echo "gpu_bundle: no fixtures at $FIX (set SPORE_FIXTURES)" >&2; exit 1; }
cp -rL "$FIX/mindspore" "$FIX/mnist" "$FIX/README.md" "$B/fixtures/"
if [ "${FMNIST:-1}" = 1 ] && [ -d "$FM" ]; then mkdir -p "$B/fashion-mnist"; cp -L "$FM"/*-ubyte* "$B/fashion-mnist/"; fi
grep -qx '/.gpu.tar.xz' .git/info/exclude 2>/dev/null || echo '/.gpu.tar.xz' >>"$(git rev-parse --git-path info/exclude)"
tar -cJf .gpu.tar.xz -C "$(dirname "$B")" gpu
rm -rf "$(dirname "$B")"
echo "gpu_bundle: .gpu.tar.xz $(du -h .gpu.tar.xz | cut -f1) (the working tree that travels must stay under 64 MiB)"
