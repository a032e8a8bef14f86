"""Bounty 02: hlb-CIFAR10 on the torch backend."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the hlb-CIFAR10 runner")


BOUNTY = Bounty(2, "hlb-CIFAR10 on the torch backend", "tinybounty.torch_backend.run",
                hardware="an NVIDIA GPU for the full run (lent H100); CPU for the scaled run", check=check)
