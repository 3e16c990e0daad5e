#!/usr/bin/python3
"""Causal attention forward + backward in PyTorch on the CPU, composed as
softmax(q k^T / sqrt(d) + mask) v with autograd (Debian's torch 1.13 has no
F.scaled_dot_product_attention): the comparison for bench/bench_attention.cpp,
on the same shapes, f32, D = 64. Prints query tokens (B * T) per second.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/attention_pytorch.py [--min-time 1] [--rounds 3]
"""
import argparse
import math
import os
import time

import torch

CASES = [(8, 8, 256, 64), (2, 8, 1024, 64)]  # B, H, T, D


def median_time(fn, min_time):
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()))
    torch.set_num_threads(threads)
    print(f"== causal attention, f32, PyTorch {torch.__version__} composed ==")
    print(f"threads {torch.get_num_threads()}, load average (1 min) {os.getloadavg()[0]:.2f}")
    print(f"{'shape':<22} {'fwd':>12} {'f+b':>12}")
    for B, H, T, D in CASES:
        gen = torch.Generator().manual_seed(0)
        q, k, v, g = (torch.randn(B, H, T, D, generator=gen) for _ in range(4))
        mask = torch.full((T, T), float("-inf")).triu(1)
        scale = 1.0 / math.sqrt(D)

        def step(backward):
            qq, kk, vv = (x.detach().requires_grad_(backward) for x in (q, k, v))
            if not backward:
                with torch.no_grad():
                    torch.softmax(qq @ kk.transpose(-2, -1) * scale + mask, dim=-1) @ vv
                return
            out = torch.softmax(qq @ kk.transpose(-2, -1) * scale + mask, dim=-1) @ vv
            out.backward(g)

        fwd = min(median_time(lambda: step(False), args.min_time) for _ in range(args.rounds))
        fb = min(median_time(lambda: step(True), args.min_time) for _ in range(args.rounds))
        tokens = B * T
        print(f"{f'B{B} H{H} T{T} D{D}':<22} {tokens / fwd:10.0f}/s {tokens / fb:10.0f}/s"
              f"   (f+b ms {1e3 * fb:.1f})")


if __name__ == "__main__":
    main()
