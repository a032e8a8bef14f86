"""Bounty 03: beautiful MNIST with torch.compile."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the torch.compile tiny backend")


BOUNTY = Bounty(3, "beautiful MNIST with torch.compile", "tinybounty.torch_backend.compile",
                hardware="any tinygrad device (CPU here)", check=check)
