"""Loss backwards PyTorch does not decompose: multilabel margin, huber, smooth L1."""
from __future__ import annotations

from tinygrad import Tensor, dtypes

from tinybounty.torch_backend.table import (
  aten,
)


def _reduce_grad(g: Tensor, grad_output: Tensor, reduction: int) -> Tensor:
  return g * grad_output / g.numel() if reduction == 1 else g * grad_output


def _multilabel_margin(self: Tensor, target: Tensor, reduction: int) -> tuple[Tensor, Tensor]:
  x, y = (self, target) if self.ndim == 2 else (self.reshape(1, -1), target.reshape(1, -1))
  valid = (y == -1).cast(dtypes.int32).cumsum(-1) == 0                            # targets count up to the first -1
  yk = valid.where(y, 0).cast(dtypes.int32)
  hit = (valid.unsqueeze(-1) & (yk.unsqueeze(-1) == Tensor.arange(x.shape[-1], dtype=dtypes.int32))).any(-2)   # (N, C)
  margins = (1 - x.gather(-1, yk).unsqueeze(-1) + x.unsqueeze(-2)).relu()         # (N, K, C): target k against class j
  loss = (valid.unsqueeze(-1) & ~hit.unsqueeze(-2)).where(margins, 0).sum((-2, -1)) / x.shape[-1]
  loss = loss.mean() if reduction == 1 else loss.sum() if reduction == 2 else loss if self.ndim == 2 else loss.reshape(())
  return loss, hit.cast(self.dtype).reshape(self.shape)


@aten("multilabel_margin_loss_forward")
def multilabel_margin_loss_forward(self: Tensor, target: Tensor, reduction: int) -> tuple[Tensor, Tensor]:
  """The CPU's semantics: each row's targets end at its first -1 (PyTorch's decomposition reads past it)."""
  return _multilabel_margin(self, target, reduction)


@aten("multilabel_margin_loss_backward")
def multilabel_margin_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, is_target: Tensor) -> Tensor:
  x = self.detach()
  return _multilabel_margin(x, target, reduction)[0].gradient(x, gradient=grad_output)[0]


@aten("huber_loss_backward")
def huber_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, delta: float) -> Tensor:
  d = self - target
  return _reduce_grad((d.abs() <= delta).where(d, delta * d.sign()), grad_output, reduction)


@aten("smooth_l1_loss_backward")
def smooth_l1_loss_backward(grad_output: Tensor, self: Tensor, target: Tensor, reduction: int, beta: float) -> Tensor:
  d = self - target
  return _reduce_grad((d.abs() < beta).where(d / beta, d.sign()) if beta > 0 else d.sign(), grad_output, reduction)
