"""BERT pretraining model (masked LM + next sentence) as MLPerf's reference trains it, with mixed precision.

Attribute names follow transformers' BertForPreTraining, so `get_state_dict(model)` has its keys
(`bert.encoder.layer.0.attention.self.query.weight`, ...) and its weights load with `load_state_dict` directly.
Parameters are float32 master weights; `compute_dtype` (float32, float16 or bfloat16) is the dtype of the matmuls,
while LayerNorm, softmax and the losses run in float32, as apex AMP does for the MLPerf reference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from tinygrad import Tensor, dtypes
from tinygrad.dtype import DType


@dataclass(frozen=True)
class BertPretrainConfig:
  """Shape and regularisation of a BERT pretraining model."""
  dim: int = 1024
  n_layers: int = 24
  n_heads: int = 16
  hidden_dim: int = 4096
  vocab_size: int = 30522
  max_seq_len: int = 512
  type_vocab_size: int = 2
  norm_eps: float = 1e-12
  dropout: float = 0.1           # hidden and attention-probability dropout, as MLPerf's bert_config.json
  init_std: float = 0.02

  @classmethod
  def large(cls) -> BertPretrainConfig:
    """BERT-large, MLPerf's model (bert_config.json of the reference: 24 x 1024, 16 heads, 4096, vocab 30522)."""
    return cls()

  @classmethod
  def tiny(cls, vocab_size: int = 128) -> BertPretrainConfig:
    return cls(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=vocab_size, max_seq_len=64)

  def with_(self, **kw) -> BertPretrainConfig: return replace(self, **kw)


class Dense:
  """y = x W^T + b with float32 master weights cast to x's dtype (the matmul runs in the compute dtype)."""
  def __init__(self, cin: int, cout: int, std: float):
    self.weight, self.bias = Tensor.normal(cout, cin, std=std), Tensor.zeros(cout)

  def __call__(self, x: Tensor) -> Tensor: return x.linear(self.weight.cast(x.dtype).T, self.bias.cast(x.dtype))


class LayerNorm:
  """LayerNorm computed in float32, returned in `dtype`."""
  def __init__(self, dim: int, eps: float): self.weight, self.bias, self.eps = Tensor.ones(dim), Tensor.zeros(dim), eps

  def __call__(self, x: Tensor, dtype: DType) -> Tensor: return (x.float().layernorm(eps=self.eps) * self.weight + self.bias).cast(dtype)


class Embedding:
  def __init__(self, n: int, dim: int, std: float): self.weight = Tensor.normal(n, dim, std=std)

  def __call__(self, ids: Tensor) -> Tensor: return self.weight[ids]


class _Namespace:
  """An attribute holder, so parameters sit at transformers' key paths."""
  def __init__(ns, **kw): ns.__dict__.update(kw)  # noqa: N805 -- "self" is one of the attribute names (attention.self)


class Embeddings:
  def __init__(self, cfg: BertPretrainConfig):
    s = cfg.init_std
    self.word_embeddings, self.position_embeddings = Embedding(cfg.vocab_size, cfg.dim, s), Embedding(cfg.max_seq_len, cfg.dim, s)
    self.token_type_embeddings, self.LayerNorm = Embedding(cfg.type_vocab_size, cfg.dim, s), LayerNorm(cfg.dim, cfg.norm_eps)


