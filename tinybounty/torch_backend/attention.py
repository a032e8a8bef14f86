"""scaled_dot_product_attention in half / bfloat16, rounded where PyTorch's fused attention rounds.

PyTorch decomposes SDPA on a PrivateUse1 device into its math path, which upcasts half / bfloat16 to float32 and
rounds once at the end. PyTorch CPU runs a fused flash kernel instead, which rounds once more: scores
q @ k^T accumulate in float32, scale and mask in float32, softmax's exponentials exp(s - max) and their row sum stay
float32, but the exponentials are rounded to the input dtype before the second GEMM (its operands are half /
bfloat16), whose float32 result is multiplied by the float32 reciprocal of the row sum and rounded. In bf16 that extra
rounding moves about a fifth of the outputs by one ulp against the math path: it was the first op where gpt-fast's bf16
forward on tiny left PyTorch CPU's, and the only difference of definition found (docs/torch_backend.md, "gpt-fast").
PyTorch CPU takes the flash kernel only while flash attention is enabled (`torch.backends.cuda.flash_sdp_enabled()`,
which `sdpa_kernel` / `sdp_kernel` contexts set) and the math path otherwise: so does this.

One tinygrad implementation of that definition serves the eager device and torch.compile graphs (it is in the op
table; aot_autograd records the op itself, since the AutogradPrivateUse1 kernel below sends it below autograd).
Float32 / float64, dropout, and calls that autograd records keep PyTorch's own decomposition (the math path,
differentiable), in eager and in compiled graphs alike, as before.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from tinygrad import Tensor, dtypes

from tinybounty.torch_backend import device
from tinybounty.torch_backend.table import aten

_SDPA = torch.ops.aten.scaled_dot_product_attention.default
REDUCED = (torch.bfloat16, torch.float16)


@aten("scaled_dot_product_attention")
def fused_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None, dropout_p: float = 0.0,
                    is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Tensor:
  """SDPA in half / bfloat16 as PyTorch's fused kernels round it (module docstring)."""
  if query.dtype not in (dtypes.bfloat16, dtypes.half) or dropout_p != 0.0:
    raise NotImplementedError(f"tiny: fused scaled_dot_product_attention is for half / bfloat16 without dropout (got {query.dtype}, "
                              f"dropout {dropout_p})")
  if attn_mask is not None and is_causal: raise ValueError("tiny: scaled_dot_product_attention with both attn_mask and is_causal=True")
  if enable_gqa and key.shape[-3] != query.shape[-3]:
    key = key.repeat_interleave(query.shape[-3] // key.shape[-3], dim=-3)
    value = value.repeat_interleave(query.shape[-3] // value.shape[-3], dim=-3)
  L, S = query.shape[-2], key.shape[-2]
  factor = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale  # float64, rounded to float32 once, as PyTorch does
  scores = query.float().matmul(key.float().transpose(-2, -1)) * Tensor(factor, dtype=dtypes.float32, device=query.device)
  if is_causal: attn_mask = Tensor.ones(L, S, dtype=dtypes.bool, device=query.device).tril()
  if attn_mask is not None:
    scores = attn_mask.where(scores, float("-inf")) if attn_mask.dtype == dtypes.bool else scores + attn_mask.float()
  row_max = scores.max(-1, keepdim=True)
  # a row masked out entirely: exponentials 0, sum 1, output 0 (the fused kernels' convention, not NaN)
  row_max = (row_max == float("-inf")).where(0.0, row_max)
  exps = (scores - row_max).exp()
  total = exps.sum(-1, keepdim=True)
  total = (total == 0).where(1.0, total)
  weighted = exps.cast(query.dtype).float().matmul(value.float())  # the exponentials rounded: the second GEMM's operand
  return (weighted * total.reciprocal()).cast(query.dtype)


_fused_kernel = device.functional_kernel(fused_attention)


def _fused_definition_applies(query: torch.Tensor, dropout_p: float) -> bool:
  # PyTorch CPU takes its flash kernel only while flash is enabled: gpt-fast's generate.py decodes inside
  # `torch.backends.cuda.sdp_kernel(enable_flash=False, ..., enable_math=True)`, where the CPU runs the math path
  return query.dtype in REDUCED and dropout_p == 0.0 and query.dim() == 4 and torch.backends.cuda.flash_sdp_enabled()


def scaled_dot_product_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: Any = None, enable_gqa: bool = False) -> torch.Tensor:
  """The PrivateUse1 kernel (below autograd): the fused definition in half / bfloat16, PyTorch's decomposition otherwise."""
  if not _fused_definition_applies(query, dropout_p):
    return _SDPA.decompose(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
  return _fused_kernel(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)


def scaled_dot_product_attention_autograd(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attn_mask: Any = None,
                                          dropout_p: float = 0.0, is_causal: bool = False, scale: Any = None,
                                          enable_gqa: bool = False) -> torch.Tensor:
  """AutogradPrivateUse1: a call autograd must record, and every call the fused definition does not cover, decomposes
  above autograd (differentiable, and what aot_autograd traced before); the rest goes below as one op."""
  args = (query, key, value, attn_mask, dropout_p, is_causal)
  needs_grad = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in args)
  if needs_grad or not _fused_definition_applies(query, dropout_p): return _SDPA.decompose(*args, scale=scale, enable_gqa=enable_gqa)
  with torch._C._AutoDispatchBelowAutograd():
    return _SDPA(*args, scale=scale, enable_gqa=enable_gqa)


KERNELS = {"scaled_dot_product_attention": scaled_dot_product_attention}
AUTOGRAD_KERNELS = {"scaled_dot_product_attention": scaled_dot_product_attention_autograd}
