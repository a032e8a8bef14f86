"""BERT encoder (post-LN, exact erf GELU, learned positions and token types) as in the MLPerf BERT-large / HF BertModel."""
from __future__ import annotations

from dataclasses import dataclass

from tinygrad import Tensor, nn


@dataclass(frozen=True)
class BertConfig:
  """Shape of a BERT encoder."""
  dim: int = 768
  n_layers: int = 12
  n_heads: int = 12
  hidden_dim: int = 3072
  vocab_size: int = 30522
  max_seq_len: int = 512
  type_vocab_size: int = 2
  norm_eps: float = 1e-12

  @classmethod
  def base(cls) -> BertConfig:
    """BERT-base, 110M parameters."""
    return cls()

  @classmethod
  def large(cls) -> BertConfig:
    """BERT-large, the MLPerf training model."""
    return cls(dim=1024, n_layers=24, n_heads=16, hidden_dim=4096)

  @classmethod
  def tiny(cls) -> BertConfig:
    return cls(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=97, max_seq_len=32)


class EncoderLayer:
  def __init__(self, cfg: BertConfig):
    self.n_heads = cfg.n_heads
    self.qkv, self.out = nn.Linear(cfg.dim, 3*cfg.dim), nn.Linear(cfg.dim, cfg.dim)
    self.ln1, self.ln2 = nn.LayerNorm(cfg.dim, cfg.norm_eps), nn.LayerNorm(cfg.dim, cfg.norm_eps)
    self.fc1, self.fc2 = nn.Linear(cfg.dim, cfg.hidden_dim), nn.Linear(cfg.hidden_dim, cfg.dim)

  def __call__(self, x: Tensor, mask: Tensor) -> Tensor:
    B, T, D = x.shape
    q, k, v = [t.reshape(B, T, self.n_heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=2)]
    attn = q.scaled_dot_product_attention(k, v, attn_mask=mask).transpose(1, 2).reshape(B, T, D)
    x = self.ln1(x + self.out(attn))
    return self.ln2(x + self.fc2(self.fc1(x).gelu(approximate="none")))


class BertEncoder:
  """(B, T) input_ids, token_type_ids and attention_mask (1 = real token, 0 = padding) -> (B, T, dim) hidden states."""
  def __init__(self, cfg: BertConfig):
    self.cfg = cfg
    self.word_embeddings, self.position_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim), nn.Embedding(cfg.max_seq_len, cfg.dim)
    self.token_type_embeddings, self.ln = nn.Embedding(cfg.type_vocab_size, cfg.dim), nn.LayerNorm(cfg.dim, cfg.norm_eps)
    self.layers = [EncoderLayer(cfg) for _ in range(cfg.n_layers)]

  def __call__(self, input_ids: Tensor, token_type_ids: Tensor, attention_mask: Tensor) -> Tensor:
    T = input_ids.shape[1]
    if T > self.cfg.max_seq_len: raise ValueError(f"sequence length {T} exceeds max_seq_len {self.cfg.max_seq_len}")
    x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:T] + self.token_type_embeddings(token_type_ids)
    x = self.ln(x)
    mask = attention_mask.reshape(-1, 1, 1, T).cast("bool")  # padded keys are never attended to
    for layer in self.layers: x = layer(x, mask)
    return x
