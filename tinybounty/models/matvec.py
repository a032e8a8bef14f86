"""Matrix-vector kernels on GPUs: tinygrad's own matvec schedule, also for mixed-precision and gathered (MoE) weights.

tinygrad 0.14's `hand_coded_optimizations` gives a reduce `sum_k x[k] * W[n, k]` its matvec schedule (the reduce split
over MV_THREADS_PER_ROW threads of a group, MV_BLOCKSIZE rows per block, MV_ROWS_PER_THREAD rows upcast per thread)
only when both factors of the MUL are plain loads. In a bf16 decode step they rarely are: the weights are cast to
float before the multiply (the activations are float after a norm), or the product of two bf16 loads is cast to the
float accumulator. Such a reduce falls to the generic path, which on an H200 renders OLMoE's gathered expert
projections as 16 blocks of 32 threads, each thread walking whole rows (no coalescing, most SMs idle), and lm_head as
one thread per row. `install()` applies the same schedule when the matrix is a load seen through casts and gates and
the vector any expression of its ranges; everything else goes to tinygrad's heuristic unchanged. Reversible; in
tinygrad's compile workers too.
"""
from __future__ import annotations

import functools
import multiprocessing

import tinygrad.codegen as codegen
import tinygrad.codegen.opt.heuristic as heuristic
import tinygrad.engine.worker as worker
from tinygrad.codegen.opt import KernelOptError, Opt, OptOps
from tinygrad.helpers import getenv
from tinygrad.uop.ops import AxisType, Ops, UOp

_saved: dict[str, object] = {}


def _load_of(u: UOp) -> tuple[UOp, bool]:
  """The load under `u`'s casts and zero-else gates (a gathered row is `valid ? W[...] : 0`), and whether there were any."""
  seen = False
  while u.op is Ops.CAST or (u.op is Ops.WHERE and u.src[2].op is Ops.CONST and u.src[2].arg == 0):
    u, seen = (u.src[0] if u.op is Ops.CAST else u.src[1]), True
  return u, seen


def matvec_factors(k) -> tuple[UOp, UOp] | None:
  """(matrix load, other factor) of a reduce `sum_k f(k) * W[..., k]` that tinygrad's matvec test misses: W a load
  contiguous along the first reduce range, seen through casts and zero-else gates, and the other factor any expression
  of W's ranges (a cast load, a norm computed inline, a gathered row). None where tinygrad's own test applies or
  nothing fits."""
  if k.reduceop is None or k.reduceop.arg[0] is not Ops.ADD or len(k.full_shape) < 2 or not k.ranges_of(AxisType.REDUCE): return None
  mul, outer = _load_of(k.reduceop.src[0])
  if mul.op is not Ops.MUL: return None
  if not outer and all(s.op is Ops.INDEX for s in mul.src): return None  # two plain loads: tinygrad's own test decides
  first_reduce = k.ranges_of(AxisType.REDUCE)[0]
  for mat, other in ((mul.src[1], mul.src[0]), (mul.src[0], mul.src[1])):
    mat = _load_of(mat)[0]
    if mat.op is not Ops.INDEX: continue
    idx = mat.src[1].get_idx()
    if any(u is first_reduce for u in idx.split_uop(Ops.ADD)) and all(r in idx.ranges for r in other.ranges): return mat, other
  return None


def _hand_coded(k, original):
  """tinygrad's matvec schedule where `matvec_factors` finds one, else tinygrad's heuristic."""
  if k.ren.has_local and k.ren.has_shared and getenv("MV", 1) != 0 and matvec_factors(k) is not None:
    block, threads, rows = getenv("MV_BLOCKSIZE", 4), getenv("MV_THREADS_PER_ROW", 8), getenv("MV_ROWS_PER_THREAD", 4)
    splits = k.ranges_of(AxisType.REDUCE)[0].src[0].divides(threads) is not None
    for axis in k.axes_of(AxisType.GLOBAL) if splits else ():
      if k.full_shape[axis] % (block * rows) != 0: continue
      mk = k.copy()
      try:
        try: mk.apply_opt(Opt(OptOps.GROUP, 0, threads))
        except KernelOptError: pass
        mk.apply_opt(Opt(OptOps.LOCAL, axis, block))
        mk.apply_opt(Opt(OptOps.UPCAST, axis, rows))
        return mk
      except KernelOptError: break
  return original(k)


def _init_worker_after(previous) -> None:
  """Compile workers are spawned processes: run the previous initializer (it travels in the pickled partial, so other
  patches' initializers still run), then install()."""
  previous()
  install()


def _tinygrad_worker_init() -> None:
  """tinygrad's own worker initializer under a name that pickles (the module attribute it had is rebound here)."""
  worker._init_worker()  # in a fresh worker, before any install(): tinygrad's own


def _restart() -> None:
  codegen.to_program_cache.clear()
  if not multiprocessing.current_process().daemon: worker.terminate_worker_pool()  # workers started before keep the old heuristic


def install() -> None:
  """Route tinygrad's hand-coded optimizations through `_hand_coded` (idempotent)."""
  if _saved: return
  _saved["hco"] = heuristic.hand_coded_optimizations
  heuristic.hand_coded_optimizations = functools.partial(_hand_coded, original=_saved["hco"])
  prev = _saved["init"] = worker._init_worker
  if getattr(prev, "__module__", None) == worker.__name__: prev = _tinygrad_worker_init
  worker._init_worker = functools.partial(_init_worker_after, prev)
  _restart()


def uninstall() -> None:
  """tinygrad's own heuristic again."""
  if not _saved: return
  heuristic.hand_coded_optimizations = _saved.pop("hco")
  worker._init_worker = _saved.pop("init")
  _restart()


def installed() -> bool:
  return bool(_saved)
