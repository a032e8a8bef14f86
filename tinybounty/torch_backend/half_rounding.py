"""Half rounding kept inside fused kernels (tinygrad 0.14.0 drops it).

The late codegen pass that rewrites image loads and stores (`pm_simplify_add_image`) also folds every
float32 -> half -> float32 round trip to the float32 value, in every kernel on every device: `(x * 1.5).cast(half)
.cast(float)` renders as `x * 1.5`. The fold is lossless only where the float32 value was read from memory that holds
half values (an image read); elsewhere it skips the rounding that the half cast asks for. PyTorch rounds each half op's
output, so a half network trained on the tiny device computed at a higher precision than on PyTorch and drifted from it
(docs/training.md).

install() keeps the fold for loads only, clears the compiled-kernel cache (kernels lowered before were lowered with
the fold), and makes the compile workers install it too (they are spawned processes: tinygrad's pool is restarted
with an initializer that installs this). uninstall() restores the stock pass, initializer and caches.
"""
from __future__ import annotations

import multiprocessing

import tinygrad.codegen as codegen
import tinygrad.engine.worker as worker
from tinygrad.dtype import dtypes
from tinygrad.uop.ops import Ops, PatternMatcher, UOp, UPat

_stock: dict[str, object] = {}


def _keep_for_loads(x: UOp) -> UOp | None: return x if x.op is Ops.LOAD else None


def _without_round_trip_fold(pm: PatternMatcher) -> PatternMatcher:
  kept = [(pat, fn) for pat, fn in pm.patterns if pat.op != (Ops.CAST,)]
  return PatternMatcher(kept + [(UPat.var("x", dtype=dtypes.float).cast(dtypes.half).cast(dtypes.float), _keep_for_loads)])


def _init_worker() -> None:
  """The compile workers' initializer (in a fresh process, where nothing is installed yet): stock's, then install()."""
  _stock.get("init", worker._init_worker)()  # type: ignore[operator]
  install()


def installed() -> bool:
  return bool(_stock)


def install() -> None:
  """Keep half rounding in codegen, here and in the compile workers. Idempotent."""
  if _stock: return
  _stock.update(pm=codegen.pm_simplify_add_image, init=worker._init_worker)
  codegen.pm_simplify_add_image = _without_round_trip_fold(codegen.pm_simplify_add_image)
  worker._init_worker = _init_worker
  _restart()


def uninstall() -> None:
  """Restore tinygrad's stock pass and worker initializer."""
  if not _stock: return
  codegen.pm_simplify_add_image, worker._init_worker = _stock.pop("pm"), _stock.pop("init")
  _restart()


def _restart() -> None:
  codegen.to_program_cache.clear()
  if multiprocessing.current_process().daemon: return  # a compile worker: the pool is its parent's
  worker.terminate_worker_pool()
