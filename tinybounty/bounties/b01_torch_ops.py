"""Bounty 01: topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend."""
from tinybounty.bounties.base import Bounty, Result, not_built


def check(full: bool) -> Result:
  return not_built("the tiny torch device")


BOUNTY = Bounty(1, "topk, index_put, index.Tensor, masked_select, randperm on device in the torch backend", "tinybounty.torch_backend",
                hardware="any tinygrad device (CPU here)", check=check)
