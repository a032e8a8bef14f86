"""Bounty 05: multi-GPU training in the torch backend."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("torch.distributed on tiny")


BOUNTY = Bounty(5, "multi-GPU training in the torch backend", "tinybounty.torch_backend.distributed",
                hardware="2+ GPUs of one host", check=check)
