"""Bounty 10: BERT MLPerf on the AMD LLVM path."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the BERT training path")


BOUNTY = Bounty(10, "BERT MLPerf on the AMD LLVM path", "tinybounty.models.bert",
                hardware="AMD MI300X GPUs (tinybox) for the MLPerf run", check=check)
