"""Factories and random ops: empty, full, arange, scalar_tensor, fill, and draws from the device generator
(uniform, normal, bernoulli, randperm, dropout)."""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType

from tinybounty.torch_backend.random import key_for
from tinybounty.torch_backend.scalars import device_scalar
from tinybounty.torch_backend.strided import SMALL_WRITE
from tinybounty.torch_backend.table import (
  aten,
  result_dtype,
  to_tiny_dtype,
)


def factory_dtype(dtype: torch.dtype | None, *values: Any) -> DType:
  if dtype is not None: return to_tiny_dtype(dtype)
  return result_dtype(*values) if values else to_tiny_dtype(torch.get_default_dtype())


@aten("empty.memory_format", "empty_strided")
def empty(size: Sequence[int], *args: Any, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
          pin_memory: Any = None, memory_format: Any = None) -> Tensor:
  return Tensor.empty(*size, dtype=factory_dtype(dtype))


@aten("_efficientzerotensor")
def efficientzerotensor(size: Sequence[int], *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
                        pin_memory: Any = None) -> Tensor:
  return Tensor.zeros(*size, dtype=factory_dtype(dtype))


@aten("full")
def full(size: Sequence[int], fill_value: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
         pin_memory: Any = None) -> Tensor:
  return Tensor.full(tuple(size), fill_value, dtype=factory_dtype(dtype, fill_value))


@aten("full_like")
def full_like(self: Tensor, fill_value: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
              pin_memory: Any = None, memory_format: Any = None) -> Tensor:
  return Tensor.full(self.shape, fill_value, dtype=to_tiny_dtype(dtype) if dtype is not None else self.dtype)


@aten("scalar_tensor")
def scalar_tensor(s: Any, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None, pin_memory: Any = None) -> Tensor:
  return device_scalar(s, factory_dtype(dtype))  # x[i] = v goes through scalar_tensor and copy_: a new v, no new kernel


@aten("fill.Scalar", "fill.Tensor")
def fill(self: Tensor, value: Any) -> Tensor:
  if not isinstance(value, Tensor) and self.numel() <= SMALL_WRITE: value = device_scalar(value, self.dtype)
  return (value.reshape(()).cast(self.dtype).expand(self.shape) if isinstance(value, Tensor) else self.const_like(value)).contiguous()


@aten("zero")
def zero(self: Tensor) -> Tensor: return self.const_like(0)


@aten("arange.start_step", "arange.start", "arange")
def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: torch.dtype | None = None, layout: Any = None, device: Any = None,
           pin_memory: Any = None) -> Tensor:
  if end is None: start, end = 0, start
  dt = factory_dtype(dtype, start, end, step)
  n = max(0, math.ceil((end - start) / step))
  return (Tensor.arange(n, dtype=dtypes.float64 if dtypes.is_float(dt) else dtypes.int64) * step + start).cast(dt) if n else Tensor.empty(0, dtype=dt)


def _uniform01(shape: Sequence[int], dt: DType, generator: Any) -> Tensor:
  n = math.prod(shape)
  if n == 0: return Tensor.empty(*shape, dtype=dt)
  key, counter = key_for(generator, n)
  return Tensor._rand(key, counter, tuple(shape), dtypes.float32).cast(dt)


@aten("uniform")
def uniform(self: Tensor, from_: float = 0.0, to: float = 1.0, *, generator: Any = None) -> Tensor:
  return _uniform01(self.shape, self.dtype, generator) * (to - from_) + from_


@aten("normal_functional", "normal.default")
def normal(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
  n = math.prod(self.shape)
  u = _uniform01((2, (n + 1) // 2), dtypes.float32, generator)
  r, theta = (-2 * (1 - u[0]).log()).sqrt(), 2 * math.pi * u[1]
  z = r.unsqueeze(0) * Tensor.stack(theta.cos(), theta.sin())
  return (z.reshape(-1)[:n].reshape(self.shape) * std + mean).cast(self.dtype)


@aten("random.from", "random.to", "random")
def random_(self: Tensor, from_: int = 0, to: int | None = None, *, generator: Any = None) -> Tensor:
  if to is None: from_, to = (0, from_) if from_ else (0, 2 ** (dtypes.finfo(self.dtype)[1] + 1) if dtypes.is_float(self.dtype) else 2 ** 31)
  u = _uniform01(self.shape, dtypes.float64, generator)
  return (u * (to - from_)).floor().cast(dtypes.int64).add(from_).clip(from_, to - 1).cast(self.dtype)


@aten("bernoulli.p", "bernoulli.Tensor")
def bernoulli(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
  return (_uniform01(self.shape, dtypes.float32, generator) < p).cast(self.dtype)


@aten("bernoulli")
def bernoulli_self(self: Tensor, *, generator: Any = None) -> Tensor:
  return (_uniform01(self.shape, dtypes.float32, generator) < self).cast(self.dtype)


@aten("exponential")
def exponential(self: Tensor, lambd: float = 1.0, *, generator: Any = None) -> Tensor:
  return (-(1 - _uniform01(self.shape, dtypes.float32, generator)).log() / lambd).cast(self.dtype)


@aten("randperm", "randperm.generator")
def randperm(n: int, *, generator: Any = None, dtype: torch.dtype | None = torch.int64, layout: Any = None, device: Any = None,
             pin_memory: Any = None) -> Tensor:
  dt = to_tiny_dtype(dtype or torch.int64)
  if n == 0: return Tensor.empty(0, dtype=dt)
  if n == 1: return Tensor.zeros(1, dtype=dt)
  return _uniform01((n,), dtypes.float32, generator).argsort().cast(dt)


@aten("native_dropout")
def native_dropout(input: Tensor, p: float, train: bool | None) -> tuple[Tensor, Tensor]:
  if not train or p == 0: return input, input.const_like(True).cast(dtypes.bool)
  keep = _uniform01(input.shape, dtypes.float32, None) >= p
  return keep.where(input * (1 / (1 - p)), 0).cast(input.dtype), keep


@aten("native_dropout_backward")
def native_dropout_backward(grad_output: Tensor, mask: Tensor, scale: float) -> Tensor: return mask.where(grad_output * scale, 0)
