"""Linearizer failure 53, rebuilt in tinygrad 0.14.0's terms.

The original (upstream test/test_linearizer_failures.py, test_failure_53, deleted unfixed): a uchar buffer of 50,000
gathered by an int32 index of 1,024 through a one-hot reduction, `sum(((idx[:, None] != arange(50000)) != True) * vals)`,
with GROUPTOP(axis 1, 16); it failed to compile with a "variable scope" error on CUDA, NV, AMD and METAL.

In 0.14.0 two things changed the kernel's shape:
- `arange` is no longer an inner reduce, and the one-hot reduce against a RANGE is collapsed into a direct, gated
  gather (codegen/simplify.py, pm_load_collapse). The stock kernel has no reduce axis left, so GROUPTOP is refused.
- GROUPTOP's axis now counts reduce axes only: the old "axis 1" (the 50,000 reduce, behind one global axis) is 0.

To keep the one-hot reduction failure 53 exercised, the compared-against positions come from a buffer (the arange,
realized), which the collapse cannot see through: the kernel keeps its 50,000-long uchar reduce and GROUPTOP(0, 16)
splits it 16 ways across threads into shared memory, the structure that broke. The reduce is kept whole
(SPLIT_REDUCEOP=0) as in the original kernel.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from tinygrad import Device, Tensor, dtypes
from tinygrad.codegen.opt import Opt, OptOps
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, UOp

N_VALUES, N_INDEX = 50_000, 1_024
OPTS = (Opt(OptOps.GROUPTOP, 0, 16),)


def inputs(device: str, seed: int = 53) -> tuple[np.ndarray, np.ndarray]:
  """uchar values and int32 indices (in range), as numpy arrays."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, N_VALUES, dtype=np.uint8), rng.integers(0, N_VALUES, N_INDEX, dtype=np.int32)


def one_hot_gather(vals: Tensor, idx: Tensor, positions: Tensor) -> Tensor:
  """The computation: row i sums vals[j] over the j where positions[j] == idx[i]."""
  return (((idx[:, None] != positions[None, :]) != True).cast(dtypes.uchar) * vals[None, :]).sum(axis=1, dtype=dtypes.uchar)  # noqa: E712


def schedule(device: str, seed: int = 53, opts: tuple[Opt, ...] | None = OPTS) -> tuple[UOp, dict[str, int], np.ndarray, Tensor]:
  """(schedule with `opts` forced on the kernel, var_vals, expected result, output tensor) on `device`."""
  v, i = inputs(device, seed)
  vals, idx = Tensor(v, device=device).realize(), Tensor(i, device=device).realize()
  positions = Tensor(np.arange(N_VALUES, dtype=np.int32), device=device).realize()
  with Context(SPLIT_REDUCEOP=0):
    out = one_hot_gather(vals, idx, positions)
    linear, var_vals = out.linear_with_vars()
  if opts is not None:
    linear = linear.replace(src=tuple(c.replace(src=(c.src[0].replace(arg=replace(c.src[0].arg, opts_to_apply=opts)), *c.src[1:]))
                                      if c.src[0].op is Ops.SINK else c for c in linear.src))
  return linear, var_vals, v[i], out


def kernel_ast(opts: tuple[Opt, ...] | None = OPTS, device: str = "CPU") -> UOp:
  """The one kernel of failure 53 (the AST is device-neutral: schedule it where its inputs can live), with `opts`."""
  linear = schedule(device, opts=opts)[0]
  return next(c.src[0] for c in linear.src if c.src[0].op is Ops.SINK)


def render(target: str = "CUDA", opts: tuple[Opt, ...] | None = OPTS) -> str:
  """The kernel's source for a renderer ("CUDA": CUDA C for sm_90 through the NULL device)."""
  from tinybounty.validate.targets import lower, renderer
  from tinybounty.validate.targets import render as render_sink
  ren = renderer(target)
  return render_sink(lower(kernel_ast(opts), ren), ren)


def compile_cuda(src: str) -> bytes:
  """Compile CUDA C with NVRTC (a pure compiler: no GPU needed). Raises tinygrad's CompileError on failure."""
  from tinybounty.validate.targets import renderer
  return renderer("CUDA").compiler.compile(src)


def run(device: str, opts: tuple[Opt, ...] | None = OPTS) -> float:
  """Compile and run the kernel on `device`; returns the number of wrong output elements (0 is a pass)."""
  from tinygrad.engine.realize import run_linear
  linear, var_vals, expected, out = schedule(device, opts=opts)
  run_linear(linear, var_vals)
  Device[device].synchronize()
  return int((out.numpy() != expected).sum())
