"""Bounty 23: metadata in data-parallel ResNet fix."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("kernel metadata")


BOUNTY = Bounty(23, "metadata in data-parallel ResNet fix", "tinybounty.validate.metadata",
                hardware="CPU (two CPU devices)", check=check)
