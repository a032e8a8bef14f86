"""transformers' BertForPreTraining as the reference for our tinygrad BERT: the same weights, the same MLPerf batch, its loss."""
from __future__ import annotations

import numpy as np

from tinybounty.models.bert_pretrain import BertForPretraining, BertPretrainConfig


def hf_config(cfg: BertPretrainConfig, dropout: float | None = None):
  from transformers import BertConfig
  p = cfg.dropout if dropout is None else dropout
  return BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                    intermediate_size=cfg.hidden_dim, hidden_act="gelu", hidden_dropout_prob=p, attention_probs_dropout_prob=p,
                    max_position_embeddings=cfg.max_seq_len, type_vocab_size=cfg.type_vocab_size, layer_norm_eps=cfg.norm_eps,
                    initializer_range=cfg.init_std, tie_word_embeddings=True)


def hf_from_tiny(model: BertForPretraining, dtype=None, device: str = "cpu", attn: str = "eager"):
  """A transformers BertForPreTraining (eager attention, dropout off) holding `model`'s weights (in `dtype`, default float32)."""
  from tinygrad.nn.state import get_state_dict
  return hf_from_state(model.cfg, {k: v.numpy() for k, v in get_state_dict(model).items()}, dtype, device, attn)


def hf_from_state(cfg: BertPretrainConfig, state: dict[str, np.ndarray], dtype=None, device: str = "cpu", attn: str = "eager"):
  """A transformers BertForPreTraining of `cfg` (dropout off) built directly on torch `device` and holding `state` (our names, numpy)."""
  import torch
  from transformers import BertForPreTraining
  config = hf_config(cfg, dropout=0.0)
  config._attn_implementation = attn
  with torch.device(device): hf = BertForPreTraining(config)  # random init on the device itself, then overwritten
  missing, unexpected = hf.load_state_dict({k: torch.from_numpy(np.array(v, copy=True)) for k, v in state.items()}, strict=False)
  untied = [k for k in missing if k not in ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias") and not k.endswith("position_ids")]
  if untied or unexpected: raise RuntimeError(f"weights do not map onto transformers' BERT: missing {untied}, unexpected {unexpected}")
  if hf.cls.predictions.decoder.weight.data_ptr() != hf.bert.embeddings.word_embeddings.weight.data_ptr():
    raise RuntimeError("transformers did not tie the decoder to the word embeddings")
  return hf.to(dtype) if dtype is not None else hf


def hf_batch(batch: dict[str, np.ndarray]) -> dict:
  """MLPerf shard fields -> BertForPreTraining's keyword arguments (labels -100 except at the real masked positions)."""
  import torch
  pos, ids = batch["masked_lm_positions"], batch["masked_lm_ids"]
  labels = np.full(batch["input_ids"].shape, -100, dtype=np.int64)
  for b in range(len(pos)):
    real = pos[b] != 0
    labels[b, pos[b][real]] = ids[b][real]
  L = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))
  return dict(input_ids=L(batch["input_ids"]), token_type_ids=L(batch["segment_ids"]), attention_mask=L(batch["input_mask"]),
              labels=L(labels), next_sentence_label=L(batch["next_sentence_labels"]))


def hf_named_params(hf) -> list:
  """(our name, parameter) pairs of a transformers BertForPreTraining, each tied tensor once, in our naming."""
  return [(n, p) for n, p in hf.named_parameters() if not n.startswith("cls.predictions.decoder.")]


def step0_errors(model: BertForPretraining, batch: dict[str, np.ndarray]) -> tuple[float, float]:
  """(|loss - reference| / |reference|, worst over parameters of max|grad - reference| / scale) against transformers in float64.

  scale is the reference gradient's own max |value|, floored at 1e-3 of the largest gradient (gradients that are zero in
  exact arithmetic, such as the attention key biases, are rounding noise on both sides)."""
  import torch
  from tinygrad import Tensor

  from tinybounty.data.bert_shards import FIELDS
  params = model_params(model)
  loss = model.loss(*[Tensor(batch[k]) for k in FIELDS])[0]
  gs = loss.gradient(*params.values())
  Tensor.realize(loss, *gs)  # in one schedule: realized one by one, each would recompute the shared forward
  grads = dict(zip(params, [g.numpy() for g in gs]))
  hf = hf_from_tiny(model, torch.float64)
  out = hf(**hf_batch(batch))
  out.loss.backward()
  ref = {n: p.grad.numpy() for n, p in hf_named_params(hf)}
  if set(ref) != set(grads): raise RuntimeError(f"parameter sets differ: {sorted(set(ref) ^ set(grads))}")
  top = max(np.abs(r).max() for r in ref.values())
  worst = max(np.abs(grads[n] - r).max() / max(np.abs(r).max(), 1e-3 * top) for n, r in ref.items())
  return abs(loss.item() - out.loss.item()) / abs(out.loss.item()), float(worst)


def model_params(model: BertForPretraining) -> dict:
  from tinygrad.nn.state import get_state_dict
  return get_state_dict(model)
