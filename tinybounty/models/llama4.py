"""Llama 4 Scout's text model (transformers' Llama4ForCausalLM): routed experts (top-1, sigmoid score applied to the
expert's input) plus a shared expert, dense layers between MoE layers when interleaved, and attention that alternates
RoPE layers (chunked: a query sees only its own `attention_chunk_size` block, with weightless QK-norm) with NoPE layers
(full causal, query temperature tuning by position); loaded from a Hugging Face checkpoint directory.

Attribute names follow the HF keys; the checkpoint's fused `feed_forward.experts.gate_up_proj` (E, D, 2I) and
`down_proj` (E, I, D) are split and transposed at load into `experts.gate_proj`, `up_proj` (E, I, D) and
`down_proj` (E, D, I), so each expert's rows are contiguous along the input dimension for the per-token gather.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tinygrad import Tensor, UOp, nn
from tinygrad.dtype import DType
from tinygrad.uop.ops import sint

from tinybounty.models.hf_checkpoint import Checkpoint, Source, config_get, direct, load_weights, rope_parameters
from tinybounty.models.moe_blocks import KVCache, attend, on_device_of, rms_norm, rope_cos_sin, rope_interleaved, routed_experts


@dataclass(frozen=True)
class Llama4Config:
  """Shape of a Llama 4 text model; per-layer lists say which layers use RoPE (1) and which are MoE layers."""
  vocab_size: int = 202048
  dim: int = 5120
  hidden_dim: int = 8192
  hidden_dim_mlp: int = 16384
  n_layers: int = 48
  n_heads: int = 40
  n_kv_heads: int = 8
  head_dim: int = 128
  n_experts: int = 16
  top_k: int = 1
  norm_eps: float = 1e-5
  use_qk_norm: bool = True
  rope_layers: tuple[int, ...] = ()
  moe_layers: tuple[int, ...] = ()
  chunked_layers: tuple[int, ...] = ()
  attention_chunk_size: int | None = 8192
  temperature_tuning: bool = True
  floor_scale: float = 8192
  attn_scale: float = 0.1
  rope: dict[str, Any] = field(default_factory=lambda: {"rope_type": "default", "rope_theta": 500000.0})
  max_context: int = 1024

  @classmethod
  def from_hf(cls, cfg: dict[str, Any], max_context: int = 1024) -> Llama4Config:
    """From a Llama4ForCausalLM (text) config.json, deriving the per-layer lists the way Llama4TextConfig does when absent."""
    if "text_config" in cfg and "hidden_size" not in cfg: cfg = cfg["text_config"]
    if cfg.get("attention_bias"): raise NotImplementedError("Llama 4 with attention_bias is not supported")
    n_layers, heads = config_get(cfg, "num_hidden_layers"), config_get(cfg, "num_attention_heads")
    rope_layers = cfg.get("no_rope_layers") or [int((i + 1) % cfg.get("no_rope_layer_interval", 4) != 0) for i in range(n_layers)]
    step = cfg.get("interleave_moe_layer_step", 1)
    moe_layers = cfg.get("moe_layers")
    if moe_layers is None: moe_layers = list(range(step - 1, n_layers, step))
    chunk = cfg.get("attention_chunk_size")
    layer_types = cfg.get("layer_types") or ["chunked_attention" if r and chunk is not None else "full_attention" for r in rope_layers]
    return cls(vocab_size=config_get(cfg, "vocab_size"), dim=config_get(cfg, "hidden_size"), hidden_dim=config_get(cfg, "intermediate_size"),
               hidden_dim_mlp=cfg.get("intermediate_size_mlp", 16384), n_layers=n_layers, n_heads=heads,
               n_kv_heads=cfg.get("num_key_value_heads") or heads, head_dim=cfg.get("head_dim") or config_get(cfg, "hidden_size") // heads,
               n_experts=config_get(cfg, "num_local_experts"), top_k=cfg.get("num_experts_per_tok", 1), norm_eps=cfg.get("rms_norm_eps", 1e-5),
               use_qk_norm=bool(cfg.get("use_qk_norm", True)), rope_layers=tuple(rope_layers), moe_layers=tuple(moe_layers),
               chunked_layers=tuple(i for i, t in enumerate(layer_types) if t == "chunked_attention"), attention_chunk_size=chunk,
               temperature_tuning=bool(cfg.get("attn_temperature_tuning", True)), floor_scale=cfg.get("floor_scale", 8192),
               attn_scale=cfg.get("attn_scale", 0.1), rope=rope_parameters(cfg, 500000.0), max_context=max_context)


class Attention:
  def __init__(self, cfg: Llama4Config, layer: int):
    self.cfg, hd = cfg, cfg.head_dim
    self.q_proj, self.o_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False), nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
    self.k_proj, self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False), nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
    self.use_rope = bool(cfg.rope_layers[layer])
    self.chunk = cfg.attention_chunk_size if layer in cfg.chunked_layers else None
    self.cache = KVCache(cfg.max_context)

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, positions: Tensor, use_cache: bool) -> Tensor:
    B, T, _ = x.shape
    q, k, v = [p(x).reshape(B, T, -1, self.cfg.head_dim).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj)]
    if self.use_rope:
      q, k = rope_interleaved(q, rope), rope_interleaved(k, rope)
      if self.cfg.use_qk_norm: q, k = rms_norm(q, self.cfg.norm_eps), rms_norm(k, self.cfg.norm_eps)
    elif self.cfg.temperature_tuning:  # NoPE layers sharpen attention with position: 1 + attn_scale * log1p(floor((pos+1) / floor_scale))
      pos = positions[start_pos:start_pos + T].float()
      q = q * ((((pos + 1.0) / self.cfg.floor_scale).floor() + 1.0).log() * self.cfg.attn_scale + 1.0).reshape(1, 1, T, 1).cast(q.dtype)
    out = attend(q, k, v, self.cache if use_cache else None, start_pos, positions, self.chunk)
    return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


class MLP:
  def __init__(self, dim: int, hidden: int):
    self.gate_proj, self.up_proj = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
    self.down_proj = nn.Linear(hidden, dim, bias=False)

  def __call__(self, x: Tensor) -> Tensor:
    return self.down_proj((self.gate_proj(x).silu() * self.up_proj(x)).contiguous())


class Experts:
  def __init__(self, cfg: Llama4Config):
    E, D, I = cfg.n_experts, cfg.dim, cfg.hidden_dim
    self.gate_proj, self.up_proj, self.down_proj = Tensor.empty(E, I, D), Tensor.empty(E, I, D), Tensor.empty(E, D, I)


class Moe:
  def __init__(self, cfg: Llama4Config):
    self.cfg, self.router, self.experts = cfg, nn.Linear(cfg.dim, cfg.n_experts, bias=False), Experts(cfg)
    self.shared_expert, self.mode = MLP(cfg.dim, cfg.hidden_dim), "auto"

  def __call__(self, x: Tensor) -> Tensor:
    B, T, D = x.shape
    x = x.reshape(B * T, D)
    top, idx = self.router(x).topk(self.cfg.top_k, dim=-1)
    e = self.experts
    routed = routed_experts(x, idx, top.float().sigmoid(), e.gate_proj, e.up_proj, e.down_proj, scale_input=True, mode=self.mode)
    return (self.shared_expert(x) + routed).reshape(B, T, D)


class DecoderLayer:
  def __init__(self, cfg: Llama4Config, layer: int):
    self.input_layernorm, self.self_attn = nn.RMSNorm(cfg.dim, cfg.norm_eps), Attention(cfg, layer)
    self.post_attention_layernorm = nn.RMSNorm(cfg.dim, cfg.norm_eps)
    self.feed_forward = Moe(cfg) if layer in cfg.moe_layers else MLP(cfg.dim, cfg.hidden_dim_mlp)

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, positions: Tensor, use_cache: bool) -> Tensor:
    h = x + self.self_attn(self.input_layernorm(x), start_pos, rope, positions, use_cache)
    return h + self.feed_forward(self.post_attention_layernorm(h))


class Llama4TextModel:
  def __init__(self, cfg: Llama4Config):
    self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
    self.layers = [DecoderLayer(cfg, i) for i in range(cfg.n_layers)]
    self.norm = nn.RMSNorm(cfg.dim, cfg.norm_eps)


class Llama4:
  """Llama 4 text model: (B, T) token ids -> (B, T, vocab_size) logits, KV cache and `start_pos` as in `Olmoe`."""
  def __init__(self, cfg: Llama4Config):
    self.cfg, self.model = cfg, Llama4TextModel(cfg)
    self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
    self.rope = rope_cos_sin(cfg.head_dim, cfg.max_context, cfg.rope)
    self.positions = Tensor.arange(cfg.max_context).contiguous().is_param_(False)

  def __call__(self, tokens: Tensor, start_pos: int | UOp = 0, use_cache: bool = True) -> Tensor:
    T = tokens.shape[1]
    if isinstance(start_pos, int) and not 0 <= start_pos <= self.cfg.max_context - T:
      raise ValueError(f"start_pos {start_pos} + {T} tokens exceeds max_context {self.cfg.max_context}")
    x, rope = self.model.embed_tokens(on_device_of(tokens, self.lm_head.weight)), self.rope[start_pos:start_pos + T]
    for layer in self.model.layers: x = layer(x, start_pos, rope, self.positions, use_cache)
    return self.lm_head(self.model.norm(x))

  def reset_cache(self) -> None:
    for layer in self.model.layers: layer.self_attn.cache.kv = None

  def kv_caches(self) -> list[Tensor]:
    return [layer.self_attn.cache.kv for layer in self.model.layers if layer.self_attn.cache.kv is not None]

  def set_moe_mode(self, mode: str) -> None:
    """'auto' (gather at decode, dense when tokens*top_k > experts), 'gather' or 'dense' for every MoE layer."""
    for layer in self.model.layers:
      if isinstance(layer.feed_forward, Moe): layer.feed_forward.mode = mode

  def bytes_per_token(self) -> int:
    """Weight bytes one batch-1 decode step reads (the selected experts only, one embedding row)."""
    from tinygrad.nn.state import get_state_dict
    total = 0
    for name, t in get_state_dict(self).items():
      if not t.is_param: continue
      if ".experts." in name: total += t.nbytes() * self.cfg.top_k // self.cfg.n_experts
      elif name == "model.embed_tokens.weight": total += t.nbytes() // self.cfg.vocab_size
      else: total += t.nbytes()
    return total


def _split_gate_up(ckpt: Checkpoint, key: str, half: int, I: int) -> Source:
  return lambda device: ckpt.to(key, device)[:, :, half * I:(half + 1) * I].transpose(1, 2)


def llama4_sources(ckpt: Checkpoint, cfg: Llama4Config) -> dict[str, Source]:
  """Where each model tensor comes from (a multimodal checkpoint's keys carry a 'language_model.' prefix)."""
  pre = "language_model." if "language_model.model.norm.weight" in ckpt else ""
  out: dict[str, Source] = {}
  for i in range(cfg.n_layers):
    p = f"model.layers.{i}."
    names = [f"self_attn.{x}_proj.weight" for x in "qkvo"] + ["input_layernorm.weight", "post_attention_layernorm.weight"]
    if i in cfg.moe_layers:
      names += ["feed_forward.router.weight"] + [f"feed_forward.shared_expert.{x}_proj.weight" for x in ("gate", "up", "down")]
      fused, down = f"{pre}{p}feed_forward.experts.gate_up_proj", f"{pre}{p}feed_forward.experts.down_proj"
      out[f"{p}feed_forward.experts.gate_proj"] = _split_gate_up(ckpt, fused, 0, cfg.hidden_dim)
      out[f"{p}feed_forward.experts.up_proj"] = _split_gate_up(ckpt, fused, 1, cfg.hidden_dim)
      out[f"{p}feed_forward.experts.down_proj"] = (lambda k: lambda device: ckpt.to(k, device).transpose(1, 2))(down)
    else:
      names += [f"feed_forward.{x}_proj.weight" for x in ("gate", "up", "down")]
    for n in names: out[p + n] = direct(ckpt, pre + p + n)
  for n in ("model.embed_tokens.weight", "model.norm.weight"): out[n] = direct(ckpt, pre + n)
  out["lm_head.weight"] = direct(ckpt, pre + "lm_head.weight" if pre + "lm_head.weight" in ckpt else pre + "model.embed_tokens.weight")
  return out


def load_llama4(path: str, device: str | None = None, dtype: DType | None = None, max_context: int = 1024) -> Llama4:
  """A Llama4 with the weights of the checkpoint directory `path` (dtype: the stored one unless given; bf16 -> float32)."""
  from tinygrad import Device
  ckpt = Checkpoint(path)
  if ckpt.architecture not in ("Llama4ForCausalLM", "Llama4ForConditionalGeneration"):
    raise ValueError(f"{path} holds a {ckpt.architecture}, not a Llama4ForCausalLM")
  model = Llama4(Llama4Config.from_hf(ckpt.config, max_context))
  load_weights(model, llama4_sources(ckpt, model.cfg), device or Device.DEFAULT, dtype, desc=f"loading {ckpt.path.name}")
  return model
