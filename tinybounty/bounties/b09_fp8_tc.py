"""Bounty 09: tensor cores for new NVIDIA number formats (FP8)."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the FP8 tensor-core path")


BOUNTY = Bounty(9, "tensor cores for new NVIDIA number formats (FP8)", "tinybounty.runtime.fp8",
                hardware="an NVIDIA GPU of sm_89+ (Ada, Hopper, Blackwell)", check=check)
