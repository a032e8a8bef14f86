"""Bounty 01: topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend."""
from __future__ import annotations

import time

from tinybounty.bounties.base import Bounty, Result, Status


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
  bad += [k for k in ref if not torch.allclose(got[k].detach().cpu(), ref[k].detach(), atol=1e-6)]
  if not torch.allclose(t.grad.cpu(), x.grad, atol=1e-6): bad.append("backward")
  if not torch.equal(perm.cpu().sort().values, torch.arange(50)): bad.append("randperm")
  if counts["d2h"] or counts["fallbacks"]: bad.append(f"host transfers {counts}")
  if counts["size_syncs"] > 1: bad.append(f"{counts['size_syncs']} size syncs (expected 1, masked_select's count)")
  return bad


def check(full: bool) -> Result:
  t0 = time.perf_counter()
  try:
    bad = _run_ops()
  except Exception as e:
    return Result(Status.FAIL, ran="the five ops on the tiny device", detail=f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0)
  from tinybounty.records import latest
  rec = latest("torch_opinfo")
  figure = float(rec.figure.split("fwd ")[1].split("/")[0]) if rec else None
  ran = ("topk, index_put_ (accumulate), index.Tensor, masked_select, randperm + backward on tiny vs CPU, 0 device-to-host "
         "transfers asserted" + (f"; op_db figure quoted from docs/benchmarks.md ({rec.date}: {rec.figure})" if rec else ""))
  status = Status.FAIL if bad else Status.PASS
  return Result(status, ran=ran, figure=figure, unit="op_db ops passing forward (float32)" if rec else "",
                baseline=rec.baseline if rec else "", detail="; ".join(bad) or "all five ops match the CPU on device",
                seconds=time.perf_counter() - t0)


BOUNTY = Bounty(1, "topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend", "tinybounty.torch_backend",
                hardware="any tinygrad device (CPU here)", check=check)
