"""Bounty 21: AvgPool3D linearizer fix."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the AvgPool3D cases")


BOUNTY = Bounty(21, "AvgPool3D linearizer fix", "tinybounty.validate.avgpool3d",
                hardware="CPU; NVIDIA GPU for the renderer cases", check=check)
