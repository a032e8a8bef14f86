"""Shape ops: the copying ones (cat, stack, pad, flip, roll, repeat, dtype copies) and functional views, which serve
the compile backend (the eager device aliases storage itself)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.strided import strided_read, strided_write
from tinybounty.torch_backend.table import (
  aten,
  reduce_dims,
  result_dtype,
  to_tiny_dtype,
)


@aten("cat")
def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  dt = result_dtype(*[t for t in tensors])
  parts = [t.cast(dt) for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)]
  if not parts: return tensors[0].cast(dt)
  return parts[0].cat(*parts[1:], dim=dim) if len(parts) > 1 else parts[0]


@aten("stack")
def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
  return cat([t.unsqueeze(dim) for t in tensors], dim)


@aten("constant_pad_nd")
def constant_pad_nd(self: Tensor, pad: Sequence[int], value: Any = 0) -> Tensor:
  pairs = [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
  x = self
  # the fill takes self's dtype, as PyTorch casts it (-100.0 into int64 labels is -100); tinygrad would promote instead
  value = bool(value) if self.dtype == dtypes.bool else int(value) if dtypes.is_int(self.dtype) else value
  grow = [(max(a, 0), max(b, 0)) for a, b in pairs]
  x = x.pad(tuple(v for pr in grow for v in pr), value=value) if any(a or b for a, b in grow) else x
  shrink = [None] * (x.ndim - len(pairs)) + [(-min(a, 0), x.shape[x.ndim - 1 - i] + min(b, 0)) for i, (a, b) in enumerate(pairs)][::-1]
  return x.shrink(tuple(shrink)) if any(a < 0 or b < 0 for a, b in pairs) else x


@aten("flip")
def flip(self: Tensor, dims: Sequence[int]) -> Tensor: return self.flip(tuple(dims)) if dims and self.ndim else self


@aten("roll")
def roll(self: Tensor, shifts: Sequence[int], dims: Sequence[int] = ()) -> Tensor:
  if not dims: return self.reshape(-1).roll(tuple(shifts), 0).reshape(self.shape)
  return self.roll(tuple(shifts), tuple(dims))


@aten("repeat")
def repeat(self: Tensor, repeats: Sequence[int]) -> Tensor: return self.repeat(tuple(repeats))


@aten("clone", "contiguous", "alias", "detach", "lift_fresh", "lift_fresh_copy", "_conj", "resolve_conj", "resolve_neg")
def identity(self: Tensor, *, memory_format: Any = None) -> Tensor: return self


@aten("_to_copy")
def to_copy(self: Tensor, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None, pin_memory: Any = None,
            non_blocking: bool = False, memory_format: Any = None) -> Tensor:
  return self.cast(to_tiny_dtype(dtype)) if dtype is not None else self


# ***** views, functional (the eager device aliases storage itself; these serve the compile backend) *****

@aten("view", "_unsafe_view", "reshape", "_reshape_alias", "view_copy")
def view(self: Tensor, size: Sequence[int], *stride: Any) -> Tensor: return self.reshape(tuple(size))


@aten("permute", "permute_copy")
def permute(self: Tensor, dims: Sequence[int]) -> Tensor: return self.permute(tuple(dims)) if self.ndim else self


@aten("transpose.int", "transpose_copy.int")
def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor: return self.transpose(dim0, dim1) if self.ndim else self


@aten("t")
def t(self: Tensor) -> Tensor: return self.transpose(0, 1) if self.ndim == 2 else self


@aten("expand", "expand_copy")
def expand(self: Tensor, size: Sequence[int], *, implicit: bool = False) -> Tensor:
  size = tuple(s if s != -1 else self.shape[i - (len(size) - self.ndim)] for i, s in enumerate(size))
  return self.reshape((1,) * (len(size) - self.ndim) + tuple(self.shape)).expand(size)


@aten("slice.Tensor", "slice_copy.Tensor")
def slice_(self: Tensor, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1) -> Tensor:
  return self[(slice(None),) * (dim % self.ndim) + (slice(start, end, step),)]


@aten("select.int", "select_copy.int")
def select(self: Tensor, dim: int, index: int) -> Tensor: return self[(slice(None),) * (dim % self.ndim) + (index,)]


@aten("squeeze", "squeeze.dim", "squeeze.dims")
def squeeze(self: Tensor, dim: Any = None) -> Tensor:
  dims = reduce_dims(dim, self.ndim) if self.ndim else ()
  return self.reshape(tuple(s for i, s in enumerate(self.shape) if not (i in dims and s == 1)))


@aten("unsqueeze")
def unsqueeze(self: Tensor, dim: int) -> Tensor: return self.unsqueeze(dim)


@aten("as_strided", "as_strided_copy")
def as_strided(self: Tensor, size: Sequence[int], stride: Sequence[int], storage_offset: int | None = None) -> Tensor:
  return strided_read(self.reshape(-1), size, stride, storage_offset or 0)


@aten("diagonal_scatter")
def diagonal_scatter(self: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
  """self with its (offset, dim1, dim2) diagonal replaced by src (whose last dim runs along the diagonal)."""
  if src.shape[-1] == 0: return self
  d1, d2 = dim1 % self.ndim, dim2 % self.ndim
  order = [d for d in range(self.ndim) if d not in (d1, d2)] + [d1, d2]
  x = self.permute(*order)                                                            # (..., A, B)
  (A, B), n, lead = x.shape[-2:], src.shape[-1], src.shape[:-1]
  a, b = Tensor.arange(A, dtype=dtypes.int32).reshape(A, 1), Tensor.arange(B, dtype=dtypes.int32).reshape(1, B)
  r0, c0 = max(0, -offset), max(0, offset)
  on = (a - r0 == b - c0) & (a >= r0) & (a - r0 < n)
  pos = (a - r0).clip(0, n - 1).expand(A, B).reshape((1,) * len(lead) + (A, B)).expand(*lead, A, B)
  picked = src.cast(self.dtype).unsqueeze(-2).expand(*lead, A, n).gather(-1, pos)
  inverse = [order.index(d) for d in range(self.ndim)]
  return on.where(picked, x).permute(*inverse)


@aten("as_strided_scatter")
def as_strided_scatter(self: Tensor, src: Tensor, size: Sequence[int], stride: Sequence[int], storage_offset: int | None = None) -> Tensor:
  """A contiguous copy of self with the (size, stride, offset) window of its storage replaced by src (a clone's layout)."""
  return strided_write(self.reshape(-1), src, size, stride, storage_offset or 0).reshape(self.shape)


@aten("diagonal")
def diagonal(self: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
  stride = [math.prod(self.shape[i + 1:]) for i in range(self.ndim)]
  d1, d2 = dim1 % self.ndim, dim2 % self.ndim
  n = max(0, min(self.shape[d1] - max(-offset, 0), self.shape[d2] - max(offset, 0)))
  start = max(offset, 0) * stride[d2] + max(-offset, 0) * stride[d1]
  keep = [d for d in range(self.ndim) if d not in (d1, d2)]
  return as_strided(self, [self.shape[d] for d in keep] + [n], [stride[d] for d in keep] + [stride[d1] + stride[d2]], start)


@aten("unfold")
def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
  stride = [math.prod(self.shape[i + 1:]) for i in range(self.ndim)]
  if self.ndim == 0: return self.reshape(1)
  d = dimension % self.ndim
  shape = list(self.shape)
  shape[d] = (self.shape[d] - size) // step + 1
  st = list(stride)
  st[d] = stride[d] * step
  return as_strided(self, shape + [size], st + [stride[d]], 0)
