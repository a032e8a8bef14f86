"""tinybounty.engine: a faster rewrite engine for tinygrad 0.14.0, with exactly stock's results.

`install()` swaps tinygrad's `RewriteContext.unified_rewrite` (the loop behind every `graph_rewrite`) for ours, runs
rewrites without cyclic GC passes, and installs exact fast paths for what the rules call (engine/hot.py). The loop runs in
C (loop.c, compiled on first use by engine/native.py); where that cannot be built, install() warns once with the reason
and runs the same loop in Python, and `engine_kind()` says which one runs. `uninstall()` puts stock's objects back.
`TINYBOUNTY_ENGINE=1` installs it when tinybounty (any part of it) is imported, and `python -m tinybounty.engine script.py` runs a
script with it. While tinygrad tracks matches (TRACK_MATCH_STATS, VIZ) the stock loop runs, so the tracker sees every
rule call. See docs/engine.md.
"""
from __future__ import annotations

import contextlib
import gc
import os
import warnings
from typing import Any, Callable, Iterator

from tinygrad.uop import ops

from tinybounty.engine import native
from tinybounty.engine.hot import PATCHES, STOCK, put
from tinybounty.engine.rewrite import clear_memo, native_unified_rewrite, unified_rewrite

_STOCK = {"unified_rewrite": ops.RewriteContext.unified_rewrite}
Loop = Callable[[ops.RewriteContext, ops.UOp], ops.UOp]


def without_gc(loop: Loop) -> Loop:
  """The entry tinygrad calls: stock's loop while matches are tracked, else `loop` with cyclic GC off for the outermost call."""
  def unified_rewrite_entry(self: ops.RewriteContext, root: ops.UOp) -> ops.UOp:
    if ops.TRACK_MATCH_STATS.value: return _STOCK["unified_rewrite"](self, root)
    if not gc.isenabled(): return loop(self, root)
    # a rewrite allocates ~10 short-lived objects per node, freed by refcount: cyclic GC passes during it find nothing
    gc.disable()
    try: return loop(self, root)
    finally: gc.enable()
  return unified_rewrite_entry


_ENTRIES: dict[str, Loop] = {"python": without_gc(unified_rewrite)}
_NATIVE_PATCHES: dict[str, tuple[Any, str, Any]] = {}
_native_error: list[str] = []
STOCK_OBJECTS: dict[str, Any] = {"unified_rewrite": _STOCK["unified_rewrite"], **STOCK, **native.STOCK_NATIVE}


def _load_native() -> bool:
  """Build and bind the C loop once per process; on failure warn once with the reason and return False."""
  if "native" in _ENTRIES: return True
  if _native_error: return False
  try:
    loop, patches = native.bind()
  except native.NativeUnavailable as e:
    _native_error.append(str(e))
    warnings.warn(f"tinybounty.engine: the C rewrite loop is unavailable, running the pure-Python engine: {e}", RuntimeWarning, stacklevel=3)
    return False
  _ENTRIES["native"] = without_gc(native_unified_rewrite(loop))
  _NATIVE_PATCHES.update(patches)
  return True


def patches(kind: str) -> dict[str, tuple[Any, str, Any]]:
  """What install() sets for an engine kind ("native" or "python"): name -> (owner, attribute, ours); STOCK_OBJECTS has stock's."""
  loop = {"unified_rewrite": (ops.RewriteContext, "unified_rewrite", _ENTRIES[kind])}
  return {**loop, **PATCHES, **(_NATIVE_PATCHES if kind == "native" else {})}


def engine_kind() -> str | None:
  """Which engine tinygrad runs now: "native" (the C loop), "python", or None (stock)."""
  return next((k for k, entry in _ENTRIES.items() if ops.RewriteContext.unified_rewrite is entry), None)


def installed() -> bool:
  """Whether our engine is the one tinygrad runs now."""
  return engine_kind() is not None


def install(native_loop: bool = True) -> None:
  """Make every tinygrad graph_rewrite run on our engine, with the fast paths under the rules (idempotent).

  native_loop: the C loop and C fast paths (built on first use; if they cannot be, a warning names the reason and the
  Python engine runs); False: the Python engine."""
  _restore_stock()
  for owner, attr, ours in patches("native" if native_loop and _load_native() else "python").values(): put(owner, attr, ours)


def native_error() -> str | None:
  """Why the C loop could not be built or loaded in this process (None if it was, or was never tried)."""
  return _native_error[0] if _native_error else None


def _restore_stock() -> None:
  for name, (owner, attr, _) in {**patches("python"), **_NATIVE_PATCHES}.items(): put(owner, attr, STOCK_OBJECTS[name])


def uninstall() -> None:
  """Restore tinygrad's stock rewrite engine exactly and drop our memo (idempotent)."""
  _restore_stock()
  clear_memo()
@contextlib.contextmanager
def enabled(on: bool = True, native_loop: bool = True) -> Iterator[None]:
  """Run a block with our engine installed (on=True; native_loop as in install) or with stock's (on=False), restoring the previous state after."""
  was = engine_kind()
  if on: install(native_loop)
  else: uninstall()
  try:
    yield
  finally:
    if was is None: uninstall()
    else: install(was == "native")


if os.environ.get("TINYBOUNTY_ENGINE", "0") not in ("", "0"): install()
