"""Bounty 17: multi-machine training (the CPU analogue: two network namespaces, torchrun --nnodes 2 with a c10d rendezvous).

Criterion. The real target is DDP training across several machines with GPUs through the tiny device, the weights
after the steps matching one process on the whole batch. The analogue here: one rank in each of two network namespaces
(or on two loopback addresses where namespaces are not permitted), torchrun --nnodes 2, vs one process on the
concatenated batch (the figure: the worst weight difference).
- FAIL: a weight difference above WEIGHT_BOUND, or a crash.
- NEEDS-HARDWARE: the analogue matches (one machine cannot show the real target, so this is the best this check reports).
- PASS: not reachable from this check: it runs on one machine (never claimed from the analogue).
"""
from __future__ import annotations

import time

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

STEPS, BATCH = 3, 8  # step time is the third step's: the first two compile
WEIGHT_BOUND = 1e-5


def _analogue() -> Result:
  from tinybounty.torch_backend.distributed import compare
  ref = compare.single("transformer", STEPS, BATCH, micro=BATCH // 2)
  run, kind = compare.on_machines("transformer", 2, STEPS, BATCH)
  diff = compare.max_diff(run, ref)
  where = "two network namespaces joined by a veth pair" if kind == "netns" else "two loopback addresses (namespaces not permitted here)"
  ran = (f"DDP training of a small transformer, {STEPS} steps, one rank on each of {where}, torchrun --nnodes 2 --rdzv-backend c10d, "
         f"tiny process group over gloo/TCP, vs one process on the concatenated batch of {BATCH}")
  curve = ", ".join(f"{a:.6f}/{b:.6f}" for a, b in zip(run.losses, ref.losses))
  detail = (f"max |weight diff| {diff:.1e} (bound {WEIGHT_BOUND:g}); loss curve 2 machines/1 process: {curve}; step time 1 rank {ref.step_s:.2f} s, "
            f"2 machines {run.step_s:.2f} s (shared 2-core CPU); host-staged bytes/step/rank {run.bytes_per_step:.0f}")
  return Result(Status.PASS if diff <= WEIGHT_BOUND else Status.FAIL, ran=ran, figure=diff, unit="max |weight difference| vs one process",
                baseline="one process, same global batch", detail=detail)


def verdict(analogue: Result, seconds: float = 0.0) -> Result:
  """The status by the criterion above from the analogue's result."""
  out = needs_hardware("several machines with GPUs on a network (docs/distributed.md: launching on two machines)", analogue)
  return Result(out.status, out.ran, out.figure, out.unit, out.baseline, out.detail, seconds=seconds)


def check(full: bool) -> Result:
  t0 = time.perf_counter()
  try:
    res = _analogue()
  except Exception as e:
    res = Result(Status.FAIL, ran="2-machine DDP on tiny vs one process", detail=f"{type(e).__name__}: {str(e)[-600:]}")
  return verdict(res, time.perf_counter() - t0)


BOUNTY = Bounty(17, "multi-machine training", "tinybounty.torch_backend.distributed",
                hardware="several machines with GPUs", check=check, timeout=900.0)
