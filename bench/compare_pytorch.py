#!/usr/bin/env python3
"""The same GPT trained in attnlab and in PyTorch (CPU), in one run: tokens/s and ratio.

    /usr/bin/python3 bench/compare_pytorch.py [--attnlab build/attnlab] [--steps 30] [--threads 2]

Model (issue 3's benchmark): vocab 256, T 256, 4 layers, 4 heads, d 256, MLP 1024,
batch 8, AdamW, RoPE, tied embeddings. PyTorch runs scripts/torch_gpt.py, the
parameter-for-parameter replica that the checkpoint test checks against attnlab.
Both use the same number of threads; the first `--warmup` steps are not timed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CONFIG = """
[model]
vocab_size = 256
n_layer = 4
n_head = 4
d_model = 256
d_mlp = 1024
block_size = 256
[attn.default]
pos = rope
[optim]
name = adamw
lr = 1e-3
schedule = constant
[data]
train = {data}/train.h5
seq_len = 256
batch_size = 8
[train]
steps = {steps}
eval_every = 0
log_every = 1
threads = {threads}
out_dir = {run}
"""


def run_attnlab(binary, tmp, steps, warmup, threads):
    import h5py
    import numpy as np
    data = os.path.join(tmp, "data")
    os.makedirs(data, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(os.path.join(data, "train.h5"), "w") as f:
        d = f.create_dataset("tokens", data=rng.integers(0, 256, 200_000).astype(np.uint16))
        d.attrs["tokenizer"] = "byte"
        d.attrs["vocab_size"] = np.int64(256)
    run = os.path.join(tmp, "run")
    ini = os.path.join(tmp, "bench.ini")
    with open(ini, "w") as f:
        f.write(CONFIG.format(data=data, steps=steps, threads=threads, run=run))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    subprocess.run([binary, "train", ini, "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if l.strip()]
    timed = [r["tokens_per_s"] for r in rows[warmup:]]
    # Per-step rates -> overall rate over the timed steps (harmonic mean).
    return len(timed) / sum(1.0 / t for t in timed)


def run_torch(steps, warmup, threads):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    import torch_gpt
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = dict(vocab_size=256, n_layer=4, n_head=4, d_model=256, d_mlp=1024, mlp="gelu", norm="layer",
             norm_eps=1e-5, pos_emb="none", block_size=256, tie_embeddings=True, bias=False)
    attn = [dict(n_head=4, n_kv_head=4, d_head=64, pos="rope", rope_theta=10000.0, rope_fraction=1.0)]
    model = torch_gpt.GPT(m, attn)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = 8, 256
    data = torch.randint(0, 256, (steps, B, T + 1))
    t0 = None
    for s in range(steps):
        if s == warmup:
            t0 = time.perf_counter()
        x, y = data[s, :, :-1], data[s, :, 1:]
        loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return (steps - warmup) * B * T / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attnlab", default=os.path.join(ROOT, "build", "attnlab"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not os.path.exists(args.attnlab):
        sys.exit(f"compare_pytorch: {args.attnlab} not found (make build)")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_attnlab(args.attnlab, tmp, args.steps, args.warmup, args.threads)
    theirs = run_torch(args.steps, args.warmup, args.threads)
    print(f"attnlab  {ours:10.0f} tokens/s")
    print(f"pytorch  {theirs:10.0f} tokens/s")
    print(f"ratio    {ours / theirs:10.2f}x  (attnlab / pytorch, {args.threads} threads, {args.steps - args.warmup} timed steps)")


if __name__ == "__main__":
    main()
