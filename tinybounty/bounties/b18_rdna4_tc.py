"""Bounty 18: RDNA4 tensor cores."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the RDNA4 WMMA path")


BOUNTY = Bounty(18, "RDNA4 tensor cores", "tinybounty.runtime.rdna4",
                hardware="an AMD RDNA4 GPU (gfx1200/gfx1201)", check=check)
