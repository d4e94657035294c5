"""Speed of ResNet-18's stems and numerics on small images: one training step (forward,
backward, SGD update) of each (stem, numerics) pair, against the fp32 ImageNet stem measured in
the same run (docs/presets.md, the ``cpu`` preset's choice).

    .venv/bin/python bench/bench_stems.py [--batch 128] [--threads 2] [--repeats 6]

Numerics: fp32, ``bf16`` autocast (AVX-512 BF16 on Zen 4 / Sapphire Rapids), ``channels_last``
memory format, and both; ``--compile`` adds ``bf16+cl+compile``: the same step under
``torch.compile`` (inductor, C++ kernels; the compile time is printed apart, the first repeat
excluded as for every configuration). The configurations alternate ``--repeats`` times (the first is
warm-up) so neighbouring steps see the same machine load; the median step time is printed with
its images per second and its ratio to the fp32 ImageNet stem.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from guided_dml.models.registry import build_backbone

NUMERICS = {  # name -> (autocast dtype, channels_last)
    "fp32": (None, False),
    "bf16": (torch.bfloat16, False),
    "fp32+cl": (None, True),
    "bf16+cl": (torch.bfloat16, True),
}


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
          dtype: torch.dtype | None) -> None:
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        out = net(x)
    loss = out.float().pow(2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--stems", nargs="+", default=["imagenet", "stride2", "cifar"])
    ap.add_argument("--shapes", nargs="+", default=["1x28x28", "3x32x32"])
    ap.add_argument("--numerics", nargs="+", default=list(NUMERICS), choices=list(NUMERICS))
    ap.add_argument("--compile", action="store_true", help="also time bf16+cl under torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"ResNet-18, 2-D output, batch {args.batch}, {args.threads} thread(s), "
          f"one SGD step (forward + backward + update)")
    print(f"| input | stem | numerics | ms/step | img/s | vs {args.numerics[0]} {args.stems[0]} |")
    print("|---|---|---|---:|---:|---:|")
    for shape_s in args.shapes:
        shape = tuple(int(v) for v in shape_s.split("x"))
        configs = {}
        for stem in args.stems:
            names = list(args.numerics) + (["bf16+cl+compile"] if args.compile else [])
            for name in names:
                dtype, cl = NUMERICS[name.removesuffix("+compile")]
                net = build_backbone("resnet18", in_channels=shape[0], out_dim=2, stem=stem)
                fmt = torch.channels_last if cl else torch.contiguous_format
                net = net.to(memory_format=fmt)
                opt = torch.optim.SGD(net.parameters(), lr=1e-3)
                x = torch.randn(args.batch, *shape).contiguous(memory_format=fmt)
                if name.endswith("+compile"):
                    net = torch.compile(net)
                    t0 = time.perf_counter()
                    _step(net, opt, x, dtype)  # compiles forward and backward
                    print(f"torch.compile of {stem} {shape_s}: {time.perf_counter() - t0:.0f} s",
                          flush=True)
                configs[(stem, name)] = (net, opt, x, dtype)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in configs}
        for _ in range(args.repeats):
            for key, (net, opt, x, dtype) in configs.items():
                t0 = time.perf_counter()
                _step(net, opt, x, dtype)
                times[key].append(time.perf_counter() - t0)
        base = statistics.median(times[(args.stems[0], args.numerics[0])][1:])
        for (stem, name), t in times.items():
            med = statistics.median(t[1:])
            print(f"| {shape_s} | {stem} | {name} | {med * 1e3:.0f} | {args.batch / med:.0f} | "
                  f"{med / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
