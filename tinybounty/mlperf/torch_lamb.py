"""The same LAMB in PyTorch (our own, written from the update rule in tinybounty.mlperf.lamb), the reference for step tracking."""
from __future__ import annotations

import torch

from tinybounty.mlperf.lamb import LambConfig


class TorchLamb:
  """LAMB over named torch parameters with .grad set; decay(name) selects weight decay and the trust ratio."""
  def __init__(self, named: list[tuple[str, torch.nn.Parameter]], cfg: LambConfig, decay=lambda name: True):
    self.cfg, self.named = cfg, named
    self.decay = [bool(decay(n)) for n, _ in named]
    self.m = [torch.zeros_like(p) for _, p in named]
    self.v = [torch.zeros_like(p) for _, p in named]
    self.t = 0

  @torch.no_grad()
  def step(self, lr: float, inv_scale: float = 1.0) -> tuple[float, bool]:
    """Apply one update from the parameters' .grad (times inv_scale); returns (grad norm, whether the step was taken)."""
    c = self.cfg
    grads = [p.grad * inv_scale for _, p in self.named]
    gnorm = torch.sqrt(sum(g.double().square().sum() for g in grads)).item()
    if not torch.isfinite(torch.tensor(gnorm)): return gnorm, False
    clip = max(1.0, gnorm / c.max_grad_norm)
    self.t += 1
    bc1, bc2 = 1 - c.b1 ** self.t, 1 - c.b2 ** self.t
    for (_, p), g, m, v, dec in zip(self.named, grads, self.m, self.v, self.decay):
      g = g / clip
      m.mul_(c.b1).add_(g, alpha=1 - c.b1)
      v.mul_(c.b2).addcmul_(g, g, value=1 - c.b2)
      u = (m / bc1) / ((v / bc2).sqrt() + c.eps)
      if dec and c.weight_decay:
        u = u + c.weight_decay * p
        pn, un = p.norm(), u.norm()
        u = u * torch.where((pn > 0) & (un > 0), pn / un, 1.0)  # on the device: no host sync per parameter (~400 in BERT-large)
      p.sub_(lr * u)
    return gnorm, True