class Layer:
  """One post-LN encoder layer, transformers' BertLayer."""
  def __init__(self, cfg: BertPretrainConfig):
    d, s = cfg.dim, cfg.init_std
    self.attention = _Namespace(self=_Namespace(query=Dense(d, d, s), key=Dense(d, d, s), value=Dense(d, d, s)),
                                output=_Namespace(dense=Dense(d, d, s), LayerNorm=LayerNorm(d, cfg.norm_eps)))
    self.intermediate = _Namespace(dense=Dense(d, cfg.hidden_dim, s))
    self.output = _Namespace(dense=Dense(cfg.hidden_dim, d, s), LayerNorm=LayerNorm(d, cfg.norm_eps))
    self.n_heads, self.p = cfg.n_heads, cfg.dropout

  def __call__(self, x: Tensor, key_bias: Tensor) -> Tensor:
    B, T, D = x.shape
    a = self.attention.self
    q, k, v = [proj(x).reshape(B, T, self.n_heads, -1).transpose(1, 2) for proj in (a.query, a.key, a.value)]
    scores = (q @ k.transpose(-1, -2)).float() / math.sqrt(D // self.n_heads) + key_bias
    probs = scores.softmax(-1).dropout(self.p).cast(x.dtype)
    ctx = (probs @ v).transpose(1, 2).reshape(B, T, D)
    x = self.attention.output.LayerNorm(x + self.attention.output.dense(ctx).dropout(self.p), x.dtype)
    h = self.intermediate.dense(x).float().gelu(approximate="none").cast(x.dtype)  # exact erf GELU, as the reference
    return self.output.LayerNorm(x + self.output.dense(h).dropout(self.p), x.dtype)


class BertModel:
  def __init__(self, cfg: BertPretrainConfig):
    self.embeddings = Embeddings(cfg)
    self.encoder = _Namespace(layer=[Layer(cfg) for _ in range(cfg.n_layers)])
    self.pooler = _Namespace(dense=Dense(cfg.dim, cfg.dim, cfg.init_std))
    self.p = cfg.dropout

  def __call__(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, dtype: DType) -> tuple[Tensor, Tensor]:
    """(B, T) ids, mask (1 = token, 0 = padding) and segments -> (B, T, dim) hidden states and the (B, dim) pooled [CLS]."""
    T, e = input_ids.shape[1], self.embeddings
    x = e.word_embeddings(input_ids) + e.position_embeddings.weight[:T] + e.token_type_embeddings(segment_ids)
    x = e.LayerNorm(x, dtype).dropout(self.p)
    key_bias = (input_mask.reshape(-1, 1, 1, T) == 0).where(-1e30, 0.0).cast(dtypes.float)  # padded keys get no weight
    for layer in self.encoder.layer: x = layer(x, key_bias)
    return x, self.pooler.dense(x[:, 0]).tanh()


class BertForPretraining:
  """BERT with the masked-LM head (transform + decoder tied to the word embeddings) and the next-sentence head."""
  def __init__(self, cfg: BertPretrainConfig, compute_dtype: DType = dtypes.float):
    if cfg.dim % cfg.n_heads: raise ValueError(f"dim {cfg.dim} is not a multiple of n_heads {cfg.n_heads}")
    if compute_dtype not in (dtypes.float, dtypes.half, dtypes.bfloat16):
      raise ValueError(f"compute dtype must be float32, float16 or bfloat16, not {compute_dtype}")
    self.cfg, self.compute_dtype = cfg, compute_dtype
    self.bert = BertModel(cfg)
    s = cfg.init_std
    self.cls = _Namespace(predictions=_Namespace(transform=_Namespace(dense=Dense(cfg.dim, cfg.dim, s), LayerNorm=LayerNorm(cfg.dim, cfg.norm_eps)),
                                                 bias=Tensor.zeros(cfg.vocab_size)),
                          seq_relationship=Dense(cfg.dim, 2, s))

  def __call__(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, masked_lm_positions: Tensor) -> tuple[Tensor, Tensor]:
    """Masked-LM logits at `masked_lm_positions` (B, P, vocab) and next-sentence logits (B, 2), both float32."""
    if input_ids.shape[1] > self.cfg.max_seq_len: raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_seq_len {self.cfg.max_seq_len}")
    dt = self.compute_dtype
    hidden, pooled = self.bert(input_ids, input_mask, segment_ids, dt)
    B, P, D = *masked_lm_positions.shape, hidden.shape[-1]
    # only the masked positions reach the vocabulary projection, as in the MLPerf reference (the logits are B x P x V, not B x T x V)
    picked = hidden.gather(1, masked_lm_positions.reshape(B, P, 1).expand(B, P, D))
    pred = self.cls.predictions
    h = pred.transform.LayerNorm(pred.transform.dense(picked).float().gelu(approximate="none"), dt)
    mlm = (h @ self.bert.embeddings.word_embeddings.weight.cast(dt).T).float() + pred.bias
    return mlm, self.cls.seq_relationship(pooled).float()

  def loss(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, masked_lm_positions: Tensor, masked_lm_ids: Tensor,
           next_sentence_labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Arguments in the order of MLPerf's shard fields. Total loss = mean masked-LM cross entropy over real predictions
    + mean next-sentence cross entropy; also returns both parts.

    A prediction slot is real where its position is non-zero (MLPerf's shards pad positions and ids with 0; position 0 is
    [CLS], which is never masked)."""
    mlm, nsp = self(input_ids, input_mask, segment_ids, masked_lm_positions)
    weight = (masked_lm_positions != 0).float()
    ce = -mlm.log_softmax(-1).gather(-1, masked_lm_ids.unsqueeze(-1)).squeeze(-1)
    mlm_loss = (ce * weight).sum() / weight.sum().maximum(1.0)
    nsp_loss = nsp.sparse_categorical_crossentropy(next_sentence_labels)
    return mlm_loss + nsp_loss, mlm_loss, nsp_loss


def decayed(name: str) -> bool:
  """Whether LAMB applies weight decay to a parameter: not to biases or LayerNorm, as in the MLPerf reference."""
  return not (name.endswith(".bias") or ".LayerNorm." in name or name == "cls.predictions.bias")
