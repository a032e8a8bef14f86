"""Bounty 11: z3 index validation."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("tinybounty validate")


BOUNTY = Bounty(11, "z3 index validation", "tinybounty.validate",
                hardware="CPU; CUDA and AMD renderers render only", check=check)
