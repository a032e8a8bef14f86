"""Kernels written with torch ops on tiny tensors rather than as tinygrad functions; the device registers these before
the op table: fused optimizers, det/slogdet (stride-aware), backward kernels by autograd, the attention fast paths, and
the corrections below.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch._decomp import decomposition_table

from tinybounty.torch_backend import attention, autodiff, complex, fastpath, fused, linalg


def _eval_stats_empty(op: torch._ops.OpOverload) -> Callable[..., tuple]:
  """Batch norm's decomposition returns per-channel saved statistics in eval mode too; the CPU returns empty ones."""
  decomp = decomposition_table[op]
  def kernel(input: torch.Tensor, weight: Any, bias: Any, running_mean: Any, running_var: Any, training: bool, momentum: float,
             eps: float) -> tuple:
    out, mean, rstd = decomp(input, weight, bias, running_mean, running_var, training, momentum, eps)
    return (out, mean, rstd) if training else (out, input.new_empty(0), input.new_empty(0))
  return kernel


KERNELS: dict[str, Callable[..., Any]] = {
  **fused.KERNELS, **linalg.KERNELS, **autodiff.KERNELS, **complex.KERNELS, **attention.KERNELS, **fastpath.KERNELS,
  "native_batch_norm": _eval_stats_empty(torch.ops.aten.native_batch_norm.default),
  "_native_batch_norm_legit": _eval_stats_empty(torch.ops.aten._native_batch_norm_legit.default),
}

# kernels for the AutogradPrivateUse1 key, where an op needs its own rule for what autograd records
AUTOGRAD_KERNELS: dict[str, Callable[..., Any]] = {**attention.AUTOGRAD_KERNELS}
