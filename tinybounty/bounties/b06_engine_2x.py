"""Bounty 06: 2x faster matching engine.

Criterion (engine_measure.verdict). Upstream's 'model rewrite' time (schedule, then full_rewrite_to_sink of every kernel)
of ResNet-50 bs64 and GPT-2 small, stock tinygrad over ours in one process, with identical rewritten kernels.
- FAIL: a rewritten kernel differs from stock's, or a quoted ratio cannot be read.
- PASS: every counted ratio >= 2x, a full-size one among them: measured here (--full) or recorded on this machine.
- PARTIAL: the smallest counted ratio below 2x (the figure); or all at target but no full-size ratio of this machine
  (the short run measures GPT-2 tiny only).
A record of another machine is quoted with its date and machine and never counted.
"""
from tinybounty.bounties.base import Bounty, Result


def check(full: bool) -> Result:
  from tinybounty.bounties.engine_measure import check_speedup
  return check_speedup(2.0, full)


BOUNTY = Bounty(6, "2x faster matching engine", "tinybounty.engine",
                hardware="CPU", check=check)
