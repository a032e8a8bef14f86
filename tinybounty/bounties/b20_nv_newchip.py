"""Bounty 20: new-NVIDIA-chip support in the NV backend."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("NV backend support for Hopper")


BOUNTY = Bounty(20, "new-NVIDIA-chip support in the NV backend", "tinybounty.runtime.nv",
                hardware="an RTX 5090 (Blackwell, sm_120) in the original; Hopper here", check=check)
