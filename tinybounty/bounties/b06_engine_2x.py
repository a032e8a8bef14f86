"""Bounty 06: 2x faster matching engine."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the fast rewrite engine")


BOUNTY = Bounty(6, "2x faster matching engine", "tinybounty.engine",
                hardware="CPU", check=check)
