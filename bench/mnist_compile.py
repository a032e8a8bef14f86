"""beautiful_mnist step time: torch.compile(backend="tiny") vs eager tiny vs eager CPU vs torch.compile(inductor) on the CPU.

  PYTHONPATH=. DEV=CPU python bench/mnist_compile.py [--steps 12] [--batch-size 512] [--skip inductor]

Each configuration trains the same model from the same initial weights on the same batches; the first steps
(compilation, JIT capture) are excluded, the rest give min and median step time (each step ends with loss.item()).
Prints the ratios against compiled tiny and a docs/benchmarks.md row (bench id: mnist_compile).
"""
from __future__ import annotations

import argparse
import statistics

import torch

import tinybounty.torch_backend.compile  # noqa: F401 - the tiny device and compile backend
from tinybounty.hardware import machine
from tinybounty.records import format_row
from tinybounty.torch_backend.beautiful_mnist import load, train

CONFIGS = {"compiled tiny": ("tiny", "tiny"), "eager tiny": ("tiny", None), "eager cpu": ("cpu", None), "inductor cpu": ("cpu", "inductor")}
WARMUP = 3  # steps 1-2 run and capture the JIT; step 3 is the first replay


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=12)
  p.add_argument("--batch-size", type=int, default=512)
  p.add_argument("--skip", nargs="*", default=[], help="configurations to leave out (compiled, eager, cpu, inductor)")
  args = p.parse_args()
  data, times = load(), {}
  for name, (dev, backend) in CONFIGS.items():
    if any(s in name for s in args.skip): continue
    torch._dynamo.reset()
    _, hist = train(data, args.steps, dev, backend, args.batch_size, eval_every=0)
    t = hist.step_seconds[WARMUP:]
    times[name] = (min(t), statistics.median(t))
    print(f"{name:14s} step min {min(t) * 1e3:8.1f} ms  median {statistics.median(t) * 1e3:8.1f} ms  final loss {hist.losses[-1]:.4f}  "
          f"accuracy {hist.accuracies[-1]:.2f}%")
  base = times.get("compiled tiny")
  if base is None: return
  for name, (_, med) in times.items(): print(f"compiled tiny is {med / base[1]:.2f}x faster than {name} (median)")
  cmd = f"PYTHONPATH=. DEV=CPU python bench/mnist_compile.py --steps {args.steps} --batch-size {args.batch_size}"
  others = "; ".join(f"{n} {m * 1e3:.0f} ms ({m / base[1]:.2f}x)" for n, (_, m) in times.items() if n != "compiled tiny")
  print(format_row("mnist_compile", machine(), cmd, f"compiled tiny step {base[1] * 1e3:.0f} ms median (min {base[0] * 1e3:.0f})"
                   + (f"; {times['eager tiny'][1] / base[1]:.2f}x vs eager tiny" if "eager tiny" in times else ""), others))


if __name__ == "__main__":
  main()
