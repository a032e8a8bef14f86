"""Finds every bounty module in this package and checks the registry is whole."""
from __future__ import annotations

import functools
import importlib
import pkgutil
import re

from tinybounty.bounties.base import Bounty

MODULE_NAME = re.compile(r"b\d\d_\w+")


@functools.cache
def all_bounties() -> tuple[Bounty, ...]:
  """Every registered bounty, sorted by id; ids must be unique."""
  import tinybounty.bounties as pkg
  found = [importlib.import_module(f"{pkg.__name__}.{m.name}").BOUNTY
           for m in pkgutil.iter_modules(pkg.__path__) if MODULE_NAME.fullmatch(m.name)]
  ids = [b.id for b in found]
  if len(ids) != len(set(ids)): raise RuntimeError(f"duplicate bounty ids in registry: {sorted(ids)}")
  return tuple(sorted(found, key=lambda b: b.id))


def get_bounty(key: str | int) -> Bounty:
  """A bounty by its registry id ("14", "01" or 14). Registry ids are bounty numbers, never issue numbers."""
  try:
    want = int(key)
  except ValueError:
    raise KeyError(f"bounty id must be a number 1-23, got {key!r}") from None
  for b in all_bounties():
    if b.id == want: return b
  raise KeyError(f"no bounty {want} in the registry (ids: {', '.join(b.key for b in all_bounties())})")
