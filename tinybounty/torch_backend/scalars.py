"""Python float scalars as values in device memory rather than constants compiled into kernels.

A scalar that changes every step (a learning rate, an EMA decay, `x[i] = v` in a loop) would otherwise make every
step's graph new: a schedule of the whole step and new kernels to compile. Read from a one-element buffer instead, a
new value costs one small host-to-device copy and reuses every kernel. Buffers are kept per value (bit pattern, so
-0.0 and NaN payloads keep their own), dtype and device, the most recently used few dozen. Small writes at an offset
(`x[i] = v`) read the offset the same way (`device_offset`).
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from tinygrad import Device, Tensor, dtypes
from tinygrad.dtype import DType

KEEP = 64  # each kept tensor is walked by every realize (tinygrad maps realized buffers onto all live tensors)
_buffers: OrderedDict[tuple, Tensor] = OrderedDict()
requests: list | None = None  # capture.py collects (value, tensor) of every scalar read while it builds a step


class Offset(int):
  """A storage offset read from device memory, told apart from an integer value in `requests`."""


def device_scalar(value: Any, dtype: DType, device: str | None = None) -> Tensor:
  """A 0-dim tensor of `dtype` on `device` (tinygrad's default) holding `value`, read from device memory."""
  key = (struct.pack("<d", value) if isinstance(value, float) else value, type(value), dtype, device := device or Device.DEFAULT)
  return _kept(key, value, dtype, device, value)


def device_offset(offset: int, device: str) -> Tensor:
  """A 0-dim int32 tensor on `device` holding a view's storage offset. Kept apart from device_scalar's values: a
  captured step hands each new offset into this buffer, which must not be one an op reads as a value (`x[2].fill_(2)`)."""
  return _kept(("offset", offset, device), offset, dtypes.int32, device, Offset(offset))


def _kept(key: tuple, value: Any, dtype: DType, device: str, asked: Any) -> Tensor:
  if (buf := _buffers.get(key)) is None:
    # not realized here: the copy joins the first graph that reads it, which then leaves this tensor realized
    buf = _buffers[key] = Tensor([value], dtype=dtype, device=device).reshape(())
    if len(_buffers) > KEEP: _buffers.popitem(last=False)
  else: _buffers.move_to_end(key)
  if requests is not None: requests.append((asked, buf))
  return buf


def buffered(x: Any, like: Any) -> Any:
  """`x` as a device scalar where it is a Python float meeting a floating-point tensor on one device, else `x`."""
  if isinstance(x, float) and isinstance(like, Tensor) and dtypes.is_float(like.dtype) and isinstance(like.device, str):
    return device_scalar(x, like.dtype, like.device)
  return x
