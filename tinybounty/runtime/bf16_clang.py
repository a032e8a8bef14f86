"""bfloat16 on tinygrad's CPU device with the clang renderer, where clang has no `__bf16` for the kernels' target.

tinygrad 0.14.0 already computes bfloat16 arithmetic in float on the CPU (its ClangRenderer rewrites every bf16 ALU op
to float and every float <-> bf16 cast to integer bit operations, round-to-nearest-even), but it still declares bf16
buffers and values as `__bf16`. clang before 15 rejects that type on the `x86_64-none-unknown-elf` target tinygrad
compiles for ("__bf16 is not supported on this target"), so no bf16 kernel compiles at all with such a clang (this
machine has clang 14). Since no arithmetic is left in bf16, the values are only ever stored, loaded and bit-cast: this
declares them `unsigned short` (their bits) and renders bf16 constants as their bit patterns, as tinygrad's OpenCL
renderer already does. One reversible `install()` (the torch backend's `register()` calls it); with a clang that
accepts `__bf16` the rename gives the same bits.
"""
from __future__ import annotations

import functools
import multiprocessing
import struct

import tinygrad.codegen as codegen
import tinygrad.engine.worker as worker
from tinygrad import dtypes
from tinygrad.renderer.cstyle import ClangRenderer, float_to_bf16
from tinygrad.uop.ops import PatternMatcher, UPat

_saved: dict[str, object] = {}


def _bf16_bits(ctx, c) -> str:
  return f"{(struct.unpack('I', struct.pack('f', float_to_bf16(c.val)))[0] >> 16)}u"


def _init_worker_after(previous) -> None:
  """The compile workers' initializer (spawned processes, where nothing is installed yet): the previous one, then
  install(). The previous one travels with the pickled partial, so other patches' initializers still run."""
  previous()
  install()


def _restart() -> None:
  codegen.to_program_cache.clear()
  if multiprocessing.current_process().daemon: return  # a compile worker: the pool is its parent's
  worker.terminate_worker_pool()


def install() -> None:
  """Render bf16 as `unsigned short` in ClangRenderer, here and in tinygrad's compile workers (idempotent)."""
  if _saved: return
  _saved["init"], worker._init_worker = worker._init_worker, functools.partial(_init_worker_after, worker._init_worker)
  _saved.update({k: ClangRenderer.__dict__.get(k) for k in ("type_map", "string_rewrite")})  # None: inherited
  ClangRenderer.type_map = {**ClangRenderer.type_map, dtypes.bfloat16: "unsigned short"}
  ClangRenderer.string_rewrite = PatternMatcher([(UPat.cvar("c").cast(dtypes.bfloat16), _bf16_bits)]) + ClangRenderer.string_rewrite
  _restart()


def uninstall() -> None:
  """Restore tinygrad's own rendering (`__bf16`)."""
  if not _saved: return
  for k in ("type_map", "string_rewrite"):
    if (v := _saved.pop(k)) is None: delattr(ClangRenderer, k)
    else: setattr(ClangRenderer, k, v)
  worker._init_worker = _saved.pop("init")
  _restart()


def installed() -> bool:
  return bool(_saved)
