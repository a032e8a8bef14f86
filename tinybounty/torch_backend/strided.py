"""PyTorch's strided layout expressed with tinygrad movement ops: read a strided view of a flat buffer, write one back.

A torch view is (size, stride, storage_offset) over a flat storage. `strided_read` builds it from the flat tinygrad
Tensor with shrink/pad/reshape/expand/permute only (no gather), including overlapping windows (unfold, stride 0).
`strided_write` is its inverse for layouts where each element has its own storage slot: it embeds a value into the
flat buffer with pads and reshapes and merges it with `where`, so every other view of that storage sees the write.
"""
from __future__ import annotations

import math
from typing import Sequence

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.scalars import device_offset
from tinybounty.torch_backend.scatter import scatter

SMALL_WRITE = 64  # views up to this many elements are written through positions (see _scatter)


def small_view(size: tuple[int, ...]) -> bool:
  """Whether a view of `size` is written through its positions (_scatter), so its offset can be an argument in device
  memory: the one rule of the eager write, capture's key (capture._template) and what it learns (materialize)."""
  return math.prod(size) <= SMALL_WRITE


def _split_last(x: Tensor, n: int, s: int, inner: int) -> Tensor:
  """x[..., L] -> y[..., n, inner] with y[..., i, j] = x[..., i*s + j] (windows may overlap when inner > s)."""
  lead, L = x.shape[:-1], x.shape[-1]
  if inner <= s:
    return x.pad(((0, 0),) * len(lead) + ((0, n * s - L),)).reshape(*lead, n, s).shrink_to(*lead, n, inner)
  # overlapping windows: tile the row m times, then reread it with a row pitch of L+s, which steps s per row
  m = math.ceil(n * (L + s) / L)
  tiled = x.unsqueeze(-2).expand(*lead, m, L).reshape(*lead, m * L)
  return tiled.shrink_to(*lead, n * (L + s)).reshape(*lead, n, L + s).shrink_to(*lead, n, inner)


def _layout(size: Sequence[int], stride: Sequence[int]) -> tuple[list[int], list[int]]:
  """The dims that address memory (size > 1, stride != 0), ordered outermost (largest stride) first."""
  dims = [d for d in range(len(size)) if size[d] > 1 and stride[d] != 0]
  return sorted(dims, key=lambda d: -stride[d]), dims


def _extent(size: Sequence[int], stride: Sequence[int], dims: Sequence[int]) -> int:
  return 1 + sum((size[d] - 1) * stride[d] for d in dims)


def strided_read(flat: Tensor, size: Sequence[int], stride: Sequence[int], offset: int) -> Tensor:
  """The tensor of shape `size` whose element i is flat[offset + sum(i_k * stride_k)] (strides >= 0)."""
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if any(s < 0 for s in stride): raise NotImplementedError(f"tiny: negative strides {stride} are not supported")
  if math.prod(size) == 0: return Tensor.empty(*size, dtype=flat.dtype, device=flat.device) if size else flat[:0]
  order, _ = _layout(size, stride)
  x = flat.shrink(((offset, offset + _extent(size, stride, order)),))
  for k, d in enumerate(order): x = _split_last(x, size[d], stride[d], _extent(size, stride, order[k + 1:]))
  x = x.reshape(tuple(size[d] for d in order))
  # back to torch's dim order, then the broadcast (stride 0) and unit dims
  x = x.permute(*sorted(range(len(order)), key=lambda i: order[i])) if order else x
  kept = sorted(order)
  return x.reshape(tuple(size[d] if d in kept else 1 for d in range(len(size)))).expand(size)


def is_embeddable(size: Sequence[int], stride: Sequence[int]) -> bool:
  """True when every element has its own storage slot and each dim's stride clears the span of the dims inside it."""
  order, _ = _layout(size, stride)
  if any(size[d] > 1 and stride[d] == 0 for d in range(len(size))): return False
  return all(stride[d] >= _extent(size, stride, order[k + 1:]) for k, d in enumerate(order))


