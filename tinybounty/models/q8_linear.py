"""A linear layer whose weight stays in ggml's Q8_0 layout (int8 values, one scale per 32 inputs), run natively: a
decode step reads 1.125 bytes per weight (int8 + a float32 scale per block) instead of float32's 4."""
from __future__ import annotations

from tinygrad import Tensor, dtypes

BLOCK = 32


class Q8Linear:
  """y = x @ W.T for W[n, k] = d[n, k // 32] * q[n, k]: `q` (out, in) int8 and `d` (out, in // 32) float32, as a Q8_0 GGUF tensor
  stores them (the f16 scales widened). Each block's 32 products are summed, scaled, then the blocks summed: the same
  float32 arithmetic as a dequantized weight, grouped by block."""
  def __init__(self, in_features: int, out_features: int):
    if in_features % BLOCK: raise ValueError(f"Q8_0 needs in_features divisible by {BLOCK}, got {in_features}")
    self.q = Tensor.empty(out_features, in_features, dtype=dtypes.int8)
    self.d = Tensor.empty(out_features, in_features // BLOCK, dtype=dtypes.float32)

  def __call__(self, x: Tensor) -> Tensor:
    N, nb = self.q.shape[0], self.q.shape[1] // BLOCK
    blocks = (x.reshape(*x.shape[:-1], 1, nb, BLOCK) * self.q.reshape(N, nb, BLOCK).cast(x.dtype)).sum(-1)
    return (blocks * self.d.cast(x.dtype)).sum(-1)
