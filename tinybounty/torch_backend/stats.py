"""Counters of host round-trips made by the tiny device.

`d2h`: tensor contents copied from the tinygrad device to the host (`.cpu()`, `.item()`, `.numpy()`, a CPU fallback).
`size_syncs`: single integers read back because an op's output *shape* depends on data (masked_select, nonzero,
boolean indexing); PyTorch's eager API needs the size before it returns. `fallbacks`: ops run on the CPU under
TINY_CPU_FALLBACK=1. `collectives`, `collective_d2h_bytes`, `collective_h2d_bytes`: torch.distributed collectives
run on tiny tensors and the bytes they staged through the host (distributed/staging.py); listed once one has run.
Every read of device memory by the backend goes through `to_host` or `size_sync`.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np
from tinygrad import Device, Tensor
from tinygrad.dtype import _to_np_dtype
from tinygrad.uop.ops import Ops

_counts: Counter = Counter()


def on_device(t: Tensor) -> Tensor:
  """`t` placed on tinygrad's default device. tinygrad 0.14's constants (full, ones_like, a gradient seed) have no
  device, and realizing or reading one runs a kernel on tinygrad's CPU device: not the device the user chose."""
  return t if t.device is not None else t.clone(Device.DEFAULT)


def to_host(t: Tensor) -> np.ndarray:
  """Copy a tinygrad tensor's contents to a numpy array, counted as one device-to-host transfer."""
  _counts["d2h"] += 1
  _counts["d2h_bytes"] += t.nbytes()
  u = t.uop.src[0] if t.uop.op is Ops.RESHAPE else t.uop
  if u.op is Ops.BUFFER and u.is_realized and hasattr((buf := u.buffer).allocator, "_as_buffer") \
     and (np_dtype := _to_np_dtype(buf.dtype)) is not None:
    # a whole buffer in host-visible memory: copy it out directly, without a tinygrad copy schedule
    return np.frombuffer(buf.as_memoryview(allow_zero_copy=True), dtype=np_dtype).copy().reshape(t.shape)
  return on_device(t).numpy()


def size_sync(t: Tensor) -> int:
  """Read one integer that sizes a data-dependent output, counted as a size sync (not a data transfer)."""
  _counts["size_syncs"] += 1
  return int(on_device(t).item())


def count(name: str, n: int = 1) -> None:
  _counts[name] += n


def stats() -> dict[str, Any]:
  """The counters since the last reset: d2h, d2h_bytes, size_syncs, fallbacks, the collective counters once one ran
  (distributed/), and the step capture's (capture.py)."""
  out: dict[str, Any] = {k: _counts.get(k, 0) for k in ("d2h", "d2h_bytes", "size_syncs", "fallbacks")}
  if _counts.get("collectives"): out.update({k: _counts.get(k, 0) for k in _COLLECTIVE})
  for provider in providers: out.update(provider())
  return out


providers: list[Callable[[], dict[str, Any]]] = []  # more counters (capture.py's)


_COLLECTIVE = ("collectives", "collective_d2h_bytes", "collective_h2d_bytes")


def reset_stats() -> None:
  _counts.clear()
