"""`torch.save` / `torch.load` of tiny tensors, through the CPU.

A tiny tensor's storage holds no bytes PyTorch can copy (its memory is a tinygrad Tensor), so PyTorch's storage-level
pickling cannot save it. `install()` makes a tiny tensor pickle as its values (one device-to-host copy, bytes in the
pickle, no storage record), rebuilt by `rebuild` on the saved device or on `map_location` ("cpu", "tiny", a dict).
No storage record is what lets `map_location="tiny"` work: PyTorch maps every storage record to the location first,
and a CPU storage cannot be moved to "tiny" at the storage level. `rebuild` is added to `torch.load`'s weights-only
safe globals, so the default `torch.load(f)` accepts these files. Views are saved by value: a view and its base load
as two tensors (storage sharing is not kept). `uninstall()` restores PyTorch's tensor pickling and safe globals.
"""
from __future__ import annotations

from typing import Any

import torch

_stock: list = []


def rebuild(data: bytearray, dtype: torch.dtype, shape: tuple[int, ...], device: str, requires_grad: bool) -> torch.Tensor:
  """The tensor `_reduce_ex_internal` saved, on `device` or where torch.load's map_location sends it."""
  cpu = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
  t = cpu.reshape(shape).to(torch._utils._get_restore_location(device))
  t.requires_grad_(requires_grad)
  return t


def _reduce_ex_internal(self: torch.Tensor, proto: int) -> Any:
  if self.device.type != torch._C._get_privateuse1_backend_name(): return _stock[0](self, proto)
  if torch.serialization._serialization_tls.skip_data:
    raise RuntimeError("tiny: tensors cannot be saved under torch.serialization.skip_data (their data lives on the tinygrad device)")
  from torch.utils.hooks import warn_if_has_hooks
  warn_if_has_hooks(self)
  data = bytearray(self.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())  # weights-only allows bytearray, not bytes
  return rebuild, (data, self.dtype, tuple(self.shape), str(self.device), self.requires_grad)


def _no_tag(storage: Any) -> None: return None


def _deserialize(storage: torch.UntypedStorage, location: str) -> torch.UntypedStorage | None:
  """A storage record loaded with map_location="tiny" (a file of CPU tensors): its bytes, uploaded to the device."""
  if location.split(":")[0] != torch._C._get_privateuse1_backend_name() or storage.device.type != "cpu": return None
  from tinybounty.torch_backend.device import from_cpu, wrap
  return wrap(from_cpu(torch.empty(0, dtype=torch.uint8).set_(storage))).untyped_storage()


_PACKAGE = (15, _no_tag, _deserialize)  # before PyTorch's PrivateUse1 entry (23), which would copy into byte-less storage


def install() -> None:
  """Route the pickling of tiny tensors through the CPU, and loading storage records to "tiny". Idempotent."""
  if _stock: return
  _stock.append(torch.Tensor._reduce_ex_internal)
  torch.Tensor._reduce_ex_internal = _reduce_ex_internal
  torch.serialization.register_package(*_PACKAGE)
  torch.serialization.add_safe_globals([rebuild])


def uninstall() -> None:
  """Put PyTorch's tensor pickling back exactly as it was."""
  if not _stock: return
  torch.Tensor._reduce_ex_internal = _stock.pop()
  torch.serialization._package_registry.remove(_PACKAGE)
  others = [g for g in torch.serialization.get_safe_globals() if g is not rebuild]
  torch.serialization.clear_safe_globals()
  torch.serialization.add_safe_globals(others)


def installed() -> bool:
  return bool(_stock)
