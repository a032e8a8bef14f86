"""Pairwise p-norm distances on the device: cdist, pdist and their backwards (PyTorch's subgradient conventions:
zero where a distance is zero, sign(diff) for p = 1, the arg-max coordinate for p = inf)."""
from __future__ import annotations

from tinygrad import Tensor

from tinybounty.torch_backend.table import aten


def _norm(diff: Tensor, p: float) -> Tensor:
  a = diff.abs()
  if p == 0: return (a != 0).cast(diff.dtype).sum(-1)
  if p == float("inf"): return a.max(-1)
  if p == 1: return a.sum(-1)
  if p == 2: return a.square().sum(-1).sqrt()
  return (a ** p).sum(-1) ** (1 / p)


def _diff(x1: Tensor, x2: Tensor) -> Tensor: return x1.unsqueeze(-2) - x2.unsqueeze(-3)   # (..., P, R, M)


@aten("_cdist_forward")
def cdist_forward(x1: Tensor, x2: Tensor, p: float, compute_mode: int | None = None) -> Tensor: return _norm(_diff(x1, x2), p)


@aten("_cdist_backward")
def cdist_backward(grad: Tensor, x1: Tensor, x2: Tensor, p: float, cdist: Tensor) -> Tensor:
  """d(sum grad * cdist) / d x1."""
  diff, d, g = _diff(x1, x2), cdist.unsqueeze(-1), grad.unsqueeze(-1)
  if p == 0: return x1.zeros_like()
  if p == 1: local = diff.sign()
  elif p == float("inf"): local = diff.sign() * (diff.abs() == d)
  else:
    local = diff.sign() * diff.abs() ** (p - 1) / (d ** (p - 1))
    if p < 1: local = (diff == 0).where(0, local)
  return (d == 0).where(0, g * local).sum(-2)


def _pairs(n: int) -> tuple[list[int], list[int]]:
  return [i for i in range(n) for _ in range(i + 1, n)], [j for i in range(n) for j in range(i + 1, n)]


@aten("_pdist_forward")
def pdist_forward(self: Tensor, p: float = 2) -> Tensor:
  n = self.shape[0]
  rows, cols = _pairs(n)
  if not rows: return Tensor.zeros(0, dtype=self.dtype)
  return cdist_forward(self, self, p).reshape(-1)[Tensor([i * n + j for i, j in zip(rows, cols)])]


@aten("_pdist_backward")
def pdist_backward(grad: Tensor, self: Tensor, p: float, pdist: Tensor) -> Tensor:
  """Both rows of each pair get their share: scatter the pair gradients into a symmetric matrix, then cdist's backward."""
  n = self.shape[0]
  rows, cols = _pairs(n)
  if not rows: return self.zeros_like()
  flat = Tensor([i * n + j for i, j in zip(rows, cols)] + [j * n + i for i, j in zip(rows, cols)])
  onehot = flat.unsqueeze(1) == Tensor.arange(n * n).unsqueeze(0)
  G = onehot.where(grad.cat(grad).unsqueeze(1), 0).sum(0).reshape(n, n)
  return cdist_backward(G, self, self, p, cdist_forward(self, self, p))
