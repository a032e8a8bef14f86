"""The `tiny` PyTorch device: `import tinybounty.torch_backend`, then `x.to("tiny")` runs on tinygrad (DEV picks the device).

Importing registers the device (PyTorch's PrivateUse1 key renamed "tiny") with every kernel of the op table.
`torch.save` / `torch.load` of tiny tensors go through the CPU (serialization.py).
`stats()` counts host round-trips (see stats.py); `reset_stats()` zeroes them.
"""
import functools
import warnings

import torch

from tinybounty.torch_backend import capture, device, serialization, threads
from tinybounty.torch_backend.module import TinyModule
from tinybounty.torch_backend.stats import reset_stats, stats
from tinybounty.validate import half_rounding


@functools.cache
def register() -> None:
  """Rename PrivateUse1 to "tiny", install the backend module and every kernel. Idempotent."""
  from torch.utils.backend_registration import _setup_privateuseone_for_python_backend
  if torch.cuda.is_available():
    warnings.warn("tiny: registering the tiny device makes it torch's accelerator in this process, and CUDA autograd here then fails "
                  "an internal assert (pytorch/pytorch#161129): run CUDA training in another process", stacklevel=2)
  threads.install()
  serialization.install()
  half_rounding.install()  # PyTorch rounds every half op's output; tinygrad's codegen would skip some of those roundings
  _setup_privateuseone_for_python_backend(device.BACKEND, backend_module=TinyModule())
  device.install_kernels()
  capture.install()  # eager steps recorded, captured once and replayed (TINY_CAPTURE=0: off)


register()

__all__ = ["register", "stats", "reset_stats"]
