"""Data-parallel scaling on tiny devices: step time and bytes moved per step for 1, 2 and 4 ranks.

  PYTHONPATH=. DEV=CPU python bench/distributed_scaling.py [--model transformer] [--steps 4] [--batch 8]

1 rank: one process over the global batch (micro-batches of the 4-rank share, so every run compiles the same
kernels). 2 ranks: one host (torchrun --standalone) and two machines (network namespaces, torchrun --nnodes 2, one
rank each). 4 ranks: two machines, two ranks each. Each multi-rank run's weights are compared with the 1-rank run.
Step time is the median over the steps from the third on (step 0 compiles the step, step 1 SGD's first momentum
update); bytes are the host-staged bytes per rank per step (device to host and back; what gloo sends is of the same
order). On a 2-core machine, 2 and 4 ranks share those cores: the figures show overhead, not speedup.
"""
from __future__ import annotations

import argparse

from tinybounty.hardware import machine
from tinybounty.torch_backend.distributed import compare


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--model", default="transformer", choices=["cnn", "transformer"])
  p.add_argument("--steps", type=int, default=4)
  p.add_argument("--batch", type=int, default=8)
  a = p.parse_args()
  ref = compare.single(a.model, a.steps, a.batch, micro=a.batch // 4)
  rows = [("1 rank, one process", ref, 0.0)]
  two_host = compare.parallel(a.model, "ddp", 2, a.steps, a.batch)
  rows.append(("2 ranks, one host (DDP)", two_host, compare.max_diff(two_host, ref)))
  for world in (2, 4):
    run, kind = compare.on_machines(a.model, world, a.steps, a.batch)
    rows.append((f"{world} ranks, 2 machines ({kind}, DDP)", run, compare.max_diff(run, ref)))
  print(f"machine: {machine()}; model {a.model}, global batch {a.batch}, {a.steps} steps")
  print(f"{'run':40s} {'step s':>8s} {'x 1 rank':>9s} {'bytes/step/rank':>16s} {'max |dw|':>9s}  loss curve")
  for name, run, diff in rows:
    print(f"{name:40s} {run.step_s:8.3f} {run.step_s / ref.step_s:9.2f} {run.bytes_per_step:16.0f} {diff:9.1e}  "
          + " ".join(f"{v:.6f}" for v in run.losses))


if __name__ == "__main__":
  main()
