"""Bounty 22: linearizer failure 53 fix."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("failure 53's kernel")


BOUNTY = Bounty(22, "linearizer failure 53 fix", "tinybounty.validate.failure53",
                hardware="an NVIDIA GPU (CUDA) to compile and run", check=check)
