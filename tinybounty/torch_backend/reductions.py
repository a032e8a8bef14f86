"""Data-dependent reductions on the device: unique, unique_consecutive, mode, nanmedian, histc, histogram,
index_reduce, segment_reduce, embedding_bag.

unique and unique_consecutive return as many elements as there are distinct values: like masked_select they read
that one count back (`stats()['size_syncs']`); everything else, values, inverse indices and counts included, stays on
the device. The others have static output shapes and read nothing back.
"""
from __future__ import annotations

from typing import Any

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.indexing import _nonzero, scatter_reduce
from tinybounty.torch_backend.table import aten

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


def _segments(n: int, lengths: Tensor | None, offsets: Tensor | None, axis: int) -> tuple[Tensor, Tensor]:
  """(mask (S, n): element j in segment s, segment lengths (S,)) from 1-d lengths or offsets."""
  if (lengths is not None and lengths.ndim > 1) or (offsets is not None and offsets.ndim > 1):
    raise NotImplementedError("tiny: aten::segment_reduce (overload 'default') with batched lengths/offsets is not implemented")
  if lengths is not None: ends = lengths.cast(dtypes.int32).cumsum(0) if lengths.shape[0] else lengths.cast(dtypes.int32)
  else: ends = offsets[1:].cast(dtypes.int32)
  lens = lengths.cast(dtypes.int32) if lengths is not None else (offsets[1:] - offsets[:-1]).cast(dtypes.int32)
  j = Tensor.arange(n, dtype=dtypes.int32).reshape(1, n)
  return (j >= (ends - lens).reshape(-1, 1)) & (j < ends.reshape(-1, 1)), lens


_EMPTY = {"sum": 0.0, "prod": 1.0, "mean": float("nan"), "max": float("-inf"), "min": float("inf")}


@aten("segment_reduce")
def segment_reduce(data: Tensor, reduce: str, *, lengths: Tensor | None = None, indices: Tensor | None = None, offsets: Tensor | None = None,
                   axis: int = 0, unsafe: bool = False, initial: Any = None) -> Tensor:
  """Reduce consecutive segments of `data` along axis; `initial` joins every reduction and fills empty segments."""
  x = data.transpose(axis, -1).unsqueeze(-2)                               # (..., 1, n)
  mask, lens = _segments(data.shape[axis], lengths, offsets, axis)
  init = _EMPTY[reduce] if initial is None else float(initial)
  if reduce in ("sum", "mean"): out = mask.where(x, 0).sum(-1) + (0.0 if initial is None else init)
  elif reduce == "prod": out = mask.where(x, 1).prod(-1) * (1.0 if initial is None else init)
  else: out = getattr(mask.where(x, _EMPTY[reduce]), reduce)(-1)
  if reduce in ("max", "min") and initial is not None: out = out.maximum(init) if reduce == "max" else out.minimum(init)
  if reduce == "mean": out = out / lens.maximum(1).cast(out.dtype)
  return (lens == 0).where(init, out).cast(data.dtype).transpose(axis, -1)


@aten("_segment_reduce_backward")
def segment_reduce_backward(grad: Tensor, output: Tensor, data: Tensor, reduce: str, *, lengths: Tensor | None = None,
                            offsets: Tensor | None = None, axis: int = 0, initial: Any = None) -> Tensor:
  """The CPU's gradients: every tied extreme gets the full gradient; prod's uses the product of the other elements."""
  x = data.transpose(axis, -1)                                             # (..., n)
  mask, lens = _segments(data.shape[axis], lengths, offsets, axis)
  g, o = grad.transpose(axis, -1), output.transpose(axis, -1)
  spread = lambda t: mask.where(t.unsqueeze(-1), 0).sum(-2)  # noqa: E731   (..., S) -> (..., n): each element's segment value
  if reduce == "sum": gx = spread(g)
  elif reduce == "mean": gx = spread(g / lens.maximum(1).cast(g.dtype))
  elif reduce in ("max", "min"): gx = spread(g) * (x == spread(o))
  else:
    same = (mask.unsqueeze(-1) & mask.unsqueeze(-2)).any(0) & (Tensor.eye(x.shape[-1]) == 0)   # (n, n): other members of my segment
    others = same.where(x.unsqueeze(-2), 1).prod(-1) * (1.0 if initial is None else float(initial))
    gx = spread(g) * others
  return gx.cast(data.dtype).transpose(axis, -1)


def _bags(indices: Tensor, offsets: Tensor, include_last_offset: bool, padding_idx: int) -> Tensor:
  """(B, N) bool: index n belongs to bag b (and is not padding)."""
  n = indices.shape[0]
  starts = offsets[:-1] if include_last_offset else offsets
  ends = offsets[1:] if include_last_offset else offsets[1:].cat(Tensor([n], dtype=offsets.dtype))
  j = Tensor.arange(n).reshape(1, n)
  member = (j >= starts.reshape(-1, 1)) & (j < ends.reshape(-1, 1))
  return member & (indices != padding_idx).reshape(1, n) if padding_idx >= 0 else member


