"""Bounty 08: 8x faster matching engine."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the fast rewrite engine")


BOUNTY = Bounty(8, "8x faster matching engine", "tinybounty.engine",
                hardware="CPU", check=check)
