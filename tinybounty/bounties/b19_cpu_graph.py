"""Bounty 19: CPU graph for clang/LLVM."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the CPU graph executor")


BOUNTY = Bounty(19, "CPU graph for clang/LLVM", "tinybounty.runtime.cpugraph",
                hardware="CPU", check=check)
