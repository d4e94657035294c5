"""Cost of ResNet-18's CIFAR stem against its ImageNet stem on small images (why the cpu preset
uses the ImageNet stem; docs/presets.md).

    .venv/bin/python bench/bench_stems.py [--batch 32] [--threads 1] [--repeats 4]

One forward+backward of each network alternates ``--repeats`` times (the first is warm-up) and
the median of the per-repeat time ratios is printed: neighbouring steps see the same load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from guided_dml.models.registry import build_backbone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"ResNet-18, 2-D output, batch {args.batch}, {args.threads} thread(s)")
    print("| input | imagenet stem s/step | cifar stem s/step | cifar / imagenet |")
    print("|---|---:|---:|---:|")
    for shape in [(1, 28, 28), (3, 32, 32)]:
        nets = {s: build_backbone("resnet18", in_channels=shape[0], out_dim=2, stem=s)
                for s in ("imagenet", "cifar")}
        x = torch.randn(args.batch, *shape)
        ratios, times = [], {s: [] for s in nets}
        for _ in range(args.repeats):
            step = {}
            for s, net in nets.items():
                t0 = time.perf_counter()
                net(x).sum().backward()
                step[s] = time.perf_counter() - t0
                times[s].append(step[s])
            ratios.append(step["cifar"] / step["imagenet"])
        med = {s: statistics.median(t[1:]) for s, t in times.items()}
        print(f"| {'x'.join(map(str, shape))} | {med['imagenet']:.3f} | {med['cifar']:.3f} | "
              f"{statistics.median(ratios[1:]):.1f}x |")


if __name__ == "__main__":
    main()
