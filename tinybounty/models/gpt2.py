"""GPT-2 (pre-LN decoder, learned positions, tied embeddings) with a KV cache for token-by-token decoding."""
from __future__ import annotations

from dataclasses import dataclass

from tinygrad import Tensor, UOp, nn
from tinygrad.uop.ops import sint


@dataclass(frozen=True)
class GPT2Config:
  """Shape of a GPT-2 model."""
  dim: int = 768
  n_layers: int = 12
  n_heads: int = 12
  vocab_size: int = 50257
  max_seq_len: int = 1024
  norm_eps: float = 1e-5

  @classmethod
  def small(cls) -> GPT2Config:
    """GPT-2 small, 124M parameters."""
    return cls()

  @classmethod
  def tiny(cls) -> GPT2Config:
    """A few-thousand-parameter GPT-2 for tests."""
    return cls(dim=32, n_layers=2, n_heads=4, vocab_size=97, max_seq_len=32)


def causal_mask(T: int, start_pos: sint) -> Tensor | None:
  """Additive mask for T new queries attending to start_pos cached keys plus themselves; None for a single query."""
  return None if T == 1 else Tensor.full((1, 1, T, start_pos+T), float("-inf")).triu(start_pos+1)


def attend(q: Tensor, k: Tensor, v: Tensor, start_pos: sint, cache: Tensor | None) -> Tensor:
  """q, k, v: (B, H, T, Hd). With a cache (2, B, Hkv, max_seq_len, Hd), write k, v at start_pos and attend over the whole prefix."""
  T = q.shape[2]
  if cache is not None:
    cache[:, :, :, start_pos:start_pos+T].assign(Tensor.stack(k, v))
    k, v = cache[0, :, :, :start_pos+T], cache[1, :, :, :start_pos+T]
  return q.scaled_dot_product_attention(k, v, attn_mask=causal_mask(T, start_pos), enable_gqa=True)


class Attention:
  def __init__(self, cfg: GPT2Config):
    self.n_heads, self.head_dim, self.max_seq_len = cfg.n_heads, cfg.dim // cfg.n_heads, cfg.max_seq_len
    self.c_attn, self.c_proj = nn.Linear(cfg.dim, 3*cfg.dim), nn.Linear(cfg.dim, cfg.dim)
    self.cache_kv: Tensor | None = None

  def __call__(self, x: Tensor, start_pos: sint, use_cache: bool) -> Tensor:
    B, T, _ = x.shape
    q, k, v = [t.reshape(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.c_attn(x).chunk(3, dim=2)]
    if use_cache and self.cache_kv is None:
      self.cache_kv = Tensor.zeros(2, B, self.n_heads, self.max_seq_len, self.head_dim, dtype=x.dtype).contiguous().realize()
    out = attend(q, k, v, start_pos, self.cache_kv if use_cache else None)
    return self.c_proj(out.transpose(1, 2).reshape(B, T, -1))


class Block:
  def __init__(self, cfg: GPT2Config):
    self.ln_1, self.attn = nn.LayerNorm(cfg.dim, cfg.norm_eps), Attention(cfg)
    self.ln_2, self.c_fc, self.c_proj = nn.LayerNorm(cfg.dim, cfg.norm_eps), nn.Linear(cfg.dim, 4*cfg.dim), nn.Linear(4*cfg.dim, cfg.dim)

  def __call__(self, x: Tensor, start_pos: sint, use_cache: bool) -> Tensor:
    h = x + self.attn(self.ln_1(x), start_pos, use_cache)
    return h + self.c_proj(self.c_fc(self.ln_2(h)).gelu())


class GPT2:
  """GPT-2 language model: (B, T) token ids -> (B, T, vocab_size) logits.

  With `use_cache` (the default) each layer writes its keys and values into a KV cache at `start_pos` (an int or a bound
  `UOp.variable("start_pos", ...)`, so a TinyJit'ed decode step is reused across positions) and attends over the cached
  prefix. The write is a lazy assign: realizing the logits also writes the cache, so one schedule covers a whole step.
  `use_cache=False` is a stateless causal forward over `tokens` alone (training, full-sequence scoring).
  """
  def __init__(self, cfg: GPT2Config):
    self.cfg = cfg
    self.wte, self.wpe = nn.Embedding(cfg.vocab_size, cfg.dim), nn.Embedding(cfg.max_seq_len, cfg.dim)
    self.h = [Block(cfg) for _ in range(cfg.n_layers)]
    self.ln_f = nn.LayerNorm(cfg.dim, cfg.norm_eps)

  def __call__(self, tokens: Tensor, start_pos: int | UOp = 0, use_cache: bool = True) -> Tensor:
    T = tokens.shape[1]
    if isinstance(start_pos, int) and not 0 <= start_pos <= self.cfg.max_seq_len - T:
      raise ValueError(f"start_pos {start_pos} + {T} tokens exceeds max_seq_len {self.cfg.max_seq_len}")
    x = self.wte(tokens) + self.wpe.weight[start_pos:start_pos+T]
    for block in self.h: x = block(x, start_pos, use_cache)
    return self.ln_f(x) @ self.wte.weight.T

  def kv_caches(self) -> list[Tensor]:
    """The per-layer KV caches created so far (realize them with the logits to keep the step in one schedule)."""
    return [b.attn.cache_kv for b in self.h if b.attn.cache_kv is not None]
