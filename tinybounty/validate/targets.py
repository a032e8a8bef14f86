"""The renderers a kernel is validated for: the CPU's own, and CUDA and AMD through tinygrad's NULL device (render only)."""
from __future__ import annotations

import functools
import os
import pathlib

from tinygrad import Device
from tinygrad.helpers import Context
from tinygrad.renderer import Renderer
from tinygrad.uop.ops import UOp

# target name -> the DEV spelling of a NULL device that renders for it (no GPU needed)
NULL_TARGETS = {"CUDA": "NULL:CUDA:sm_90", "AMD": "NULL:AMDLLVM:gfx1201"}
TARGETS = ("CPU", *NULL_TARGETS)


def nvrtc_path() -> str | None:
  """NVRTC from PyPI's nvidia-cuda-nvrtc-cu12, which tinygrad's CUDA renderer needs even to render on a NULL device."""
  if os.environ.get("NVRTC_PATH"): return os.environ["NVRTC_PATH"]
  try:
    import nvidia.cuda_nvrtc as pkg
  except ImportError:
    return None
  libs = sorted(pathlib.Path(next(iter(pkg.__path__))).glob("lib/libnvrtc.so*"))
  return str(libs[0]) if libs else None


@functools.cache
def renderer(target: str) -> Renderer:
  """The renderer for "CPU", "CUDA" or "AMD" (or any DEV spelling such as "NULL:CUDA:sm_89")."""
  if target == "CPU": return Device["CPU"].renderer
  dev = NULL_TARGETS.get(target, target)
  if not dev.startswith("NULL:"):
    raise ValueError(f"unknown validation target {target!r}: use one of {', '.join(TARGETS)} or a NULL:<renderer>:<arch> spelling")
  if "CUDA" in dev and (p := nvrtc_path()) is not None: os.environ.setdefault("NVRTC_PATH", p)
  try:
    with Context(DEV=dev): return Device["NULL"].renderer
  except AttributeError as e:  # tinygrad's ctypes loader: "failed to load library nvrtc"
    raise RuntimeError(f"rendering for {target} needs its compiler library: {e} (for CUDA: pip install nvidia-cuda-nvrtc-cu12)") from e


def lower(ast: UOp, ren: Renderer) -> UOp:
  """A kernel AST lowered to the final SINK the renderer turns into code (where tinygrad's own CHECK_OOB looks)."""
  from tinygrad.codegen import full_rewrite_to_sink
  return full_rewrite_to_sink(ast, ren, optimize=ast.tag is None)


def render(sink: UOp, ren: Renderer) -> str:
  """Source code for a lowered SINK (C for the CPU, CUDA C, LLVM IR for AMD)."""
  from tinygrad.codegen import line_rewrite, pm_linearize_cleanups
  from tinygrad.codegen.late.linearizer import linearize
  return ren.render(line_rewrite(linearize(sink), pm_linearize_cleanups))
