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
