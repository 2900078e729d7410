# peers.sh — sourced by the bench scripts: where each peer runs, and which are left out.
#   torch       PyTorch 1.13 from Debian (python3-torch), /usr/bin/python3 — today's column
#   torch_pypi  PyPI's current torch, in the bench venv (make bench-deps)
#   mindspore   PyPI's current mindspore, in the bench venv
# SPORE_BENCH_VENV overrides the venv ($BUILD/bench-venv); SPORE_BENCH_NO_PEERS=a,b leaves
# peers out on purpose (they are then recorded as null and listed under "peers_left_out").
BENCH_VENV=${SPORE_BENCH_VENV:-$PWD/${BUILD:-build}/bench-venv}
PY_DEBIAN=/usr/bin/python3
PY_VENV=$BENCH_VENV/bin/python
peer_left_out() { [[ ",${SPORE_BENCH_NO_PEERS:-}," == *",$1,"* ]]; }
peer_on() { ! peer_left_out "$1"; }
# Debian's torch and the SGEMM peak use Debian's OpenBLAS, as spore does: give every process of
# the bench the kernel choice spore's bindings make (bindings/ffi/lib.lua: OpenBLAS 0.3.21 runs
# its SSE3 kernels on AVX-512 CPUs it does not know), so that each peer runs at its best.
# A user's OPENBLAS_CORETYPE (even empty) is kept.
if [[ -z "${OPENBLAS_CORETYPE+x}" && -r /proc/cpuinfo ]]; then
  _flags=" $(grep -m1 '^flags' /proc/cpuinfo) "
  if [[ $_flags == *" avx512f "* && $_flags == *" avx512bw "* && $_flags == *" avx512dq "* &&
        $_flags == *" avx512vl "* && $_flags == *" avx512cd "* ]]; then
    if [[ $_flags == *" avx512_bf16 "* ]]; then export OPENBLAS_CORETYPE=Cooperlake
    else export OPENBLAS_CORETYPE=SkylakeX; fi
  fi
  unset _flags
fi
# Likewise the short idle spin of OpenBLAS's pthread workers (bindings/ffi/lib.lua sets
# OPENBLAS_THREAD_TIMEOUT=22): Debian's torch and the SGEMM peak load the same OpenBLAS.
if [[ -z "${OPENBLAS_THREAD_TIMEOUT+x}" ]]; then export OPENBLAS_THREAD_TIMEOUT=22; fi