def _embed(value: Tensor, size: Sequence[int], stride: Sequence[int], offset: int, total: int) -> Tensor:
  order, _ = _layout(size, stride)
  x = value.reshape(*(size[d] for d in sorted(order))) if order else value.reshape(1)
  if order: x = x.permute(*(sorted(order).index(d) for d in order))
  x = x.unsqueeze(-1)
  for k in range(len(order) - 1, -1, -1):
    n, s, inner = size[order[k]], stride[order[k]], _extent(size, stride, order[k + 1:])
    lead = x.shape[:-2]
    x = x.pad(((0, 0),) * (len(lead) + 1) + ((0, s - inner),)).reshape(*lead, n * s).shrink_to(*lead, (n - 1) * s + inner)
  x = x.reshape(-1)
  return x.pad(((offset, total - offset - x.shape[0]),))


def strided_write(flat: Tensor, value: Tensor, size: Sequence[int], stride: Sequence[int], offset: int, uniform: bool = False) -> Tensor:
  """The flat buffer with the view (size, stride, offset) replaced by `value` (same shape as the view).

  `uniform` says every element gets the same value (fill_, zero_), which PyTorch allows through broadcast (stride 0) dims."""
  size, stride, total = tuple(int(s) for s in size), tuple(int(s) for s in stride), flat.shape[0]
  value = value.cast(flat.dtype)
  if math.prod(size) == 0: return flat
  if uniform and any(n > 1 and s == 0 for n, s in zip(size, stride)):
    value = value.shrink(tuple((0, 1) if n > 1 and s == 0 else None for n, s in zip(size, stride)))
    size = tuple(1 if s == 0 else n for n, s in zip(size, stride))
  if math.prod(size) == total and is_contiguous(size, stride) and offset == 0: return value.reshape(total)
  if any(size[d] > 1 and stride[d] == 0 for d in range(len(size))):
    raise RuntimeError("unsupported operation: more than one element of the written-to tensor refers to a single memory location. "
                       "Please clone() the tensor before performing the operation.")
  if not is_embeddable(size, stride) or small_view(size): return _scatter(flat, value, size, stride, offset)
  mask = _embed(Tensor.ones(*size, dtype=dtypes.bool, device=flat.device), size, stride, offset, total)
  return mask.where(_embed(value, size, stride, offset, total), flat)


def _scatter(flat: Tensor, value: Tensor, size: Sequence[int], stride: Sequence[int], offset: int) -> Tensor:
  """Write through explicit positions: exact for any layout but O(view x storage); used for interleaved layouts and
  for small views. The offset is a device buffer, not a constant, so a loop of small writes at different offsets
  (torch.nn.init.dirac_, x[i, j] = v) compiles one kernel, not one per offset."""
  return scatter(flat, 0, _positions(flat, size, stride, offset), value.reshape(-1))


def gather_read(flat: Tensor, size: Sequence[int], stride: Sequence[int], offset: int) -> Tensor:
  """strided_read through explicit positions, the offset in device memory as _scatter's: a small view read at a moving
  offset (`x[i] += 1` in a loop) then compiles one kernel, not one per offset."""
  return flat.gather(0, _positions(flat, size, stride, offset)).reshape(size)


def _positions(flat: Tensor, size: Sequence[int], stride: Sequence[int], offset: int) -> Tensor:
  """The storage position of each element of the view, flattened: offset + sum(i_k * stride_k)."""
  pos = device_offset(offset, flat.device).reshape((1,) * len(size)).expand(size)
  for d, (n, s) in enumerate(zip(size, stride)):
    pos = pos + (Tensor.arange(n, dtype=dtypes.int32).to(flat.device) * s).reshape(*(n if i == d else 1 for i in range(len(size))))
  return pos.reshape(-1)


def is_contiguous(size: Sequence[int], stride: Sequence[int]) -> bool:
  """PyTorch's contiguity: row-major strides, ignoring dims of size 1."""
  expected = 1
  for n, s in zip(reversed(size), reversed(stride)):
    if n == 1: continue
    if s != expected: return False
    expected *= n
  return True
