"""A data-parallel run against one process on the same global batches: weight equality, loss curves, step time, bytes.

Used by the registry checks (05, 17) and bench/distributed_scaling.py. The one-process reference trains on the whole
global batch in micro-batches of the per-rank size (gradient accumulation), so its kernels are the ranks' kernels.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
from dataclasses import dataclass

import torch

from tinybounty.torch_backend.distributed import launch, netns

TRAIN = "tinybounty.torch_backend.distributed.train"


@dataclass
class Run:
  world: int
  losses: list[float]
  step_s: float  # median step time from the third step on (the first two compile kernels)
  bytes_per_step: float  # bytes staged through the host per rank per step (device to host + back)
  weights: dict[str, torch.Tensor]


def _load(path: str, world: int) -> Run:
  r = torch.load(path, map_location="cpu", weights_only=False)
  times = r["step_times"][2:] or r["step_times"][-1:]  # steps 0 and 1 compile (step 1: SGD's first momentum update)
  return Run(world, r["losses"], statistics.median(times), statistics.median(r["bytes_per_step"]) if r["bytes_per_step"] else 0.0,
             r["weights"])


def max_diff(a: Run, b: Run) -> float:
  if sorted(a.weights) != sorted(b.weights): raise ValueError("the runs trained different parameters")
  return max((a.weights[k].float() - b.weights[k].float()).abs().max().item() for k in a.weights)


def _args(model: str, mode: str, steps: int, batch: int, accum: int) -> list[str]:
  return ["--mode", mode, "--model", model, "--steps", str(steps), "--batch", str(batch), "--accum", str(accum)]


def single(model: str, steps: int, batch: int, micro: int, timeout: float = 900) -> Run:
  """One process over the global batch, in micro-batches of `micro` samples."""
  with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "out.pt")
    r = launch.run([sys.executable, "-m", TRAIN, *_args(model, "single", steps, batch, batch // micro), "--out", out], timeout)
    if r.returncode != 0: raise RuntimeError(f"one-process run failed:\n{r.output[-2000:]}")
    return _load(out, 1)


def parallel(model: str, mode: str, world: int, steps: int, batch: int, machines: list | None = None, timeout: float = 900) -> Run:
  """`world` ranks on this host (torchrun --standalone), or spread evenly over `machines` (torchrun --nnodes)."""
  with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "out.pt")
    args = _args(model, mode, steps, batch, 1) + ["--out", out]
    if machines is None:
      runs = [launch.torchrun(TRAIN, world, args, timeout=timeout)]
    else:
      if world % len(machines): raise ValueError(f"{world} ranks do not spread evenly over {len(machines)} machines")
      runs = launch.torchrun_nodes(TRAIN, args, machines, world // len(machines), timeout=timeout)
    if any(r.returncode != 0 for r in runs): raise RuntimeError(f"{world}-rank {mode} run failed:\n" + "\n".join(r.output[-2000:] for r in runs))
    return _load(out, world)


def on_machines(model: str, world: int, steps: int, batch: int, timeout: float = 900) -> tuple[Run, str]:
  """A DDP run over two namespaces (or loopback addresses), and which kind of machines they were."""
  with netns.machines() as machines:
    return parallel(model, "ddp", world, steps, batch, machines, timeout), machines[0].kind
