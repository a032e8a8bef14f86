"""The bounty registry: one module per bounty (bNN_name.py), each defining BOUNTY."""
from tinybounty.bounties.base import Bounty, Result, Status, from_ratio, needs_hardware, not_built
from tinybounty.bounties.registry import all_bounties, get_bounty

__all__ = ["Bounty", "Result", "Status", "all_bounties", "from_ratio", "get_bounty", "needs_hardware", "not_built"]
