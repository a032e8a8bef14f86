"""LAMB as MLPerf's BERT reference runs it (apex FusedLAMB defaults), the warmup + polynomial schedule, and loss scaling.

Per step, on gradients already divided by the loss scale:
  clip   g <- g / max(1, ||g||_global / max_grad_norm)             (one norm over every gradient)
  Adam   m <- b1 m + (1-b1) g,  v <- b2 v + (1-b2) g^2,  u = m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p
  trust  r = ||p|| / ||u|| where both are non-zero, else 1 (only for decayed parameters: apex's use_nvlamb=False)
  p <- p - lr r u
A step whose gradients hold an inf or nan (fp16 overflow) changes nothing: parameters, moments and t are kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tinygrad import Tensor, dtypes


@dataclass(frozen=True)
class LambConfig:
  lr: float = 4e-4
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-6
  weight_decay: float = 0.01
  max_grad_norm: float = 1.0
  warmup_steps: int = 0
  total_steps: int = 1000
  poly_power: float = 1.0


def lr_at(cfg: LambConfig, step: int) -> float:
  """Learning rate of 0-based `step`: linear warmup to cfg.lr over warmup_steps, then lr (1 - step/total)^power."""
  if step < cfg.warmup_steps: return cfg.lr * (step + 1) / cfg.warmup_steps
  return cfg.lr * max(0.0, 1.0 - step / cfg.total_steps) ** cfg.poly_power


class Lamb:
  """LAMB over named float32 parameters; `decay(name)` says which get weight decay (and the trust ratio)."""
  def __init__(self, params: dict[str, Tensor], cfg: LambConfig, decay=lambda name: True):
    self.cfg, self.names, self.params = cfg, list(params), list(params.values())
    self.decay = [bool(decay(n)) for n in self.names]
    self.m = [Tensor.zeros(*p.shape, dtype=p.dtype).contiguous().realize() for p in self.params]
    self.v = [Tensor.zeros(*p.shape, dtype=p.dtype).contiguous().realize() for p in self.params]
    self.t = Tensor.zeros(1, dtype=dtypes.float).contiguous().realize()  # steps taken (skipped overflow steps do not count)

  def state(self) -> dict[str, Tensor]:
    """Optimizer state by name, for checkpoints."""
    return {"lamb.t": self.t, **{f"lamb.m.{n}": m for n, m in zip(self.names, self.m)}, **{f"lamb.v.{n}": v for n, v in zip(self.names, self.v)}}

  def step(self, grads: list[Tensor], lr: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
    """Lazily assign the update; returns (tensors to realize, grad norm before clipping, 1.0 if the step was taken else 0.0)."""
    c = self.cfg
    # one kernel computes the global norm into a buffer; left lazy, every parameter's update kernel would recompute the sum over
    # all gradients (on gfx942 those 46 fused kernels were the only ones that spilled registers)
    gnorm = sum((g.float().square().sum() for g in grads), start=Tensor(0.0)).sqrt().contiguous()
    finite = (gnorm - gnorm == 0)  # false for inf and nan
    clip = (gnorm / c.max_grad_norm).maximum(1.0)
    t = self.t + 1
    bc1, bc2 = 1 - (t * math.log(c.b1)).exp(), 1 - (t * math.log(c.b2)).exp()
    for p, g, m, v, dec in zip(self.params, grads, self.m, self.v, self.decay):
      g = finite.where(g.float() / clip, 0.0)
      m_new, v_new = c.b1 * m + (1 - c.b1) * g, c.b2 * v + (1 - c.b2) * g * g
      u = (m_new / bc1) / ((v_new / bc2).sqrt() + c.eps)
      if dec and c.weight_decay:
        u = u + c.weight_decay * p
        pn, un = p.square().sum().sqrt(), u.square().sum().sqrt()
        u = u * ((pn > 0) & (un > 0)).where(pn / un, 1.0)
      p.assign(finite.where(p - lr * u, p))
      m.assign(finite.where(m_new, m))
      v.assign(finite.where(v_new, v))
    self.t.assign(finite.where(t, self.t))
    return [*self.params, *self.m, *self.v, self.t], gnorm, finite.float()


class LossScaler:
  """Dynamic loss scaling (apex's): halve on overflow (the step is skipped), double after `growth_interval` clean steps.

  bfloat16 has float32's exponent range, so it runs with a static scale of 1 by default; float32 needs none."""
  def __init__(self, init_scale: float = 2.0**16, growth_interval: int = 2000, dynamic: bool = True, min_scale: float = 1.0):
    self.scale, self.growth_interval, self.dynamic, self.min_scale, self.clean = float(init_scale), growth_interval, dynamic, min_scale, 0

  @classmethod
  def for_dtype(cls, dtype) -> LossScaler:
    return cls() if dtype == dtypes.half else cls(init_scale=1.0, dynamic=False)

  def update(self, finite: bool) -> None:
    if not self.dynamic: return
    if not finite: self.scale, self.clean = max(self.min_scale, self.scale / 2), 0
    else:
      self.clean += 1
      if self.clean >= self.growth_interval: self.scale, self.clean = self.scale * 2, 0

  def state(self) -> dict[str, float]: return {"scale": self.scale, "clean": self.clean}

  def load(self, st: dict) -> None: self.scale, self.clean = float(st["scale"]), int(st["clean"])
