"""Bounty 03: beautiful MNIST with torch.compile(backend="tiny")."""
from __future__ import annotations

import re

from tinybounty.bounties.base import Bounty, Result, Status
from tinybounty.records import latest

SPEEDUP_TARGET = 3.0  # compiled tiny vs eager tiny step time, on the CPU


def _speedup() -> tuple[float | None, str]:
  rec = latest("mnist_compile")
  m = re.search(r"([\d.]+)x vs eager tiny", rec.figure) if rec else None
  return (float(m.group(1)), f"{rec.date} on {rec.machine}") if m else (None, "")


def check(full: bool) -> Result:
  import tinybounty.torch_backend.compile as tc
  from tinybounty.torch_backend.beautiful_mnist import load, train
  steps, bs = (70, 512) if full else (4, 32)
  data = load()
  _, cpu = train(data, steps, "cpu", None, bs, progress=False)
  tc.reset_compile_stats()
  _, tiny = train(data, steps, "tiny", "tiny", bs, progress=False)
  stats, model_breaks = tc.compile_stats(), tc.model_breaks()
  gap = abs(tiny.accuracies[-1] - cpu.accuracies[-1])
  loss_err = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(tiny.losses, cpu.losses))
  ran = (f"beautiful_mnist {steps} steps (batch {bs}) with torch.compile(backend='tiny') vs eager PyTorch CPU, same initial weights and "
         f"batches: accuracy {tiny.accuracies[-1]:.2f}% vs {cpu.accuracies[-1]:.2f}%, max per-step loss difference {loss_err:.2%}; {stats}")
  if gap > 0.5 or model_breaks or stats["fallbacks"]:
    return Result(Status.FAIL, ran=ran, figure=gap, unit="accuracy points apart", baseline="eager PyTorch CPU",
                  detail=f"needs <= 0.5 points, no graph breaks in the model (found {model_breaks}), no eager fallbacks")
  speedup, where = _speedup()
  if speedup is None:
    return Result(Status.PARTIAL, ran=ran, figure=gap, unit="accuracy points apart", baseline="eager PyTorch CPU",
                  detail="correct; no bench/mnist_compile.py record yet for the 3x speed target")
  return Result(Status.PASS if speedup >= SPEEDUP_TARGET else Status.PARTIAL, ran=ran + f"; speed quoted from docs/benchmarks.md ({where})",
                figure=speedup, unit="x eager tiny step time", baseline="eager tiny (same process run)",
                detail=f"target {SPEEDUP_TARGET:g}x; accuracy {gap:.2f} points from CPU")


BOUNTY = Bounty(3, "beautiful MNIST with torch.compile", "tinybounty.torch_backend.compile",
                hardware="any tinygrad device (CPU here)", check=check)
