"""PyTorch fp32 greedy-generation baseline for bench/gpu.ts: a Llama-style decoder with a KV cache, batch B.

Same architecture as our decoder's Llama (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU, untied head),
random init. Prefill of the B prompts (equal length P), then `--max-new` single-token steps, greedy, no EOS stop:
B * max_new tokens per generation, prefill included in the time, median over `--repeats` after one warm-up.
A static cache [B, K, P + max_new, D] per layer; each step attends to the filled slots. TF32 off; on CUDA every
generation ends with torch.cuda.synchronize() (the argmax of each step is read back anyway).
Prints one JSON line. Example: python3 bench/baselines/torch_generate.py --device cuda --batch 16
"""
import argparse
import json
import math
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import summarize, time_steps  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def rms(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Llama:
    def __init__(self, a, dev):
        g = torch.Generator().manual_seed(a.seed)
        C, H, K, I, V = a.dim, a.heads, a.kv_heads, a.ffn, a.vocab
        self.H, self.K, self.D = H, K, C // H
        W = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(dev)  # noqa: E731
        self.wte, self.head = W(V, C), W(C, V)
        self.layers = [dict(ln1=torch.ones(C, device=dev), wqkv=W(C, (H + 2 * K) * self.D), wo=W(H * self.D, C),
                            ln2=torch.ones(C, device=dev), wg=W(C, I), wu=W(C, I), wd=W(I, C)) for _ in range(a.layers)]
        self.lnf = torch.ones(C, device=dev)
        D = self.D
        inv = 1.0 / 10000.0 ** (torch.arange(0, D, 2).float() / D)
        f = torch.outer(torch.arange(a.prompt_len + a.max_new).float(), inv)
        emb = torch.cat([f, f], -1).to(dev)
        self.cos, self.sin = emb.cos(), emb.sin()

    def forward(self, ids, start, cache):
        """ids [B, T] at positions start..start+T-1; cache: per layer (k, v) [B, K, Tmax, D], written in place."""
        B, T = ids.shape
        x = self.wte[ids]
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        end = start + T
        causal = torch.ones(T, end, dtype=torch.bool, device=ids.device).tril(start)
        for l, (kc, vc) in zip(self.layers, cache):
            q, k, v = (rms(x, l["ln1"]) @ l["wqkv"]).view(B, T, self.H + 2 * self.K, self.D).transpose(1, 2).split([self.H, self.K, self.K], 1)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            kc[:, :, start:end], vc[:, :, start:end] = k, v
            kk = kc[:, :, :end].repeat_interleave(self.H // self.K, 1)
            vv = vc[:, :, :end].repeat_interleave(self.H // self.K, 1)
            s = (q @ kk.transpose(-1, -2)) / math.sqrt(self.D)
            y = F.softmax(s.masked_fill(~causal, -1e9), -1) @ vv
            x = x + y.transpose(1, 2).reshape(B, T, -1) @ l["wo"]
            h = rms(x, l["ln2"])
            x = x + (F.silu(h @ l["wg"]) * (h @ l["wu"])) @ l["wd"]
        return rms(x[:, -1], self.lnf) @ self.head  # next-token logits [B, V]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for k, v in dict(layers=6, dim=384, heads=6, kv_heads=2, ffn=768, vocab=4096, batch=1, prompt_len=8, max_new=128, repeats=3, seed=0).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (cpu only)")
    a = p.parse_args()
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False here")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    m = Llama(a, dev)
    prompts = torch.randint(256, (a.batch, a.prompt_len), generator=torch.Generator().manual_seed(a.seed + 7)).to(dev)
    tmax = a.prompt_len + a.max_new
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    out = []

    @torch.inference_mode()
    def generate():
        cache = [(torch.zeros(a.batch, a.kv_heads, tmax, m.D, device=dev), torch.zeros(a.batch, a.kv_heads, tmax, m.D, device=dev)) for _ in m.layers]
        tok = m.forward(prompts, 0, cache).argmax(-1)
        toks = [tok]
        for t in range(a.max_new - 1):
            tok = m.forward(tok[:, None], a.prompt_len + t, cache).argmax(-1)
            toks.append(tok)
        sync()
        out.append(torch.stack(toks, 1)[0].tolist())

    s = summarize(time_steps(generate, 1, a.repeats))
    n = a.batch * a.max_new
    print(json.dumps({
        "name": "torch_generate", "tokens_per_s": n / s["median_s"], "tokens_per_s_best": n / s["min_s"], "seconds_median": s["median_s"],
        "tokens0": out[-1], "device": a.device, "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None, "torch": torch.__version__,
        "tf32": False, "params": sum(t.numel() for t in [m.wte, m.head, m.lnf] + [w for l in m.layers for w in l.values()]),
        "config": {k: getattr(a, k) for k in ("layers", "dim", "heads", "kv_heads", "ffn", "vocab", "batch", "prompt_len", "max_new", "repeats")},
    }))


if __name__ == "__main__":
    main()
