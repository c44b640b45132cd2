#!/bin/sh
# Installs the Debian packages diffeoflow needs, and only those that are missing.
# Safe to run again: when everything is present it does nothing and touches no network.
set -eu

PACKAGES="build-essential cmake pkg-config libboost-dev libeigen3-dev libceres-dev libhdf5-dev
libfftw3-dev libnifti2-dev libpng-dev zlib1g-dev libgtest-dev libgmock-dev libbenchmark-dev
libcli11-dev nlohmann-json3-dev libcairo2-dev libsleef-dev libdnnl-dev ocl-icd-opencl-dev fonts-dejavu-core mricron-data dataset-fashion-mnist
pybind11-dev python3-pybind11 python3-numpy python3-dev python3-pytest
python3-nibabel python3-matplotlib libopenmpi-dev openmpi-bin"

# `install-deps.sh clang` adds the fuzzing toolchain (make fuzz).
if [ "${1:-}" = "clang" ]; then
  PACKAGES="clang libclang-rt-14-dev"
fi

missing=""
for p in $PACKAGES; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case "$status" in
    *"install ok installed"*) ;;
    *) missing="$missing $p" ;;
  esac
done

if [ -z "$missing" ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi

echo "install-deps: installing$missing"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: missing packages$missing and not root (no sudo): install them with apt-get" >&2
    exit 1
  fi
else
  SUDO=""
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
