"""A captured step's replay (capture.py): its compiled kernels called directly on the step's buffers.

`Replay` turns the captured schedule into calls with precomputed launch sizes, each argument either a fixed buffer of
the step (a memory-planned intermediate, a constant) or a parameter: the step's inputs, float scalars, random counters
and fresh outputs, handed in per replay. On a CPU device the calls run through one native entry (runtime/cpugraph.py).
"""
from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Any

from tinygrad import Tensor, dtypes
from tinygrad.device import Buffer
from tinygrad.dtype import storage_fmt_for_dtype, to_storage_scalar, truncate
from tinygrad.engine.realize import capturing, compile_linear, get_call_arg_uops, get_call_outs_ins, get_runtime, run_linear
from tinygrad.helpers import BEAM, GlobalCounters, getenv
from tinygrad.schedule.memory import memory_plan_rewrite
from tinygrad.tensor import all_tensors
from tinygrad.uop.ops import Ops, UOp, buffers

from tinybounty.runtime import cpugraph
from tinybounty.torch_backend import scalars, step


class NotCapturable(Exception):
  """Why a step's schedule cannot be replayed (it then runs uncaptured)."""


class Replay:
  """A captured schedule: its compiled kernels with their buffers, parameters (inputs, scalars, outputs) by slot."""
  def __init__(self, linear: UOp, params: list[UOp], var_vals: dict[str, int], n_read_only: int) -> None:
    lin = linear.substitute({u: UOp.param(i, u.dtype, u.shape, u.device) for i, u in enumerate(params)}, walk=True)
    held = set(buffers) | {u for tref in list(all_tensors) if (t := tref()) is not None for u in t.uop.toposort() if u.op is Ops.BUFFER}
    # kernels searched as TinyJit searches its captures: JITBEAM, else BEAM (eager kernels keep BEAM alone)
    lin = compile_linear(memory_plan_rewrite(lin, held), beam=getenv("JITBEAM", BEAM.value))
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

  def run(self, seg: step.Segment, in_bufs: list[Buffer]) -> list[Buffer]:
    """Replay on the step's input buffers with its scalars and counters; returns the parameters, outputs included."""
    params: list[Any] = list(in_bufs)
    for index, dtype, dev in self.scalars: params.append(scalar_buffer(seg.scalars[index], dtype, dev))
    for i, rel, dev in self.draws: params.append(counter_buffer(seg.draws[i][1] + rel, dev))
    for spec in self.out_specs:
      if spec[0] == "new": params.append(Buffer(spec[4], spec[5], spec[3]).allocate())
    self.replay.run(params)
    return params


class _Linears:
  """Collects the schedules realized while a step is captured (tinygrad's `capturing` hook)."""
  def __init__(self) -> None:
    self.linears: list[tuple[UOp, dict]] = []

  def add_linear(self, linear: UOp, var_vals: dict[str, int]) -> None: self.linears.append((linear, var_vals))


def capture(seg: step.Segment, in_uops: list[UOp | None], scalar_reads: list[tuple[step.Scalar, Tensor]], outs: list[Tensor]) -> Graph:
  """Realize the step's outputs once, capturing their schedule as a Graph. Raises NotCapturable (the step has run)."""
  # device scalars and the draws' keys and counters are copies from the host: realized first, as buffers of the step
  scalar_tensors = [t for _, t in scalar_reads] + [t for _, handed in seg.handed for _, key, counter in handed for t in (key, counter)]
  if scalar_tensors: Tensor.realize(*scalar_tensors)
  cap = _Linears()
  capturing.append(cap)
  try:
    Tensor.realize(*outs)
  finally:
    capturing.clear()
  try:
    return _build(seg, in_uops, scalar_reads, outs, cap)
  except NotCapturable:
    for linear, var_vals in cap.linears: run_linear(linear, var_vals)  # the step still runs, uncaptured
    raise


def _build(seg: step.Segment, in_uops: list[UOp | None], scalar_reads: list, outs: list[Tensor], cap: _Linears) -> Graph:
  if any(u is None for u in in_uops): raise NotCapturable("an input is empty")
  params: list[UOp] = list(in_uops)
  index = {u: i for i, u in enumerate(params)}
  scalar_specs = []
  for s, t in scalar_reads:
    u = input_uop(t)
    if u is None: raise NotCapturable("a device scalar is not a buffer")
    if u not in index:
      index[u] = len(params)
      params.append(u)
      scalar_specs.append((s.index, u.dtype, u.device))
    elif index[u] < len(in_uops): raise NotCapturable("a device scalar is also an input")
    # else: equal floats read one buffer; the key's equality pattern of the scalars keeps them equal on replay
  if any(input_uop(t, realized=False) in index for t in seg.constant_scalars):
    raise NotCapturable("a device scalar is both an argument and a constant of the step")
  draw_specs = []
  for i, handed in seg.handed:
    for offset, _, counter in handed:
      u = input_uop(counter)
      if u is None or u in index: raise NotCapturable("a random counter is not a buffer of its own")
      index[u] = len(params)
      params.append(u)
      draw_specs.append((i, offset - seg.draws[i][1], u.device))  # an op's later draws are at offsets after its first
  n_fixed = len(params)
  out_specs = []
  for o in outs:
    if o.numel() == 0:  # no buffer to allocate or write: every replay hands out this one empty value
      out_specs.append(("const", o))
      continue
    u = input_uop(o, realized=False)
    if u is None: raise NotCapturable("an output is not a whole buffer")
    if u in index:
      if len(in_uops) <= index[u] < n_fixed: raise NotCapturable("an output is a device scalar")
      out_specs.append(("alias", index[u], tuple(o.shape)))
    elif not u.is_realized:  # a buffer this step's schedule allocates
      index[u] = len(params)
      params.append(u)
      out_specs.append(("new", index[u], tuple(o.shape), u.dtype, u.device, u.max_numel()))
    else: out_specs.append(("const", o))
  var_vals: dict[str, int] = {}
  for _, vv in cap.linears: var_vals.update(vv)
  linear = UOp(Ops.LINEAR, src=tuple(c for lin, _ in cap.linears for c in lin.src))
  rep = Replay(linear, params, var_vals, n_fixed)
  rep.run([u.buffer.ensure_allocated() for u in params])
  return Graph(rep, scalar_specs, draw_specs, out_specs)


def input_uop(x: Any, realized: bool = True) -> UOp | None:
  """The realized buffer UOp behind an input value, if the value is the whole buffer (possibly reshaped)."""
  if isinstance(x, tuple): return UOp.from_buffer(x[0])
  u = x.uop
  base = u.base
  if base.op is not Ops.BUFFER or (realized and not base.is_realized): return None
  if u is base or (u.op is Ops.RESHAPE and u.src[0] is base): return base
  return None




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
