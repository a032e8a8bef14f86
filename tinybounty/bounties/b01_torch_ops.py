"""Bounty 01: topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend.

Criterion. The bounty asks for these ops to run on the tiny device instead of falling back to the host; it sets no speed
target. The check runs topk, index_put_ (accumulate), index.Tensor and masked_select forward and backward, and randperm,
on tiny against PyTorch CPU, counting device-to-host transfers, eager fallbacks and size syncs.
- PASS: every output and the input gradient within ATOL of the CPU's, randperm a permutation, no device-to-host
  transfer or fallback, at most one size sync (masked_select's output length).
- FAIL: any of those not so, or a crash.
The op_db pass count (bench/torch_opinfo.py) is quoted with its date and machine as context; it never sets the status.
"""
from __future__ import annotations

import time

from tinybounty.bounties.base import Bounty, Result, Status, quoted
from tinybounty.records import Record

ATOL = 1e-6


def _run_ops() -> list[str]:
  """Run the five ops (forward and backward) on tiny against the CPU; return what differs."""
  import torch

  import tinybounty.torch_backend as tb
  bad: list[str] = []
  torch.manual_seed(0)
  x = torch.randn(4, 6, requires_grad=True)
  t = x.detach().to("tiny").requires_grad_()
  idx, mask = torch.tensor([0, 3, 3]), x.detach() > 0
  tidx, tmask = idx.to("tiny"), mask.to("tiny")
  tb.reset_stats()
  got = {"topk": torch.topk(t, 2)[0], "index.Tensor": t[tidx, 1:],
         "index_put_": t.clone().index_put_((tidx,), torch.ones(6, device="tiny"), accumulate=True),
         "masked_select": t.masked_select(tmask)}
  sum(v.sum() for v in got.values()).backward()
  perm = torch.randperm(50, device="tiny")
  counts = tb.stats()
  ref = {"topk": torch.topk(x, 2)[0], "index.Tensor": x[idx, 1:],
         "index_put_": x.clone().index_put_((idx,), torch.ones(6), accumulate=True), "masked_select": x.masked_select(mask)}
  sum(v.sum() for v in ref.values()).backward()
  bad += [k for k in ref if not torch.allclose(got[k].detach().cpu(), ref[k].detach(), atol=ATOL)]
  if not torch.allclose(t.grad.cpu(), x.grad, atol=ATOL): bad.append("backward")
  if not torch.equal(perm.cpu().sort().values, torch.arange(50)): bad.append("randperm")
  if counts["d2h"] or counts["fallbacks"]: bad.append(f"host transfers {counts}")
  if counts["size_syncs"] > 1: bad.append(f"{counts['size_syncs']} size syncs (expected 1, masked_select's count)")
  return bad


def verdict(bad: list[str], rec: Record | None, seconds: float = 0.0) -> Result:
  """The status by the criterion above from what differed on device (`bad`) and the newest op_db record (context only)."""
  ran = "topk, index_put_ (accumulate), index.Tensor, masked_select, randperm + backward on tiny vs CPU, 0 device-to-host transfers asserted"
  context = f"; op_db context, quoted ({quoted(rec)})" if rec else ""
  return Result(Status.FAIL if bad else Status.PASS, ran=ran, figure=len(bad), unit="ops or counters off (of 5 ops, backward, transfers)",
                baseline=f"PyTorch CPU, atol {ATOL:g}", detail=("; ".join(bad) or "all five ops match the CPU on device") + context, seconds=seconds)


def check(full: bool) -> Result:
  from tinybounty.records import latest
  t0 = time.perf_counter()
  try:
    bad = _run_ops()
  except Exception as e:
    bad = [f"crashed: {type(e).__name__}: {e}"]
  return verdict(bad, latest("torch_opinfo"), time.perf_counter() - t0)


BOUNTY = Bounty(1, "topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend", "tinybounty.torch_backend",
                hardware="any tinygrad device (CPU here)", check=check)
