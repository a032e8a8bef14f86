"""Bounty 06: 2x faster matching engine."""
from tinybounty.bounties.base import Bounty, Result


def check(full: bool) -> Result:
  from tinybounty.bounties.engine_measure import check_speedup
  return check_speedup(2.0, full)


BOUNTY = Bounty(6, "2x faster matching engine", "tinybounty.engine",
                hardware="CPU", check=check)
