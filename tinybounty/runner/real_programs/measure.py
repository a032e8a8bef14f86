"""The real-programs measure: a float64 reference, and PyTorch CPU float32's own error against it.

Per tensor (logits, step-0 gradients, weights after the steps) and per loss, the tiny device's float32 error against the
float64 reference may be at most 10x PyTorch CPU float32's largest, or 1e-5 of the tensor's largest value where PyTorch's
is smaller.

PyTorch's run is one sample of float32 rounding, and where a program amplifies rounding one sample is not enough.
Adam divides each gradient element by its own magnitude: an element whose true gradient is ~1e-6 of its tensor's largest
(its summands cancel) turns a rounding difference of 1e-7 of that scale into a step of a different size. A ReLU whose
input is within rounding of zero may go either way, and in a BatchNorm network over a batch of 4 one such decision moves
gradients by percents. So every element may also be off by 10x its sensitivity: how far float64 runs move it when every
leaf module's output is moved by one unit roundoff of itself (the standard model of one rounding) and every gradient
element by one unit roundoff of its tensor's largest value before each step (float32's roundoff, or the autocast
dtype's for a mixed-precision program; harness.trajectory's `nudge`, two sign patterns, the larger movement; exact zeros
stay exact). The bound is per element, so an element the program does not amplify keeps the plain bound.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

FACTOR, FLOOR = 10.0, 1e-5


@dataclass
class Compared:
  """One tensor or loss: tiny's and PyTorch float32's largest absolute error against float64, the tensor's scale, the
  largest per-element sensitivity, and `ratio`: the largest of tiny's per-element error over its element's bound."""
  name: str
  tiny: float
  torch: float
  scale: float
  sensitivity: float = 0.0
  ratio: float = 0.0

  @property
  def ok(self) -> bool: return self.ratio <= 1.0


def compare(name: str, tiny: torch.Tensor, cpu32: torch.Tensor, ref64: torch.Tensor, nudged64: Sequence[torch.Tensor] = ()) -> Compared:
  """`nudged64`: the same tensor from float64 runs with nudged gradients (none: no sensitivity term)."""
  ref = ref64.detach().cpu().double()
  if not ref.numel(): return Compared(name, 0.0, 0.0, 0.0)
  off = lambda x: (x.detach().cpu().double() - ref).abs()
  err, torch_err, scale = off(tiny), off(cpu32).max().item(), ref.abs().max().item()
  sens = torch.stack([off(n) for n in nudged64]).amax(0) if len(nudged64) else torch.zeros_like(ref)
  allowed = torch.clamp(FACTOR * torch.clamp(sens, min=torch_err), min=FLOOR * scale)
  ratio = torch.where(err == 0, 0.0, err / allowed).max().item()  # an exact element passes even where nothing is allowed
  if bool((tiny.detach().cpu().isnan() != ref.isnan()).any()): ratio = float("inf")
  return Compared(name, err.max().item(), torch_err, scale, sens.max().item(), ratio)


@dataclass
class Report:
  """Every comparison of one program, plus its named facts (generate equal, losses)."""
  program: str
  items: list[Compared] = field(default_factory=list)
  facts: dict = field(default_factory=dict)

  def add(self, name: str, tiny: torch.Tensor, cpu32: torch.Tensor, ref64: torch.Tensor, nudged64: Sequence[torch.Tensor] = ()) -> None:
    self.items.append(compare(name, tiny, cpu32, ref64, nudged64))

  @property
  def ok(self) -> bool: return all(c.ok for c in self.items) and self.facts.get("generate_equal", True) is not False

  def worst(self, prefix: str = "") -> Compared | None:
    chosen = [c for c in self.items if c.name.startswith(prefix)]
    return max(chosen, key=lambda c: c.ratio) if chosen else None

  def as_dict(self) -> dict:
    return {"program": self.program, "ok": self.ok, "facts": self.facts,
            "items": [{"name": c.name, "tiny": c.tiny, "torch": c.torch, "scale": c.scale, "sensitivity": c.sensitivity,
                       "ratio": c.ratio, "ok": c.ok} for c in self.items]}
