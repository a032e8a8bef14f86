"""Random streams for the tiny device with torch's seeding semantics.

The device's default generator is a (seed, offset) pair on the host: `torch.manual_seed(s)` (through the backend
module's `manual_seed_all`) resets it, and every draw advances the offset by the random words it used, so the same
seed gives the same tensors. Bits come from tinygrad's threefry on the device (never from the CPU stream). A
`torch.Generator` passed to an op is honoured too: one 64-bit seed is drawn from it per call, so seeding that generator
reproduces the tiny draws as torch users expect.
"""
from __future__ import annotations

import torch
from tinygrad import Tensor, dtypes


class TinyGenerator:
  """A counter-based generator: seed plus the number of 32-bit words already drawn."""
  def __init__(self, seed: int = 67280421310721) -> None:
    self.seed, self.offset = seed, 0

  def manual_seed(self, seed: int) -> None:
    self.seed, self.offset = int(seed) & 0xFFFFFFFFFFFFFFFF, 0

  def get_state(self) -> torch.Tensor:
    """The state as a uint8 CPU tensor (16 bytes: seed, offset), like torch.cuda.get_rng_state."""
    return torch.tensor([self.seed, self.offset], dtype=torch.int64).view(torch.uint8)

  def set_state(self, state: torch.Tensor) -> None:
    if state.dtype != torch.uint8 or state.numel() != 16: raise ValueError("tiny: rng state must be a uint8 tensor of 16 bytes")
    self.seed, self.offset = (int(v) for v in state.view(torch.int64).tolist())

  def draw(self, words: int) -> tuple[Tensor, Tensor]:
    """(key, counter) tinygrad tensors for `words` fresh 32-bit words; advances the offset. While capture builds a
    recorded draw (`recorded` set), the draw is the one made when the op was recorded: that seed and offset."""
    if recorded is not None:
      seed, offset, handed = recorded
      key, counter = _pair(seed), _pair(offset)
      handed.append((offset, key, counter))
      recorded[1] += words + (words & 1)
      return key, counter
    key, counter = _pair(self.seed), _pair(self.offset)
    self.offset += words + (words & 1)
    return key, counter


def _pair(v: int) -> Tensor:
  return Tensor([v & 0xFFFFFFFF, (v >> 32) & 0xFFFFFFFF], dtype=dtypes.uint32)


default_generator = TinyGenerator()
# capture.py sets [seed, offset, handed] while it builds an op it recorded with a draw: the op's draws take that seed and
# offset (not the generator's, which moved on when the op was recorded) and list (offset, key, counter) in `handed`
recorded: list | None = None


def key_for(generator: torch.Generator | None, words: int) -> tuple[Tensor, Tensor]:
  """Key and counter for a draw of `words` words from `generator` (None: the device's default generator)."""
  if generator is None: return default_generator.draw(words)
  seed = int(torch.randint(-2**63, 2**63 - 1, (1,), dtype=torch.int64, generator=generator))
  return _pair(seed & 0xFFFFFFFFFFFFFFFF), _pair(0)
