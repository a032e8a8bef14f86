"""OLMoE (transformers' OlmoeForCausalLM): a Llama-style decoder with QK-norm and a softmax top-k mixture of experts
(64 experts, top-8 in OLMoE-1B-7B) in every layer, loaded from a Hugging Face checkpoint directory.

Attribute names follow the HF keys, so `get_state_dict(model)` names every tensor as the checkpoint does, except the
experts: the checkpoint's per-expert `mlp.experts.{e}.gate_proj.weight` are stacked into one `mlp.experts.gate_proj`
(E, I, D) tensor so a decode step can index the selected experts' rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinygrad import Tensor, UOp, nn
from tinygrad.dtype import DType
from tinygrad.uop.ops import sint

from tinybounty.models.hf_checkpoint import Checkpoint, Source, config_get, direct, load_weights, rope_parameters, stacked
from tinybounty.models.moe_blocks import KVCache, attend, on_device_of, rope_cos_sin, rope_rotate_half, routed_experts


@dataclass(frozen=True)
class OlmoeConfig:
  """Shape of an OLMoE model; `max_context` sizes the KV cache and RoPE table (not a property of the weights)."""
  vocab_size: int = 50304
  dim: int = 2048
  hidden_dim: int = 1024
  n_layers: int = 16
  n_heads: int = 16
  n_kv_heads: int = 16
  n_experts: int = 64
  top_k: int = 8
  norm_eps: float = 1e-5
  norm_topk_prob: bool = False
  clip_qkv: float | None = None
  rope: dict[str, Any] = field(default_factory=lambda: {"rope_type": "default", "rope_theta": 10000.0})
  max_context: int = 1024

  @property
  def head_dim(self) -> int:
    return self.dim // self.n_heads

  @classmethod
  def from_hf(cls, cfg: dict[str, Any], max_context: int = 1024) -> OlmoeConfig:
    """From an OlmoeForCausalLM config.json."""
    heads = config_get(cfg, "num_attention_heads")
    if cfg.get("attention_bias"): raise NotImplementedError("OLMoE with attention_bias is not supported")
    return cls(vocab_size=config_get(cfg, "vocab_size"), dim=config_get(cfg, "hidden_size"), hidden_dim=config_get(cfg, "intermediate_size"),
               n_layers=config_get(cfg, "num_hidden_layers"), n_heads=heads, n_kv_heads=cfg.get("num_key_value_heads") or heads,
               n_experts=config_get(cfg, "num_experts", "num_local_experts"), top_k=config_get(cfg, "num_experts_per_tok"),
               norm_eps=cfg.get("rms_norm_eps", 1e-5), norm_topk_prob=bool(cfg.get("norm_topk_prob", False)), clip_qkv=cfg.get("clip_qkv"),
               rope=rope_parameters(cfg, 10000.0), max_context=max_context)


class Attention:
  def __init__(self, cfg: OlmoeConfig):
    self.cfg, hd = cfg, cfg.head_dim
    self.q_proj, self.o_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False), nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
    self.k_proj, self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False), nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
    self.q_norm, self.k_norm = nn.RMSNorm(cfg.n_heads * hd, cfg.norm_eps), nn.RMSNorm(cfg.n_kv_heads * hd, cfg.norm_eps)
    self.cache = KVCache(cfg.max_context)

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, positions: Tensor, use_cache: bool) -> Tensor:
    B, T, _ = x.shape
    q, k, v = self.q_norm(self.q_proj(x)), self.k_norm(self.k_proj(x)), self.v_proj(x)
    if (c := self.cfg.clip_qkv) is not None: q, k, v = q.clip(-c, c), k.clip(-c, c), v.clip(-c, c)
    q = q.reshape(B, T, -1, self.cfg.head_dim).transpose(1, 2)
    k, v = [t.reshape(B, T, -1, self.cfg.head_dim).transpose(1, 2) for t in (k, v)]
    q, k = rope_rotate_half(q, rope), rope_rotate_half(k, rope)
    out = attend(q, k, v, self.cache if use_cache else None, start_pos, positions)
    return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class Experts:
  def __init__(self, cfg: OlmoeConfig):
    E, D, I = cfg.n_experts, cfg.dim, cfg.hidden_dim
    self.gate_proj, self.up_proj, self.down_proj = Tensor.empty(E, I, D), Tensor.empty(E, I, D), Tensor.empty(E, D, I)


class SparseMoe:
  def __init__(self, cfg: OlmoeConfig):
    self.cfg, self.gate, self.experts = cfg, nn.Linear(cfg.dim, cfg.n_experts, bias=False), Experts(cfg)
    self.mode = "auto"

  def __call__(self, x: Tensor) -> Tensor:
    B, T, D = x.shape
    x = x.reshape(B * T, D)
    probs = self.gate(x).float().softmax(-1)
    top, idx = probs.topk(self.cfg.top_k, dim=-1)
    if self.cfg.norm_topk_prob: top = top / top.sum(-1, keepdim=True)
    e = self.experts
    return routed_experts(x, idx, top, e.gate_proj, e.up_proj, e.down_proj, mode=self.mode).reshape(B, T, D)


class DecoderLayer:
  def __init__(self, cfg: OlmoeConfig):
    self.input_layernorm, self.self_attn = nn.RMSNorm(cfg.dim, cfg.norm_eps), Attention(cfg)
    self.post_attention_layernorm, self.mlp = nn.RMSNorm(cfg.dim, cfg.norm_eps), SparseMoe(cfg)

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, positions: Tensor, use_cache: bool) -> Tensor:
    h = x + self.self_attn(self.input_layernorm(x), start_pos, rope, positions, use_cache)
    return h + self.mlp(self.post_attention_layernorm(h))


class OlmoeModel:
  def __init__(self, cfg: OlmoeConfig):
    self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
    self.layers = [DecoderLayer(cfg) for _ in range(cfg.n_layers)]
    self.norm = nn.RMSNorm(cfg.dim, cfg.norm_eps)


class Olmoe:
  """OLMoE language model: (B, T) token ids -> (B, T, vocab_size) logits, with a per-layer KV cache.

  `start_pos` is an int or a bound `UOp.variable` (one TinyJit'd decode step serves every position); `use_cache=False`
  is a stateless causal forward.
  """
  def __init__(self, cfg: OlmoeConfig):
    self.cfg, self.model = cfg, OlmoeModel(cfg)
    self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
    self.rope = rope_cos_sin(cfg.head_dim, cfg.max_context, cfg.rope)
    self.positions = Tensor.arange(cfg.max_context).contiguous().is_param_(False)

  def __call__(self, tokens: Tensor, start_pos: int | UOp = 0, use_cache: bool = True) -> Tensor:
    T = tokens.shape[1]
    if isinstance(start_pos, int) and not 0 <= start_pos <= self.cfg.max_context - T:
      raise ValueError(f"start_pos {start_pos} + {T} tokens exceeds max_context {self.cfg.max_context}")
    x = self.model.embed_tokens(on_device_of(tokens, self.lm_head.weight))
    rope = self.rope[start_pos:start_pos + T].cast(x.dtype)  # in the activations' dtype, as transformers rotates (bf16 in a bf16 model)
    for layer in self.model.layers: x = layer(x, start_pos, rope, self.positions, use_cache)
    return self.lm_head(self.model.norm(x))

  def reset_cache(self) -> None:
    for layer in self.model.layers: layer.self_attn.cache.kv = None

  def kv_caches(self) -> list[Tensor]:
    return [layer.self_attn.cache.kv for layer in self.model.layers if layer.self_attn.cache.kv is not None]

  def set_moe_mode(self, mode: str) -> None:
    """'auto' (gather at decode, dense when tokens*top_k > experts), 'gather' or 'dense' for every layer."""
    for layer in self.model.layers: layer.mlp.mode = mode

  def bytes_per_token(self) -> int:
    """Weight bytes one batch-1 decode step reads: everything but the unselected experts and the embedding table's other rows."""
    from tinygrad.nn.state import get_state_dict
    total = 0
    for name, t in get_state_dict(self).items():
      if not t.is_param: continue
      if ".experts." in name: total += t.nbytes() * self.cfg.top_k // self.cfg.n_experts
      elif name == "model.embed_tokens.weight": total += t.nbytes() // self.cfg.vocab_size
      else: total += t.nbytes()
    return total


def olmoe_sources(ckpt: Checkpoint, cfg: OlmoeConfig) -> dict[str, Source]:
  """Where each model tensor comes from: HF keys one-to-one, the experts stacked from their per-expert keys."""
  out: dict[str, Source] = {}
  for i in range(cfg.n_layers):
    p = f"model.layers.{i}."
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"): out[f"{p}self_attn.{proj}.weight"] = direct(ckpt, f"{p}self_attn.{proj}.weight")
    for norm in ("self_attn.q_norm", "self_attn.k_norm", "input_layernorm", "post_attention_layernorm", "mlp.gate"):
      out[f"{p}{norm}.weight"] = direct(ckpt, f"{p}{norm}.weight")
    for proj in ("gate_proj", "up_proj", "down_proj"):
      out[f"{p}mlp.experts.{proj}"] = stacked(ckpt, [f"{p}mlp.experts.{e}.{proj}.weight" for e in range(cfg.n_experts)])
  out["model.embed_tokens.weight"], out["model.norm.weight"] = direct(ckpt, "model.embed_tokens.weight"), direct(ckpt, "model.norm.weight")
  out["lm_head.weight"] = direct(ckpt, "lm_head.weight" if "lm_head.weight" in ckpt else "model.embed_tokens.weight")
  return out


def load_olmoe(path: str, device: str | None = None, dtype: DType | None = None, max_context: int = 1024) -> Olmoe:
  """An Olmoe with the weights of the checkpoint directory `path` (dtype: keep the stored one unless given; bf16 -> float32
  unless dtype is bfloat16, when bf16 weights are copied as they are)."""
  from tinygrad import Device, dtypes
  ckpt = Checkpoint(path, widen_bf16=dtype != dtypes.bfloat16)
  if ckpt.architecture != "OlmoeForCausalLM": raise ValueError(f"{path} holds a {ckpt.architecture}, not an OlmoeForCausalLM")
  model = Olmoe(OlmoeConfig.from_hf(ckpt.config, max_context))
  load_weights(model, olmoe_sources(ckpt, model.cfg), device or Device.DEFAULT, dtype, desc=f"loading {ckpt.path.name}")
  return model