@aten("_embedding_bag", "_embedding_bag_forward_only")
def embedding_bag(weight: Tensor, indices: Tensor, offsets: Tensor, scale_grad_by_freq: bool = False, mode: int = 0, sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False, padding_idx: int = -1) -> tuple:
  """(output, offset2bag, bag_size, max_indices): sums, means or maxima of each bag's rows (empty bags give zeros). The
  auxiliary outputs are this backend's own (for its backward): bag of each index, bag sizes, and each max's row."""
  member = _bags(indices, offsets, include_last_offset, padding_idx)                   # (B, N)
  rows = weight[indices.cast(dtypes.int32)]                                            # (N, D)
  if per_sample_weights is not None: rows = rows * per_sample_weights.reshape(-1, 1)
  size = member.cast(dtypes.int64).sum(1)
  inbag = member.unsqueeze(-1)
  if mode == 2:
    out = inbag.where(rows.unsqueeze(0), float("-inf")).max(1)
    hit = inbag & (rows.unsqueeze(0) == out.unsqueeze(1))
    maxi = hit.where(indices.reshape(1, -1, 1), -1).max(1).cast(dtypes.int64)
    out = (size > 0).reshape(-1, 1).where(out, 0)
  else:
    out = inbag.where(rows.unsqueeze(0), 0).sum(1)
    if mode == 1: out = out / size.maximum(1).reshape(-1, 1).cast(out.dtype)
    maxi = Tensor.zeros(*size.shape, dtype=dtypes.int64)
  bag_of = (member.cast(dtypes.int64) * Tensor.arange(member.shape[0]).reshape(-1, 1)).sum(0)
  return out.cast(weight.dtype), bag_of, size, maxi


@aten("_embedding_bag_dense_backward")
def embedding_bag_dense_backward(grad: Tensor, indices: Tensor, offset2bag: Tensor, bag_size: Tensor, maximum_indices: Tensor, num_weights: int,
                                 scale_grad_by_freq: bool, mode: int, per_sample_weights: Tensor | None, padding_idx: int = -1) -> Tensor:
  if scale_grad_by_freq: raise NotImplementedError("tiny: aten::_embedding_bag_dense_backward with scale_grad_by_freq=True is not implemented")
  rows = Tensor.arange(num_weights).reshape(-1, 1)
  if mode == 2:                                                                        # each (bag, column) max routes to its row
    return (maximum_indices.unsqueeze(0) == rows.unsqueeze(-1)).where(grad.unsqueeze(0), 0).sum(1).cast(grad.dtype)
  bag = offset2bag.cast(dtypes.int32)
  g = grad[bag]                                                                        # (N, D): each index's bag gradient
  if mode == 1: g = g / bag_size[bag].maximum(1).reshape(-1, 1).cast(g.dtype)
  if per_sample_weights is not None: g = g * per_sample_weights.reshape(-1, 1)
  onehot = indices.reshape(1, -1) == rows                                              # (W, N)
  if padding_idx >= 0: onehot = onehot & (indices != padding_idx).reshape(1, -1)
  return onehot.cast(g.dtype) @ g


@aten("_embedding_bag_backward")
def embedding_bag_backward(grad: Tensor, indices: Tensor, offsets: Tensor, offset2bag: Tensor, bag_size: Tensor, maximum_indices: Tensor,
                           num_weights: int, scale_grad_by_freq: bool, mode: int, sparse: bool, per_sample_weights: Tensor | None,
                           padding_idx: int = -1) -> Tensor:
  if sparse: raise NotImplementedError("tiny: aten::_embedding_bag_backward (overload 'default') with sparse=True is not implemented")
  return embedding_bag_dense_backward(grad, indices, offset2bag, bag_size, maximum_indices, num_weights, scale_grad_by_freq, mode,
                                      per_sample_weights, padding_idx)


@aten("_embedding_bag_per_sample_weights_backward")
def embedding_bag_per_sample_weights_backward(grad: Tensor, weight: Tensor, indices: Tensor, offsets: Tensor, offset2bag: Tensor, mode: int,
                                              padding_idx: int = -1) -> Tensor:
  g = (grad[offset2bag.cast(dtypes.int32)] * weight[indices.cast(dtypes.int32)]).sum(-1)
  return (indices != padding_idx).where(g, 0) if padding_idx >= 0 else g


@aten("hash_tensor")
def hash_tensor(self: Tensor, dim: Any = (), *, keepdim: bool = False, mode: int = 0) -> Tensor:
  """XOR of the elements' 64-bit patterns (floats as float64, integers as int64) over dim, the CPU's mode 0."""
  if mode != 0: raise NotImplementedError(f"tiny: aten::hash_tensor (overload 'default') with mode={mode} is not implemented")
  bits = self.cast(dtypes.float64 if dtypes.is_float(self.dtype) else dtypes.int64).bitcast(dtypes.uint64)
  dims = tuple(d % max(self.ndim, 1) for d in dim) if dim else tuple(range(self.ndim))
  rest = tuple(d for d in range(self.ndim) if d not in dims)
  x = bits.permute(rest + dims).reshape(*(self.shape[d] for d in rest), -1) if self.ndim else bits.reshape(1)
  while x.shape[-1] > 1:
    if x.shape[-1] % 2: x = x.pad(((0, 0),) * (x.ndim - 1) + ((0, 1),))
    h = x.shape[-1] // 2
    x = x[..., :h] ^ x[..., h:]
  out = x[..., 0] if x.shape[-1] else Tensor.zeros(*x.shape[:-1], dtype=dtypes.uint64)
  return out.reshape(tuple(1 if d in dims else self.shape[d] for d in range(self.ndim))) if keepdim else out
