"""Complex tensors on the tiny device, as far as programs that build rotary tables need them (gpt-fast's
`precompute_freqs_cis`: `torch.polar`, then `.real` / `.imag`, or `view_as_real` / `view_as_complex`).

tinygrad has no complex dtype. A complex64 (complex128) storage here holds float32 (float64) pairs: its `buf` has two
real elements per complex element, real part first, which is exactly PyTorch's memory layout. So `view_as_real` and
`view_as_complex` are plain views (PyTorch's Meta kernels compute their sizes and strides, in real units for the real
view), and `.real` / `.imag` (PyTorch's composites: view_as_real, then select) read the pairs through the ordinary
strided path. Any other op given a complex tensor raises the device's "dtype complex64 is not supported" error:
complex arithmetic is not implemented, and nothing falls back silently.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from tinygrad import Tensor

from tinybounty.torch_backend import device, table

_TWO_PI_HI = float(np.float32(2 * math.pi))  # 24 significant bits: k * _TWO_PI_HI is exact in float64 for any k < 2**29
_TWO_PI_LO = 2 * math.pi - _TWO_PI_HI
PARTS: dict[torch.dtype, torch.dtype] = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def _pairs(shape: tuple[int, ...], dtype: torch.dtype, value: Tensor) -> torch.Tensor:
  """A new complex tiny tensor of `shape` whose storage holds `value` (shape (*shape, 2): real, imaginary)."""
  return device._new(shape, dtype, value.cast(table.to_tiny_dtype(PARTS[dtype])).reshape(-1))


def _empty(size: list[int], *, dtype: torch.dtype | None = None, **kwargs: Any) -> torch.Tensor:
  dtype = dtype or torch.get_default_dtype()
  if dtype not in PARTS: return device.DEVICE_KERNELS["empty.memory_format"](size, dtype=dtype, **kwargs)
  return _pairs(tuple(size), dtype, Tensor.empty(*size, 2, dtype=table.to_tiny_dtype(PARTS[dtype])))


def _empty_strided(size: list[int], stride: list[int], *, dtype: torch.dtype | None = None, **kwargs: Any) -> torch.Tensor:
  dtype = dtype or torch.get_default_dtype()
  if dtype not in PARTS: return device.DEVICE_KERNELS["empty_strided"](size, stride, dtype=dtype, **kwargs)
  extent = 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else 0
  base = _pairs((extent,), dtype, Tensor.empty(extent, 2, dtype=table.to_tiny_dtype(PARTS[dtype])))
  return torch.ops.aten.as_strided.default.redispatch(device._META, base, size, stride, 0)


def _polar_out(abs: torch.Tensor, angle: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
  """abs * (cos(angle) + i sin(angle)), computed in float64 where the device has it and rounded once, as the CPU's
  libm cosf/sinf are correctly rounded almost everywhere. The angle is first reduced by 2*pi in two parts (Cody-Waite):
  tinygrad's own float64 cos of a rotary angle near 2000 rad is off by 1.6e-7, which moves bfloat16 roundings."""
  if out.dtype not in PARTS: raise RuntimeError(f"polar: expected a complex out tensor, got {out.dtype}")
  a, t = device.unwrap(abs), device.unwrap(angle)
  precise = table.precise_dtype()
  a64, t64 = a.cast(precise), t.cast(precise)
  k = (t64 / (2 * math.pi)).round()
  t64 = (t64 - k * _TWO_PI_HI) - k * _TWO_PI_LO
  value = Tensor.stack(a64 * t64.cos(), a64 * t64.sin(), dim=-1)
  device._set_like(out, _pairs(tuple(value.shape[:-1]), out.dtype, value))
  return out


def _meta_view(name: str) -> Callable:
  return lambda *args, **kwargs: getattr(torch.ops.aten, name).default.redispatch(device._META, *args, **kwargs)


KERNELS: dict[str, Callable[..., Any]] = {
  "empty.memory_format": _empty, "empty_strided": _empty_strided, "polar.out": _polar_out,
  "view_as_real": _meta_view("view_as_real"), "view_as_complex": _meta_view("view_as_complex"),
}
