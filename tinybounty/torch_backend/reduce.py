"""Reductions with static shapes: sum, mean, prod, extremes and their indices, var/std, cumulative sums and extremes,
logsumexp, softmax and its backward, kthvalue and median."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.torch_backend.table import (
  aten,
  dtype_category,
  float_dtype,
  opmath,
  reduce_dims,
  to_tiny_dtype,
)


def _acc_dtype(x: Tensor, dtype: torch.dtype | None) -> DType:
  if dtype is not None: return to_tiny_dtype(dtype)
  return dtypes.int64 if dtype_category(x.dtype) < 2 else x.dtype


@aten("sum", "sum.dim_IntList")
def sum_(self: Tensor, dim: Sequence[int] | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  return self.cast(_acc_dtype(self, dtype)).sum(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("mean", "mean.dim")
def mean(self: Tensor, dim: Sequence[int] | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  x = self.cast(to_tiny_dtype(dtype) if dtype is not None else self.dtype)
  if not dtypes.is_float(x.dtype): raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, got {x.dtype}")
  return x.mean(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("prod", "prod.dim_int")
def prod(self: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: torch.dtype | None = None) -> Tensor:
  return self.cast(_acc_dtype(self, dtype)).prod(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("amax")
def amax(self: Tensor, dim: Sequence[int] = (), keepdim: bool = False) -> Tensor: return self.max(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("amin")
def amin(self: Tensor, dim: Sequence[int] = (), keepdim: bool = False) -> Tensor: return self.min(reduce_dims(dim, self.ndim), keepdim=keepdim)


aten("max")(lambda self: self.max())
aten("min")(lambda self: self.min())


@aten("max.dim")
def max_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return self.max(dim, keepdim=keepdim), argmax(self, dim, keepdim)


@aten("min.dim")
def min_dim(self: Tensor, dim: int, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  if self.ndim == 0: return self, Tensor(0, dtype=dtypes.int64)
  return self.min(dim, keepdim=keepdim), argmin(self, dim, keepdim)


@aten("argmax")
def argmax(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
  if self.ndim == 0: return Tensor(0, dtype=dtypes.int64)
  out = self.argmax(dim, keepdim=keepdim).cast(dtypes.int64)
  return out.reshape((1,) * self.ndim) if dim is None and keepdim else out


@aten("argmin")
def argmin(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
  if self.ndim == 0: return Tensor(0, dtype=dtypes.int64)
  out = self.argmin(dim, keepdim=keepdim).cast(dtypes.int64)
  return out.reshape((1,) * self.ndim) if dim is None and keepdim else out


@aten("any", "any.dim", "any.dims")
def any_(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
  return self.cast(dtypes.bool).any(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("all", "all.dim", "all.dims")
def all_(self: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
  return self.cast(dtypes.bool).all(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("var.correction")
def var(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> Tensor:
  return self.var(reduce_dims(dim, self.ndim), keepdim=keepdim, correction=1 if correction is None else correction)


@aten("var_mean.correction")
def var_mean(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> tuple[Tensor, Tensor]:
  return var(self, dim, correction=correction, keepdim=keepdim), self.mean(reduce_dims(dim, self.ndim), keepdim=keepdim)


@aten("std.correction")
def std(self: Tensor, dim: Sequence[int] | None = None, *, correction: float | None = None, keepdim: bool = False) -> Tensor:
  return var(self, dim, correction=correction, keepdim=keepdim).sqrt()


@aten("cumsum")
def cumsum(self: Tensor, dim: int, *, dtype: torch.dtype | None = None) -> Tensor:
  x = self.cast(_acc_dtype(self, dtype))
  return x.cumsum(dim) if x.ndim else x


@aten("logsumexp")
def logsumexp(self: Tensor, dim: Sequence[int], keepdim: bool = False) -> Tensor:
  x, dims = self.cast(float_dtype(self.dtype)), reduce_dims(dim, self.ndim)
  if x.ndim == 0: return x
  m = x.max(dims, keepdim=True)
  m = m.isinf().where(0, m)
  out = (x - m).exp().sum(dims, keepdim=True).log() + m
  return out if keepdim else out.reshape(tuple(n for i, n in enumerate(x.shape) if i not in dims))


@aten("_logcumsumexp")
def logcumsumexp(self: Tensor, dim: int) -> Tensor: return self.logcumsumexp(dim) if self.ndim else self


def _to_float_if(x: Tensor, half_to_float: bool) -> Tensor: return x.cast(dtypes.float32) if half_to_float else x


@aten("_softmax")
def softmax(self: Tensor, dim: int, half_to_float: bool) -> Tensor:
  return _to_float_if(opmath(lambda x: x.softmax(dim) if x.ndim else x.const_like(1))(self), half_to_float)


@aten("_log_softmax")
def log_softmax(self: Tensor, dim: int, half_to_float: bool) -> Tensor:
  return _to_float_if(opmath(lambda x: x.log_softmax(dim) if x.ndim else x.const_like(0))(self), half_to_float)


@aten("_softmax_backward_data")
@opmath
def softmax_backward(grad_output: Tensor, output: Tensor, dim: int, input_dtype: torch.dtype) -> Tensor:
  return (output * (grad_output - (grad_output * output).sum(dim, keepdim=True))).cast(to_tiny_dtype(input_dtype))


@aten("_log_softmax_backward_data")
@opmath
def log_softmax_backward(grad_output: Tensor, output: Tensor, dim: int, input_dtype: torch.dtype) -> Tensor:
  return (grad_output - output.exp() * grad_output.sum(dim, keepdim=True)).cast(to_tiny_dtype(input_dtype))


def _cum_extreme(self: Tensor, dim: int, values: Tensor) -> tuple[Tensor, Tensor]:
  """Indices like the CPU's: the last position so far holding the running extreme."""
  if self.ndim == 0: return values, Tensor(0, dtype=dtypes.int64)
  x, v, n = self.transpose(dim, -1), values.transpose(dim, -1), self.shape[dim]
  j = Tensor.arange(n, dtype=dtypes.int32)
  hit = (x.unsqueeze(-2) == v.unsqueeze(-1)) & (j.reshape(1, n) <= j.reshape(n, 1))
  return values, hit.where(j, -1).max(-1).cast(dtypes.int64).transpose(dim, -1)


@aten("cummax")
def cummax(self: Tensor, dim: int) -> tuple[Tensor, Tensor]: return _cum_extreme(self, dim, self.cummax(dim)[0] if self.ndim else self)


@aten("cummin")
def cummin(self: Tensor, dim: int) -> tuple[Tensor, Tensor]: return _cum_extreme(self, dim, self.cummin(dim)[0] if self.ndim else self)
