"""Bounty 17: multi-machine training."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("multi-machine torch.distributed on tiny")


BOUNTY = Bounty(17, "multi-machine training", "tinybounty.torch_backend.distributed",
                hardware="several machines with GPUs", check=check)
