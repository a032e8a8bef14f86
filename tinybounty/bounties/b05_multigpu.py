"""Bounty 05: multi-GPU training in the torch backend (torch.distributed on tiny; the CPU analogue: 2 processes on one host).

Criterion. The real target is DDP/FSDP training on 2+ GPUs of one host through the tiny device, the weights after the
steps matching one process on the whole batch. The analogue here: DDP and FSDP (fully_shard) on 2 ranks of tinygrad CPU
devices under torchrun vs one process on the concatenated batch (the figure: the worst weight difference).
- FAIL: a weight difference above WEIGHT_BOUND (1e-5), or a crash.
- NEEDS-HARDWARE: the analogue matches, and fewer than 2 NVIDIA GPUs are here.
- PARTIAL: the analogue matches and 2+ GPUs are here, but this check does not run the GPU training yet: the target is unshown.
- PASS: not reachable from this check until the GPU run is built into it (never claimed from the analogue).
"""
from __future__ import annotations

import time

from tinybounty.bounties.base import Bounty, Result, Status, needs_hardware

STEPS, BATCH = 3, 8  # step time is the third step's: the first two compile
WEIGHT_BOUND = 1e-5


def _analogue() -> Result:
  from tinybounty.torch_backend.distributed import compare
  ref = compare.single("transformer", STEPS, BATCH, micro=BATCH // 2)
  ddp = compare.parallel("transformer", "ddp", 2, STEPS, BATCH)
  fsdp = compare.parallel("transformer", "fsdp", 2, STEPS, BATCH)
  diff = max(compare.max_diff(ddp, ref), compare.max_diff(fsdp, ref))
  ran = (f"DDP and FSDP (fully_shard) training of a small transformer, {STEPS} steps, 2 ranks of tinygrad CPU devices under torchrun "
         f"(tiny process group over gloo) vs one process on the concatenated batch of {BATCH}")
  detail = (f"max |weight diff| DDP {compare.max_diff(ddp, ref):.1e}, FSDP {compare.max_diff(fsdp, ref):.1e} (bound {WEIGHT_BOUND:g}); "
            f"step time 1 rank {ref.step_s:.2f} s, 2 ranks DDP {ddp.step_s:.2f} s, FSDP {fsdp.step_s:.2f} s (shared 2-core CPU); "
            f"host-staged bytes/step/rank DDP {ddp.bytes_per_step:.0f}, FSDP {fsdp.bytes_per_step:.0f}")
  return Result(Status.PASS if diff <= WEIGHT_BOUND else Status.FAIL, ran=ran, figure=diff, unit="max |weight difference| vs one process",
                baseline="one process, same global batch", detail=detail)


def verdict(analogue: Result, gpus: tuple, seconds: float = 0.0) -> Result:
  """The status by the criterion above from the analogue's result and the NVIDIA GPUs present."""
  if analogue.status is Status.FAIL: out = analogue
  elif len(gpus) < 2: out = needs_hardware("2+ NVIDIA GPUs of one host (NCCL on the GPU memory: docs/distributed.md)", analogue)
  else: out = Result(Status.PARTIAL, analogue.ran, analogue.figure, analogue.unit, analogue.baseline,
                     f"analogue matches; {len(gpus)} GPUs here, but this check does not run the GPU training: the target is unshown")
  return Result(out.status, out.ran, out.figure, out.unit, out.baseline, out.detail, seconds=seconds)


def check(full: bool) -> Result:
  from tinybounty.hardware import nvidia_gpus
  t0 = time.perf_counter()
  try:
    res = _analogue()
  except Exception as e:
    res = Result(Status.FAIL, ran="2-rank DDP/FSDP on tiny vs one process", detail=f"{type(e).__name__}: {str(e)[-600:]}")
  return verdict(res, nvidia_gpus(), time.perf_counter() - t0)


BOUNTY = Bounty(5, "multi-GPU training in the torch backend", "tinybounty.torch_backend.distributed",
                hardware="2+ GPUs of one host", check=check, timeout=900.0)
