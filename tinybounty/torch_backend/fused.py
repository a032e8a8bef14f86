"""PyTorch's fused optimizer ops (`Adam(fused=True)`, AdamW, SGD) for the tiny device.

PyTorch lists every PrivateUse1 backend as fused-capable and calls `_fused_adam_` / `_fused_adamw_` / `_fused_sgd_`,
which exist only as CPU/CUDA kernels. These implement the same update with torch ops on tiny tensors (so each lands
in the op table), keeping the step count on the device: bias corrections are tensor ops, never a `.item()`.
"""
from __future__ import annotations

from typing import Any

import torch


def _check_unscaled(grad_scale: Any, found_inf: Any) -> None:
  if grad_scale is not None or found_inf is not None:
    raise NotImplementedError("tiny: fused optimizers with grad_scale/found_inf (AMP GradScaler) are not implemented")


def _adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, lr, beta1, beta2, weight_decay, eps, amsgrad,
          maximize, grad_scale=None, found_inf=None, decoupled: bool) -> None:
  _check_unscaled(grad_scale, found_inf)
  for i, (p, g, m, v, step) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, state_steps)):
    g = -g if maximize else g
    if weight_decay != 0:
      if decoupled: p.mul_(1 - lr * weight_decay)
      else: g = g + weight_decay * p
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    bc1, bc2_sqrt = 1 - torch.pow(beta1, step), (1 - torch.pow(beta2, step)).sqrt()
    if amsgrad:
      torch.maximum(max_exp_avg_sqs[i], v, out=max_exp_avg_sqs[i])
      v = max_exp_avg_sqs[i]
    denom = v.sqrt() / bc2_sqrt + eps
    p.sub_(lr * m / (bc1 * denom))


def fused_adam_(*args: Any, **kwargs: Any) -> None: _adam(*args, **kwargs, decoupled=False)


def fused_adamw_(*args: Any, **kwargs: Any) -> None: _adam(*args, **kwargs, decoupled=True)


def fused_sgd_(params, grads, momentum_buffer_list, *, weight_decay, momentum, lr, dampening, nesterov, maximize, is_first_step,
               grad_scale=None, found_inf=None) -> None:
  _check_unscaled(grad_scale, found_inf)
  for i, (p, g) in enumerate(zip(params, grads)):
    g = -g if maximize else g
    if weight_decay != 0: g = g + weight_decay * p
    if momentum != 0:
      buf = momentum_buffer_list[i]
      if is_first_step: buf.copy_(g)
      else: buf.mul_(momentum).add_(g, alpha=1 - dampening)
      g = g + momentum * buf if nesterov else buf
    p.sub_(lr * g)


KERNELS = {"_fused_adam_": fused_adam_, "_fused_adam_.tensor_lr": fused_adam_, "_fused_adamw_": fused_adamw_,
           "_fused_adamw_.tensor_lr": fused_adamw_, "_fused_sgd_": fused_sgd_, "_fused_sgd_.tensor_lr": fused_sgd_}
