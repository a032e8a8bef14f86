"""tinybounty.engine: a faster rewrite engine for tinygrad 0.14.0, with exactly stock's results.

`install()` swaps tinygrad's `RewriteContext.unified_rewrite` (the loop behind every `graph_rewrite`) for ours;
`uninstall()` puts stock's back. `TINYBOUNTY_ENGINE=1` installs it when tinybounty.engine is imported, and
`python -m tinybounty.engine script.py` runs a script with it. While tinygrad
tracks matches (TRACK_MATCH_STATS, VIZ) the stock loop runs, so the tracker sees every rule call. See docs/engine.md.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from tinygrad.uop import ops

from tinybounty.engine.rewrite import clear_memo, unified_rewrite

_STOCK = {"unified_rewrite": ops.RewriteContext.unified_rewrite}


def _engine_unified_rewrite(self: ops.RewriteContext, root: ops.UOp) -> ops.UOp:
  if ops.TRACK_MATCH_STATS.value: return _STOCK["unified_rewrite"](self, root)
  return unified_rewrite(self, root)


def installed() -> bool:
  """Whether our engine is the one tinygrad runs now."""
  return ops.RewriteContext.unified_rewrite is _engine_unified_rewrite


def install() -> None:
  """Make every tinygrad graph_rewrite run on our engine (idempotent)."""
  ops.RewriteContext.unified_rewrite = _engine_unified_rewrite


def uninstall() -> None:
  """Restore tinygrad's stock rewrite engine exactly and drop our memo (idempotent)."""
  ops.RewriteContext.unified_rewrite = _STOCK["unified_rewrite"]
  clear_memo()


@contextlib.contextmanager
def enabled(on: bool = True) -> Iterator[None]:
  """Run a block with our engine installed (on=True) or with stock's (on=False), restoring the previous state after."""
  was = installed()
  (install if on else uninstall)()
  try:
    yield
  finally:
    (install if was else uninstall)()


if os.environ.get("TINYBOUNTY_ENGINE", "0") not in ("", "0"): install()
