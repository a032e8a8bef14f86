"""A captured step's replay (capture.py): its compiled kernels called directly on the step's buffers.

`Replay` turns the captured schedule into calls with precomputed launch sizes, each argument either a fixed buffer of
the step (a memory-planned intermediate, a constant) or a parameter: the step's inputs, float scalars, random counters
and fresh outputs, handed in per replay. On a CPU device the calls run through one native entry (runtime/cpugraph.py).
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from tinygrad import dtypes
from tinygrad.device import Buffer
from tinygrad.dtype import storage_fmt_for_dtype, to_storage_scalar, truncate
from tinygrad.engine.realize import compile_linear, get_call_arg_uops, get_call_outs_ins, get_runtime
from tinygrad.helpers import GlobalCounters
from tinygrad.schedule.memory import memory_plan_rewrite
from tinygrad.tensor import all_tensors
from tinygrad.uop.ops import Ops, UOp, buffers

from tinybounty.runtime import cpugraph
from tinybounty.torch_backend import scalars


class NotCapturable(Exception):
  """Why a step's schedule cannot be replayed (it then runs uncaptured)."""


class Replay:
  """A captured schedule: its compiled kernels with their buffers, parameters (inputs, scalars, outputs) by slot."""
  def __init__(self, linear: UOp, params: list[UOp], var_vals: dict[str, int], n_read_only: int) -> None:
    lin = linear.substitute({u: UOp.param(i, u.dtype, u.shape, u.device) for i, u in enumerate(params)}, walk=True)
    held = set(buffers) | {u for tref in list(all_tensors) if (t := tref()) is not None for u in t.uop.toposort() if u.op is Ops.BUFFER}
    lin = compile_linear(memory_plan_rewrite(lin, held))
    self.calls: list[tuple] = []
    for call in lin.src:
      ast = call.src[0]
      if ast.op is not Ops.PROGRAM: raise NotCapturable(f"the step has a {ast.op} call")
      if isinstance(call.src[1].device, tuple): raise NotCapturable("the step spans several devices")
      args = get_call_arg_uops(call)
      if any(b.op is not Ops.PARAM and any(u.op is Ops.PARAM for u in b.toposort()) for b in args):
        raise NotCapturable("a kernel reads a parameter through a view")
      if any(args[i].op is Ops.PARAM and args[i].arg.slot < n_read_only for i in get_call_outs_ins(call)[0]):
        raise NotCapturable("a kernel writes an input buffer")
      fixed = [None if b.op is Ops.PARAM else b.buffer.ensure_allocated() for b in args]
      replace = tuple((p, b.arg.slot) for p, b in enumerate(args) if b.op is Ops.PARAM)
      dev = call.src[1].device
      rt = get_runtime(dev, ast)
      global_size, local_size = ast.arg.launch_dims(var_vals)
      self.calls.append((rt, fixed, replace, global_size, local_size, ast.arg.vals(var_vals)))
    # CPU kernels run through one native entry (runtime/cpugraph.py), not one Python-driven launch each
    self.batch = None
    if self.calls and all(cpugraph.batchable(call) for call in lin.src):
      self.batch = cpugraph.KernelBatch([(c[0], call.src[0].arg, c[1], list(c[2]), var_vals) for c, call in zip(self.calls, lin.src)])

  def run(self, params: list[Buffer]) -> None:
    if self.batch is not None:
      self.batch(params)
      GlobalCounters.kernel_count += len(self.calls)
      return
    for rt, fixed, replace, global_size, local_size, vals in self.calls:
      bufs = list(fixed)
      for p, slot in replace: bufs[p] = params[slot]
      rt(*[b._buf for b in bufs], global_size=global_size, local_size=local_size, vals=vals, wait=False)
    GlobalCounters.kernel_count += len(self.calls)


class Graph:
  """One captured step: the replay and how its parameters map to the step's inputs, scalars, random counters and outputs."""
  __slots__ = ("replay", "scalars", "draws", "out_specs")

  def __init__(self, replay: Replay, scalar_specs: list[tuple], draw_specs: list[tuple], out_specs: list[tuple]) -> None:
    self.replay, self.scalars, self.draws, self.out_specs = replay, scalar_specs, draw_specs, out_specs


_scalar_bufs: OrderedDict[tuple, Buffer] = OrderedDict()


def _scalar_bytes(value: float, dtype: Any) -> bytes:
  """`value` as one element of `dtype`, rounded as tinygrad rounds a Python float into it (as the device scalar the step
  was captured with holds it). Not through numpy: numpy has no bfloat16 and tinygrad names float32 for it, whose 4 bytes
  in a 2-byte buffer read back as their low half (-inf, 1.0 and 0.5 as 0: gpt-fast's tokens went wrong on replay)."""
  return struct.pack("<" + storage_fmt_for_dtype(dtype), to_storage_scalar(truncate[dtype](value), dtype))


def scalar_buffer(value: float, dtype: Any, dev: str) -> Buffer:
  key = (struct.pack("<d", value), dtype, dev)
  if (buf := _scalar_bufs.get(key)) is None:
    buf = _scalar_bufs[key] = Buffer(dev, 1, dtype).allocate()
    buf.allocator._copyin(buf._buf, memoryview(bytearray(_scalar_bytes(value, dtype))))
    if len(_scalar_bufs) > scalars.KEEP: _scalar_bufs.popitem(last=False)
  else: _scalar_bufs.move_to_end(key)
  return buf


def counter_buffer(offset: int, dev: str) -> Buffer:
  """A random draw's counter (random._pair's layout: two uint32 words, low first) in a buffer of its own."""
  buf = Buffer(dev, 2, dtypes.uint32).allocate()
  buf.allocator._copyin(buf._buf, memoryview(bytearray(struct.pack("<II", offset & 0xFFFFFFFF, offset >> 32))))
  return buf
