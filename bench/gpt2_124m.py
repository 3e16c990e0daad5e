#!/usr/bin/env python3
"""GPT-2 124M (T 1024) training throughput and MFU: attnlab against PyTorch, same GPU.

    /usr/bin/python3 bench/gpt2_124m.py [--attnlab build/attnlab] [--steps 30] [--warmup 10]
                                        [--batch 16] [--compile] [--peak 989e12]
    /usr/bin/python3 bench/gpt2_124m.py --smoke    # tiny model on the CPU: checks the script

Both train configs/bench/gpt2_124m.ini's model (learned positions, GELU, LayerNorm
with biases, tied embeddings, vocab 50304) on the same random tokens with AdamW and
bf16 mixed precision (f32 master weights). PyTorch uses nn.Linear,
F.scaled_dot_product_attention (is_causal), torch.autocast(bfloat16) and the fused
AdamW; --compile adds torch.compile. MFU counts FLOPs the way attnlab's trainer does
(GPT::flops_per_token: 6 x non-embedding parameters + 12 x layers x d_model x T per
token, PaLM's convention) against --peak (H100 SXM dense bf16: 989 TFLOP/s).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIG = os.path.join(ROOT, "configs", "bench", "gpt2_124m.ini")
VOCAB_DATA = 50257  # GPT-2's vocabulary; the model pads it to 50304

GPT2 = dict(vocab=50304, layers=12, heads=12, d=768, T=1024)
SMOKE = dict(vocab=512, layers=2, heads=2, d=64, T=64)


def flops_per_token(m):
    d, L, V, T = m["d"], m["layers"], m["vocab"], m["T"]
    per_block = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
    params_no_wpe = V * d + L * per_block + 2 * d  # tied wte counts once; wpe is left out
    return 6 * params_no_wpe + 12 * L * d * T


def write_tokens(path, n, vocab):
    import h5py
    import numpy as np
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("tokens", data=rng.integers(0, vocab, n).astype(np.uint16))
        ds.attrs["tokenizer"] = "gpt2"
        ds.attrs["vocab_size"] = np.int64(vocab)


def run_attnlab(args, m, tmp):
    data = os.path.join(tmp, "train.h5")
    write_tokens(data, max(2_000_000, 2 * args.steps * args.batch * (m["T"] + 1)), min(VOCAB_DATA, m["vocab"]))
    run = os.path.join(tmp, "run")
    cmd = [args.attnlab, "train", CONFIG, "-q", f"--data.train={data}", f"--data.batch_size={args.batch}",
           f"--train.steps={args.steps}", "--train.log_every=1", f"--train.out_dir={run}",
           f"--train.peak_flops={args.peak}", "--optim.warmup_steps=0", "--optim.schedule=constant"]
    if args.smoke:
        cmd += [f"--model.vocab_size={m['vocab']}", f"--model.n_layer={m['layers']}", f"--model.n_head={m['heads']}",
                f"--model.d_model={m['d']}", f"--model.block_size={m['T']}", f"--data.seq_len={m['T']}",
                "--train.device=cpu", "--train.precision=fp32"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    timed = [r["tokens_per_s"] for r in rows[args.warmup:]]
    return len(timed) / sum(1.0 / t for t in timed), rows[-1]["loss"]  # harmonic mean of per-step rates


def torch_model(m):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = m["d"]
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def attend(self, x):
            B, T, d = x.shape
            H = m["heads"]
            q, k, v = self.qkv(x).split(d, dim=2)
            q, k, v = (t.view(B, T, H, d // H).transpose(1, 2) for t in (q, k, v))
            if hasattr(F, "scaled_dot_product_attention"):
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # PyTorch 1.x (the CPU smoke run)
                s = (q @ k.transpose(-1, -2)) / math.sqrt(d // H)
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
                y = s.softmax(-1) @ v
            return self.proj(y.transpose(1, 2).reshape(B, T, d))

        def forward(self, x):
            x = x + self.attend(self.ln1(x))
            return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(m["vocab"], m["d"]), nn.Embedding(m["T"], m["d"])
            self.blocks = nn.ModuleList(Block() for _ in range(m["layers"]))
            self.ln_f = nn.LayerNorm(m["d"])
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, std=0.02)

        def forward(self, ids, targets):
            x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
            for b in self.blocks:
                x = b(x)
            logits = self.ln_f(x) @ self.wte.weight.t()
            return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))

    return GPT()


def run_torch(args, m):
    import torch
    device = "cpu" if args.smoke else "cuda"
    torch.manual_seed(0)
    model = torch_model(m).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    fused = {"fused": True} if device == "cuda" else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), **fused)
    step_fn = torch.compile(model) if args.compile else model
    B, T = args.batch, m["T"]
    data = torch.randint(0, min(VOCAB_DATA, m["vocab"]), (args.steps, B, T + 1), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    t0 = None
    for s in range(args.steps):
        if s == args.warmup:
            sync()
            t0 = time.perf_counter()
        x, y = data[s, :, :-1], data[s, :, 1:]
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=not args.smoke):
            loss = step_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    sync()
    return (args.steps - args.warmup) * B * T / (time.perf_counter() - t0), loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attnlab", default=os.path.join(ROOT, "build", "attnlab"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--peak", type=float, default=989e12, help="peak FLOP/s for MFU")
    ap.add_argument("--compile", action="store_true", help="torch.compile the PyTorch model")
    ap.add_argument("--smoke", action="store_true", help="a tiny model on the CPU in fp32, to test this script")
    ap.add_argument("--skip-torch", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(args.attnlab):
        sys.exit(f"gpt2_124m: {args.attnlab} not found (make build)")
    if args.warmup >= args.steps:
        sys.exit("gpt2_124m: --warmup must be below --steps")
    m = SMOKE if args.smoke else GPT2
    fpt = flops_per_token(m)
    with tempfile.TemporaryDirectory() as tmp:
        ours, ours_loss = run_attnlab(args, m, tmp)
    print(f"model: {m}, batch {args.batch}, {args.steps - args.warmup} timed steps, {fpt / 1e6:.1f} MFLOP/token")
    print(f"attnlab  {ours:12.0f} tokens/s  MFU {100 * ours * fpt / args.peak:5.1f}%  last loss {ours_loss:.3f}")
    if not args.skip_torch:
        theirs, their_loss = run_torch(args, m)
        label = "pytorch+compile" if args.compile else "pytorch"
        print(f"{label:8} {theirs:12.0f} tokens/s  MFU {100 * theirs * fpt / args.peak:5.1f}%  last loss {their_loss:.3f}")
        print(f"ratio    {ours / theirs:12.2f}x (attnlab / {label})")


if __name__ == "__main__":
    main()
