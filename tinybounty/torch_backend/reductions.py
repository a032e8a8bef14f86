"""Data-dependent reductions on the device: unique, unique_consecutive, mode, nanmedian, histc, index_reduce.

unique and unique_consecutive return as many elements as there are distinct values: like masked_select they read
that one count back (`stats()['size_syncs']`); everything else, values, inverse indices and counts included, stays on
the device. The others have static output shapes and read nothing back.
"""
from __future__ import annotations

from typing import Any

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.ops import _nonzero, aten, scatter_reduce

_EMPTY_I64 = lambda: Tensor.empty(0, dtype=dtypes.int64)  # noqa: E731


def _runs(v: Tensor) -> Tensor:
  """True where a run of equal values starts in the 1-d `v`."""
  return Tensor.ones(1, dtype=dtypes.bool).cat(v[1:] != v[:-1]) if v.shape[0] > 1 else Tensor.ones(v.shape[0], dtype=dtypes.bool)


def _unique_sorted(self: Tensor, return_inverse: bool, return_counts: bool) -> tuple[Tensor, Tensor, Tensor]:
  flat = self.reshape(-1)
  if flat.shape[0] == 0: return flat, Tensor.zeros(*self.shape, dtype=dtypes.int64) if return_inverse else _EMPTY_I64(), _EMPTY_I64()
  v = flat.sort()[0]
  (pos,) = _nonzero(_runs(v))                                   # the one size sync: how many distinct values
  out = v[pos.cast(dtypes.int32)]
  inverse = (out.unsqueeze(0) < flat.unsqueeze(1)).cast(dtypes.int64).sum(1).reshape(self.shape) if return_inverse else _EMPTY_I64()
  counts = (flat.unsqueeze(0) == out.unsqueeze(1)).cast(dtypes.int64).sum(1) if return_counts else _EMPTY_I64()
  return out, inverse, counts


@aten("_unique2")
def unique2(self: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False) -> tuple[Tensor, Tensor, Tensor]:
  """Distinct values, always sorted (as the CPU returns them whatever `sorted` says)."""
  return _unique_sorted(self, return_inverse, return_counts)


@aten("_unique")
def unique(self: Tensor, sorted: bool = True, return_inverse: bool = False) -> tuple[Tensor, Tensor]:
  out, inverse, _ = _unique_sorted(self, return_inverse, False)
  return out, inverse


