#!/usr/bin/env bash
# Installs what the PyTorch baselines need (Debian packages) and checks which BLAS torch really uses.
#
# Why the BLAS matters: Debian's python3-torch links libblas.so.3, and the default alternative for it is the
# reference BLAS (netlib, unblocked loops), ~7x slower than OpenBLAS on a GPT step. A baseline on it would make
# every ratio in bench/RESULTS.md flatter us. We do NOT change the system-wide alternative (other people's
# processes may rely on it): bench/baselines/torch-env.sh puts OpenBLAS-pthread first on LD_LIBRARY_PATH for the
# baseline process only, and this script verifies torch picks it up (loaded library + a timed 1024^3 matmul).
#
# Usage: sudo bash bench/setup.sh   (idempotent; prints the BLAS in use and the matmul GFLOP/s at the end)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=()
dpkg -s python3-torch >/dev/null 2>&1 || need+=(python3-torch)
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need+=(libopenblas0-pthread)
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Check from inside the baseline's own environment (the same wrapper the benches use).
"$here/baselines/torch-env.sh" /usr/bin/python3 "$here/baselines/blas_check.py"
