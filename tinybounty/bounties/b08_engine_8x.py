"""Bounty 08: 8x faster matching engine."""
from tinybounty.bounties.base import Bounty, Result


def check(full: bool) -> Result:
  from tinybounty.bounties.engine_measure import check_speedup
  return check_speedup(8.0, full)


BOUNTY = Bounty(8, "8x faster matching engine", "tinybounty.engine",
                hardware="CPU", check=check)
