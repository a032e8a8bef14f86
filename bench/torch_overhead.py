"""Per-op dispatch overhead of the tiny device: microseconds per small eager op, tiny vs CPU eager.

  PYTHONPATH=. DEV=CPU python bench/torch_overhead.py [--repeats 7] [--iters 200]

Each op runs on an 8x8 float32 tensor; timing covers dispatch and building the lazy result (`add`, `mul`, `relu`,
`view`, `t`, `slice`, `add_` in place) and, separately, one op including realization (`add+realize`: add then
synchronize). Several repeats, each ended by a synchronize outside the timing, after untimed rounds that take the
loop past step capture's warm-up (TINY_CAPTURE_WARMUP; TINY_CAPTURE=0 times the eager path); prints min and median per
op and the tiny/CPU ratio, then a benchmarks.md row.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import tinybounty.torch_backend  # noqa: F401  (the tiny device)
from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.torch_backend import capture

OPS = {
  "add": lambda x, y: x + y, "mul": lambda x, y: x * y, "relu": lambda x, y: x.relu(), "view": lambda x, y: x.view(64),
  "t": lambda x, y: x.t(), "slice": lambda x, y: x[2:6, ::2], "sum": lambda x, y: x.sum(1),
  "add_": lambda x, y: x.add_(y), "add+realize": lambda x, y: (x + y).sum().item(),
}


def time_op(fn, x, y, iters: int, repeats: int, sync=lambda: None, warmup: int = 1) -> list[float]:
  """Microseconds per call of `fn` over `iters` calls, `repeats` times, each round ended by `sync` (untimed). The
  `warmup` rounds first are untimed: on tiny, a loop is recorded once it has repeated past capture's warm-up."""
  for _ in range(warmup):
    for _ in range(iters): fn(x, y)
    sync()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    for _ in range(iters): fn(x, y)
    times.append((time.perf_counter() - t0) / iters * 1e6)
    sync()
  return times


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--repeats", type=int, default=7)
  ap.add_argument("--iters", type=int, default=200)
  a = ap.parse_args()
  cpu = (torch.randn(8, 8), torch.randn(8, 8))
  tiny = tuple(t.to("tiny") for t in cpu)
  print(f"machine: {machine()}")
  print(f"{'op':<12} {'tiny min':>10} {'tiny med':>10} {'cpu min':>10} {'cpu med':>10} {'ratio':>8}  (us per op)")
  medians = {}
  for name, fn in OPS.items():
    iters = max(a.iters // 20, 5) if "realize" in name else a.iters
    t = time_op(fn, *tiny, iters, a.repeats, torch.tiny.synchronize, capture.WARMUP[0] + 3 if capture.enabled() else 1)
    c = time_op(fn, *cpu, iters, a.repeats)
    tm, cm = medians[name] = (statistics.median(t), statistics.median(c))
    print(f"{name:<12} {min(t):>10.1f} {tm:>10.1f} {min(c):>10.1f} {cm:>10.1f} {tm / cm:>7.0f}x")
  lazy = [n for n in OPS if "realize" not in n]
  tiny_med = statistics.median(medians[n][0] for n in lazy)
  cpu_med = statistics.median(medians[n][1] for n in lazy)
  print(format_row("torch_overhead", machine(), f"PYTHONPATH=. DEV=CPU python bench/torch_overhead.py --repeats {a.repeats} --iters {a.iters}",
                   f"median {tiny_med:.0f} us per small op on tiny (add+realize {medians['add+realize'][0]:.0f} us)",
                   f"CPU eager {cpu_med:.1f} us per op ({tiny_med / cpu_med:.0f}x)"))


if __name__ == "__main__":
  main()
