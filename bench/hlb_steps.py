"""hlb-CIFAR10's main.py scaled down (widths 8, batch 64, 640 images) on tiny and on PyTorch CPU: per-step time and,
on tiny, what each steady step costs tinygrad (new schedules, new compiled kernels). Each device in its own child.

  DEV=CPU PYTHONPATH=. python bench/hlb_steps.py path/to/hlb-CIFAR10/main.py [--epochs 2.5] [--runs cpu tiny]

A step is one training step (main.py steps two optimizers; their post-hooks mark it). Every run starts from the first
run's initial network, as bench/hlb_cifar.py does (main.py's whitening layer holds eigenvectors, whose signs differ
between devices). The data cache is written
first (640 training and 2500 eval images, synthetic CIFAR format) in a temporary folder that is removed after.
"""
from __future__ import annotations

import argparse
import importlib
import os
import statistics
import tempfile
import time

from tinybounty.hardware import machine
from tinybounty.records import bench_command, format_row
from tinybounty.runner.compare import in_child, worst_step


def scaled(g: dict) -> None:
  g["batchsize"] = 64
  g["depths"].update({k: 8 for k in ("block1", "block2", "block3")})
  g["hyp"]["net"]["whitening"]["num_examples"] = 256


def train(script: str, device: str, epochs: float, workdir: str, init: dict | None) -> tuple[list[tuple[float, int, int]], list[float], dict]:
  """(seconds, new schedules, new programs) of every training step, the per-step losses, and the initial network."""
  import torch
  from torch.optim.optimizer import register_optimizer_step_post_hook
  if device == "tiny":
    importlib.import_module("tinybounty.torch_backend")
    import tinybounty.engine
    tinybounty.engine.install()
  import tinygrad.engine.realize as realize
  import tinygrad.schedule as schedule

  from tinybounty.runner.compare import run
  marks, hooks = [], [0]
  def mark(*_):
    hooks[0] += 1
    if hooks[0] % 2 == 0: marks.append((time.perf_counter(), len(schedule.schedule_cache), len(realize.to_program_cache)))
  register_optimizer_step_post_hook(mark)
  torch.manual_seed(0)
  os.chdir(workdir)
  r = run(script, device, epochs, 0, init, quiet=True, configure=scaled)
  losses, state = r.losses, r.init
  return [(b[0] - a[0], b[1] - a[1], b[2] - a[2]) for a, b in zip(marks, marks[1:])], losses, state


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("script", help="path to hlb-CIFAR10's main.py")
  p.add_argument("--epochs", type=float, default=2.5)
  p.add_argument("--runs", nargs="+", default=["cpu", "tiny"], choices=["cpu", "tiny"])
  args = p.parse_args()
  from tinybounty.runner.run import write_data_cache
  steps_per_epoch = 640 // 64
  with tempfile.TemporaryDirectory() as workdir:
    write_data_cache(os.path.join(workdir, "data.pt"), n_train=640, n_test=2500)
    results, losses, init = {}, {}, None
    for dev in args.runs:
      results[dev], losses[dev], state = in_child(train, os.path.abspath(args.script), dev, args.epochs, workdir, init)
      init = init or state  # later runs start from the first run's network (main.py's whitening comes from eigh: signs vary)
  medians = {}
  for dev, steps in results.items():
    # a step whose neighbours include an epoch end (eval) is not a training step's time
    epochs = [steps[e * steps_per_epoch: (e + 1) * steps_per_epoch - 1] for e in range(len(steps) // steps_per_epoch + 1)]
    per_epoch = [statistics.median(s for s, _, _ in ep) for ep in epochs if ep]
    later = [x for ep in epochs[1:] for x in ep]
    medians[dev] = statistics.median(s for s, _, _ in later)
    print(f"[{dev}] median step time per epoch: {', '.join(f'{t:.3f}' for t in per_epoch)} s; after epoch 0: "
          f"min {min(s for s, _, _ in later):.3f} median {medians[dev]:.3f} s")
    if dev == "tiny":
      print(f"[tiny] after epoch 0: {sum(n for _, n, _ in later)} new schedules and {sum(k for _, _, k in later)} new kernels "
            f"in {len(later)} steps (first epoch: {sum(n for _, n, _ in epochs[0])} and {sum(k for _, _, k in epochs[0])})")
  if "cpu" in medians and "tiny" in medians:
    worst, rel = worst_step(losses["tiny"], losses["cpu"])
    print(f"losses: tiny vs PyTorch CPU, {len(losses['tiny'])} steps, max relative difference {rel:.3%} (step {worst}); per step:",
          " ".join(f"{(a - b) / abs(b):+.2%}" for a, b in zip(losses["tiny"], losses["cpu"])))
    ratio = medians["tiny"] / medians["cpu"]
    print(f"tiny / PyTorch CPU step time (medians after epoch 0): {ratio:.2f}x")
    command = "DEV=CPU PYTHONPATH=. " + bench_command("bench/hlb_steps.py")
    print(format_row("hlb_steps", machine(), command, f"tiny {medians['tiny']:.3f} s per step after epoch 0 ({ratio:.2f}x PyTorch CPU)",
                     f"PyTorch CPU eager {medians['cpu']:.3f} s per step, same run"))


if __name__ == "__main__":
  main()
