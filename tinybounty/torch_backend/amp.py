"""Mixed precision on the tiny device: `torch.autocast("tiny", dtype=...)` with the CPU's rules, and the two ops of
`torch.amp.GradScaler("tiny")`.

PyTorch enters the AutocastPrivateUse1 dispatch key under `torch.autocast("tiny")`, but registers no kernel there (a
backend written in C++ registers its own), so every op failed with "Could not run 'aten::linear' ... 'Autocasttiny'".
`install()` registers a fallthrough for every op and, for each op that has an AutocastCPU kernel, a kernel with the
CPU's policy, so a model gets the same dtypes on tiny as under `torch.autocast("cpu")`:
- LOWER: matmuls, convolutions, attention run in the autocast dtype (float16 or bfloat16);
- PROMOTE: cat, stack, index_copy run in float32 if any input is float32, else in the autocast dtype;
- every other op with an AutocastCPU kernel (losses, linalg, fft, pooling in 3d, ...) runs in float32.
Only tiny tensors of float16, bfloat16 or float32 are cast (float64 stays, as on the CPU), and each kernel calls the
op again with autocast excluded, so autograd records the casts and gradients reach float32 parameters in float32.
GradScaler needs `_amp_foreach_non_finite_check_and_unscale_` and `_amp_update_scale_`, which mutate two arguments each
(the device derives in-place ops that write their first argument only); both are written here with tensor ops, so the
found-inf flag and the scale stay on the device and a step makes no host round-trip.
`tests/torch_backend/test_amp.py` checks the table against the dispatcher's AutocastCPU registrations.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils import _pytree as pytree

KEY = "AutocastPrivateUse1"
LOWER = {"_addmm_activation", "_convolution.deprecated", "_native_multi_head_attention", "addbmm", "addmm", "baddbmm", "bmm",
         "conv1d", "conv1d.padding", "conv2d", "conv2d.padding", "conv3d", "conv3d.padding", "conv_tbc", "conv_transpose1d",
         "conv_transpose2d.input", "conv_transpose3d.input", "linalg_vecdot", "linear", "matmul", "mkldnn_rnn_layer", "mm",
         "prelu", "scaled_dot_product_attention"}
PROMOTE = {"cat", "stack", "index_copy"}
_CASTABLE = (torch.float16, torch.bfloat16, torch.float32)
_libs: list[torch.library.Library] = []


def cpu_autocast_ops() -> set[str]:
  """Every aten op (with its overload) that has an AutocastCPU kernel in this PyTorch: the ops autocast changes."""
  return {n.removeprefix("aten::") for n in torch._C._dispatch_get_all_op_names()
          if n.startswith("aten::") and torch._C._dispatch_has_kernel_for_dispatch_key(n, "AutocastCPU")}


def _eligible(x: Any) -> bool: return isinstance(x, torch.Tensor) and x.device.type == "tiny" and x.dtype in _CASTABLE


def _cast_to(dtype: Callable[[list[torch.Tensor]], torch.dtype]) -> Callable[[Any], Callable[..., Any]]:
  """A kernel factory: cast every eligible tensor argument to dtype(eligible tensors), then call the op without autocast."""
  def kernel_for(op: Any) -> Callable[..., Any]:
    def kernel(*args: Any, **kwargs: Any) -> Any:
      tensors = [x for x in pytree.tree_leaves((args, kwargs)) if _eligible(x)]
      to = dtype(tensors) if tensors else None
      args, kwargs = pytree.tree_map_only(torch.Tensor, lambda x: x.to(to) if to is not None and _eligible(x) else x, (args, kwargs))
      with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastPrivateUse1)):
        return op(*args, **kwargs)
    return kernel
  return kernel_for


_lower = _cast_to(lambda ts: torch.get_autocast_dtype("tiny"))
_fp32 = _cast_to(lambda ts: torch.float32)


def _widest(tensors: list[torch.Tensor]) -> torch.dtype:
  """float32 if any input is float32, else the autocast dtype; another half type is an error, as on the CPU."""
  low = torch.get_autocast_dtype("tiny")
  if bad := {t.dtype for t in tensors} - {low, torch.float32}:
    raise RuntimeError(f"tiny autocast: {sorted(map(str, bad))} inputs to an op that autocast promotes, under autocast to {low} "
                       "(only float32 and the autocast dtype mix)")
  return torch.float32 if any(t.dtype == torch.float32 for t in tensors) else low


_promote = _cast_to(_widest)


def _overload(name: str) -> Any:
  op, _, overload = name.partition(".")
  return getattr(getattr(torch.ops.aten, op), overload or "default")


def _unscale_(grads: list[torch.Tensor], found_inf: torch.Tensor, inv_scale: torch.Tensor) -> None:
  """Multiply every gradient by inv_scale; set found_inf to 1 if any of them holds an inf or a NaN."""
  for g in grads:
    found_inf.copy_(torch.maximum(found_inf, (~torch.isfinite(g)).any().to(found_inf.dtype)))
    g.mul_(inv_scale)


def _update_scale_(scale: torch.Tensor, tracker: torch.Tensor, found_inf: torch.Tensor, growth: float, backoff: float, interval: int) -> torch.Tensor:
  """After an inf: scale *= backoff, tracker = 0. Otherwise tracker += 1, and at `interval` clean steps scale *= growth
  (kept only if finite) and tracker = 0."""
  inf, steps = found_inf > 0, tracker + 1
  grown = scale * growth
  grow = ~inf & (steps >= interval) & torch.isfinite(grown)
  new_scale = torch.where(inf, scale * backoff, torch.where(grow, grown, scale))
  tracker.copy_(torch.where(inf | (steps >= interval), torch.zeros_like(tracker), steps))
  return scale.copy_(new_scale)


def install() -> None:
  """Register the autocast fallthrough, one kernel per autocast op on AutocastPrivateUse1, and GradScaler's two ops on
  the device. Idempotent; `uninstall()` undoes it."""
  if _libs: return
  scaler = torch.library.Library("aten", "IMPL")
  scaler.impl("_amp_foreach_non_finite_check_and_unscale_", _unscale_, "PrivateUse1")
  scaler.impl("_amp_update_scale_", _update_scale_, "PrivateUse1")
  _libs.append(scaler)
  fallback = torch.library.Library("_", "IMPL")
  fallback.fallback(torch.library.fallthrough_kernel, KEY)
  aten = torch.library.Library("aten", "IMPL")
  for name in sorted(cpu_autocast_ops()):
    policy = _lower if name in LOWER else _promote if name in PROMOTE else _fp32
    aten.impl(name, policy(_overload(name)), KEY)
  _libs.extend([fallback, aten])


def uninstall() -> None:
  """Remove every registration of `install()`: `torch.autocast("tiny")` then fails again on the first op, and so does
  GradScaler's unscale."""
  while _libs: _libs.pop()._destroy()


def installed() -> bool: return bool(_libs)
