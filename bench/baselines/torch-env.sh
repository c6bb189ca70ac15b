#!/usr/bin/env bash
# Runs a command with OpenBLAS-pthread selected for that process only (not system-wide), 2 BLAS threads.
# Debian installs OpenBLAS-pthread's libblas.so.3 in its own directory; putting it first on LD_LIBRARY_PATH
# makes the dynamic loader pick it over the /etc/alternatives default (often the ~7x slower reference BLAS).
set -euo pipefail
dir=/usr/lib/x86_64-linux-gnu/openblas-pthread
[ -e "$dir/libblas.so.3" ] || { echo "torch-env: $dir/libblas.so.3 missing: run bench/setup.sh" >&2; exit 3; }
export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$@"
