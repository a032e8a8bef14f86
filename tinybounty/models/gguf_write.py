"""Write a transformers LlamaForCausalLM as a llama GGUF file with the `gguf` package (llama.cpp's own writer and
quantizers, an independent reference for models.gguf): the tests' and bench/llm_cpu_gguf.py's checkpoints."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tinybounty.models.gguf_llama import GLOBAL_NAMES, LAYER_NAMES, to_interleaved

HF_LAYER = {"attention_norm.weight": "input_layernorm.weight", "attention.wq.weight": "self_attn.q_proj.weight",
            "attention.wk.weight": "self_attn.k_proj.weight", "attention.wv.weight": "self_attn.v_proj.weight",
            "attention.wo.weight": "self_attn.o_proj.weight", "ffn_norm.weight": "post_attention_layernorm.weight",
            "w1.weight": "mlp.gate_proj.weight", "w3.weight": "mlp.up_proj.weight", "w2.weight": "mlp.down_proj.weight"}
HF_GLOBAL = {"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}


def spm_vocab(n: int) -> tuple[list[str], list[float], list[int]]:
  """A placeholder SentencePiece vocabulary of `n` tokens (unknown, BOS, EOS, the 256 byte tokens, then t0, t1, ...): llama.cpp
  will not load a llama GGUF without one; decoding uses token ids only."""
  toks = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
  toks = (toks + [f"t{i}" for i in range(n - len(toks))])[:n]
  types = [2, 3, 3] + [6] * 256 + [1] * max(0, n - 259)
  return toks, [0.0] * n, types[:n]


def hf_llama_tensors(model: Any, interleave: bool = True) -> dict[str, np.ndarray]:
  """GGUF tensor name -> float32 array of a transformers LlamaForCausalLM (q/k rows permuted to the adjacent-pair rotary
  layout unless `interleave=False`, which makes a deliberately wrong file)."""
  sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
  c = model.config
  out = {gg: sd[HF_GLOBAL[ours]] for ours, gg in GLOBAL_NAMES.items() if HF_GLOBAL[ours] in sd}
  for i in range(c.num_hidden_layers):
    for ours, gg in LAYER_NAMES.items():
      w = sd[f"model.layers.{i}.{HF_LAYER[ours]}"]
      if interleave and ours in ("attention.wq.weight", "attention.wk.weight"):
        w = to_interleaved(w, c.num_attention_heads if ours == "attention.wq.weight" else c.num_key_value_heads)
      out[f"blk.{i}.{gg}"] = w
  if c.tie_word_embeddings: out.pop("output.weight", None)
  rope = dict(getattr(c, "rope_parameters", None) or {})
  if rope.get("rope_type", "default") == "llama3":  # as llama.cpp stores Llama 3's scaling: each frequency's divisor
    hd, inv = c.hidden_size // c.num_attention_heads, model.model.rotary_emb.inv_freq.float().numpy()
    out["rope_freqs.weight"] = ((1.0 / rope["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float32) / hd)) / inv).astype(np.float32)
  elif rope.get("rope_type", "default") != "default": raise NotImplementedError(f"rope type {rope['rope_type']!r}")
  return out


def write_llama_gguf(model: Any, path: str | Path, qtype: str = "F32", interleave: bool = True, arch: str = "llama",
                     metadata: dict[str, Any] | None = None) -> Path:
  """Write `model` (a transformers LlamaForCausalLM) to `path` with 2-D weights in `qtype` (F32, F16, BF16, Q8_0, Q4_0, ...;
  norms stay F32, as llama.cpp's converter keeps them); `metadata` overrides `llama.*` integer keys (to make bad files)."""
  import gguf
  c, qt = model.config, gguf.GGMLQuantizationType[qtype]
  w = gguf.GGUFWriter(str(path), arch)
  w.add_name("tinybounty test llama")
  keys = {"context_length": c.max_position_embeddings, "embedding_length": c.hidden_size, "block_count": c.num_hidden_layers,
          "feed_forward_length": c.intermediate_size, "attention.head_count": c.num_attention_heads,
          "attention.head_count_kv": c.num_key_value_heads, "rope.dimension_count": c.hidden_size // c.num_attention_heads,
          "vocab_size": c.vocab_size, **(metadata or {})}
  for k, v in keys.items(): w.add_uint32(f"{arch}.{k}", int(v))
  w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", c.rms_norm_eps)
  theta = (getattr(c, "rope_parameters", None) or {}).get("rope_theta", getattr(c, "rope_theta", 10000.0))
  w.add_float32(f"{arch}.rope.freq_base", float(theta))
  toks, scores, types = spm_vocab(c.vocab_size)
  w.add_tokenizer_model("llama")
  w.add_token_list(toks)
  w.add_token_scores(scores)
  w.add_token_types(types)
  w.add_bos_token_id(1)
  w.add_eos_token_id(2)
  for name, t in hf_llama_tensors(model, interleave).items():
    if t.ndim == 1 or qt == gguf.GGMLQuantizationType.F32: w.add_tensor(name, t.astype(np.float32))
    elif qt == gguf.GGMLQuantizationType.F16: w.add_tensor(name, t.astype(np.float16))
    else: w.add_tensor(name, gguf.quants.quantize(t, qt), raw_dtype=qt)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return Path(path)
