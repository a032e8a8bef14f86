"""PyTorch's inference fast paths of nn.MultiheadAttention and nn.TransformerEncoderLayer, composed from the ops they fuse.

In eval mode without grad, batch_first modules on the CPU, CUDA and the PrivateUse1 device skip their Python forward
and call one fused op (`_native_multi_head_attention`, `_transformer_encoder_layer_fwd`); a ViT written after
torchvision's definition failed its evaluation on tiny there. These kernels run the same computation with the device's
own ops: projections, scaled scores, masked softmax (a True in a boolean mask is masked out; a fully masked row gives
zeros, as `_masked_softmax` does), output projection; the encoder layer adds the residuals, layer norms (before or after,
`norm_first`) and the ReLU or exact-GELU feed-forward. Masks: `mask_type` 1 is a key-padding mask (batch, keys); 0 and
2 broadcast as attention masks.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, mask: torch.Tensor | None, mask_type: int | None) -> tuple:
  """(B, L, E) q, k, v already projected: per-head softmax(q k^T / sqrt(d)) v as (B, L, E), and the (B, H, L, S) weights."""
  b, lq, e = q.shape
  split = lambda t: t.reshape(b, t.shape[1], heads, e // heads).transpose(1, 2)
  scores = split(q) @ split(k).transpose(-2, -1) / math.sqrt(e // heads)
  if mask is not None:
    if mask_type == 1: mask = mask[:, None, None, :]
    if mask.dtype == torch.bool:
      scores = scores.masked_fill(mask, float("-inf"))
      weights = torch.softmax(scores, -1).masked_fill(mask.expand_as(scores).all(-1, keepdim=True), 0.0)
    else: weights = torch.softmax(scores + mask, -1)
  else: weights = torch.softmax(scores, -1)
  return (weights @ split(v)).transpose(1, 2).reshape(b, lq, e), weights


def native_multi_head_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, embed_dim: int, num_head: int,
                                qkv_weight: torch.Tensor, qkv_bias: torch.Tensor, proj_weight: torch.Tensor, proj_bias: torch.Tensor,
                                mask: torch.Tensor | None = None, need_weights: bool = True, average_attn_weights: bool = True,
                                mask_type: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
  wq, wk, wv = qkv_weight.chunk(3)
  bq, bk, bv = qkv_bias.chunk(3)
  out, weights = _attention(F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv), num_head, mask, mask_type)
  if not need_weights: weights = query.new_empty(0)
  elif average_attn_weights: weights = weights.mean(1)
  return F.linear(out, proj_weight, proj_bias), weights


def transformer_encoder_layer_fwd(src: torch.Tensor, embed_dim: int, num_heads: int, qkv_weight: torch.Tensor, qkv_bias: torch.Tensor,
                                  proj_weight: torch.Tensor, proj_bias: torch.Tensor, use_gelu: bool, norm_first: bool, eps: float,
                                  norm_weight_1: torch.Tensor, norm_bias_1: torch.Tensor, norm_weight_2: torch.Tensor,
                                  norm_bias_2: torch.Tensor, ffn_weight_1: torch.Tensor, ffn_bias_1: torch.Tensor, ffn_weight_2: torch.Tensor,
                                  ffn_bias_2: torch.Tensor, mask: torch.Tensor | None = None, mask_type: int | None = None) -> torch.Tensor:
  norm1 = lambda t: F.layer_norm(t, (embed_dim,), norm_weight_1, norm_bias_1, eps)
  norm2 = lambda t: F.layer_norm(t, (embed_dim,), norm_weight_2, norm_bias_2, eps)
  x = norm1(src) if norm_first else src
  x = src + native_multi_head_attention(x, x, x, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias, mask, False,
                                        False, mask_type)[0]
  if not norm_first: x = norm1(x)
  h = norm2(x) if norm_first else x
  h = F.linear(h, ffn_weight_1, ffn_bias_1)
  h = F.linear(F.gelu(h) if use_gelu else F.relu(h), ffn_weight_2, ffn_bias_2)
  return x + h if norm_first else norm2(x + h)


KERNELS: dict[str, Any] = {"_native_multi_head_attention": native_multi_head_attention,
                           "_transformer_encoder_layer_fwd": transformer_encoder_layer_fwd}
