#!/usr/bin/env bash
# deps.sh [--bench] — install the Debian packages spore needs (idempotent, quiet
# when everything is present). --bench (`make bench-deps`) adds python3-torch (the
# "torch" column of `make bench`) and hyperfine, and makes the bench venv
# ($BUILD/bench-venv, BUILD=build by default) with PyPI's current torch and mindspore
# (the "torch_pypi" and "mindspore" columns). SPORE_BENCH_SEED=/path/to/venv: when that
# venv already imports both, the bench venv reuses its packages (a .pth file) instead
# of downloading them again.
set -euo pipefail
PKGS=(build-essential pkg-config luajit libluajit-5.1-dev lua-busted lua-dkjson lua-cjson lua-argparse gnuplot-nox protobuf-c-compiler
      libprotobuf-c-dev zlib1g-dev libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev libopenblas0-openmp libopenblas-openmp-dev libdnnl-dev libssl-dev libcjson-dev libreadline-dev
      libjpeg62-turbo-dev libpng-dev python3 python3-protobuf python3-numpy dataset-fashion-mnist tmux lua-ldoc valgrind
      libjpeg-turbo-progs openmpi-bin libopenmpi-dev)
if [[ "${1:-}" == "--bench" ]]; then PKGS+=(python3-torch python3-venv hyperfine); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ "${1:-}" == "--bench" ]] || exit 0

# the bench venv: PyPI's torch and mindspore, beside Debian's python3-torch
VENV=${SPORE_BENCH_VENV:-${BUILD:-build}/bench-venv}
if "$VENV/bin/python" -c "import torch, mindspore" 2>/dev/null; then exit 0; fi
SEED=${SPORE_BENCH_SEED:-}
if [[ -n "$SEED" ]] && "$SEED/bin/python" -c "import torch, mindspore" 2>/dev/null; then
  echo "deps: $VENV reuses the packages of $SEED"
  "$SEED/bin/python" -m venv --clear "$VENV"
  site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  "$SEED/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" >"$site/spore_bench_seed.pth"
else
  echo "deps: making $VENV with PyPI's torch and mindspore (a large download)"
  python3 -m venv --clear "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q torch mindspore numpy
fi
"$VENV/bin/python" -c "import torch, mindspore; print('deps: bench venv: torch', torch.__version__, '/ mindspore', mindspore.__version__)"
