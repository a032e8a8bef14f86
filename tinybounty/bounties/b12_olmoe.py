"""Bounty 12: fast OLMoE."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the OLMoE model")


BOUNTY = Bounty(12, "fast OLMoE", "tinybounty.models.olmoe",
                hardware="an Apple M3 Max in the original", check=check)
