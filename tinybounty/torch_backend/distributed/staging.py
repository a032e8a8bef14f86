"""Host staging for collectives on tiny tensors, and the Work objects the tiny process group returns.

gloo moves bytes between host buffers; a tiny tensor's memory is a tinygrad buffer with no host pointer. A collective
therefore copies each input the collective reads to a contiguous CPU tensor (one device-to-host transfer), runs gloo on
it, and when the work is waited on copies each output back into the tiny tensor (host to device), through the
tensor's own layout, so views (DDP's bucket views) see the result. Both copies are counted in `stats()` as
`collective_d2h_bytes` / `collective_h2d_bytes`, with `collectives` the number of collectives run.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as dist

from tinybounty.torch_backend.stats import count

DEVICE = "tiny"


def check_device(t: torch.Tensor, what: str) -> None:
  """A clear error for a tensor this process group cannot move: it handles tiny tensors (staged) and CPU tensors."""
  if not isinstance(t, torch.Tensor): raise TypeError(f"tiny process group: {what} must be a torch.Tensor, got {type(t).__name__}")
  if t.device.type not in (DEVICE, "cpu"):
    raise ValueError(f"tiny process group: {what} is on {t.device}; this process group moves tensors on '{DEVICE}' (and 'cpu'). "
                     f"Move it with .to('{DEVICE}') first")


def to_host(t: torch.Tensor) -> torch.Tensor:
  """A contiguous CPU tensor with t's values: t itself when it is already a contiguous CPU tensor."""
  if t.device.type == "cpu": return t if t.is_contiguous() else t.contiguous()
  host = t.detach().to("cpu").contiguous()
  count("collective_d2h_bytes", host.numel() * host.element_size())
  return host


def host_like(t: torch.Tensor) -> torch.Tensor:
  """An uninitialized host buffer for an output (nothing to read from the device): t itself for a contiguous CPU tensor."""
  if t.device.type == "cpu" and t.is_contiguous(): return t
  return torch.empty(tuple(t.shape), dtype=t.dtype, device="cpu")


def from_host(t: torch.Tensor, host: torch.Tensor) -> None:
  """Write a host buffer's values back into the tensor it stands for (nothing to do when it is that tensor)."""
  if host is t: return
  with torch.no_grad(): t.copy_(host)
  if t.device.type == DEVICE: count("collective_h2d_bytes", host.numel() * host.element_size())


class TinyWork(dist.Work):
  """The pending result of one collective: gloo's work on the host buffers, then the copy back into the tiny tensors.

  `wait()` waits for gloo (raising its error when a peer died or timed out), then runs the copy back in the waiting
  thread, once. `get_future()` waits the same way and returns a completed future holding the output tensors: DDP's
  reducer and its comm hooks read the result through that future."""
  def __init__(self, inner: dist.Work | None, finish: Callable[[], None] | None, result: list[torch.Tensor]) -> None:
    super().__init__()
    self._inner, self._finish, self._result, self._done = inner, finish, result, False

  def wait(self, timeout: timedelta | None = None) -> bool:
    if not self._done:
      if self._inner is not None: self._inner.wait()
      if self._finish is not None: self._finish()
      self._done = True
    return True

  def is_completed(self) -> bool:
    return self._done

  def is_success(self) -> bool:
    return self._done

  def result(self) -> list[torch.Tensor]:
    self.wait()
    return self._result

  def get_future(self) -> torch.futures.Future:
    self.wait()
    fut: torch.futures.Future = torch.futures.Future()
    fut.set_result(self._result)
    return fut
