"""Bounty 13: MLPerf RetinaNet."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the RetinaNet model")


BOUNTY = Bounty(13, "MLPerf RetinaNet", "tinybounty.models.retinanet",
                hardware="GPUs (tinybox) for the MLPerf run", check=check)
