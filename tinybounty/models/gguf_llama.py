"""Llama-architecture GGUF files (`general.architecture == "llama"`) loaded into `models.llama.Llama`: the config from the
`llama.*` metadata, the weights by GGUF tensor name, one tensor at a time.

llama.cpp's converter stores q and k projections permuted for its rotary layout, which pairs adjacent features (2i, 2i+1)
of each head; `Llama.apply_rope` pairs them the same way (Meta's layout), so the GGUF rows load as stored. A checkpoint
in transformers' layout (rotate_half: feature i paired with i + head_dim/2) needs `to_interleaved` first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tinygrad.dtype import DType

from tinybounty.models.gguf import GGUFError, GGUFFile
from tinybounty.models.hf_checkpoint import Source, load_weights
from tinybounty.models.llama import Llama, LlamaConfig, rope_table

# model tensor (models.llama names) -> GGUF tensor, per layer ({i}) and global
LAYER_NAMES = {"attention_norm.weight": "attn_norm.weight", "attention.wq.weight": "attn_q.weight", "attention.wk.weight": "attn_k.weight",
               "attention.wv.weight": "attn_v.weight", "attention.wo.weight": "attn_output.weight", "ffn_norm.weight": "ffn_norm.weight",
               "w1.weight": "ffn_gate.weight", "w3.weight": "ffn_up.weight", "w2.weight": "ffn_down.weight"}
GLOBAL_NAMES = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight", "output.weight": "output.weight"}


def to_interleaved(w: np.ndarray, n_heads: int) -> np.ndarray:
  """q/k projection rows from transformers' rotate_half layout to the adjacent-pair layout: row 2i+s of each head is row
  s*head_dim/2 + i of the input (s in {0, 1})."""
  return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_config(f: GGUFFile, max_context: int = 1024) -> LlamaConfig:
  """A LlamaConfig from a llama GGUF's metadata (`llama.embedding_length`, `block_count`, `attention.head_count`, ...)."""
  if f.architecture != "llama": raise GGUFError(f"{f.path} holds a {f.architecture!r} model, not a llama")
  def g(key, default=None): return f.get(f"llama.{key}", default)
  dim, heads = int(g("embedding_length")), int(g("attention.head_count"))
  if int(g("expert_count", 0)): raise NotImplementedError(f"{f.path}: a llama with experts (llama.expert_count > 0) is not supported")
  if dim % heads: raise GGUFError(f"{f.path}: embedding_length {dim} is not a multiple of head_count {heads}")
  for key in ("rope.dimension_count", "attention.key_length", "attention.value_length"):
    if int(g(key, dim // heads)) != dim // heads:
      raise NotImplementedError(f"{f.path}: llama.{key} {g(key)} differs from embedding_length / head_count = {dim // heads}: not supported")
  if (scaling := g("rope.scaling.type", "none")) != "none": raise NotImplementedError(f"{f.path}: rope scaling {scaling!r} is not supported")
  vocab = g("vocab_size", 0) or (len(f.metadata["tokenizer.ggml.tokens"]) if "tokenizer.ggml.tokens" in f.metadata else 0)
  vocab = vocab or f.info("token_embd.weight").shape[0]
  return LlamaConfig(dim=dim, n_layers=int(g("block_count")), n_heads=heads, n_kv_heads=int(g("attention.head_count_kv", heads)),
                     hidden_dim=int(g("feed_forward_length")), vocab_size=int(vocab), max_seq_len=max_context,
                     norm_eps=float(g("attention.layer_norm_rms_epsilon", 1e-5)), rope_theta=float(g("rope.freq_base", 10000.0)))


def llama_sources(f: GGUFFile, cfg: LlamaConfig) -> dict[str, Source]:
  """Where each model tensor comes from (output.weight falls back to the embedding table when the file ties them)."""
  names = {k: v for k, v in GLOBAL_NAMES.items()}
  if "output.weight" not in f: names["output.weight"] = "token_embd.weight"
  for i in range(cfg.n_layers): names.update({f"layers.{i}.{k}": f"blk.{i}.{v}" for k, v in LAYER_NAMES.items()})
  return {k: _source(f, v) for k, v in names.items()}


def _source(f: GGUFFile, name: str) -> Source:
  def src(device: str): return f.to(name, device)
  src.gguf_name = name  # type: ignore[attr-defined]
  return src


def native_q8(model: Llama, f: GGUFFile, sources: dict[str, Source]) -> int:
  """Swap every linear layer whose GGUF weight is Q8_0 for a `Q8Linear` that keeps it as stored, with sources for its int8
  values and scales; returns how many were swapped."""
  from tinygrad import Tensor
  from tinygrad.nn import Linear

  from tinybounty.models.q8_linear import Q8Linear
  swapped = 0
  for name in [n for n in sources if n.endswith(".weight")]:
    *parents, attr, _ = name.split(".")
    owner = model
    for p in parents: owner = owner[int(p)] if p.isdigit() else getattr(owner, p)
    gg = f.tensors.get(sources[name].gguf_name)
    if not isinstance(layer := getattr(owner, attr), Linear) or gg is None or gg.type_name != "Q8_0": continue
    setattr(owner, attr, Q8Linear(layer.weight.shape[1], layer.weight.shape[0]))
    del sources[name]
    sources[f"{name[:-7]}.q"] = lambda device, g=gg.name: Tensor(f.q8_0_values(g), device=device)
    sources[f"{name[:-7]}.d"] = lambda device, g=gg.name: Tensor(f.q8_0_scales(g), device=device)
    swapped += 1
  return swapped


def load_gguf_llama(path: str | Path, device: str | None = None, dtype: DType | None = None, max_context: int = 1024,
                    q8: str = "dequantize") -> Llama:
  """A Llama with the weights of the GGUF file `path`: F32/F16 kept as stored unless `dtype` is given, quantized types
  dequantized to float32 (then cast to `dtype` if given), or with `q8="native"` Q8_0 projections kept as stored and run by
  `Q8Linear` (the embedding table is dequantized either way: a decode step reads one row of it)."""
  from tinygrad import Device, Tensor, dtypes
  if q8 not in ("dequantize", "native"): raise ValueError(f"q8 must be 'dequantize' or 'native', not {q8!r}")
  f = GGUFFile(path)
  model = Llama(llama_config(f, max_context))
  sources = llama_sources(f, model.cfg)
  if q8 == "native": native_q8(model, f, sources)
  if "rope_freqs.weight" in f:  # Llama 3's per-frequency divisors
    model.rope = rope_table(model.cfg.dim // model.cfg.n_heads, max_context, model.cfg.rope_theta,
                            Tensor(np.asarray(f.tensor("rope_freqs.weight"), np.float32))).contiguous().is_param_(False)
  load_weights(model, sources, device or Device.DEFAULT, dtype, desc=f"loading {f.path.name}")
  emb = model.tok_embeddings.weight
  if dtype is None and emb.dtype in (dtypes.half, dtypes.bfloat16):
    # the table's dtype is the residual stream's: F16 rows would carry half activations through every layer, where
    # llama.cpp (and transformers on these weights) compute in float32; a decode step reads one row, so widening is cheap
    model.tok_embeddings.weight = emb.float().contiguous().realize()
  return model


ARCHITECTURES = {"llama": load_gguf_llama}


def load_gguf(path: str | Path, device: str | None = None, dtype: DType | None = None, max_context: int = 1024, q8: str = "dequantize"):
  """The model of a GGUF file by its `general.architecture`; a GGUFError names an unsupported one."""
  arch = GGUFFile(path).architecture
  if arch not in ARCHITECTURES:
    raise GGUFError(f"unknown architecture {arch!r} in {path} (general.architecture; supported: {', '.join(ARCHITECTURES)})")
  return ARCHITECTURES[arch](path, device=device, dtype=dtype, max_context=max_context, q8=q8)
