"""Float sums and products rendered in the order the kernel computes them, on tinygrad's clang CPU renderer.

tinygrad 0.14.0's C renderers drop the parentheses of an ADD or MUL operand that is itself an ADD or MUL, on either
side: `acc + (a + b + c + d)` (an unrolled reduction: the four loaded terms summed, then added to the accumulator)
renders as `acc+a+b+c+d`, which C evaluates as `(((acc+a)+b)+c)+d`. For integers that is the same value; for floats
it is another summation order, and a worse one: every term is added to the large accumulator, so a BatchNorm
variance over 16x20x20 values came out 4e-5 off a float64 reference on DEV=CPU against 2e-6 on DEV=CPU:LLVM (whose
IR keeps the graph's order), and a compiled BatchNorm CNN trained with Adam drifted from PyTorch (issue #14).
No compiler flag changes this: the order is in the C source itself.

install() makes the clang renderer keep the parentheses of a float ADD/MUL's right operand (the left one may go:
C's + and * associate to the left), in this process and in tinygrad's compile workers (spawned processes, restarted
with an initializer that installs this), and clears the compiled-program cache. uninstall() restores all of it.
"""
from __future__ import annotations

import multiprocessing

import tinygrad.codegen as codegen
import tinygrad.engine.worker as worker
from tinygrad.dtype import dtypes
from tinygrad.helpers import strip_parens
from tinygrad.renderer.cstyle import ClangRenderer
from tinygrad.uop.ops import Ops, PatternMatcher, UOp, UPat

_stock: dict[str, object] = {}


def _render_in_order(ctx, x: UOp) -> str | None:
  """A float ADD/MUL with the left operand's parentheses dropped (same order) and the right one's kept."""
  if not dtypes.is_float(x.dtype): return None
  left, right = x.src
  return ctx.code_for_op[x.op](strip_parens(ctx[left]) if left.op is x.op else ctx[left], ctx[right], x.dtype)


ordered_float_rewrite = PatternMatcher([(UPat((Ops.ADD, Ops.MUL), name="x"), _render_in_order)])


def _init_worker() -> None:
  """The compile workers' initializer (a fresh process, where nothing is installed yet): the previous one, then install()."""
  _stock.get("init", worker._init_worker)()  # type: ignore[operator]
  install()


def installed() -> bool:
  return bool(_stock)


def install() -> None:
  """Render float sums and products in graph order on the clang renderer, here and in the compile workers. Idempotent."""
  if _stock: return
  _stock.update(rewrite=ClangRenderer.string_rewrite, init=worker._init_worker)
  ClangRenderer.string_rewrite = ordered_float_rewrite + ClangRenderer.string_rewrite
  worker._init_worker = _init_worker
  _restart()


def uninstall() -> None:
  """Restore tinygrad's stock rendering and worker initializer."""
  if not _stock: return
  ClangRenderer.string_rewrite, worker._init_worker = _stock.pop("rewrite"), _stock.pop("init")
  _restart()


def _restart() -> None:
  codegen.to_program_cache.clear()
  if multiprocessing.current_process().daemon: return  # a compile worker: the pool is its parent's
  worker.terminate_worker_pool()
