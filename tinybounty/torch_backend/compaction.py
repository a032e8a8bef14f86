"""Stream compaction on the device in O(n): the True positions of a mask (nonzero) and the values there (masked_select).

tinygrad has no scatter to a data-dependent position other than a one-hot, which is O(n x outputs): hopeless for
hlb-CIFAR10's masked_select of a whole padded dataset (194M elements). Here the rank of each True element is a blocked
prefix sum, and one custom kernel stores each selected element at its rank: out[rank[j] - 1] = value[j].
"""
from __future__ import annotations

import math

from tinygrad import Device, Tensor, dtypes
from tinygrad.uop.ops import KernelInfo, UOp

BLOCK = 256  # tinygrad's cumsum of a row costs BLOCK^2 / 2 adds; rows of BLOCK keep the whole scan O(n * BLOCK)


def prefix_count(x: Tensor) -> Tensor:
  """Inclusive prefix sum of a 1-D int32 tensor: cumsum inside blocks of BLOCK, and recursively over block totals
  (tinygrad's own cumsum splits only once, so its second level is quadratic in n / 256)."""
  n = x.shape[0]
  if n <= BLOCK: return x.cumsum()
  rows = math.ceil(n / BLOCK)
  inner = x.pad(((0, rows * BLOCK - n),)).reshape(rows, BLOCK).cumsum(axis=1)
  totals = inner[:, -1]
  return (inner + (prefix_count(totals) - totals).reshape(rows, 1)).reshape(-1)[:n]


def compact(mask: Tensor, count: int, values: Tensor | None = None) -> Tensor:
  """The `count` entries of `values` (1-D, like `mask`) where `mask` is True, in order; their positions (int32) when
  `values` is None. `count` must be the number of True entries (the caller has read it back to size the output)."""
  n = mask.shape[0]
  flags = mask.cast(dtypes.int32)
  rank = prefix_count(flags).contiguous()
  dtype = values.dtype if values is not None else dtypes.int32
  device = next((t.device for t in (values, mask) if t is not None and isinstance(t.device, str)), Device.DEFAULT)
  out = Tensor.empty(count + 1, dtype=dtype, device=device)  # the last slot takes every unselected element's store

  def kernel(out: UOp, flags: UOp, rank: UOp, *vals: UOp) -> UOp:
    j = UOp.range(n, 0)
    dst = (flags[j] != 0).where(rank[j] - 1, count).cast(dtypes.weakint)
    src = vals[0][j] if vals else j.cast(dtypes.int32)
    return out[dst].store(src).end(j).sink(arg=KernelInfo(name=f"compact_{n}"))

  srcs = (flags.contiguous(), rank) + ((values.contiguous(),) if values is not None else ())
  return out.custom_kernel(*srcs, fxn=kernel)[0][:count]
