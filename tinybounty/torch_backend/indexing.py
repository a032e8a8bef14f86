"""Indexing on the device: gather and scatter through one-hot compares, index / index_put, masked ops, nonzero (its
one count read back), sort and topk, searchsorted, embedding."""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import torch
from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.compaction import compact
from tinybounty.torch_backend.scatter import scatter as scatter_last
from tinybounty.torch_backend.stats import size_sync, to_host
from tinybounty.torch_backend.table import (
  aten,
  cast_to,
)


@aten("embedding")
def embedding(weight: Tensor, indices: Tensor, padding_idx: int = -1, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
  return _take_rows(weight, indices)


def _take_rows(x: Tensor, index: Tensor) -> Tensor:
  """x[index] along dim 0 for an int index tensor of any shape (negative indices wrap)."""
  idx = index.cast(dtypes.int32)
  idx = (idx < 0).where(idx + x.shape[0], idx)
  return x[idx]


def _nonzero_count(mask: Tensor) -> int:
  """The number of True elements: the one scalar a data-dependent output shape needs (counted as a size sync)."""
  return size_sync(mask.cast(dtypes.int32).sum())


def _nonzero(mask: Tensor) -> list[Tensor]:
  """One int64 index tensor per dim of `mask`, listing the True positions in row-major order."""
  flat = mask.reshape(-1).cast(dtypes.bool)
  n = _nonzero_count(flat)
  if n == 0: return [Tensor.empty(0, dtype=dtypes.int64) for _ in range(max(mask.ndim, 1))]
  pos = compact(flat, n).cast(dtypes.int64)
  out, div_ = [], 1
  for size in reversed(mask.shape):
    out.append((pos // div_) % size)
    div_ *= size
  return out[::-1] if mask.ndim else [pos]


@aten("nonzero")
def nonzero(self: Tensor) -> Tensor:
  idx = _nonzero(self.cast(dtypes.bool))
  return Tensor.stack(*idx, dim=1) if self.ndim else Tensor.empty(idx[0].shape[0], 0, dtype=dtypes.int64)


@aten("masked_select")
def masked_select(self: Tensor, mask: Tensor) -> Tensor:
  shape = tuple(torch.broadcast_shapes(tuple(self.shape), tuple(mask.shape)))
  x, m = self.expand(shape) if shape else self, mask.expand(shape) if shape else mask
  flat = m.reshape(-1).cast(dtypes.bool)
  n = _nonzero_count(flat)
  return compact(flat, n, x.reshape(-1)) if n else Tensor.empty(0, dtype=self.dtype)


def _expand_bool(self: Tensor, indices: Sequence[Tensor | None]) -> list[Tensor | None]:
  out: list[Tensor | None] = []
  for ix in indices:
    if ix is not None and ix.dtype in (dtypes.bool, dtypes.uint8): out.extend(_nonzero(ix))
    else: out.append(ix)
  return out + [None] * (self.ndim - len(out))


def _linear_index(self: Tensor, indices: list[Tensor | None]) -> tuple[Tensor, list[int], list[int], bool]:
  """Advanced indexing reduced to rows: (flat row index over the indexed dims, indexed dims, other dims, adjacent)."""
  dims = [d for d, ix in enumerate(indices) if ix is not None]
  rest = [d for d in range(self.ndim) if d not in dims]
  shape = tuple(torch.broadcast_shapes(*(tuple(indices[d].shape) for d in dims)))
  lin = Tensor.zeros(*shape, dtype=dtypes.int32) if shape else Tensor(0, dtype=dtypes.int32)
  for d in dims:
    ix = indices[d].cast(dtypes.int32)
    lin = lin * self.shape[d] + (ix < 0).where(ix + self.shape[d], ix).expand(shape)
  return lin, dims, rest, dims == list(range(dims[0], dims[-1] + 1))


@aten("index.Tensor", "_unsafe_index.Tensor")
def index(self: Tensor, indices: Sequence[Tensor | None]) -> Tensor:
  full = _expand_bool(self, indices)
  if all(ix is None for ix in full): return self
  lin, dims, rest, adjacent = _linear_index(self, full)
  rows = self.permute(*dims, *rest).reshape(math.prod(self.shape[d] for d in dims), *(self.shape[d] for d in rest))
  out = _take_rows(rows, lin) if lin.numel() else Tensor.empty(*lin.shape, *rows.shape[1:], dtype=self.dtype)
  if adjacent and dims[0] > 0:  # torch keeps the indexed block in place when the advanced indices are adjacent
    nb = lin.ndim
    order = list(range(nb, nb + dims[0])) + list(range(nb)) + list(range(nb + dims[0], out.ndim))
    out = out.permute(*order)
  return out


@aten("index_put", "_index_put_impl", "_unsafe_index_put")
def index_put(self: Tensor, indices: Sequence[Tensor | None], values: Tensor, accumulate: bool = False, unsafe: bool = False) -> Tensor:
  if (len(indices) == 1 and indices[0] is not None and indices[0].dtype == dtypes.bool and values.numel() == 1
      and tuple(indices[0].shape) == tuple(self.shape[:indices[0].ndim])):  # x[mask] = v needs no nonzero
    m = indices[0].reshape(*indices[0].shape, *(1,) * (self.ndim - indices[0].ndim))
    v = values.reshape(()).cast(self.dtype)
    return m.where(self + v if accumulate else v, self)
  full = _expand_bool(self, indices)
  lin, dims, rest, adjacent = _linear_index(self, full)
  nrows, rest_shape = math.prod(self.shape[d] for d in dims), tuple(self.shape[d] for d in rest)
  rows = self.permute(*dims, *rest).reshape(nrows, *rest_shape)
  # values are shaped like self[indices]: bring the index block to the front
  target = index_shape(lin.shape, dims, rest_shape, adjacent)
  vals = values.cast(self.dtype).expand(target) if target else values.cast(self.dtype)
  if adjacent and dims[0] > 0:
    nb = lin.ndim
    vals = vals.permute(*range(dims[0], dims[0] + nb), *range(dims[0]), *range(dims[0] + nb, vals.ndim))
  n = lin.numel()
  if n == 0: return self
  vals = vals.reshape(n, -1)
  hit = lin.reshape(n, 1).eq(Tensor.arange(nrows, dtype=dtypes.int32).reshape(1, nrows))  # (n, rows)
  flat_rows = rows.reshape(nrows, -1)
  if accumulate:
    upd = hit.unsqueeze(-1).where(vals.unsqueeze(1), 0).sum(0).cast(self.dtype)
    new_rows = flat_rows + upd
  else:  # duplicates: the last write wins, as on the CPU
    last = hit.where(Tensor.arange(1, n + 1, dtype=dtypes.int32).reshape(n, 1), 0).max(0)
    chosen = _take_rows(vals, (last - 1).maximum(0))
    new_rows = (last > 0).unsqueeze(-1).where(chosen, flat_rows)
  out = new_rows.reshape(*(self.shape[d] for d in dims), *rest_shape)
  return out.permute(*sorted(range(self.ndim), key=lambda i: (dims + rest)[i]))


def index_shape(batch: Sequence[int], dims: list[int], rest_shape: tuple[int, ...], adjacent: bool) -> tuple[int, ...]:
  """The shape of self[indices]: the broadcast index block in place of adjacent indexed dims, else in front."""
  if adjacent and dims[0] > 0: return (*rest_shape[:dims[0]], *batch, *rest_shape[dims[0]:])
  return (*batch, *rest_shape)


@aten("index_select")
def index_select(self: Tensor, dim: int, index: Tensor) -> Tensor:
  if self.ndim == 0: return self
  return _take_rows(self.transpose(0, dim), index.reshape(-1)).transpose(0, dim)


@aten("gather")
def gather(self: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
  if index.numel() == 0: return Tensor.empty(*index.shape, dtype=self.dtype)
  return self.gather(dim, index.cast(dtypes.int32)) if self.ndim else self


def _zero_dim_as_1d(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
  """PyTorch scatters into a 0-d tensor along dim 0; tinygrad's scatters need a real dim: run them at shape (1,)."""
  @functools.wraps(fn)
  def run(self: Tensor, dim: int, index: Tensor, src: Any, *args: Any, **kwargs: Any) -> Tensor:
    if self.ndim: return fn(self, dim, index, src, *args, **kwargs)
    return fn(self.reshape(1), 0, index.reshape(-1), src.reshape(-1) if isinstance(src, Tensor) else src, *args, **kwargs).reshape(())
  return run


@aten("scatter.src", "scatter.value")
@_zero_dim_as_1d
def scatter(self: Tensor, dim: int, index: Tensor, src: Any) -> Tensor:
  if index.numel() == 0: return self
  if not isinstance(src, Tensor): src = Tensor.full(index.shape, src, dtype=self.dtype).to(self.device)
  return scatter_last(self, dim, index, src.cast(self.dtype))


@aten("scatter.reduce", "scatter.value_reduce")
@_zero_dim_as_1d
def scatter_reduce_legacy(self: Tensor, dim: int, index: Tensor, src: Any, *, reduce: str) -> Tensor:
  if index.numel() == 0: return self
  # tinygrad's scatter takes reduce= only with a scalar src; a tensor src is scatter_reduce including self
  if isinstance(src, Tensor):
    return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), {"add": "sum", "multiply": "prod"}[reduce])
  return self.scatter(dim, index.cast(dtypes.int32), cast_to(src, self.dtype), reduce=reduce)


@aten("scatter_add")
@_zero_dim_as_1d
def scatter_add(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
  if index.numel() == 0: return self
  return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), "sum")


@aten("scatter_reduce.two")
@_zero_dim_as_1d
def scatter_reduce(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
  if index.numel() == 0: return self
  return self.scatter_reduce(dim, index.cast(dtypes.int32), src.cast(self.dtype), reduce, include_self=include_self)


@aten("sort", "sort.stable")
def sort(self: Tensor, dim: int = -1, descending: bool = False, stable: bool | None = None) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  if self.shape[dim] == 0: return self, Tensor.empty(*self.shape, dtype=dtypes.int64)
  values, idx = self.sort(dim, descending)
  return values, idx.cast(dtypes.int64)


@aten("topk")
def topk(self: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  dim = dim % self.ndim
  if k == 0 or self.shape[dim] == 0:
    shape = tuple(k if i == dim else s for i, s in enumerate(self.shape))
    return Tensor.empty(*shape, dtype=self.dtype), Tensor.empty(*shape, dtype=dtypes.int64)
  values, idx = self.topk(k, dim, largest=largest)
  return values, idx.cast(dtypes.int64)


@aten("equal")
def equal(self: Tensor, other: Tensor) -> bool:
  """True if same shape and elements (a Python bool: one counted read of the device)."""
  return tuple(self.shape) == tuple(other.shape) and bool(to_host(self.eq(other).all()))


@aten("tril")
def tril(self: Tensor, diagonal: int = 0) -> Tensor: return self.tril(diagonal)


@aten("triu")
def triu(self: Tensor, diagonal: int = 0) -> Tensor: return self.triu(diagonal)


@aten("masked_scatter")
def masked_scatter(self: Tensor, mask: Tensor, source: Tensor) -> Tensor:
  """self with its masked positions filled, in row-major order, from the start of `source` (no size sync)."""
  shape = tuple(torch.broadcast_shapes(tuple(self.shape), tuple(mask.shape)))
  m = mask.cast(dtypes.bool).expand(shape).reshape(-1)
  if m.shape[0] == 0 or source.numel() == 0: return self.expand(shape)
  rank = (m.cast(dtypes.int32).cumsum() - 1).maximum(0).minimum(source.numel() - 1)
  return m.where(_take_rows(source.reshape(-1).cast(self.dtype), rank), self.expand(shape).reshape(-1)).reshape(shape)


@aten("searchsorted.Tensor")
def searchsorted(sorted_sequence: Tensor, self: Tensor, *, out_int32: bool = False, right: bool = False, side: str | None = None,
                 sorter: Tensor | None = None) -> Tensor:
  """Insertion points by counting boundaries below each value (< for left, <= for right), on the device."""
  if sorter is not None: sorted_sequence = sorted_sequence.gather(-1, sorter.cast(dtypes.int32))
  right = right or side == "right"
  seq, vals = sorted_sequence.unsqueeze(-2), self.unsqueeze(-1)
  if sorted_sequence.ndim == 1: seq = sorted_sequence.reshape((1,) * self.ndim + (-1,))
  below = (seq <= vals) if right else (seq < vals)
  return below.cast(dtypes.int32).sum(-1).cast(dtypes.int32 if out_int32 else dtypes.int64)


@aten("nonzero_static")
def nonzero_static(self: Tensor, *, size: int, fill_value: int = -1) -> Tensor:
  """nonzero padded or cut to `size` rows: the shape is known, so nothing is read back."""
  flat = self.reshape(-1).cast(dtypes.bool)
  if size == 0 or flat.shape[0] == 0: return Tensor.full((size, self.ndim), fill_value, dtype=dtypes.int64)
  rank = flat.cast(dtypes.int32).cumsum() - 1
  hit = flat.unsqueeze(0) & rank.unsqueeze(0).eq(Tensor.arange(size, dtype=dtypes.int32).unsqueeze(1))
  pos = hit.where(Tensor.arange(flat.shape[0], dtype=dtypes.int32).unsqueeze(0), 0).sum(1).cast(dtypes.int64)
  found = hit.any(1).unsqueeze(1)
  cols, div_ = [], 1
  for n in reversed(self.shape):
    cols.append((pos // div_) % n)
    div_ *= n
  idx = Tensor.stack(*cols[::-1], dim=1) if cols else Tensor.zeros(size, 0, dtype=dtypes.int64)
  return found.where(idx, fill_value)


@aten("put")
def put(self: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
  """Writes into the flattened tensor (index_put on its one dim)."""
  return index_put(self.reshape(-1), [index.reshape(-1)], source.reshape(-1), accumulate).reshape(self.shape)


@aten("index_fill.int_Scalar", "index_fill.int_Tensor")
def index_fill(self: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
  if self.ndim == 0: return self.const_like(0).cast(self.dtype) + cast_to(value, self.dtype) if index.numel() else self
  d, idx = dim % self.ndim, index.reshape(-1).cast(dtypes.int32)
  idx = (idx < 0).where(idx + self.shape[d], idx)
  hit = (Tensor.arange(self.shape[d], dtype=dtypes.int32).unsqueeze(1) == idx.unsqueeze(0)).any(1)
  hit = hit.reshape(tuple(self.shape[d] if i == d else 1 for i in range(self.ndim)))
  v = value.reshape(()).cast(self.dtype) if isinstance(value, Tensor) else value
  return hit.where(v, self).cast(self.dtype)


@aten("index_add")
def index_add(self: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
  if self.ndim == 0 or index.numel() == 0: return self + (source.sum() * alpha if index.numel() else 0)
  d = dim % self.ndim
  idx = index.reshape(tuple(-1 if i == d else 1 for i in range(source.ndim))).expand(source.shape).cast(dtypes.int32)
  return self.scatter_reduce(d, idx, (source * alpha).cast(self.dtype), "sum")


@aten("kthvalue")
def kthvalue(self: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  values, idx = sort(self, dim)
  d = dim % self.ndim
  pick = tuple(slice(k - 1, k) if i == d else slice(None) for i in range(self.ndim))
  v, i = values[pick], idx[pick]
  return (v, i) if keepdim else (v.squeeze(d), i.squeeze(d))


@aten("median.dim")
def median_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return kthvalue(self, (self.shape[dim] - 1) // 2 + 1, dim, keepdim)


@aten("median")
def median(self: Tensor) -> Tensor:
  return median_dim(self.reshape(-1), 0)[0] if self.numel() else Tensor.full((), float("nan"), dtype=self.dtype)
