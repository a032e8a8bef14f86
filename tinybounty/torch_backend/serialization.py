"""`torch.save` / `torch.load` of tiny tensors, through the CPU.

A tiny storage holds no bytes PyTorch can copy (its memory is a tinygrad Tensor), so PyTorch's storage-level pickling
and loading cannot handle it. `install()` adds two things:
- saving: a tiny tensor pickles the way PyTorch pickles tensors of storage-less backends (XLA, MTIA): as its CPU copy
  (one device-to-host transfer, a normal storage record) and `torch._utils._rebuild_device_tensor_from_cpu_tensor`,
  which is on torch.load's weights-only allowlist and moves it to the saved device or to `map_location`.
- loading with map_location="tiny": a `torch.serialization` package entry uploads a storage record's bytes to the
  device; the device's `set_` kernel then reads them as the tensor's dtype. CPU checkpoints load straight onto "tiny".
Views are saved by value: a view and its base load as two tensors (storage sharing is not kept).
`uninstall()` restores PyTorch's tensor pickling and package registry.
"""
from __future__ import annotations

from typing import Any

import torch

from tinybounty.torch_backend.device import from_cpu, wrap

_stock: list = []


def _reduce_ex_internal(self: torch.Tensor, proto: int) -> Any:
  if self.device.type != torch._C._get_privateuse1_backend_name(): return _stock[0](self, proto)
  if torch.serialization._serialization_tls.skip_data:
    raise RuntimeError("tiny: tensors cannot be saved under torch.serialization.skip_data (their data lives on the tinygrad device)")
  from torch.utils.hooks import warn_if_has_hooks
  warn_if_has_hooks(self)
  return torch._utils._rebuild_device_tensor_from_cpu_tensor, (self.detach().cpu(), self.dtype, str(self.device), self.requires_grad)


def _no_tag(storage: Any) -> None: return None


def _deserialize(storage: torch.UntypedStorage, location: str) -> torch.UntypedStorage | None:
  """A storage record loaded with map_location="tiny" (a file of CPU tensors): its bytes, uploaded to the device."""
  if location.split(":")[0] != torch._C._get_privateuse1_backend_name() or storage.device.type != "cpu": return None
  return wrap(from_cpu(torch.empty(0, dtype=torch.uint8).set_(storage))).untyped_storage()


_PACKAGE = (15, _no_tag, _deserialize)  # before PyTorch's PrivateUse1 entry (23), which would copy into byte-less storage


def install() -> None:
  """Route the pickling of tiny tensors through the CPU, and loading storage records to "tiny". Idempotent."""
  if _stock: return
  _stock.append(torch.Tensor._reduce_ex_internal)
  torch.Tensor._reduce_ex_internal = _reduce_ex_internal
  torch.serialization.register_package(*_PACKAGE)


def uninstall() -> None:
  """Put PyTorch's tensor pickling back exactly as it was."""
  if not _stock: return
  torch.Tensor._reduce_ex_internal = _stock.pop()
  torch.serialization._package_registry.remove(_PACKAGE)


def installed() -> bool:
  return bool(_stock)
