"""AvgPool3D (avg_pool2d on 5D input) against a numpy reference, forward and backward, over shapes, strides, padding
and count_include_pad. The historical failures were in the linearizer on GPU renderers; the same cases run there."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from tinygrad import Tensor


@dataclass(frozen=True)
class PoolCase:
  shape: tuple[int, int, int, int, int]
  kernel: int
  stride: int
  padding: int
  count_include_pad: bool

  @property
  def name(self) -> str:
    return f"{'x'.join(map(str, self.shape))}_k{self.kernel}_s{self.stride}_p{self.padding}_{'incl' if self.count_include_pad else 'excl'}"


# upstream's test_avg_pool3d first, then a spread of shapes, strides and paddings (padding <= kernel // 2, as torch allows)
CASES: tuple[PoolCase, ...] = (
  PoolCase((1, 1, 16, 16, 16), 8, 5, 1, False),
  PoolCase((1, 1, 16, 16, 16), 8, 5, 1, True),
  *(PoolCase(shape, k, s, p, inc) for shape, (k, s, p), inc in itertools.product(
    [(2, 3, 9, 10, 11), (1, 4, 7, 7, 7)], [(2, 2, 0), (3, 1, 1), (3, 2, 1), (4, 3, 2)], [True, False])),
)


def reference(x: np.ndarray, grad_out_fn, c: PoolCase) -> tuple[np.ndarray, np.ndarray]:
  """numpy forward and the gradient of sum(out * grad_out) w.r.t. x, both in float64."""
  k, s, p = c.kernel, c.stride, c.padding
  pad = ((0, 0), (0, 0)) + ((p, p),) * 3
  xp, valid = np.pad(x.astype(np.float64), pad), np.pad(np.ones(x.shape[2:]), ((p, p),) * 3)
  osz = [(d + 2 * p - k) // s + 1 for d in x.shape[2:]]
  out, den = np.zeros(x.shape[:2] + tuple(osz)), np.zeros(osz)
  windows = list(itertools.product(*[range(o) for o in osz]))
  for o in windows:
    sl = tuple(slice(i * s, i * s + k) for i in o)
    den[o] = k ** 3 if c.count_include_pad else valid[sl].sum()
    out[(..., *o)] = xp[(..., *sl)].sum(axis=(-3, -2, -1)) / den[o]
  g, gxp = grad_out_fn(out.shape), np.zeros_like(xp)
  for o in windows:
    gxp[(..., *[slice(i * s, i * s + k) for i in o])] += (g[(..., *o)] / den[o])[..., None, None, None]
  return out, gxp[(..., *[slice(p, p + d) for d in x.shape[2:]])]


def max_error(c: PoolCase, device: str | None = None, seed: int = 21) -> float:
  """Largest absolute difference between tinygrad and numpy, over the forward output and the input gradient."""
  rng = np.random.default_rng(seed)
  x_np = rng.standard_normal(c.shape).astype(np.float32)
  def grad_out(shape): return np.random.default_rng(seed + 1).standard_normal(shape).astype(np.float32)
  want_out, want_grad = reference(x_np, grad_out, c)
  x = Tensor(x_np, device=device)
  out = x.avg_pool2d(kernel_size=(c.kernel,) * 3, stride=c.stride, padding=c.padding, count_include_pad=c.count_include_pad)
  if out.shape != want_out.shape: raise AssertionError(f"{c.name}: output shape {out.shape}, numpy {want_out.shape}")
  (grad,) = (out * Tensor(grad_out(want_out.shape), device=device)).sum().gradient(x)
  return float(max(np.abs(out.numpy() - want_out).max(), np.abs(grad.numpy() - want_grad).max()))
