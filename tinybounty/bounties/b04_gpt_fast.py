"""Bounty 04: gpt-fast on the torch backend."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the gpt-fast runner")


BOUNTY = Bounty(4, "gpt-fast on the torch backend", "tinybounty.models.gpt_fast",
                hardware="an AMD GPU in the original; any tinygrad GPU here", check=check)
