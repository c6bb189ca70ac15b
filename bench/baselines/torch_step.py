"""PyTorch fp32 baseline for bench/train-step.ts: one training step (fwd + bwd + clip + AdamW) in tokens/s.

Same shapes as our decoder's bench: GPT-2 style (learned positions, LayerNorm, GELU-tanh, fused qkv, tied
embeddings) or Llama style (RMSNorm, rotate-half RoPE, SwiGLU, untied head unless --tied), L=4 C=256 H=4
V=4096 T=128 B=8 by default. `--dpo` times a DPO step instead: the policy runs on chosen and rejected together
(one concatenated [2B, T] batch, as TRL's concatenated_forward does), reference log-probs are precomputed
constants, loss = -logsigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))); tokens/s counts both sequences.

Run through bench/baselines/torch-env.sh (selects OpenBLAS-pthread for this process). Prints one JSON line.
Example: bench/baselines/torch-env.sh /usr/bin/python3 bench/baselines/torch_step.py --arch llama --dpo
`--device cuda` runs the same step on the GPU in fp32 (TF32 off), synchronising before each step's clock stops;
`--kv-heads K` gives the Llama shape grouped-query attention (K key/value heads shared by H/K query heads each).
"""
import argparse
import json
import math
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from common import blas_info, summarize, time_steps  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(T, D, theta=10000.0):
    inv = 1.0 / theta ** (torch.arange(0, D, 2).float() / D)
    f = torch.outer(torch.arange(T).float(), inv)
    emb = torch.cat([f, f], -1)  # rotate-half layout (HF Llama)
    return emb.cos(), emb.sin()


