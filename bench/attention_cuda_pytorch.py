#!/usr/bin/env python3
"""Causal attention forward + backward on one GPU in PyTorch 2.x: each SDPA backend
(flash, cuDNN, memory-efficient) on bench/bench_attention_cuda.cpp's shapes, bf16,
in TFLOP/s with the same FLOP count (forward 4 B H T^2 D / 2 for causal, backward
2.5x). A backend PyTorch cannot run for a shape prints as unavailable.

    /usr/bin/python3 bench/attention_cuda_pytorch.py [--min-time 1]
"""
import argparse
import time

import torch
import torch.nn.functional as F

CASES = [(16, 12, 1024, 64), (8, 16, 2048, 64), (4, 16, 4096, 64), (16, 12, 1024, 128)]  # B, H, T, D


def median_time(fn, min_time):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    print(f"== causal SDPA on {torch.cuda.get_device_name()}, torch {torch.__version__}, bf16 ==")
    print(f"{'backend':10} {'shape':24} {'fwd ms':>9} {'bwd ms':>9} {'f+b ms':>9} {'f+b TF/s':>9}")
    for B, H, T, D in CASES:
        q, k, v, g = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
        flops = 4.0 * B * H * T * T * D / 2 * 3.5
        shape = f"B{B} H{H} T{T} D{D}"
        for name, backend in backends.items():
            try:
                with sdpa_kernel(backend):
                    qr, kr, vr = (t.detach().requires_grad_() for t in (q, k, v))
                    out = F.scaled_dot_product_attention(qr, kr, vr, is_causal=True)
                    t_fwd = median_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), args.min_time)
                    t_bwd = median_time(lambda: torch.autograd.grad(out, (qr, kr, vr), g, retain_graph=True),
                                        args.min_time)
            except RuntimeError as e:
                print(f"{name:10} {shape:24} unavailable ({str(e).splitlines()[0][:60]})")
                continue
            print(f"{name:10} {shape:24} {1e3 * t_fwd:9.3f} {1e3 * t_bwd:9.3f} {1e3 * (t_fwd + t_bwd):9.3f} "
                  f"{flops / (t_fwd + t_bwd) / 1e12:9.1f}")


if __name__ == "__main__":
    main()
