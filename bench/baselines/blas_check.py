"""Which BLAS does this torch process really use, and how fast is it? Prints one JSON line.

Run through bench/baselines/torch-env.sh. The loaded library is read from /proc/self/maps (resolved through
symlinks), so it reports what the dynamic loader picked, not what the alternatives system says.
"""
import json
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import blas_info, matmul_gflops  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(2)
info = blas_info()
info["matmul_1024_gflops"] = round(matmul_gflops(1024), 1)
info["torch"] = torch.__version__
info["threads"] = torch.get_num_threads()
print(json.dumps(info))
ok = info["blas"] == "openblas"
print(("OK: " if ok else "WARNING: ") + f"torch uses {info['blas']} ({info['blas_libs']}), "
      f"1024^3 fp32 matmul {info['matmul_1024_gflops']} GFLOP/s with {info['threads']} threads", file=sys.stderr)
sys.exit(0 if ok else 1)
