"""scaled_dot_product_attention in half / bfloat16, rounded where PyTorch's fused attention rounds.

PyTorch decomposes SDPA on a PrivateUse1 device into its math path, which upcasts half / bfloat16 to float32 and
rounds once at the end. PyTorch CPU (and CUDA) run a fused flash kernel instead, which rounds once more: scores
q @ k^T accumulate in float32, scale and mask in float32, softmax's exponentials exp(s - max) and their row sum stay
float32, but the exponentials are rounded to the input dtype before the second GEMM (its operands are half /
bfloat16), whose float32 result is multiplied by the float32 reciprocal of the row sum and rounded. In bf16 that extra
rounding moves about a fifth of the outputs by one ulp against the math path, which was enough to change gpt-fast's
greedy tokens on the tiny device (docs/torch_backend.md, "gpt-fast").

The kernel here follows that definition with torch ops on tiny tensors (each lands in the op table, float32 where
PyTorch uses float32). Float32 / float64, dropout, and calls that autograd records keep PyTorch's own decomposition
(the math path, differentiable): the AutogradPrivateUse1 kernel sends those there.
"""
from __future__ import annotations

import math
from typing import Any

import torch

_SDPA = torch.ops.aten.scaled_dot_product_attention.default
REDUCED = (torch.bfloat16, torch.float16)


def _fused_definition_applies(query: torch.Tensor, dropout_p: float) -> bool:
  return query.dtype in REDUCED and dropout_p == 0.0


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Any = None, enable_gqa: bool = False) -> torch.Tensor:
  """The PrivateUse1 kernel (below autograd): the fused definition in half / bfloat16, PyTorch's decomposition otherwise."""
  if not _fused_definition_applies(query, dropout_p):
    return _SDPA.decompose(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
  if attn_mask is not None and is_causal: raise ValueError("tiny: scaled_dot_product_attention with both attn_mask and is_causal=True")
  if enable_gqa and key.size(-3) != query.size(-3):
    key = key.repeat_interleave(query.size(-3) // key.size(-3), dim=-3)
    value = value.repeat_interleave(query.size(-3) // value.size(-3), dim=-3)
  L, S = query.size(-2), key.size(-2)
  factor = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
  scores = torch.matmul(query.float(), key.float().transpose(-2, -1)) * torch.tensor(factor, dtype=torch.float32)
  if is_causal: attn_mask = torch.ones(L, S, dtype=torch.bool, device=query.device).tril()
  if attn_mask is not None:
    if attn_mask.dtype == torch.bool: scores = scores.masked_fill(attn_mask.logical_not(), float("-inf"))
    else: scores = scores + attn_mask.float()
  row_max = scores.amax(-1, keepdim=True)
  # a row masked out entirely: exponentials 0, sum 1, output 0 (the fused kernels' convention, not NaN)
  row_max = torch.where(row_max == float("-inf"), torch.zeros_like(row_max), row_max)
  exps = torch.exp(scores - row_max)
  total = exps.sum(-1, keepdim=True)
  total = torch.where(total == 0, torch.ones_like(total), total)
  weighted = torch.matmul(exps.to(query.dtype).float(), value.float())  # the exponentials rounded: the second GEMM's operand
  return (weighted * total.reciprocal()).to(query.dtype)


def scaled_dot_product_attention_autograd(*args: Any, **kwargs: Any) -> torch.Tensor:
  """AutogradPrivateUse1: a call autograd must record decomposes above autograd (differentiable); others go below."""
  tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
  if torch.is_grad_enabled() and any(t.requires_grad for t in tensors): return _SDPA.decompose(*args, **kwargs)
  with torch._C._AutoDispatchBelowAutograd():
    return _SDPA(*args, **kwargs)


KERNELS = {"scaled_dot_product_attention": scaled_dot_product_attention}
AUTOGRAD_KERNELS = {"scaled_dot_product_attention": scaled_dot_product_attention_autograd}
