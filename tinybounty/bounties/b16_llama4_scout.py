"""Bounty 16: Llama 4 Scout on a tinybox."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the Llama 4 Scout model")


BOUNTY = Bounty(16, "Llama 4 Scout on a tinybox", "tinybounty.models.llama4",
                hardware="a tinybox (6 GPUs) in the original", check=check)
