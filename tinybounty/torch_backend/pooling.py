"""3-d average pooling and adaptive pooling of any rank on the device (the 2-d fixed-window pools live in ops.py).

Adaptive windows follow PyTorch: output i of a dim of size n pooled to o covers [floor(i n / o), ceil((i + 1) n / o)).
Adaptive max pooling is separable: the max (and the first position holding it, in row-major order, as the CPU's
indices) is taken one dim at a time, innermost first. Backwards take tinygrad's gradient or route through indices.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.torch_backend.table import aten


def _pool_args(kernel_size: Sequence[int], stride: Sequence[int], padding: Any, dilation: Any, nd: int = 2) -> tuple:
  def full(v: Any) -> tuple: return tuple(v) * (nd // len(v)) if isinstance(v, (list, tuple)) else (v,) * nd
  k = full(kernel_size)
  return k, full(stride) if stride else k, full(padding), full(dilation)


@aten("max_pool2d_with_indices")
def max_pool2d_with_indices(self: Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (), padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False) -> tuple[Tensor, Tensor]:
  k, s, p, d = _pool_args(kernel_size, stride, padding, dilation)
  out, idx = self.max_pool2d(k, s, d, p, ceil_mode=ceil_mode, return_indices=True)
  return out, idx.cast(dtypes.int64)


def _unpool_grad(grad_output: Tensor, self: Tensor, indices: Tensor, nd: int) -> Tensor:
  """Route each output gradient to the input position its index names (summing where windows overlap)."""
  spatial, lead = math.prod(self.shape[-nd:]), grad_output.shape[:-nd]
  g, i = grad_output.reshape(*lead, -1, 1), indices.reshape(*lead, -1, 1)
  onehot = i == Tensor.arange(spatial, dtype=i.dtype).reshape(1, spatial)
  return (onehot.where(g, 0)).sum(-2).reshape(self.shape).cast(self.dtype)


@aten("max_pool2d_with_indices_backward")
def max_pool2d_with_indices_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                                     padding: Any, dilation: Any, ceil_mode: bool, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 2)


@aten("max_pool3d_with_indices_backward")
def max_pool3d_with_indices_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int],
                                     padding: Any, dilation: Any, ceil_mode: bool, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 3)


@aten("avg_pool2d")
def avg_pool2d(self: Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (), padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
  k, s, p, _ = _pool_args(kernel_size, stride, padding, 1)
  if divisor_override is not None: return _sum_pool(self, k, s, p, ceil_mode) / divisor_override
  return self.avg_pool2d(k, s, 1, p, ceil_mode, count_include_pad)


def _sum_pool(x: Tensor, k: tuple, s: tuple, p: tuple, ceil_mode: bool) -> Tensor:
  """Window sums over the last len(k) dims with PyTorch's output size (ceil_mode windows must start inside the input
  or left padding)."""
  nd, out = len(k), []
  for size, kk, ss, pp in zip(x.shape[-nd:], k, s, p):
    n = -(-(size + 2 * pp - kk) // ss) + 1 if ceil_mode else (size + 2 * pp - kk) // ss + 1
    if ceil_mode and (n - 1) * ss >= size + pp: n -= 1
    out.append(n)
  extra = [max(0, (n - 1) * ss + kk - (size + 2 * pp)) for n, size, kk, ss, pp in zip(out, x.shape[-nd:], k, s, p)]
  xp = x.pad(((0, 0),) * (x.ndim - nd) + tuple((pp, pp + e) for pp, e in zip(p, extra)))
  return xp._pool(k, s).sum(tuple(range(-nd, 0)))[(...,) + tuple(slice(0, n) for n in out)]


@aten("avg_pool2d_backward")
def avg_pool2d_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Any,
                        ceil_mode: bool, count_include_pad: bool, divisor_override: int | None) -> Tensor:
  x = self.detach()
  out = avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
  return out.gradient(x, gradient=grad_output)[0]


def _adaptive_weights(size: int, out: int, dtype: DType) -> Tensor:
  """(out, size) averaging matrix: row i averages [floor(i*size/out), ceil((i+1)*size/out))."""
  rows = []
  for i in range(out):
    lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
    rows.append([1 / (hi - lo) if lo <= j < hi else 0.0 for j in range(size)])
  return Tensor(rows, dtype=dtype)


@aten("_adaptive_avg_pool2d")
def adaptive_avg_pool2d(self: Tensor, output_size: Sequence[int]) -> Tensor:
  h, w = self.shape[-2:]
  oh, ow = output_size
  if h % oh == 0 and w % ow == 0: return self.avg_pool2d((h // oh, w // ow))
  return _adaptive_weights(h, oh, self.dtype) @ self @ _adaptive_weights(w, ow, self.dtype).T


@aten("_adaptive_avg_pool2d_backward")
def adaptive_avg_pool2d_backward(grad_output: Tensor, self: Tensor) -> Tensor:
  x = self.detach()
  return adaptive_avg_pool2d(x, grad_output.shape[-2:]).gradient(x, gradient=grad_output)[0]


@aten("avg_pool3d")
def avg_pool3d(self: Tensor, kernel_size: Sequence[int], stride: Sequence[int] = (), padding: Any = 0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
  k, s, p, _ = _pool_args(kernel_size, stride, padding, 1, nd=3)
  if divisor_override is not None: return _sum_pool(self, k, s, p, ceil_mode) / divisor_override
  return self.avg_pool2d(k, s, 1, p, ceil_mode, count_include_pad)


@aten("avg_pool3d_backward")
def avg_pool3d_backward(grad_output: Tensor, self: Tensor, kernel_size: Sequence[int], stride: Sequence[int], padding: Any,
                        ceil_mode: bool, count_include_pad: bool, divisor_override: int | None) -> Tensor:
  x = self.detach()
  return avg_pool3d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override).gradient(x, gradient=grad_output)[0]


def adaptive_avg(x: Tensor, output_size: Sequence[int]) -> Tensor:
  """Average each of the last len(output_size) dims with its (out, size) window matrix."""
  for i, o in enumerate(output_size):
    d = x.ndim - len(output_size) + i
    x = (x.transpose(d, -1) @ _adaptive_weights(x.shape[d], o, x.dtype).T).transpose(d, -1)
  return x


@aten("_adaptive_avg_pool3d")
def adaptive_avg_pool3d(self: Tensor, output_size: Sequence[int]) -> Tensor: return adaptive_avg(self, output_size)


@aten("_adaptive_avg_pool3d_backward")
def adaptive_avg_pool3d_backward(grad_output: Tensor, self: Tensor) -> Tensor:
  x = self.detach()
  return adaptive_avg(x, grad_output.shape[-3:]).gradient(x, gradient=grad_output)[0]


def _window_mask(n: int, o: int) -> Tensor:
  """(o, n) bool: which inputs each adaptive output window covers."""
  # from aranges, not a host list: a list is copied to the device inside the step, and a step with a copy is not captured
  i, j = Tensor.arange(o).unsqueeze(-1), Tensor.arange(n)
  return ((i * n) // o <= j) & (j < ((i + 1) * n + o - 1) // o)


def adaptive_max(x: Tensor, output_size: Sequence[int]) -> tuple[Tensor, Tensor]:
  """(values, int64 indices into the flattened pooled dims) of adaptive max pooling over the last len(output_size) dims."""
  nd, idx, inner = len(output_size), None, 1
  for i in reversed(range(nd)):
    d, o = x.ndim - nd + i, output_size[i]
    n = x.shape[d]
    xt = x.transpose(d, -1).unsqueeze(-2)                                   # (..., 1, n)
    win = _window_mask(n, o)
    vals = win.where(xt, float("-inf")).max(-1)                             # (..., o)
    first = (win & (xt == vals.unsqueeze(-1))).where(Tensor.arange(n), n).min(-1)
    pos = first.cast(dtypes.int64) * inner
    if idx is not None: pos = pos + idx.transpose(d, -1).gather(-1, first.cast(dtypes.int32))
    x, idx, inner = vals.transpose(d, -1), pos.transpose(d, -1), inner * n
  return x, idx


@aten("adaptive_max_pool2d")
def adaptive_max_pool2d(self: Tensor, output_size: Sequence[int]) -> tuple[Tensor, Tensor]: return adaptive_max(self, output_size)


@aten("adaptive_max_pool3d")
def adaptive_max_pool3d(self: Tensor, output_size: Sequence[int]) -> tuple[Tensor, Tensor]: return adaptive_max(self, output_size)


@aten("adaptive_max_pool2d_backward")
def adaptive_max_pool2d_backward(grad_output: Tensor, self: Tensor, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 2)


@aten("adaptive_max_pool3d_backward")
def adaptive_max_pool3d_backward(grad_output: Tensor, self: Tensor, indices: Tensor) -> Tensor:
  return _unpool_grad(grad_output, self, indices, 3)