@aten("unique_consecutive")
def unique_consecutive(self: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
  if dim is not None: raise NotImplementedError("tiny: aten::unique_consecutive (overload 'default') with dim= is not implemented")
  flat = self.reshape(-1)
  if flat.shape[0] == 0: return flat, Tensor.zeros(*self.shape, dtype=dtypes.int64) if return_inverse else _EMPTY_I64(), _EMPTY_I64()
  starts = _runs(flat)
  (pos,) = _nonzero(starts)
  inverse = (starts.cast(dtypes.int64).cumsum() - 1).reshape(self.shape) if return_inverse else _EMPTY_I64()
  counts = pos[1:].cat(Tensor([flat.shape[0]], dtype=dtypes.int64)) - pos if return_counts else _EMPTY_I64()
  return flat[pos.cast(dtypes.int32)], inverse, counts


def _last(dim: int, x: Tensor, hit: Tensor) -> Tensor:
  """Index along `dim` of the last True of `hit`."""
  n = x.shape[dim]
  ar = Tensor.arange(n).reshape(*(n if i == dim else 1 for i in range(x.ndim)))
  return hit.where(ar, -1).max(dim).cast(dtypes.int64)


@aten("mode")
def mode(self: Tensor, dim: int = -1, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  """The most frequent value (the smallest on ties) and the last index holding it, like the CPU."""
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  x = self.transpose(dim, -1)
  counts = (x.unsqueeze(-1) == x.unsqueeze(-2)).cast(dtypes.int32).sum(-1)           # (..., n): occurrences of each element
  best = (counts == counts.max(-1, keepdim=True)).where(x, float("inf") if dtypes.is_float(x.dtype) else dtypes.max(x.dtype)).min(-1, keepdim=True)
  idx = _last(x.ndim - 1, x, x == best)
  vals, idx = best.squeeze(-1).unsqueeze(-1).transpose(dim, -1), idx.unsqueeze(-1).transpose(dim, -1)
  return (vals, idx) if keepdim else (vals.squeeze(dim), idx.squeeze(dim))


@aten("nanmedian.dim")
def nanmedian_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  """The lower median of the non-NaN values along dim (NaN where all are NaN)."""
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  d = dim % self.ndim
  nan = self.isnan()
  vals, idx = self.isnan().where(float("inf"), self).sort(d)
  k = ((~nan).cast(dtypes.int32).sum(d, keepdim=True) - 1).maximum(0) // 2
  v, i = self.gather(d, idx.gather(d, k)), idx.gather(d, k).cast(dtypes.int64)
  return (v, i) if keepdim else (v.squeeze(d), i.squeeze(d))


@aten("nanmedian")
def nanmedian(self: Tensor) -> Tensor:
  if self.numel() == 0: return Tensor.full((), float("nan"), dtype=self.dtype)
  return nanmedian_dim(self.reshape(-1), 0)[0]


@aten("histc")
def histc(self: Tensor, bins: int = 100, min: Any = 0, max: Any = 0) -> Tensor:
  """Counts in `bins` equal bins over [min, max] (the data's range when min == max); values outside are ignored."""
  x = self.reshape(-1)
  if min == max and x.shape[0]: lo, hi = x.min(), x.max()
  else: lo, hi = Tensor(float(min), dtype=x.dtype), Tensor(float(max), dtype=x.dtype)
  lo, hi = (lo == hi).where(lo - 1, lo), (lo == hi).where(hi + 1, hi)
  b = ((x - lo) * bins / (hi - lo)).floor().cast(dtypes.int32).minimum(bins - 1)
  inside = (x >= lo) & (x <= hi)
  return ((b.unsqueeze(1) == Tensor.arange(bins, dtype=dtypes.int32)) & inside.unsqueeze(1)).cast(self.dtype).sum(0)


@aten("index_reduce")
def index_reduce(self: Tensor, dim: int, index: Tensor, source: Tensor, reduce: str, *, include_self: bool = True) -> Tensor:
  """self with source's slices combined into the slices `index` names (prod, mean, amax, amin) along dim."""
  if self.ndim == 0: return scatter_reduce(self, 0, index, source, reduce, include_self=include_self)
  d = dim % self.ndim
  idx = index.reshape(tuple(-1 if i == d else 1 for i in range(source.ndim))).expand(source.shape)
  return scatter_reduce(self, d, idx, source, reduce, include_self=include_self)


def _histogram(x: Tensor, edges: Tensor, weight: Tensor | None, density: bool, uniform: bool) -> Tensor:
  """Counts (or summed weights) per bin [e_i, e_i+1), the last bin closed; values outside the edges are ignored.
  Uniform bins are found arithmetically like the CPU's (which gives other answers than the edges right at an edge)."""
  nb = edges.shape[0] - 1
  v, w = x.reshape(-1, 1), (weight.reshape(-1, 1) if weight is not None else x.reshape(-1, 1).ones_like())
  inside = (v >= edges[0]) & (v <= edges[-1])
  if uniform: b = ((v - edges[0]) * nb / (edges[-1] - edges[0])).floor().cast(dtypes.int32).minimum(nb - 1)
  else: b = ((v >= edges[:-1].reshape(1, -1)).cast(dtypes.int32).sum(-1, keepdim=True) - 1).minimum(nb - 1)
  hist = ((b == Tensor.arange(nb, dtype=dtypes.int32)) & inside).where(w, 0).sum(0).cast(x.dtype)
  return hist / (hist.sum() * (edges[1:] - edges[:-1])) if density else hist


@aten("histogram.bin_ct")
def histogram(self: Tensor, bins: int = 100, *, range: Any = None, weight: Tensor | None = None, density: bool = False) -> tuple[Tensor, Tensor]:
  x = self.reshape(-1)
  if range is not None: lo, hi = Tensor(float(range[0]), dtype=x.dtype), Tensor(float(range[1]), dtype=x.dtype)
  elif x.shape[0]: lo, hi = x.min(), x.max()
  else: lo, hi = Tensor(0.0, dtype=x.dtype), Tensor(0.0, dtype=x.dtype)
  lo, hi = (lo == hi).where(lo - 0.5, lo), (lo == hi).where(hi + 0.5, hi)   # numpy's (and the CPU's) empty-range widening
  edges = lo + (hi - lo) * Tensor.arange(bins + 1, dtype=x.dtype) / bins
  return _histogram(x, edges, weight, density, True), edges


@aten("histogram.bins_tensor")
def histogram_bins(self: Tensor, bins: Tensor, *, weight: Tensor | None = None, density: bool = False) -> tuple[Tensor, Tensor]:
  return _histogram(self.reshape(-1), bins.cast(self.dtype), weight, density, False), bins
