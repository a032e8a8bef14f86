"""Bounty 13: MLPerf RetinaNet.

Criterion. The real target is MLPerf RetinaNet training in tinygrad reaching MLPerf's quality target on GPUs (a tinybox).
- NOT-BUILT: always, for now: there is no RetinaNet model in tinybounty, so nothing runs.
A check for it would FAIL on a wrong result against a reference RetinaNet, and report NEEDS-HARDWARE without the GPUs.
"""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the RetinaNet model")


BOUNTY = Bounty(13, "MLPerf RetinaNet", "tinybounty.models.retinanet",
                hardware="GPUs (tinybox) for the MLPerf run", check=check)
