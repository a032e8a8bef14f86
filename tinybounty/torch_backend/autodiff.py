"""Backward kernels by autograd through PyTorch's own decomposition of the forward op, on the device.

Some backward ops (upsampling, replication padding, grid sampling, multi-margin loss) have no
decomposition, but their forward ops do. Their kernel reruns that forward decomposition on tiny tensors with autograd
switched back on (a backend kernel runs below autograd) and returns the gradients it gives: every op involved is a
table op, so nothing leaves the device. Linear forwards (upsampling) run on zeros of the input's shape.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch._decomp import decomposition_table

A = torch.ops.aten


def out_variant(fn: Callable[..., Any], names: tuple[str, ...]) -> Callable[..., Any]:
  """The out= kernel of a torch-level functional kernel: compute, then resize and copy into the named outs."""
  def kernel(*args: Any, **kwargs: Any) -> Any:
    outs = [kwargs.pop(n) for n in names]
    res = fn(*args, **kwargs)
    for o, r in zip(outs, res if isinstance(res, tuple) else (res,)): o.resize_(r.shape).copy_(r)
    return tuple(outs) if len(outs) > 1 else outs[0]
  return kernel


def _autograd_on() -> torch._C.DispatchKeySet:
  """The thread's excluded dispatch keys without the autograd ones a backend kernel runs under."""
  keys = torch._C._dispatch_tls_local_exclude_set()
  for k in ("ADInplaceOrView", "AutogradFunctionality", "AutogradOther", "AutogradNestedTensor"): keys = keys.remove(getattr(torch._C.DispatchKey, k))
  return keys


def _grad(forward: Callable[..., Any], inputs: list[torch.Tensor], grad_output: torch.Tensor, *args: Any) -> tuple:
  """d(forward(*inputs, *args)) / d(inputs) applied to grad_output, with autograd re-enabled inside the kernel."""
  with torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), _autograd_on()), torch.enable_grad():
    leaves = [x.detach().requires_grad_() for x in inputs]
    out = forward(*leaves, *args)
    out = out[0] if isinstance(out, (tuple, list)) else out
    return torch.autograd.grad(out, leaves, grad_output, allow_unused=True, materialize_grads=True)


def _upsample(forward: torch._ops.OpOverload) -> Callable[..., torch.Tensor]:
  decomp = decomposition_table[forward]
  def kernel(grad_output: torch.Tensor, output_size: list[int], input_size: list[int], *rest: Any, **kw: Any) -> torch.Tensor:
    x = torch.zeros(input_size, dtype=grad_output.dtype, device=grad_output.device)
    return _grad(lambda t: decomp(t, output_size, *rest, *kw.values()), [x], grad_output)[0]
  return kernel


def _with_input(forward: torch._ops.OpOverload) -> Callable[..., torch.Tensor]:
  decomp = decomposition_table[forward]
  def kernel(grad_output: torch.Tensor, self: torch.Tensor, *rest: Any) -> torch.Tensor:
    return _grad(lambda t: decomp(t, *rest), [self], grad_output)[0]
  return kernel


def grid_sampler_2d_backward(grad_output: torch.Tensor, input: torch.Tensor, grid: torch.Tensor, interpolation_mode: int,
                             padding_mode: int, align_corners: bool, output_mask: list[bool]) -> tuple:
  gi, gg = _grad(decomposition_table[A.grid_sampler_2d.default], [input, grid], grad_output, interpolation_mode, padding_mode, align_corners)
  return gi if output_mask[0] else None, gg


KERNELS: dict[str, Callable[..., Any]] = {
  **{f"{name}_backward": _upsample(getattr(A, name).default)
     for name in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
                  "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d", "upsample_bicubic2d")},
  **{f"replication_pad{n}d_backward": _with_input(getattr(A, f"replication_pad{n}d").default) for n in (1, 2, 3)},
  "multi_margin_loss_backward": lambda grad_output, self, target, p, margin, weight=None, reduction=1:
    _grad(decomposition_table[A.multi_margin_loss.default], [self], grad_output, target, p, margin, weight, reduction)[0],
  "grid_sampler_2d_backward": grid_sampler_2d_backward,
}
KERNELS.update({f"{name}.grad_input": out_variant(KERNELS[name], ("grad_input",)) for name in list(KERNELS)
                if name != "grid_sampler_2d_backward"})
