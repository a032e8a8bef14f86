"""Bounty 03: beautiful MNIST with torch.compile(backend="tiny").

Criterion. tinygrad's beautiful_mnist model trained with torch.compile(backend="tiny") must train as eager PyTorch does
and be fast. Correctness is judged step by step from PyTorch's own state (beautiful_mnist.forced_steps): before each
forced step the compiled tiny model and a float64 CPU copy take PyTorch float32's exact weights, buffers and Adam
state, and all three take the same step. (Two free-running float32 trainings part for good at the first ReLU or
max-pool tie that rounding decides the other way; that tests chaos, not code.)
- FAIL: at a forced step, tiny's loss is further from float64's than `loss_bound`: LOSS_FACTOR x PyTorch float32's own
  largest error over those steps, or, if larger, sqrt(n) * u, the probabilistic rounding bound of a float32 sum in
  one accumulator (Higham, Accuracy and Stability, 4.2) over the forward's longest reduction (the first BatchNorm's
  batch x 20 x 20 terms); or tiny's step lowers the batch's float64 loss by an amount more than GAIN_TOLERANCE
  (relative) from what the float64 step achieves (a wrong gradient or optimizer update anywhere shows here; a few
  units flipped by rounding barely move it); or, in the free-running run beside it, final test accuracies further apart
  than `accuracy_allowance` (ACCURACY_SIGMAS binomial standard errors of the difference of two accuracies on this
  test set: the trajectories part, so the test samples they get right are a draw), a graph break inside the model,
  or an eager fallback; or the newest speed record cannot be read.
- PARTIAL: correct, but the newest bench/mnist_compile.py record has compiled tiny's step slower than SPEED_TARGET x
  eager PyTorch CPU's or under 3x eager tiny's (the figure: compiled tiny's speed over eager PyTorch CPU's), or no record.
- PASS: correct, and a record made on this machine meets both speed targets (a record from another machine is quoted,
  with its date and machine, and never earns the PASS).
"""
from __future__ import annotations

import math
import re

from tinybounty.bounties.base import Bounty, Result, Status, same_machine
from tinybounty.records import Record, latest

# over a BatchNorm's 10^4-10^5 terms tinygrad's CPU reductions round several times more than PyTorch's kernels (its
# forward activations: 5.6e-6 against 8.8e-7 from float64; fewer partial sums, presumably), not orders of magnitude more
LOSS_FACTOR = 16.0
GAIN_TOLERANCE = 1e-2
ACCURACY_SIGMAS = 3.0
EAGER_TINY_TARGET = 3.0  # compiled tiny vs eager tiny step time
SPEED_TARGET = 1.0       # compiled tiny vs eager PyTorch CPU step time: at least as fast


def speeds(rec: Record) -> tuple[float, float] | None:
  """(x eager tiny, x eager PyTorch CPU) of compiled tiny's step time in a bench/mnist_compile.py record, or None."""
  tiny = re.search(r"([\d.]+)x vs eager tiny", rec.figure)
  cpu = re.search(r"eager cpu [\d.]+ ms \(([\d.]+)x\)", rec.baseline)
  return (float(tiny.group(1)), float(cpu.group(1))) if tiny and cpu else None


U32 = 2.0 ** -24  # float32's unit roundoff


def reduction_terms(batch_size: int) -> int:
  """Terms of the forward's longest reduction: the first BatchNorm's statistics over batch x 20 x 20 positions."""
  return batch_size * 20 * 20


def loss_bound(forced: list, terms: int) -> float:
  """The largest forced-step loss error allowed (relative to float64's loss): see the criterion above."""
  return max(LOSS_FACTOR * max(f.loss_torch32 for f in forced), math.sqrt(terms) * U32)


def forced_errors(forced: list, terms: int) -> tuple[float, float]:
  """(tiny's largest forced-step loss error over `loss_bound`, tiny's largest gain error) of
  beautiful_mnist.forced_steps' results."""
  return max(f.loss for f in forced) / loss_bound(forced, terms), max(f.gain for f in forced)


def accuracy_allowance(accuracy: float, n_test: int) -> float:
  """Points by which two correct trainings' test accuracies (percent, on the same `n_test` samples) may differ:
  ACCURACY_SIGMAS standard errors of the difference of two binomial proportions at `accuracy`."""
  p = min(max(accuracy / 100, 1 / n_test), 1 - 1 / n_test)
  return ACCURACY_SIGMAS * 100 * math.sqrt(2 * p * (1 - p) / n_test)


def verdict(ran: str, forced: list, terms: int, gap: float, allowed_gap: float, model_breaks: list, fallbacks: int,
            rec: Record | None, here: str) -> Result:
  """The status by the criterion above, from the run here (forced steps and the longest reduction's terms, accuracy gap
  and its allowance, breaks, fallbacks) and the newest record."""
  if not forced: raise ValueError("check 03 needs at least one forced step")
  loss_x, gain_err = forced_errors(forced, terms)
  bound = loss_bound(forced, terms)
  wrong = loss_x > 1 or gain_err > GAIN_TOLERANCE or gap > allowed_gap or model_breaks or fallbacks
  if wrong:
    return Result(Status.FAIL, ran=ran, figure=loss_x, unit="x the allowed forced-step loss error", baseline="float64 CPU, same states",
                  detail=f"needs loss error <= {bound:.2g} (got {loss_x:.3g}x that), step gain within {GAIN_TOLERANCE:g} "
                         f"(got {gain_err:.2g}), <= {allowed_gap:.2f} accuracy points (got {gap:.2f}), "
                         f"no graph breaks in the model (found {model_breaks}), no eager fallbacks (found {fallbacks})")
  correct = (f"correct: {len(forced)} forced steps with loss errors at most {loss_x:.2g}x the allowed {bound:.2g} and "
             f"step gains within {gain_err:.2g} of float64's; accuracy {gap:.2f} points from eager PyTorch CPU")
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
  from tinybounty.torch_backend.beautiful_mnist import forced_steps, load, train
  steps, bs = (70, 512) if full else (4, 32)
  at = set(range(1, 4)) | set(range(steps - 2, steps + 1))  # the first steps (Adam's state is made) and the trained model
  data = load()
  _, cpu = train(data, steps, "cpu", None, bs, progress=False)
  tc.reset_compile_stats()
  _, tiny = train(data, steps, "tiny", "tiny", bs, progress=False)
  stats, model_breaks = tc.compile_stats(), tc.model_breaks()
  forced = forced_steps(data, steps, at, "tiny", "tiny", bs, progress=False)
  gap = abs(tiny.accuracies[-1] - cpu.accuracies[-1])
  free = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(tiny.losses, cpu.losses))
  ran = (f"beautiful_mnist {steps} steps (batch {bs}) with torch.compile(backend='tiny') vs eager PyTorch CPU, same initial weights and "
         f"batches: accuracy {tiny.accuracies[-1]:.2f}% vs {cpu.accuracies[-1]:.2f}%, free-running per-step losses within {free:.2g} "
         f"(shown, not judged); forced steps {sorted(at)} (their errors: the verdict's detail); {stats}")
  allowed = accuracy_allowance(cpu.accuracies[-1], len(data.y_test))
  return verdict(ran, forced, reduction_terms(bs), gap, allowed, model_breaks, stats["fallbacks"], latest("mnist_compile"), machine())


BOUNTY = Bounty(3, "beautiful MNIST with torch.compile", "tinybounty.torch_backend.compile",
                hardware="any tinygrad device (CPU here)", check=check)
