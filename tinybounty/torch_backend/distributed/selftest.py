"""Every collective of the tiny process group on tiny tensors, checked against the values computed here on the CPU.

Run under a launcher: `torchrun --nproc-per-node 2 -m tinybounty.torch_backend.distributed.selftest`. Each rank
raises AssertionError naming the first collective whose result differs, and prints "collectives ok" otherwise.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

import tinybounty.torch_backend.distributed  # noqa: F401  (registers the tiny backend)
from tinybounty.torch_backend import stats


def _same(name: str, got: torch.Tensor, want: torch.Tensor) -> None:
  got = got.cpu()
  if got.shape != want.shape or not torch.equal(got, want.to(got.dtype)):
    raise AssertionError(f"rank {dist.get_rank()}: {name} gave {got.tolist()}, expected {want.tolist()}")


def values(rank: int) -> torch.Tensor:
  return torch.arange(4, dtype=torch.float32) * (rank + 1) + rank


def run_all() -> dict[str, int]:
  r, w = dist.get_rank(), dist.get_world_size()
  every = torch.stack([values(i) for i in range(w)])
  x = values(r).to("tiny")
  reductions = {dist.ReduceOp.SUM: every.sum(0), dist.ReduceOp.AVG: every.sum(0) / w, dist.ReduceOp.MAX: every.amax(0),
                dist.ReduceOp.MIN: every.amin(0), dist.ReduceOp.PRODUCT: every.prod(0)}
  for op, want in reductions.items():
    y = x.clone()
    dist.all_reduce(y, op=op, async_op=True).wait()
    _same(f"all_reduce {op}", y, want)
  view = torch.zeros(3, 4, device="tiny")
  view[1] = x
  dist.all_reduce(view[1])  # a view: the result must land in the base's storage (DDP's bucket views rely on it)
  _same("all_reduce of a view", view[1], every.sum(0))
  for root in range(w):
    b = x.clone()
    dist.broadcast(b, root)
    _same(f"broadcast from {root}", b, every[root])
  outs = [torch.empty(4, device="tiny") for _ in range(w)]
  dist.all_gather(outs, x)
  _same("all_gather", torch.stack([o.cpu() for o in outs]), every)
  flat = torch.empty(4 * w, device="tiny")
  dist.all_gather_into_tensor(flat, x)
  _same("all_gather_into_tensor", flat, every.reshape(-1))
  big = torch.stack([torch.arange(2 * w, dtype=torch.float32) + i for i in range(w)])  # rank i's input to reduce_scatter
  part = torch.empty(2, device="tiny")
  dist.reduce_scatter_tensor(part, big[r].to("tiny"))
  _same("reduce_scatter_tensor", part, big.sum(0)[2 * r:2 * r + 2])
  part2 = torch.empty(2, device="tiny")
  dist.reduce_scatter(part2, [big[r, 2 * j:2 * j + 2].to("tiny") for j in range(w)], op=dist.ReduceOp.MAX)
  _same("reduce_scatter (max)", part2, big.amax(0)[2 * r:2 * r + 2])
  sent = torch.stack([torch.arange(2 * w, dtype=torch.float32) + 100 * i for i in range(w)])  # rank i sends sent[i]
  got = torch.empty(2 * w, device="tiny")
  dist.all_to_all_single(got, sent[r].to("tiny"))
  _same("all_to_all_single", got, sent[:, 2 * r:2 * r + 2].reshape(-1))
  got_list = [torch.empty(2, device="tiny") for _ in range(w)]
  dist.all_to_all(got_list, [sent[r, 2 * j:2 * j + 2].to("tiny") for j in range(w)])
  _same("all_to_all", torch.cat([g.cpu() for g in got_list]), sent[:, 2 * r:2 * r + 2].reshape(-1))
  dist.barrier()
  if w > 1:
    if r == 0: dist.send(x * 7, 1)
    elif r == 1:
      z = torch.empty(4, device="tiny")
      dist.recv(z, 0)
      _same("send/recv", z, every[0] * 7)
  cpu = torch.ones(2) * r
  dist.all_reduce(cpu)  # CPU tensors still work in the same group
  _same("all_reduce of a CPU tensor", cpu, torch.full((2,), float(sum(range(w)))))
  return stats()


def mismatched_shapes() -> str:
  """Each rank all-reduces a tensor of another shape: every rank must raise, naming all ranks' shapes."""
  r = dist.get_rank()
  try:
    dist.all_reduce(torch.ones(r + 2, device="tiny"))
  except RuntimeError as e:
    return str(e)
  raise AssertionError(f"rank {r}: all_reduce of mismatched shapes did not raise")


if __name__ == "__main__":
  import sys
  dist.init_process_group("cpu:gloo,tiny:tiny")
  if "--mismatch" in sys.argv: print(f"rank {dist.get_rank()}: raised: {mismatched_shapes()}", flush=True)
  else: print(f"rank {dist.get_rank()}: collectives ok {run_all()}", flush=True)
  dist.destroy_process_group()
