"""Bounty 03: beautiful MNIST with torch.compile(backend="tiny").

Criterion. tinygrad's beautiful_mnist model trained with torch.compile(backend="tiny") must train as eager PyTorch does
and be fast: from the same weights and batches as eager PyTorch CPU,
- FAIL: a per-step loss more than LOSS_TOLERANCE (relative) from PyTorch's, final accuracies more than 0.5 points
  apart, a graph break inside the model, or an eager fallback; or the newest speed record cannot be read.
- PARTIAL: correct, but the newest bench/mnist_compile.py record has compiled tiny's step slower than SPEED_TARGET x
  eager PyTorch CPU's or under 3x eager tiny's (the figure: compiled tiny's speed over eager PyTorch CPU's), or no record.
- PASS: correct, and a record made on this machine meets both speed targets (a record from another machine is quoted,
  with its date and machine, and never earns the PASS).
"""
from __future__ import annotations

import re

from tinybounty.bounties.base import Bounty, Result, Status, same_machine
from tinybounty.records import Record, latest

LOSS_TOLERANCE = 1e-4   # per-step loss vs eager PyTorch CPU, relative
ACCURACY_POINTS = 0.5
EAGER_TINY_TARGET = 3.0  # compiled tiny vs eager tiny step time
SPEED_TARGET = 1.0       # compiled tiny vs eager PyTorch CPU step time: at least as fast


def speeds(rec: Record) -> tuple[float, float] | None:
  """(x eager tiny, x eager PyTorch CPU) of compiled tiny's step time in a bench/mnist_compile.py record, or None."""
  tiny = re.search(r"([\d.]+)x vs eager tiny", rec.figure)
  cpu = re.search(r"eager cpu [\d.]+ ms \(([\d.]+)x\)", rec.baseline)
  return (float(tiny.group(1)), float(cpu.group(1))) if tiny and cpu else None


def verdict(ran: str, loss_err: float, gap: float, model_breaks: list, fallbacks: int, rec: Record | None, here: str) -> Result:
  """The status by the criterion above, from the run here (loss error, accuracy gap, breaks, fallbacks) and the newest record."""
  wrong = loss_err > LOSS_TOLERANCE or gap > ACCURACY_POINTS or model_breaks or fallbacks
  if wrong:
    return Result(Status.FAIL, ran=ran, figure=loss_err, unit="max relative per-step loss difference", baseline="eager PyTorch CPU",
                  detail=f"needs <= {LOSS_TOLERANCE:g} loss, <= {ACCURACY_POINTS:g} accuracy points (got {gap:.2f}), "
                         f"no graph breaks in the model (found {model_breaks}), no eager fallbacks (found {fallbacks})")
  correct = f"correct: losses within {loss_err:.2g}, accuracy {gap:.2f} points from eager PyTorch CPU"
  if rec is None:
    return Result(Status.PARTIAL, ran=ran, figure=None, unit="x eager PyTorch CPU step time", baseline="eager PyTorch CPU",
                  detail=correct + "; no bench/mnist_compile.py record for the speed targets")
  quoted = f"record {rec.date} on {rec.machine}"
  if (s := speeds(rec)) is None: return Result(Status.FAIL, ran=ran, detail=f"cannot read the speeds of the {quoted}: {rec.figure}; {rec.baseline}")
  vs_tiny, vs_cpu = s
  ran += f"; speed quoted from docs/benchmarks.md ({quoted})"
  at_target = vs_cpu >= SPEED_TARGET and vs_tiny >= EAGER_TINY_TARGET
  status = Status.PASS if at_target and same_machine(rec.machine, here) else Status.PARTIAL
  return Result(status, ran=ran, figure=vs_cpu, unit="x eager PyTorch CPU step time (compiled tiny, quoted)", baseline="eager PyTorch CPU",
                detail=f"{correct}; targets >= {SPEED_TARGET:g}x eager PyTorch CPU, >= {EAGER_TINY_TARGET:g}x eager tiny "
                       f"({vs_tiny:g}x) in the {quoted}" + ("" if status is Status.PASS or not at_target else ", another machine"))


def check(full: bool) -> Result:
  import tinybounty.torch_backend.compile as tc
  from tinybounty.hardware import machine
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
         f"batches: accuracy {tiny.accuracies[-1]:.2f}% vs {cpu.accuracies[-1]:.2f}%, max per-step loss difference {loss_err:.2g}; {stats}")
  return verdict(ran, loss_err, gap, model_breaks, stats["fallbacks"], latest("mnist_compile"), machine())


BOUNTY = Bounty(3, "beautiful MNIST with torch.compile", "tinybounty.torch_backend.compile",
                hardware="any tinygrad device (CPU here)", check=check)
