"""scatter with a flat graph: of duplicate indices the last one wins, as in PyTorch's CPU kernel.

tinygrad's scatter merges the index positions with one `where` each, in a chain as deep as the index is long: slow to
schedule, and past a few thousand positions (sort's backward of 8000 elements, a write through a transposed view)
pickling the kernel for the compile worker overflows Python's recursion. Here the last writer of every position is one
max-reduction over the index positions, and its value one masked sum.
"""
from __future__ import annotations

from tinygrad import Tensor, dtypes


def scatter(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
  """`self` with `src[..., k, ...]` written at `self[..., index[..., k, ...], ...]` along `dim`."""
  dim, n, positions = dim % self.ndim, self.shape[dim % self.ndim], index.shape[dim % self.ndim]
  def spread(t: Tensor) -> Tensor:  # index positions k to a last axis, the targets along dim
    return t.unsqueeze(-1).transpose(-1, dim).expand(*index.shape[:dim], n, *index.shape[dim + 1:], positions)
  k = Tensor.arange(positions).to(self.device)
  target = Tensor.arange(n).to(self.device).reshape(n, *([1] * (self.ndim - dim - 1)), 1)
  hits = spread(index.cast(dtypes.int32)).eq(target)
  last = hits.where(k, -1).max(-1)
  written = k.eq(last.unsqueeze(-1))  # one position or none
  zero = -0.0 if dtypes.is_float(self.dtype) else 0  # x + -0.0 is x for every x, signed zeros included
  value = written.where(spread(src.shrink_to(index.shape)), zero).sum(-1).cast(self.dtype)
  pad = tuple((0, s - v) for s, v in zip(self.shape, value.shape))
  return (last >= 0).pad(pad).where(value.pad(pad), self)
