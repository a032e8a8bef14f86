"""FSDP's storage freeing on tiny tensors: a reversible patch of fully_shard's `alloc_storage` / `free_storage`.

fully_shard frees an unsharded parameter's memory between uses with `untyped_storage().resize_(0)` and brings it
back with `resize_(nbytes)`. PyTorch resizes a PrivateUse1 storage through a C++ hook (`resizePrivateUse1Bytes`)
that a Python backend cannot provide. On tiny the memory is the storage's tinygrad buffer, so freeing drops that
buffer (a zero-element placeholder) and allocating gives it a fresh uninitialized one of the full size; PyTorch's own
byte count of the (byte-less) storage never changes. Other devices keep FSDP's functions.
"""
from __future__ import annotations

import torch
from tinygrad import Tensor

_saved: dict[str, dict] = {}
_MODULES = ("torch.distributed.fsdp._fully_shard._fsdp_param", "torch.distributed.fsdp._fully_shard._fsdp_param_group")


def _tiny_alloc(tensor: torch.Tensor) -> None:
  st = tensor.untyped_storage()._tiny
  n = tensor.numel()  # FSDP sizes the storage as the tensor (numel * itemsize), as its own alloc_storage does
  if st.buf.shape[0] != n: st.buf = Tensor.empty(n, dtype=st.buf.dtype, device=st.buf.device)


def _tiny_free(tensor: torch.Tensor) -> None:
  st = tensor.untyped_storage()._tiny
  if st.buf.shape[0] != 0: st.buf = Tensor.empty(0, dtype=st.buf.dtype, device=st.buf.device)


def install() -> None:
  """Route fully_shard's alloc_storage/free_storage for tiny tensors to the tinygrad buffer. Idempotent."""
  import importlib
  if _saved: return
  for name in _MODULES:
    mod = importlib.import_module(name)
    saved = _saved[name] = {fn: getattr(mod, fn) for fn in ("alloc_storage", "free_storage") if hasattr(mod, fn)}
    for fn, orig in saved.items():
      tiny = _tiny_alloc if fn == "alloc_storage" else _tiny_free
      setattr(mod, fn, lambda t, _f=orig, _t=tiny: _t(t) if t.device.type == "tiny" else _f(t))


def uninstall() -> None:
  import importlib
  for name, saved in _saved.items():
    for fn, orig in saved.items(): setattr(importlib.import_module(name), fn, orig)
  _saved.clear()
