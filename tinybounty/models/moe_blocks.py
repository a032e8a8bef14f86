"""Pieces the Hugging Face MoE decoders share: RoPE tables (default and Llama 3 scaling), both rotary layouts, attention
over a KV cache with causal or chunked masks, and routed experts that read only the selected experts' weights."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from tinygrad import Tensor, dtypes
from tinygrad.uop.ops import sint


def on_device_of(t: Tensor, ref: Tensor) -> Tensor:
  """`t` moved to `ref`'s device, or replicated over its devices when `ref` is sharded."""
  if isinstance(ref.device, tuple): return t if t.device == ref.device else t.shard(ref.device)
  return t.to(ref.device)


def rope_inv_freq(head_dim: int, params: dict[str, Any]) -> np.ndarray:
  """Inverse frequencies (head_dim//2,) in float64 for rope_type 'default' or 'llama3' (Llama 3.1 / 4 wavelength scaling)."""
  inv = 1.0 / params["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
  kind = params.get("rope_type", "default")
  if kind == "default": return inv
  if kind != "llama3": raise NotImplementedError(f"rope_type {kind!r} is not supported (default and llama3 are)")
  factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
  old_len = params["original_max_position_embeddings"]
  low_wavelen, high_wavelen, wavelen = old_len / low, old_len / high, 2 * math.pi / inv
  scaled = np.where(wavelen > low_wavelen, inv / factor, inv)
  with np.errstate(divide="ignore", invalid="ignore"):  # high == low (Llama 4 Scout): no medium band, smooth unused
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
  return np.where(medium, smoothed, scaled)


def rope_cos_sin(head_dim: int, max_len: int, params: dict[str, Any]) -> Tensor:
  """(max_len, head_dim//2, 2) float32 cos/sin of every position's angles, computed in float64 then rounded."""
  angles = np.arange(max_len, dtype=np.float64)[:, None] * rope_inv_freq(head_dim, params)[None, :]
  return Tensor(np.stack([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)).contiguous().is_param_(False)


def rope_rotate_half(x: Tensor, table: Tensor) -> Tensor:
  """Rotate (B, H, T, Hd) pairing feature i with i + Hd/2 (the HF 'rotate_half' layout, OLMoE / Llama 2-3 HF)."""
  cos, sin = table[..., 0], table[..., 1]
  a, b = x.chunk(2, dim=-1)
  return (a * cos - b * sin).cat(b * cos + a * sin, dim=-1)


def rope_interleaved(x: Tensor, table: Tensor) -> Tensor:
  """Rotate (B, H, T, Hd) pairing adjacent features 2i, 2i+1 (Meta's complex layout, Llama 4)."""
  x = x.reshape(*x.shape[:-1], -1, 2)
  cos, sin, a, b = table[..., 0], table[..., 1], x[..., 0], x[..., 1]
  return Tensor.stack(a * cos - b * sin, a * sin + b * cos, dim=-1).flatten(-2)


def rms_norm(x: Tensor, eps: float, weight: Tensor | None = None) -> Tensor:
  """RMSNorm computed in float32 (as transformers does), cast back, then scaled by `weight` if given."""
  y = x.float() * (x.float().square().mean(-1, keepdim=True) + eps).rsqrt()
  y = y.cast(x.dtype)
  return y if weight is None else y * weight


class KVCache:
  """One layer's keys and values, (2, B, Hkv, max_len, Hd), created on the first cached call and written in place."""
  def __init__(self, max_len: int):
    self.max_len, self.kv = max_len, None

  def update(self, k: Tensor, v: Tensor, start_pos: sint) -> tuple[Tensor, Tensor]:
    B, H, T, D = k.shape
    if self.kv is None or self.kv.shape[1] != B:
      if isinstance(k.device, tuple):  # sharded by heads: the cache splits the same way
        self.kv = Tensor.zeros(2, B, H, self.max_len, D, dtype=k.dtype).shard(k.device, axis=2).contiguous().realize()
      else:
        self.kv = Tensor.zeros(2, B, H, self.max_len, D, dtype=k.dtype, device=k.device).contiguous().realize()
    self.kv[:, :, :, start_pos:start_pos + T].assign(Tensor.stack(k, v))
    return self.kv[0, :, :, :start_pos + T], self.kv[1, :, :, :start_pos + T]


def attention_mask(positions: Tensor, start_pos: sint, T: int, chunk: int | None) -> Tensor | None:
  """Additive (T, start_pos+T) mask: causal, and with `chunk` also within the query's chunk (Llama 4's chunked layers)."""
  if T == 1 and chunk is None: return None
  q = positions[start_pos:start_pos + T].reshape(T, 1)
  k = positions[:start_pos + T].reshape(1, -1)
  allowed = k <= q
  if chunk is not None: allowed = allowed & ((k // chunk) == (q // chunk))
  return allowed.where(0.0, float("-inf"))


def attend(q: Tensor, k: Tensor, v: Tensor, cache: KVCache | None, start_pos: sint, positions: Tensor, chunk: int | None = None) -> Tensor:
  """Scaled dot-product attention of (B, H, T, Hd) queries over the cache (written at start_pos) or over k, v alone."""
  T = q.shape[2]
  if cache is not None: k, v = cache.update(k, v, start_pos)
  mask = attention_mask(positions, start_pos, T, chunk)
  return q.scaled_dot_product_attention(k, v, attn_mask=None if mask is None else mask.cast(q.dtype), enable_gqa=True)


def expert_ffn(x: Tensor, gate: Tensor, up: Tensor, down: Tensor) -> Tensor:
  """SwiGLU of (..., 1, D) inputs through per-row expert weights (..., I, D), (..., I, D), (..., D, I) -> (..., 1, D)."""
  # each projection its own kernel: fused, the gate and up products share one kernel with two reduces, and on GPUs only
  # the first gets split over threads (models/matvec.py); the stored bf16 values are the ones the fused kernel rounds to
  g, u = (x @ gate.transpose(-1, -2)).contiguous(), (x @ up.transpose(-1, -2)).contiguous()
  return (g.silu() * u).contiguous() @ down.transpose(-1, -2)


def routed_experts(x: Tensor, idx: Tensor, weight: Tensor, gate: Tensor, up: Tensor, down: Tensor, scale_input: bool = False,
                   mode: str = "auto") -> Tensor:
  """Sum over each token's selected experts of weight * expert(x) (or expert(weight * x) with `scale_input`, Llama 4's way).

  x: (N, D); idx, weight: (N, K); stacked expert weights gate, up: (E, I, D), down: (E, D, I). mode "gather" indexes the
  K selected experts' weights per token (a decode step reads only those); "dense" runs all E experts once with zero weight
  on the unselected ones (cheaper when N*K > E, as in a prefill); "auto" picks by that rule.
  """
  (N, D), (K,), E = x.shape, idx.shape[1:], gate.shape[0]
  if mode == "auto": mode = "dense" if N * K > E else "gather"
  weight = weight.cast(x.dtype)
  if mode == "gather":
    xs = x.reshape(N, 1, 1, D)
    if scale_input: xs = xs * weight.reshape(N, K, 1, 1)
    # contiguous: each expert's row of outputs is its own matvec; fused with the sum over K the down projection would be
    # a two-reduce kernel that gets no matvec schedule on GPUs (models/matvec.py). Same roundings either way.
    out = expert_ffn(xs, gate[idx], up[idx], down[idx]).reshape(N, K, D).contiguous()
    return out.sum(1) if scale_input else (out * weight.unsqueeze(-1)).sum(1)
  if mode != "dense": raise ValueError(f"unknown MoE mode {mode!r}")
  dense_w = (idx.unsqueeze(-1) == on_device_of(Tensor.arange(E, dtype=dtypes.int32), x)).where(weight.unsqueeze(-1), 0).sum(1)  # (N, E)
  xs = x.reshape(N, 1, 1, D)
  if scale_input: xs = xs * dense_w.reshape(N, E, 1, 1)
  out = expert_ffn(xs, gate, up, down).reshape(N, E, D)
  return out.sum(1) if scale_input else (out * dense_w.unsqueeze(-1)).sum(1)


def shard_model(model, devices: tuple[str, ...]) -> None:
  """Spread a loaded Olmoe / Llama4 over `devices` in place with `Tensor.shard`: attention by heads (q/k/v rows, o_proj
  columns, OLMoE's per-head QK-norm weights), stacked experts by expert (axis 0), everything else replicated. MoE layers
  then run their dense path, each device computing only the experts it holds; the KV cache shards by heads too."""
  from tinygrad.nn.state import get_state_dict
  cfg = model.cfg
  if cfg.n_kv_heads % len(devices) or cfg.n_experts % len(devices):
    raise ValueError(f"{len(devices)} devices must divide the {cfg.n_kv_heads} KV heads and the {cfg.n_experts} experts")
  for name, t in get_state_dict(model).items():
    if any(p in name for p in ("q_proj", "k_proj", "v_proj", "q_norm", "k_norm", ".experts.")): axis = 0
    elif "o_proj" in name: axis = 1
    else: axis = None
    t.replace(t.shard(devices, axis=axis).realize())
  model.set_moe_mode("dense")
  model.reset_cache()
