#!/usr/bin/env python3
"""Draws train/val loss curves from one or more attnlab metrics.jsonl files.

    /usr/bin/python3 scripts/plot.py runs/demo/metrics.jsonl [more.jsonl ...] --out loss.png

Each file is one curve pair (train solid, val dashed), labelled by its run
directory (or --labels). Reads only the JSONL metrics, per DESIGN.md.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot.py: {path}:{n}: not JSON ({e.msg})")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", nargs="+", help="metrics.jsonl files")
    ap.add_argument("--out", default="loss.png", help="output PNG")
    ap.add_argument("--labels", nargs="*", help="one label per file (default: run directory names)")
    ap.add_argument("--title", default="attnlab: loss")
    ap.add_argument("--val-only", action="store_true", help="draw only validation curves")
    args = ap.parse_args()
    if args.labels and len(args.labels) != len(args.metrics):
        sys.exit("plot.py: --labels needs one label per metrics file")

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, path in enumerate(args.metrics):
        if not os.path.exists(path):
            sys.exit(f"plot.py: {path}: no such file")
        rows = read_metrics(path)
        label = args.labels[i] if args.labels else os.path.basename(os.path.dirname(os.path.abspath(path)))
        color = f"C{i % 10}"
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r]
        if train and not args.val_only:
            ax.plot(*zip(*train), color=color, lw=1.2, alpha=0.8, label=f"{label} train")
        if val:
            ax.plot(*zip(*val), color=color, lw=2, ls="--", marker="o", ms=3, label=f"{label} val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"plot.py: wrote {args.out}")


if __name__ == "__main__":
    main()
