#!/usr/bin/env bash
# Installs attnlab's build and test dependencies from Debian packages.
# Idempotent: packages already installed are skipped, and apt is not touched
# at all when nothing is missing. Run as root (or with sudo available).
#   scripts/install_deps.sh          build + test deps + python tooling
#   scripts/install_deps.sh --build  only what the C++ build and tests need
set -euo pipefail

build_pkgs=(build-essential cmake libeigen3-dev libhdf5-dev libboost-program-options-dev
            libopenmpi-dev openmpi-bin libgtest-dev libopenblas-dev pkg-config)
python_pkgs=(python3-numpy python3-h5py python3-matplotlib python3-torch)

want=("${build_pkgs[@]}")
[[ "${1:-}" == "--build" ]] || want+=("${python_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install_deps: all ${#want[@]} packages present"
  exit 0
fi

echo "install_deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