def rotate_half(x):
    a, b = x.chunk(2, -1)
    return torch.cat([-b, a], -1)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        C, self.H, self.llama = a.dim, a.heads, a.arch == "llama"
        self.K = a.kv_heads or a.heads
        Norm = RMSNorm if self.llama else nn.LayerNorm
        self.ln1, self.ln2 = Norm(C), Norm(C)
        self.qkv = nn.Linear(C, C + 2 * self.K * (C // self.H), bias=not self.llama)
        self.proj = nn.Linear(C, C, bias=not self.llama)
        if self.llama:
            self.gate = nn.Linear(C, a.ffn, bias=False)
            self.up = nn.Linear(C, a.ffn, bias=False)
            self.down = nn.Linear(a.ffn, C, bias=False)
        else:
            self.fc = nn.Linear(C, a.ffn)
            self.fc2 = nn.Linear(a.ffn, C)

    def attn(self, x, mask, rope):
        B, T, C = x.shape
        D = C // self.H
        q, k, v = self.qkv(x).view(B, T, self.H + 2 * self.K, D).transpose(1, 2).split([self.H, self.K, self.K], 1)
        if self.K != self.H:  # GQA: KV head j serves query heads j*G .. j*G+G-1 (HF repeat_kv)
            k, v = k.repeat_interleave(self.H // self.K, 1), v.repeat_interleave(self.H // self.K, 1)
        if rope is not None:
            cos, sin = rope
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        y = F.softmax(s.masked_fill(~mask, -1e9), -1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x, mask, rope):
        x = x + self.attn(self.ln1(x), mask, rope)
        h = self.ln2(x)
        if self.llama:
            return x + self.down(F.silu(self.gate(h)) * self.up(h))
        return x + self.fc2(F.gelu(self.fc(h), approximate="tanh"))


class Decoder(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.a = a
        self.wte = nn.Embedding(a.vocab, a.dim)
        self.wpe = None if a.arch == "llama" else nn.Embedding(a.seq, a.dim)
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.layers))
        self.ln_f = RMSNorm(a.dim) if a.arch == "llama" else nn.LayerNorm(a.dim)
        self.head = None if a.tied else nn.Linear(a.dim, a.vocab, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        self.register_buffer("mask", torch.tril(torch.ones(a.seq, a.seq, dtype=torch.bool)))
        if a.arch == "llama":  # buffers, so that .to(device) moves them
            cos, sin = rope_tables(a.seq, a.dim // a.heads)
            self.register_buffer("rope_cos", cos)
            self.register_buffer("rope_sin", sin)

    def forward(self, idx):
        B, T = idx.shape
        x = self.wte(idx)
        if self.wpe is not None:
            x = x + self.wpe(torch.arange(T, device=idx.device))
        rope = (self.rope_cos[:T], self.rope_sin[:T]) if self.a.arch == "llama" else None
        for blk in self.blocks:
            x = blk(x, self.mask[:T, :T], rope)
        x = self.ln_f(x)
        return x @ self.wte.weight.t() if self.head is None else self.head(x)


def token_logps(logits, tgt):
    return torch.gather(F.log_softmax(logits, -1), 2, tgt.unsqueeze(-1)).squeeze(-1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", choices=["gpt", "llama"], default="gpt")
    p.add_argument("--dpo", action="store_true", help="time a DPO step instead of a language-model step")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--batch", type=int, default=8, help="sequences per step (DPO: pairs per step)")
    p.add_argument("--ffn", type=int, default=0, help="MLP width (default 4*dim for gpt, 8/3*dim rounded to 64 for llama)")
    p.add_argument("--tied", type=int, choices=[0, 1], default=-1, help="tie the head to wte (default: gpt 1, llama 0)")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--kv-heads", type=int, default=0, help="key/value heads (default: --heads, no GQA)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="timed steps (default 10, DPO 6)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    a.ffn = a.ffn or (4 * a.dim if a.arch == "gpt" else 64 * math.ceil(8 * a.dim / 3 / 64))
    a.tied = bool(a.tied if a.tied >= 0 else a.arch == "gpt")
    a.steps = a.steps or (6 if a.dpo else 10)

    if a.kv_heads and a.heads % a.kv_heads:
        p.error(f"--kv-heads {a.kv_heads} must divide --heads {a.heads}")
    if a.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch.cuda.is_available() is False here")
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (PyTorch's default since 1.12; set, not assumed)
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = Decoder(a).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(a.seed + 1)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    B, T, V = a.batch, a.seq, a.vocab
    losses = []

    if not a.dpo:
        idx = torch.randint(V, (B, T + 1), generator=g)
        x, y = idx[:, :-1].contiguous().to(dev), idx[:, 1:].contiguous().to(dev)
        tokens_per_step = B * T

        def step():
            logits = model(x)
            loss = F.cross_entropy(logits.view(-1, V), y.view(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            sync()  # the optimizer's kernels too, before the clock stops
    else:
        # chosen rows 0..B-1, rejected rows B..2B-1; the first half of each row is the shared prompt.
        prompt = torch.randint(V, (B, T // 2), generator=g)
        resp = torch.randint(V, (2 * B, T + 1 - T // 2), generator=g)
        idx = torch.cat([prompt.repeat(2, 1), resp], 1)
        x, y = idx[:, :-1].contiguous().to(dev), idx[:, 1:].contiguous().to(dev)
        w = torch.zeros(2 * B, T, device=dev)
        w[:, T // 2 - 1:] = 1.0  # score only response tokens (targets after the prompt)
        with torch.no_grad():
            ref = (token_logps(model(x), y) * w).sum(-1)  # reference = initial policy, computed once
        tokens_per_step = 2 * B * T

        def step():
            pi = (token_logps(model(x), y) * w).sum(-1)
            margin = (pi[:B] - ref[:B]) - (pi[B:] - ref[B:])
            loss = -F.logsigmoid(a.beta * margin).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            sync()  # the optimizer's kernels too, before the clock stops

    times = time_steps(step, a.warmup, a.steps)
    s = summarize(times)
    out = {
        "name": f"torch_{'dpo' if a.dpo else 'train'}_step_{a.arch}",
        "tokens_per_s": tokens_per_step / s["median_s"],
        "tokens_per_s_best": tokens_per_step / s["min_s"],
        "step_ms_median": s["median_s"] * 1e3,
        "step_ms_min": s["min_s"] * 1e3,
        "steps": s["n"], "warmup": a.warmup, "tokens_per_step": tokens_per_step,
        "loss_first": losses[0], "loss_last": losses[-1],
        "threads": torch.get_num_threads(), "torch": torch.__version__, "device": a.device,
        "gpu": torch.cuda.get_device_name() if a.device == "cuda" else None, "tf32": False,
        "params": sum(p.numel() for p in model.parameters()),
        "config": {k: getattr(a, k) for k in ("arch", "dpo", "layers", "dim", "heads", "kv_heads", "vocab", "seq", "batch", "ffn", "tied")},
        **blas_info(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
