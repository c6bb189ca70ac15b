"""PyTorch fp32 matmul baseline for bench/gpu.ts: an [n, n] @ [n, n] product, median time and TFLOP/s.

TF32 is switched off (fp32 means fp32). On CUDA every timed call ends with torch.cuda.synchronize().
Prints one JSON line. Example: python3 bench/baselines/torch_matmul.py --device cuda --n 4096
"""
import argparse
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import summarize, time_steps  # noqa: E402

import torch  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=20)
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False here")
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(a.n, a.n, generator=g).to(dev), torch.randn(a.n, a.n, generator=g).to(dev)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)

    def call():
        torch.mm(x, y)
        sync()

    s = summarize(time_steps(call, a.warmup, a.reps))
    flop = 2 * a.n ** 3
    print(json.dumps({
        "name": "torch_matmul", "n": a.n, "device": a.device, "ms_median": s["median_s"] * 1e3, "ms_min": s["min_s"] * 1e3,
        "tflops": flop / s["median_s"] / 1e12, "tflops_best": flop / s["min_s"] / 1e12, "reps": s["n"],
        "torch": torch.__version__, "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None, "tf32": False,
    }))


if __name__ == "__main__":
    main()
