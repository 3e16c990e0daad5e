#!/usr/bin/env python3
"""Merges several runs of bench_matmul or bench_kernels into one table of the
best (lowest) median per row and library, and the best roof seen.

    bench/best_of_runs.py run1.txt run2.txt ...

On a machine shared with other jobs a disturbed run is only slower, never
faster, so the best of several runs is the closest to the undisturbed number.
"""
import re
import sys

MIB = 1024.0 * 1024.0


def rows(text):
    """Markdown table rows as lists of stripped cells (headers and rules skipped)."""
    out = []
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("case", "kernel", "roof"):
            continue
        out.append(cells)
    return out


def merge_matmul(texts):
    roof, order, best = 0.0, [], {}
    for t in texts:
        m = re.search(r"^roof = .* = ([\d.]+) GFLOP/s", t, re.M)
        if m:
            roof = max(roof, float(m.group(1)))
        for c in rows(t):
            key = tuple(c[:3])
            flops = float(c[4]) * 1e9 * float(c[3]) * 1e-3  # GFLOP/s x ms
            ours = float(c[3])
            blas_cell = c[6]
            blas = float(blas_cell.split()[0])
            how = " (omp over batch)" if "omp" in blas_cell else ""
            if key not in best:
                order.append(key)
                best[key] = dict(flops=flops, ours=ours, blas=blas, how=how, runs=0, diff=c[-1])
            b = best[key]
            b["runs"] += 1
            b["ours"] = min(b["ours"], ours)
            if blas < b["blas"]:
                b["blas"], b["how"] = blas, how
    print(f"roof (best of runs) = {roof:.1f} GFLOP/s\n")
    print("| case | op | shape | attnlab ms | attnlab GFLOP/s | % roof | OpenBLAS ms | OpenBLAS GFLOP/s "
          "| % roof | attnlab/OpenBLAS | >= 0.80 | runs | max rel diff |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    ok = True
    for key in order:
        b = best[key]
        go, gb = b["flops"] / b["ours"] / 1e6, b["flops"] / b["blas"] / 1e6
        ratio = go / gb
        ok = ok and ratio >= 0.80
        print(f"| {' | '.join(key)} | {b['ours']:.3f} | {go:.1f} | {100 * go / roof:.0f}% | {b['blas']:.3f}{b['how']} "
              f"| {gb:.1f} | {100 * gb / roof:.0f}% | {ratio:.2f} | {'yes' if ratio >= 0.80 else 'NO'} "
              f"| {b['runs']} | {b['diff']} |")
    print(f"\nbar (attnlab >= 80% of OpenBLAS on every shape): {'met' if ok else 'NOT met'}")


def merge_kernels(texts):
    roofs, roof_order, order, best = {}, [], [], {}
    for t in texts:
        for c in rows(t):
            if c[0].startswith(("DRAM:", "cache:")):
                key = (c[0], c[1])
                if key not in roofs:
                    roof_order.append(key)
                    roofs[key] = 0.0
                roofs[key] = max(roofs[key], float(c[2]))
            else:
                key = (c[0], c[1])
                mib, us, roof_name = float(c[2]), float(c[3]), c[5]
                if key not in best:
                    order.append(key)
                    best[key] = dict(mib=mib, us=us, roof=roof_name, runs=0)
                best[key]["us"] = min(best[key]["us"], us)
                best[key]["runs"] += 1
    dram = max(v for (n, _), v in roofs.items() if n.startswith("DRAM:") and "write only" not in n)
    write = max(v for (n, _), v in roofs.items() if "write only" in n)
    cache = max(v for (n, _), v in roofs.items() if n.startswith("cache:"))
    print("| roof | size | GB/s |\n|---|---|---:|")
    for key in roof_order:
        print(f"| {key[0]} | {key[1]} | {roofs[key]:.1f} |")
    print(f"\nDRAM roof = {dram:.1f} GB/s, DRAM write roof = {write:.1f} GB/s, cache roof = {cache:.1f} GB/s\n")
    print("| kernel | shape | MiB moved | median us | GB/s | roof | % of roof | runs |")
    print("|---|---|---:|---:|---:|---|---:|---:|")
    for key in order:
        b = best[key]
        gbs = b["mib"] * MIB / (b["us"] * 1e-6) / 1e9
        roof = {"cache": cache, "DRAM": dram, "DRAM write": write}[b["roof"]]
        print(f"| {key[0]} | {key[1]} | {b['mib']:.1f} | {b['us']:.1f} | {gbs:.1f} | {b['roof']} "
              f"| {100 * gbs / roof:.0f}% | {b['runs']} |")


def main():
    texts = [open(p).read() for p in sys.argv[1:]]
    if not texts:
        sys.exit(__doc__)
    if "bench_matmul" in texts[0]:
        merge_matmul(texts)
    else:
        merge_kernels(texts)


if __name__ == "__main__":
    main()
