#!/usr/bin/env bash
# deps.sh [--bench] — install the Debian packages spore needs (idempotent, quiet
# when everything is present). --bench adds python3-torch for `make bench`.
set -euo pipefail
PKGS=(build-essential pkg-config luajit libluajit-5.1-dev lua-busted lua-dkjson lua-cjson lua-argparse gnuplot-nox protobuf-c-compiler
      libprotobuf-c-dev zlib1g-dev libopenblas-dev libssl-dev libcjson-dev libreadline-dev
      libjpeg62-turbo-dev libpng-dev python3 python3-protobuf python3-numpy dataset-fashion-mnist tmux lua-ldoc valgrind
      libjpeg-turbo-progs openmpi-bin libopenmpi-dev)
if [[ "${1:-}" == "--bench" ]]; then PKGS+=(python3-torch hyperfine); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "deps: installing ${missing[*]}"
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
