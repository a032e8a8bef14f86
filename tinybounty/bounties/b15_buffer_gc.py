"""Bounty 15: buffer freeing on CPU shown in VIZ."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the buffer-freeing tests")


BOUNTY = Bounty(15, "buffer freeing on CPU shown in VIZ", "tinybounty.validate.gc",
                hardware="CPU", check=check)
