"""Turning a recorded step (step.Segment) into lazy tinygrad values: every recorded op runs as its tinygrad function,
reading its tensor arguments through their views and its step arguments (floats, offsets) from device memory."""
from __future__ import annotations

import struct
from typing import Any

from tinygrad import Tensor
from tinygrad.uop.ops import UOp

from tinybounty.torch_backend import device, random, scalars, step, strided, table
from tinybounty.torch_backend.stats import on_device


def _input_tensor(x: Any) -> Tensor:
  return x if isinstance(x, Tensor) else Tensor(UOp.from_buffer(x[0])).reshape(x[1])


def lazy_values(seg: step.Segment) -> tuple[list[Tensor | None], list[tuple[step.Scalar, Tensor]], str | None]:
  """Run the recorded ops as tinygrad functions. Returns every slot's lazy value, the device tensors the step's scalars
  were read from, and why the step cannot be captured (None if it can)."""
  vals: list[Tensor | None] = [None] * len(seg.owners)
  inputs = [_input_tensor(x) for x in seg.inputs]
  scalar_reads: list[tuple[step.Scalar, Tensor]] = []
  constant_scalars: list[Tensor] = []
  reason = None

  def value(src: tuple) -> Tensor:
    v = vals[src[1]] if src[0] == "s" else inputs[src[1]]
    assert v is not None
    return v

  def offset(ref: step.Ref) -> int:  # a step argument's value this step (a small view at a moving offset)
    return seg.scalars[ref.off.index] if isinstance(ref.off, step.Scalar) else ref.off

  def conv(a: Any) -> Any:
    if isinstance(a, step.Ref):
      moving = isinstance(a.off, step.Scalar)
      return device.read(device.TinyStorage(value(a.src)), a.size, a.stride, offset(a), a.dtype, offset_on_device=moving)
    if isinstance(a, step.Scalar): return seg.scalars[a.index]
    if isinstance(a, (list, tuple)): return type(a)(conv(x) for x in a)
    if isinstance(a, dict): return {k: conv(v) for k, v in a.items()}
    return a

  def written(ref: step.Ref, v: Tensor, uniform: bool) -> Tensor:
    st = device.TinyStorage(value(ref.src))
    device.write_into(st, v, ref.size, ref.stride, offset(ref), ref.dtype, uniform)  # small writes: their offset in device memory
    return st.value

  seg.handed = []
  for i, (kind, fn, extra, targs, tkwargs, slots, op) in enumerate(seg.entries):
    if kind == "e":
      vals[slots[0]] = Tensor.empty(targs[0], dtype=table.to_tiny_dtype(targs[1]))
      continue
    requests: list[tuple] = []
    scalars.requests = requests
    if (draw := seg.draws.get(i)) is not None:
      random.recorded = [*draw, []]
      seg.handed.append((i, random.recorded[2]))
    try:
      if kind == "f":
        res, flat = fn(*conv(targs), **conv(tkwargs)), []
        _flatten(res, flat)
        for k, r in zip(slots, flat): vals[k] = on_device(r)
      elif kind == "i":
        vals[slots[0]] = written(targs[0], fn(*conv(targs), **conv(tkwargs)), bool(extra))
      elif kind == "I":
        for ref, k, r in zip(targs[0], slots, fn(*conv(targs), **conv(tkwargs))): vals[k] = written(ref, r, bool(extra))
      else:
        res = fn(*conv(targs), **conv({k: v for k, v in tkwargs.items() if k not in extra}))
        res = res if isinstance(res, (tuple, list)) else (res,)
        for k, name, r in zip(slots, extra, res): vals[k] = written(tkwargs[name], r, False)
    finally:
      scalars.requests, random.recorded = None, None
    marked = step.walk_scalars(targs, tkwargs)
    by_bits: dict[tuple, list] = {}
    for value_, tensor in requests: by_bits.setdefault(step.bits(value_), []).append(tensor)
    used: set[tuple] = set()
    for s in marked:
      # equal floats (a foreach op's list of one bias correction) read one device buffer: the key keeps them equal
      if not (found := by_bits.get(bits := step.bits(seg.scalars[s.index]))):
        reason = reason or f"a float argument or offset of {step.op_name(fn)} was not read from device memory"
        (step.offset_positions if bits[0] else step.scalar_positions).discard((op, s.position))
      else:
        scalar_reads.extend((s, t) for t in found)
        used.add(bits)
    constant_scalars.extend(t for b, ts in by_bits.items() if b not in used for t in ts)
    learn_scalars(op, targs, tkwargs, seg.scalars, requests)
  seg.constant_scalars = constant_scalars
  return vals, scalar_reads, reason


def learn_scalars(op: tuple, targs: Any, tkwargs: Any, scalar_values: list[float], requests: list[tuple]) -> None:
  """Floats of this op read from device memory, and only that way, become arguments of later steps' keys; so do the
  offsets of its small views that it read or wrote through an offset in device memory."""
  if not requests: return
  floats: dict[bytes, list[int]] = {}
  offsets: dict[int, list[int]] = {}
  pos = [0]
  def walk(a: Any) -> None:
    pos[0] += 1
    if type(a) is float: floats.setdefault(struct.pack("<d", a), []).append(pos[0])
    elif isinstance(a, step.Scalar): floats.setdefault(struct.pack("<d", scalar_values[a.index]), []).append(-1)
    elif isinstance(a, step.Ref) and not isinstance(a.off, step.Scalar) and strided.small_view(a.size):
      offsets.setdefault(a.off, []).append(pos[0])
    elif isinstance(a, (list, tuple)):
      for x in a: walk(x)
    elif isinstance(a, dict):
      for x in a.values(): walk(x)
  walk(targs)
  walk(tkwargs)
  # every small view at a requested offset reads through it from now on (a gather: exact for any view)
  for v, _ in requests:
    if type(v) is scalars.Offset: step.offset_positions.update((op, p) for p in offsets.get(v, ()))
  bits = [struct.pack("<d", float(v)) for v, _ in requests if type(v) is not scalars.Offset]
  # a derived value, or one value at two positions (one of them may be compiled in), teaches nothing; except in a
  # foreach op, which runs the same element-wise op on each element: k equal floats read k times are all read
  counts = {b: bits.count(b) for b in bits}
  symmetric = getattr(op[1], "foreach", False)
  if not all(b in floats and (len(floats[b]) == 1 or symmetric and len(floats[b]) == counts[b]) for b in bits): return
  for b in bits: step.scalar_positions.update((op, p) for p in floats[b] if p > 0)


def _flatten(r: Any, out: list) -> None:
  if isinstance(r, Tensor): out.append(r)
  elif r is not None:
    for x in r: _flatten(x, out)
