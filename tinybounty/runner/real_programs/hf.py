"""transformers models with small random configs: logits, greedy `generate` with the KV cache, AdamW steps with labels.

Every config turns dropout off (the devices draw different random streams) and keeps the model tiny: CI runs a few of
these, bench/real_programs.py all of them.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from tinybounty.runner.real_programs.harness import Program

V, H, L, HEADS, FF, SEQ, BATCH = 64, 32, 2, 2, 64, 8, 2
DECODER = dict(vocab_size=V, hidden_size=H, intermediate_size=FF, num_hidden_layers=L, num_attention_heads=HEADS, num_key_value_heads=1,
               max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)


def _decoders() -> dict[str, Callable[[], Any]]:
  import transformers as tf
  return {
    "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=V, n_embd=H, n_layer=L, n_head=HEADS, n_positions=64, resid_pdrop=0,
                                                     embd_pdrop=0, attn_pdrop=0, bos_token_id=1, eos_token_id=2, pad_token_id=0)),
    "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**DECODER)),
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**DECODER, sliding_window=None)),
    "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**DECODER)),
    "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**DECODER, head_dim=16)),
    "phi": lambda: tf.PhiForCausalLM(tf.PhiConfig(**{**DECODER, "num_key_value_heads": HEADS}, resid_pdrop=0, embd_pdrop=0, attention_dropout=0)),
    "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**DECODER, head_dim=16)),
  }


def _encoders() -> dict[str, Callable[[], Any]]:
  import transformers as tf
  enc = dict(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=HEADS, intermediate_size=FF, max_position_embeddings=64,
             hidden_dropout_prob=0, attention_probs_dropout_prob=0, pad_token_id=0)
  return {"bert": lambda: tf.BertForMaskedLM(tf.BertConfig(**enc)), "roberta": lambda: tf.RobertaForMaskedLM(tf.RobertaConfig(**enc))}


BART = dict(vocab_size=V, d_model=H, encoder_layers=L, decoder_layers=L, encoder_attention_heads=HEADS, decoder_attention_heads=HEADS,
            encoder_ffn_dim=FF, decoder_ffn_dim=FF, max_position_embeddings=64, dropout=0, attention_dropout=0, activation_dropout=0,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=2)


def _seq2seq() -> dict[str, Callable[[], Any]]:
  import transformers as tf
  return {
    "t5": lambda: tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=V, d_model=H, d_kv=16, d_ff=FF, num_layers=L, num_heads=HEADS,
                                                            dropout_rate=0, decoder_start_token_id=0, pad_token_id=0, eos_token_id=2)),
    "bart": lambda: tf.BartForConditionalGeneration(tf.BartConfig(**BART)),
  }


def _ids(n: int = BATCH, seq: int = SEQ) -> torch.Tensor: return torch.randint(3, V, (n, seq))


def _adamw(params: Any) -> torch.optim.Optimizer: return torch.optim.AdamW(params, lr=1e-2)


def _greedy(model: Any, batch: dict) -> torch.Tensor:
  extra = {k: v for k, v in batch.items() if k not in ("labels", "input_ids")}
  return model.generate(batch["input_ids"], **extra, max_new_tokens=4, do_sample=False, use_cache=True)


def _lm_loss(model: Any, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
  out = model(**batch)
  return out.logits, out.loss


def programs() -> dict[str, Program]:
  """Every transformers program by name."""
  progs: dict[str, Program] = {}
  for name, build in _decoders().items():
    progs[name] = Program(name, build, lambda: {"input_ids": (ids := _ids()), "labels": ids}, _lm_loss, _adamw,
                          generate=lambda m, b: _greedy(m, {"input_ids": b["input_ids"]}))
  for name, build in _encoders().items():
    progs[name] = Program(name, build, lambda: {"input_ids": (ids := _ids()), "attention_mask": torch.ones_like(ids), "labels": ids},
                          _lm_loss, _adamw)
  for name, build in _seq2seq().items():
    progs[name] = Program(name, build, lambda: {"input_ids": _ids(), "labels": _ids(seq=5)}, _lm_loss, _adamw,
                          generate=lambda m, b: _greedy(m, {"input_ids": b["input_ids"]}))
  progs["vit"] = Program("vit", _vit, lambda: {"pixel_values": torch.randn(BATCH, 3, 16, 16), "labels": torch.randint(0, 5, (BATCH,))},
                         _lm_loss, _adamw)
  progs["whisper"] = Program("whisper", _whisper, lambda: {"input_features": torch.randn(BATCH, 8, 32), "labels": _ids(seq=5)}, _lm_loss, _adamw,
                             generate=lambda m, b: m.generate(b["input_features"], max_new_tokens=4, do_sample=False, use_cache=True))
  return progs


def _vit() -> Any:
  import transformers as tf
  return tf.ViTForImageClassification(tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=H, num_hidden_layers=L,
                                                   num_attention_heads=HEADS, intermediate_size=FF, hidden_dropout_prob=0,
                                                   attention_probs_dropout_prob=0, num_labels=5))


def _whisper() -> Any:
  import transformers as tf
  return tf.WhisperForConditionalGeneration(tf.WhisperConfig(vocab_size=V, num_mel_bins=8, d_model=H, encoder_layers=1, decoder_layers=1,
                                                             encoder_attention_heads=HEADS, decoder_attention_heads=HEADS, encoder_ffn_dim=FF,
                                                             decoder_ffn_dim=FF, max_source_positions=16, max_target_positions=32, dropout=0,
                                                             attention_dropout=0, activation_dropout=0, pad_token_id=0, bos_token_id=1,
                                                             eos_token_id=2, decoder_start_token_id=1, suppress_tokens=None,
                                                             begin_suppress_tokens=None))
