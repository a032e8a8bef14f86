"""The real-programs measure: a float64 reference, and PyTorch CPU float32's own error against it.

Per tensor (logits, step-0 gradients, weights after the steps) and per loss, the tiny device's float32 error against the
float64 reference may be at most 10x PyTorch CPU float32's, or 1e-5 of the tensor's largest value where PyTorch's is
smaller. Optimizers amplify tiny differences in near-zero gradients, so the bound is relative to PyTorch's own run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

FACTOR, FLOOR = 10.0, 1e-5


@dataclass
class Compared:
  """One tensor or loss: tiny's and PyTorch float32's largest absolute error against float64, and the bound."""
  name: str
  tiny: float
  torch: float
  scale: float

  @property
  def bound(self) -> float: return max(FACTOR * self.torch, FLOOR * self.scale)

  @property
  def ok(self) -> bool: return self.tiny <= self.bound

  @property
  def ratio(self) -> float: return self.tiny / self.bound if self.bound else (0.0 if self.tiny == 0 else float("inf"))


def compare(name: str, tiny: torch.Tensor, cpu32: torch.Tensor, ref64: torch.Tensor) -> Compared:
  ref = ref64.detach().cpu().double()
  err = lambda x: (x.detach().cpu().double() - ref).abs().max().item() if ref.numel() else 0.0
  nan_mismatch = bool((tiny.detach().cpu().isnan() != ref.isnan()).any())
  return Compared(name, float("inf") if nan_mismatch else err(tiny), err(cpu32), ref.abs().max().item() if ref.numel() else 0.0)


@dataclass
class Report:
  """Every comparison of one program, plus its named facts (generate equal, losses)."""
  program: str
  items: list[Compared] = field(default_factory=list)
  facts: dict = field(default_factory=dict)

  def add(self, name: str, tiny: torch.Tensor, cpu32: torch.Tensor, ref64: torch.Tensor) -> None:
    self.items.append(compare(name, tiny, cpu32, ref64))

  @property
  def ok(self) -> bool: return all(c.ok for c in self.items) and self.facts.get("generate_equal", True) is not False

  def worst(self, prefix: str = "") -> Compared | None:
    chosen = [c for c in self.items if c.name.startswith(prefix)]
    return max(chosen, key=lambda c: c.ratio) if chosen else None

  def as_dict(self) -> dict:
    return {"program": self.program, "ok": self.ok, "facts": self.facts,
            "items": [{"name": c.name, "tiny": c.tiny, "torch": c.torch, "scale": c.scale, "ok": c.ok} for c in self.items]}
