"""Shared helpers for the PyTorch baselines: BLAS detection and timing (median of N after warm-up)."""
import os
import statistics
import time

import torch


def loaded_blas_libs():
    """Real paths of the BLAS-looking shared libraries mapped into this process."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if any(k in name for k in ("blas", "lapack", "mkl", "blis")):
                libs.add(os.path.realpath(path))
    return sorted(libs)


def blas_info():
    libs = loaded_blas_libs()
    joined = " ".join(libs)
    if "openblas" in joined:
        kind = "openblas"
    elif "mkl" in joined:
        kind = "mkl"
    elif "blis" in joined:
        kind = "blis"
    elif "libblas" in joined:
        kind = "reference"  # netlib libblas.so.3: unblocked loops, ~7x slower
    else:
        kind = "unknown"
    variant = "pthread" if "openblas-pthread" in joined else "openmp" if "openblas-openmp" in joined else None
    return {"blas": kind, "blas_variant": variant, "blas_libs": libs,
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}


def matmul_gflops(n, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up (also makes sure the BLAS is loaded before loaded_blas_libs looks)
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        t.append(time.perf_counter() - t0)
    return 2 * n ** 3 / min(t) / 1e9


def time_steps(fn, warmup, steps):
    """Call fn warmup times untimed, then `steps` times; returns per-call seconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summarize(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "n": len(times)}
