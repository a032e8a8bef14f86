"""Llama (RMSNorm, rotary positions, grouped-query attention, SwiGLU) with a KV cache for token-by-token decoding."""
from __future__ import annotations

from dataclasses import dataclass

from tinygrad import Tensor, UOp, nn
from tinygrad.uop.ops import sint

from tinybounty.models.gpt2 import attend


@dataclass(frozen=True)
class LlamaConfig:
  """Shape of a Llama model (n_kv_heads < n_heads is grouped-query attention)."""
  dim: int = 2048
  n_layers: int = 16
  n_heads: int = 32
  n_kv_heads: int = 8
  hidden_dim: int = 8192
  vocab_size: int = 128256
  max_seq_len: int = 1024
  norm_eps: float = 1e-5
  rope_theta: float = 500000.0

  @property
  def max_context(self) -> int:
    """The KV cache's length (what `Generator` reads)."""
    return self.max_seq_len

  @classmethod
  def small(cls) -> LlamaConfig:
    """Llama 3.2 1B shape."""
    return cls()

  @classmethod
  def tiny(cls) -> LlamaConfig:
    """A few-thousand-parameter Llama for tests (GQA: 4 query heads share 2 KV heads)."""
    return cls(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, vocab_size=97, max_seq_len=32, rope_theta=10000.0)


def rope_table(head_dim: int, max_seq_len: int, theta: float, freq_factors: Tensor | None = None) -> Tensor:
  """(max_seq_len, head_dim//2, 2) cos/sin of each position's rotation angles (each frequency divided by its factor when
  `freq_factors` (head_dim//2,) is given: Llama 3's long-context scaling as GGUF stores it)."""
  freqs = 1.0 / theta ** (Tensor.arange(0, head_dim, 2) / head_dim)
  if freq_factors is not None: freqs = freqs / freq_factors.float()
  angles = Tensor.arange(max_seq_len).unsqueeze(1) * freqs.unsqueeze(0)
  return Tensor.stack(angles.cos(), angles.sin(), dim=-1)


def apply_rope(x: Tensor, table: Tensor) -> Tensor:
  """Rotate (B, H, T, Hd) by (T, Hd//2, 2) cos/sin, pairing adjacent features (Meta's layout)."""
  x = x.reshape(*x.shape[:-1], -1, 2)
  cos, sin, a, b = table[..., 0], table[..., 1], x[..., 0], x[..., 1]
  return Tensor.stack(a*cos - b*sin, a*sin + b*cos, dim=-1).flatten(-2)


class Attention:
  def __init__(self, cfg: LlamaConfig):
    self.cfg, self.head_dim = cfg, cfg.dim // cfg.n_heads
    self.wq, self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False), nn.Linear(cfg.dim, cfg.dim, bias=False)
    self.wk, self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads*self.head_dim, bias=False), nn.Linear(cfg.dim, cfg.n_kv_heads*self.head_dim, bias=False)
    self.cache_kv: Tensor | None = None

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, use_cache: bool) -> Tensor:
    B, T, _ = x.shape
    q = self.wq(x).reshape(B, T, self.cfg.n_heads, self.head_dim).transpose(1, 2)
    k, v = [w(x).reshape(B, T, self.cfg.n_kv_heads, self.head_dim).transpose(1, 2) for w in (self.wk, self.wv)]
    q, k = apply_rope(q, rope), apply_rope(k, rope)
    if use_cache and self.cache_kv is None:
      self.cache_kv = Tensor.zeros(2, B, self.cfg.n_kv_heads, self.cfg.max_seq_len, self.head_dim, dtype=x.dtype).contiguous().realize()
    out = attend(q, k, v, start_pos, self.cache_kv if use_cache else None)
    return self.wo(out.transpose(1, 2).reshape(B, T, -1))


class Block:
  def __init__(self, cfg: LlamaConfig):
    self.attention_norm, self.attention = nn.RMSNorm(cfg.dim, cfg.norm_eps), Attention(cfg)
    self.ffn_norm = nn.RMSNorm(cfg.dim, cfg.norm_eps)
    self.w1, self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False), nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
    self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)

  def __call__(self, x: Tensor, start_pos: sint, rope: Tensor, use_cache: bool) -> Tensor:
    h = x + self.attention(self.attention_norm(x), start_pos, rope, use_cache)
    f = self.ffn_norm(h)
    return h + self.w2(self.w1(f).silu() * self.w3(f))


class Llama:
  """Llama language model: (B, T) token ids -> (B, T, vocab_size) logits.

  KV cache and `start_pos` (int or bound `UOp.variable`) behave as in `GPT2`: a lazy cache write realized with the logits;
  `use_cache=False` is a stateless causal forward.
  """
  def __init__(self, cfg: LlamaConfig):
    self.cfg = cfg
    self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
    self.layers = [Block(cfg) for _ in range(cfg.n_layers)]
    self.norm, self.output = nn.RMSNorm(cfg.dim, cfg.norm_eps), nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
    self.rope = rope_table(cfg.dim // cfg.n_heads, cfg.max_seq_len, cfg.rope_theta).contiguous().is_param_(False)

  def __call__(self, tokens: Tensor, start_pos: int | UOp = 0, use_cache: bool = True) -> Tensor:
    T = tokens.shape[1]
    if isinstance(start_pos, int) and not 0 <= start_pos <= self.cfg.max_seq_len - T:
      raise ValueError(f"start_pos {start_pos} + {T} tokens exceeds max_seq_len {self.cfg.max_seq_len}")
    x, rope = self.tok_embeddings(tokens), self.rope[start_pos:start_pos+T]
    for layer in self.layers: x = layer(x, start_pos, rope, use_cache)
    return self.output(self.norm(x))

  def kv_caches(self) -> list[Tensor]:
    """The per-layer KV caches created so far."""
    return [b.attention.cache_kv for b in self.layers if b.attention.cache_kv is not None]

  def reset_cache(self) -> None:
    """Drop the KV caches (the next call starts a new sequence, at any batch size)."""
    for b in self.layers: b.attention.cache_kv = None

  def bytes_per_token(self) -> int:
    """Weight bytes one batch-1 decode step reads: every weight but the embedding table's other rows."""
    from tinygrad.nn.state import get_state_dict
    return sum(t.nbytes() // (self.cfg.vocab_size if name == "tok_embeddings.weight" else 1)
               for name, t in get_state_dict(self).items() if t.is_param and not name.endswith("cache_kv"))
