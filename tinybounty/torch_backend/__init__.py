"""The `tiny` PyTorch device: `import tinybounty.torch_backend`, then `x.to("tiny")` runs on tinygrad (DEV picks the device).

Importing registers the device (PyTorch's PrivateUse1 key renamed "tiny") with every kernel of the op table.
`torch.save` / `torch.load` of tiny tensors go through the CPU (serialization.py); `torch.compile(model, backend="tiny")`
works from then on (dynamo.py; an installed package needs no import for it: a torch_dynamo_backends entry point).
`stats()` counts host round-trips (see stats.py); `reset_stats()` zeroes them.
"""
import functools
import warnings

import torch

from tinybounty.models import matvec
from tinybounty.runtime import bf16_clang
from tinybounty.torch_backend import amp, capture, device, dynamo, float_association, foreach, half_rounding, kernels, serialization, threads, tying
from tinybounty.torch_backend.module import TinyModule
from tinybounty.torch_backend.stats import reset_stats, stats


@functools.cache
def register() -> None:
  """Rename PrivateUse1 to "tiny", install the backend module and every kernel. Idempotent."""
  from torch.utils.backend_registration import _setup_privateuseone_for_python_backend
  if torch.cuda.is_available():
    warnings.warn("tiny: registering the tiny device makes it torch's accelerator in this process, and CUDA autograd here then fails "
                  "an internal assert (pytorch/pytorch#161129): run CUDA training in another process", stacklevel=2)
  threads.install()
  serialization.install()
  tying.install()  # .to("tiny") would otherwise untie shared parameters (tied embeddings)
  float_association.install()  # the clang renderer would print float sums in another order than the kernel's (issue #14)
  half_rounding.install()  # PyTorch rounds every half op's output; tinygrad's codegen would skip some of those roundings
  bf16_clang.install()  # after half_rounding: bfloat16 kernels compile with clang < 15 (runtime/bf16_clang.py)
  matvec.install()  # GPUs: mixed-precision and gathered matrix-vector products get tinygrad's matvec schedule (models/matvec.py)
  _setup_privateuseone_for_python_backend(device.BACKEND, backend_module=TinyModule())
  device.install_kernels(kernels.KERNELS, kernels.AUTOGRAD_KERNELS)
  foreach.install()  # the optimizers' _foreach_ ops as one call over the list, not PyTorch's loop of per-tensor ops
  dynamo.install()  # torch.compile(backend="tiny"), without importing torch._dynamo now
  amp.install()  # torch.autocast("tiny") with the CPU's casting rules (PyTorch registers none for a Python backend), GradScaler
  capture.install()  # loops of eager steps recorded, captured once and replayed (on by default; TINY_CAPTURE=0: off; capture.py)


register()

__all__ = ["register", "stats", "reset_stats"]
