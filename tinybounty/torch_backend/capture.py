"""Capture and replay of eager steps on the tiny device: a known step runs its compiled kernels on the current buffers.

Eager dispatch builds a tinygrad graph per op and schedules it at every sync point, although a training step is the
same graph every time. Under capture (`TINY_CAPTURE=1` or `set_enabled(True)`; off by default) an op whose output shapes are known from an earlier
eager run is only *recorded*: its outputs are placeholder storages (a `slot` of the step) and the step's running key
gets the op's function, the sizes/strides/offset/dtype of each tensor argument, which earlier storage or which output of
this step each argument reads, and its other arguments. Python floats that the op reads from device memory (scalars.py:
a learning rate, a bias correction) are arguments of the step, not part of the key; only their class (0, 1, -1, 2, 0.5,
sign, not finite) is, since an op may branch on those.

At a sync point (flush after an optimizer step, .item(), .cpu(), synchronize) the step ends:
- key seen before: its captured kernels run directly on the current input buffers, the step's scalars and fresh output
  buffers; no tinygrad graph is built, scheduled or lowered (`stats()['replays']`);
- otherwise the recorded ops are run as tinygrad functions, the live outputs (storages still referenced, written
  storages included) realized in one schedule, and that schedule is captured for the key (`captured`, `recaptures`
  with the reason: what differs from the last step).
An eager path that reads a placeholder (an op without a learned shape, a CPU fallback, an op reading device data) first
turns the recorded ops into lazy tinygrad values (`lowered`, with the reason) and the step continues eagerly. Ops that
read device data (nonzero, masked_select), draw from a generator of their own, read a moving slice (device.py) or run
kernels while building are never recorded; draws from the default generator are, their counters step arguments.
A program that never syncs is cut into steps where it writes a storage again after SYNC_AFTER ops (a decoding loop).
"""
from __future__ import annotations

import math
import os
import struct
import weakref
from collections import OrderedDict
from typing import Any, Callable

import torch
from tinygrad import Tensor
from tinygrad.device import Buffer
from tinygrad.engine.realize import capturing, run_linear
from tinygrad.helpers import GlobalCounters
from tinygrad.uop.ops import Ops, UOp

from tinybounty.torch_backend import device, random, replay, scalars, strided, table
from tinybounty.torch_backend import stats as stats_module
from tinybounty.torch_backend.random import default_generator
from tinybounty.torch_backend.stats import _counts, on_device

MAX_ENTRIES = 1024  # a step recording more ops than this is ended (captured) there
KEEP = 32  # captured steps kept, least recently used dropped
_UNRECORDABLE = "X"

_metas: dict[tuple, Any] = {}  # an op's shape key -> the structure of its outputs, learned from an eager run
_scalar_positions: set[tuple] = set()  # (op key, argument position) of floats the op reads from device memory
_offset_positions: set[tuple] = set()  # (op key, argument position) of tensors whose storage offset it reads so
_graphs: OrderedDict[tuple, Any] = OrderedDict()  # a step's key -> replay.Graph, or the reason it cannot be captured
_last_key: list = [None]
_seen: OrderedDict[Any, None] = OrderedDict()  # keys of steps ended once, not captured (yet)
SEEN_KEEP = 256


class _NotRecordable(Exception):
  pass


class _Ref:
  """A tensor argument of a recorded op: which value it reads (("s", slot) of this step, ("i", input)) and its view."""
  __slots__ = ("src", "size", "stride", "off", "dtype")

  def __init__(self, src: tuple, size: tuple, stride: tuple, off: int, dtype: torch.dtype) -> None:
    self.src, self.size, self.stride, self.off, self.dtype = src, size, stride, off, dtype


class _Scalar:
  """A float argument, or a view's storage offset (scalars.Offset), read from device memory: its index in the step's
  scalars."""
  __slots__ = ("index", "position")

  def __init__(self, index: int, position: int) -> None:
    self.index, self.position = index, position


class _Segment:
  """The ops recorded since the last sync point."""
  def __init__(self) -> None:
    self.entries: list[tuple] = []  # (kind, fn, extra, args template, kwargs template, output slots, op key)
    self.keys: list[tuple] = []  # per op: (shape key, the refs of its tensor arguments)
    self.h = 0  # running hash of keys
    self.inputs: list[Any] = []  # values read from storages written before this step: Tensor, or (buffer UOp, shape)
    self.input_storages: list[Any] = []  # weakrefs to the storages they were read from
    self.input_ids: dict[int, int] = {}
    self.scalars: list[float] = []
    self.owners: list[Any] = []  # slot -> weakref to the storage holding it (None once that storage moved on)
    self.written: set[int] = set()  # slots made by writes (in-place, copy_, out=)
    self.constant_scalars: list[Tensor] = []  # device scalars read as constants of the step (set while building)
    self.draws: dict[int, tuple[int, int]] = {}  # entry -> (seed, offset) of the random words it draws
    self.handed: list[tuple[int, list]] = []  # entry -> its draws' (offset, key, counter) tensors (set while building)

  def ref(self, st: device.TinyStorage) -> tuple:
    if st.slot >= 0: return ("s", st.slot)
    snap = st.bound if st.bound is not None else st._value
    if (j := self.input_ids.get(id(snap))) is None:
      j = self.input_ids[id(snap)] = len(self.inputs)
      self.inputs.append(snap)
      self.input_storages.append(weakref.ref(st))
    return ("i", j)

  def forget_inputs(self, n: int) -> None:
    """Drop the inputs an op added before it turned out to run eagerly."""
    for snap in self.inputs[n:]: del self.input_ids[id(snap)]
    del self.inputs[n:], self.input_storages[n:]

  def new_slot(self, st: device.TinyStorage, write: bool) -> int:
    k = len(self.owners)
    self.owners.append(weakref.ref(st))
    if st.slot >= 0: self.owners[st.slot] = None
    if write: self.written.add(k)
    st.slot, st._value, st._buf, st.bound = k, None, None, None
    return k


_seg = _Segment()
# off by default until the whole suite and the real programs have run with it on (docs/torch_backend.md): TINY_CAPTURE=1
_enabled = [os.environ.get("TINY_CAPTURE", "0") == "1"]
_busy = [False]  # building or lowering: ops dispatched meanwhile run eagerly


def enabled() -> bool:
  return _enabled[0]


def set_enabled(on: bool) -> None:
  """Turn capture on or off (TINY_CAPTURE=1 starts it on); the step recorded so far is ended first."""
  sync()
  _enabled[0] = on


def _float_class(x: float) -> Any:
  if not math.isfinite(x) or x in (0.0, 1.0, -1.0, 2.0, 0.5): return struct.pack("<d", x)
  return x > 0


class _Ctx:
  __slots__ = ("seg", "op", "key", "refs", "pos", "scalars")

  def __init__(self, seg: _Segment, op: tuple) -> None:
    self.seg, self.op, self.key, self.refs, self.pos, self.scalars = seg, op, [], [], 0, []


_PLAIN = (int, bool, str, type(None), torch.dtype, torch.device, torch.memory_format, torch.layout)


def _template(a: Any, ctx: _Ctx) -> Any:
  ctx.pos += 1
  if isinstance(a, torch.Tensor):
    try:
      st = a.untyped_storage()._tiny  # only tiny storages carry one
    except Exception:
      raise _NotRecordable("it reads a tensor of another device") from None
    size, stride, off, dt = tuple(a.shape), a.stride(), a.storage_offset(), a.dtype
    # a moving slice (a batch's rows of a permutation) is copied out by a kernel as it is read: the op runs eagerly,
    # outside the step, or the offset, a new one each step, would key every step apart
    if device.moving_slice(size, stride, off, dt): raise _NotRecordable("it reads a moving slice")
    src = ctx.seg.ref(st)
    ctx.refs.append(src)
    # a small view at a moving offset (x[i] = v in a loop) is read and written through an offset in device memory
    if (ctx.op, ctx.pos) in _offset_positions and math.prod(size) <= strided.SMALL_WRITE:
      ctx.key.append((size, stride, "offset", dt))
      ctx.scalars.append(scalars.Offset(off))
      return _Ref(src, size, stride, _Scalar(len(ctx.scalars) - 1, ctx.pos), dt)
    ctx.key.append((size, stride, off, dt))
    return _Ref(src, size, stride, off, dt)
  if type(a) is float:
    if (ctx.op, ctx.pos) in _scalar_positions:
      ctx.key.append(("F", _float_class(a)))
      ctx.scalars.append(a)
      return _Scalar(len(ctx.scalars) - 1, ctx.pos)
    ctx.key.append(struct.pack("<d", a))
    return a
  if isinstance(a, _PLAIN):
    ctx.key.append((type(a), a))
    return a
  if isinstance(a, (list, tuple)):
    ctx.key.append((type(a), len(a)))
    return type(a)(_template(x, ctx) for x in a)
  if isinstance(a, dict):
    ctx.key.append((dict, tuple(a)))
    return {k: _template(v, ctx) for k, v in a.items()}
  raise _NotRecordable(f"it takes a {type(a).__name__}")


def _learn(res: Any, kind: str, extra: Any, kwargs: dict) -> Any:
  """The output structure of an eager run (None where it cannot be recorded)."""
  if kind == "f":
    def shape(r: Any) -> Any:
      if isinstance(r, torch.Tensor):
        if r.device.type != device.BACKEND or r.storage_offset() != 0 or not r.is_contiguous(): raise _NotRecordable
        st = r.untyped_storage()._tiny
        if st.slot >= 0 or st._value is None or tuple(st._value.shape) != tuple(r.shape): raise _NotRecordable
        return ("T", tuple(r.shape), r.dtype)
      if r is None: return ("N",)  # a gradient not asked for (convolution_backward's output_mask)
      if isinstance(r, (list, tuple)): return (type(r), tuple(shape(x) for x in r))
      raise _NotRecordable
    try:
      return shape(res)
    except _NotRecordable:
      return _UNRECORDABLE
  return ("W",)


def dispatch(kind: str, fn: Callable, eager: Callable, args: tuple, kwargs: dict, extra: Any = None) -> Any:
  """device.dispatch_hook: record the op if its outputs are known and the step is being captured, else run it eagerly
  (learning its outputs for the next time)."""
  if not _enabled[0] or _busy[0]: return eager(*args, **kwargs)
  _eager_op[0] = fn
  try:
    return _dispatch(kind, fn, eager, args, kwargs, extra)
  finally:
    _eager_op[0] = None


_eager_op: list = [None]
_why = ["outputs not known yet"]  # why the op in _eager_op runs eagerly


def _rewrites(seg: _Segment, kind: str, args: tuple, kwargs: dict, extra: Any) -> bool:
  """Whether a write targets a storage this step already wrote."""
  targets = [args[0]] if kind == "i" else list(args[0]) if kind == "I" else [kwargs[n] for n in extra] if kind == "o" else []
  for t in targets:
    st = getattr(t.untyped_storage(), "_tiny", None) if isinstance(t, torch.Tensor) else None
    if st is not None and st.slot in seg.written: return True
  return False


def _dispatch(kind: str, fn: Callable, eager: Callable, args: tuple, kwargs: dict, extra: Any) -> Any:
  # a program that never syncs (gpt-fast's decoding loop) is cut into steps where it writes a storage again after
  # SYNC_AFTER ops (its KV cache, the next token), as device.py's eager rule cuts its graphs: each token then replays
  if len(_seg.entries) >= device.SYNC_AFTER and _rewrites(_seg, kind, args, kwargs, extra): sync()
  seg = _seg
  op = (kind, fn, extra)
  ctx = _Ctx(seg, op)
  n_inputs = len(seg.inputs)
  try:
    targs, tkwargs = _template(args, ctx), _template(kwargs, ctx)
  except _NotRecordable as e:
    seg.forget_inputs(n_inputs)
    _why[0] = str(e)
    return eager(*args, **kwargs)
  shape_key = (op, tuple(ctx.key))
  if kind == "e": meta: Any = ("E",)
  elif (meta := _metas.get(shape_key)) is None:
    seg.forget_inputs(n_inputs)
    _why[0] = "outputs not known yet"
    if kind == "o":
      outs = [kwargs[n] for n in extra]
      before = [tuple(o.shape) for o in outs]
    marks = (_counts["d2h"], _counts["size_syncs"], GlobalCounters.kernel_count, default_generator.seed, default_generator.offset)
    # the floats this eager run reads from device memory are step arguments from now on: a float that changes every
    # step (a foreach op's list of bias corrections) would otherwise key every step apart and never be recorded
    scalars.requests = requests = []
    try:
      res = eager(*args, **kwargs)
    finally:
      scalars.requests = None
    _learn_scalars(op, targs, tkwargs, ctx.scalars, requests)
    learned = _learn(res, kind, extra, kwargs)
    if kind == "o" and any(tuple(o.shape) != b for o, b in zip(outs, before)): learned = _UNRECORDABLE
    # an op that read device data or ran kernels depends on more than its arguments; one that drew random words from
    # the default generator (and did nothing else) is recorded with its draw: ("R", words, what it makes)
    after = (_counts["d2h"], _counts["size_syncs"], GlobalCounters.kernel_count, default_generator.seed, default_generator.offset)
    if after != marks:
      drew = after[:4] == marks[:4] and learned is not _UNRECORDABLE
      learned = ("R", after[4] - marks[4], learned) if drew else _UNRECORDABLE
    _metas[shape_key] = learned
    return res
  if meta is _UNRECORDABLE:
    seg.forget_inputs(n_inputs)
    _why[0] = "its first run read device data, ran kernels or made a view"
    return eager(*args, **kwargs)
  draw = None
  if meta[0] == "R":  # its words are drawn now, as eagerly: the counter an argument of the step, the seed in its key
    _, words, meta = meta
    draw = (default_generator.seed, default_generator.offset)
    default_generator.offset += words
    ctx.refs.append(("seed", draw[0]))
  if ctx.scalars:
    base = len(seg.scalars)
    for s in _walk_scalars(targs, tkwargs): s.index += base
    seg.scalars.extend(ctx.scalars)
  if kind == "f":
    outs_slots: list[int] = []
    res = _placeholders(meta, seg, outs_slots)
  elif kind == "e":
    extent, dtype = args
    t = torch._C._acc.create_empty_tensor((extent,), dtype)
    t.untyped_storage()._tiny = st = device.TinyStorage(None)
    outs_slots, res = [seg.new_slot(st, False)], t
  elif kind == "i":
    outs_slots, res = [seg.new_slot(device._storage(args[0]), True)], args[0]
  elif kind == "I":  # foreach.py: a list of in-place targets, distinct storages
    outs_slots, res = [seg.new_slot(device._storage(t), True) for t in args[0]], None
  else:
    outs = [kwargs[n] for n in extra]
    outs_slots = [seg.new_slot(device._storage(o), True) for o in outs]
    res = outs[0] if len(outs) == 1 else tuple(outs)
  if draw is not None: seg.draws[len(seg.entries)] = draw
  seg.entries.append((kind, fn, extra, targs, tkwargs, outs_slots, op))
  refs = tuple(ctx.refs)
  seg.keys.append((shape_key, refs))
  seg.h = hash((seg.h, shape_key, refs))
  if len(seg.entries) >= MAX_ENTRIES: sync()
  return res


def _walk_scalars(*trees: Any) -> list[_Scalar]:
  out: list[_Scalar] = []
  def walk(a: Any) -> None:
    if isinstance(a, _Scalar): out.append(a)
    elif isinstance(a, _Ref) and isinstance(a.off, _Scalar): out.append(a.off)
    elif isinstance(a, (list, tuple)):
      for x in a: walk(x)
    elif isinstance(a, dict):
      for x in a.values(): walk(x)
  for t in trees: walk(t)
  return out


def _placeholders(meta: Any, seg: _Segment, slots: list[int]) -> Any:
  if meta[0] == "T":
    t = torch._C._acc.create_empty_tensor(meta[1], meta[2])
    t.untyped_storage()._tiny = st = device.TinyStorage(None)
    slots.append(seg.new_slot(st, False))
    return t
  if meta[0] == "N": return None
  return meta[0](_placeholders(m, seg, slots) for m in meta[1])


# ***** turning recorded ops into tinygrad values *****

def _input_tensor(x: Any) -> Tensor:
  return x if isinstance(x, Tensor) else Tensor(UOp.from_buffer(x[0])).reshape(x[1])


def _materialize(seg: _Segment) -> tuple[list[Tensor | None], list[tuple[_Scalar, Tensor]], str | None]:
  """Run the recorded ops as tinygrad functions. Returns every slot's lazy value, the device tensors the step's scalars
  were read from, and why the step cannot be captured (None if it can)."""
  vals: list[Tensor | None] = [None] * len(seg.owners)
  inputs = [_input_tensor(x) for x in seg.inputs]
  scalar_reads: list[tuple[_Scalar, Tensor]] = []
  constant_scalars: list[Tensor] = []
  reason = None

  def value(src: tuple) -> Tensor:
    v = vals[src[1]] if src[0] == "s" else inputs[src[1]]
    assert v is not None
    return v

  def conv(a: Any) -> Any:
    if isinstance(a, _Ref):
      moving = isinstance(a.off, _Scalar)
      off = seg.scalars[a.off.index] if moving else a.off
      return device.read(device.TinyStorage(value(a.src)), a.size, a.stride, off, a.dtype, offset_on_device=moving)
    if isinstance(a, _Scalar): return seg.scalars[a.index]
    if isinstance(a, (list, tuple)): return type(a)(conv(x) for x in a)
    if isinstance(a, dict): return {k: conv(v) for k, v in a.items()}
    return a

  def written(ref: _Ref, v: Tensor, uniform: bool) -> Tensor:
    st = device.TinyStorage(value(ref.src))
    off = seg.scalars[ref.off.index] if isinstance(ref.off, _Scalar) else ref.off  # a small write: through device memory
    device.write_into(st, v, ref.size, ref.stride, off, ref.dtype, uniform)
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
    marked = _walk_scalars(targs, tkwargs)
    by_bits: dict[tuple, list] = {}
    for value_, tensor in requests: by_bits.setdefault(_bits(value_), []).append(tensor)
    used: set[tuple] = set()
    for s in marked:
      # equal floats (a foreach op's list of one bias correction) read one device buffer: the key keeps them equal
      if not (found := by_bits.get(bits := _bits(seg.scalars[s.index]))):
        reason = reason or f"a float argument or offset of {_op_name(fn)} was not read from device memory"
        (_offset_positions if bits[0] else _scalar_positions).discard((op, s.position))
      else:
        scalar_reads.extend((s, t) for t in found)
        used.add(bits)
    constant_scalars.extend(t for b, ts in by_bits.items() if b not in used for t in ts)
    _learn_scalars(op, targs, tkwargs, seg.scalars, requests)
  seg.constant_scalars = constant_scalars
  return vals, scalar_reads, reason


def _bits(v: float) -> tuple:
  """A scalar of the step as a dict key: offsets apart from floats, floats by bit pattern (-0.0 and NaNs their own)."""
  return (type(v) is scalars.Offset, struct.pack("<d", float(v)))


def _learn_scalars(op: tuple, targs: Any, tkwargs: Any, scalar_values: list[float], requests: list[tuple]) -> None:
  """Floats of this op read from device memory, and only that way, become arguments of later steps' keys; so do the
  offsets of its small views that it read or wrote through an offset in device memory."""
  if not requests: return
  floats: dict[bytes, list[int]] = {}
  offsets: dict[int, list[int]] = {}
  pos = [0]
  def walk(a: Any) -> None:
    pos[0] += 1
    if type(a) is float: floats.setdefault(struct.pack("<d", a), []).append(pos[0])
    elif isinstance(a, _Scalar): floats.setdefault(struct.pack("<d", scalar_values[a.index]), []).append(-1)
    elif isinstance(a, _Ref) and not isinstance(a.off, _Scalar) and math.prod(a.size) <= strided.SMALL_WRITE:
      offsets.setdefault(a.off, []).append(pos[0])
    elif isinstance(a, (list, tuple)):
      for x in a: walk(x)
    elif isinstance(a, dict):
      for x in a.values(): walk(x)
  walk(targs)
  walk(tkwargs)
  # every small view at a requested offset reads through it from now on (a gather: exact for any view)
  for v, _ in requests:
    if type(v) is scalars.Offset: _offset_positions.update((op, p) for p in offsets.get(v, ()))
  bits = [struct.pack("<d", float(v)) for v, _ in requests if type(v) is not scalars.Offset]
  # a derived value, or one value at two positions (one of them may be compiled in), teaches nothing; except in a
  # foreach op, which runs the same element-wise op on each element: k equal floats read k times are all read
  counts = {b: bits.count(b) for b in bits}
  symmetric = getattr(op[1], "foreach", False)
  if not all(b in floats and (len(floats[b]) == 1 or symmetric and len(floats[b]) == counts[b]) for b in bits): return
  for b in bits: _scalar_positions.update((op, p) for p in floats[b] if p > 0)


def _flatten(r: Any, out: list) -> None:
  if isinstance(r, Tensor): out.append(r)
  elif r is not None:
    for x in r: _flatten(x, out)


def _op_name(fn: Callable) -> str:
  return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _live(seg: _Segment) -> list[tuple[int, device.TinyStorage]]:
  live = []
  for k, w in enumerate(seg.owners):
    if w is not None and (st := w()) is not None and st.slot == k: live.append((k, st))
  return live


def lower(reason: str | None = None) -> None:
  """device.materialize_hook: give every recorded output its lazy tinygrad value; the step goes on eagerly."""
  global _seg
  if reason is None:
    reason = f"{_op_name(_eager_op[0])} ran eagerly ({_why[0]})" if _eager_op[0] is not None else "an eager path read a value of the step"
  seg, _seg = _seg, _Segment()
  if not seg.entries: return
  _counts["reason: " + f"lowered: {reason}"] += 1
  _counts["lowered"] += 1
  _busy[0] = True
  try:
    vals, _, _ = _materialize(seg)
  finally:
    _busy[0] = False
  for k, st in _live(seg):
    st._value, st.slot, st._buf = vals[k], -1, None
    if k in seg.written: device._pending[id(st)] = st


def _input_uop(x: Any, realized: bool = True) -> UOp | None:
  """The realized buffer UOp behind an input value, if the value is the whole buffer (possibly reshaped)."""
  if isinstance(x, tuple): return UOp.from_buffer(x[0])
  u = x.uop
  base = u.base
  if base.op is not Ops.BUFFER or (realized and not base.is_realized): return None
  if u is base or (u.op is Ops.RESHAPE and u.src[0] is base): return base
  return None


def sync() -> None:
  """device.sync_hook: end the recorded step; replay its captured kernels if the step is known, else build and capture."""
  global _seg
  seg = _seg
  if not seg.entries: return
  _seg = _Segment()
  _busy[0] = True
  try:
    _end(seg)
  finally:
    _busy[0] = False


def _input_buf(x: Any) -> Buffer | None:
  if isinstance(x, tuple): return x[0]
  u = _input_uop(x)
  return None if u is None else u.buffer


class _Key:
  """A step's key with its hash computed once (the key is a long tuple: Python's tuples do not cache their hash)."""
  __slots__ = ("parts", "h")

  def __init__(self, parts: tuple, h: int) -> None:
    self.parts, self.h = parts, h

  def __hash__(self) -> int: return self.h
  def __eq__(self, other: object) -> bool: return isinstance(other, _Key) and self.h == other.h and self.parts == other.parts


def _end(seg: _Segment) -> None:
  live = _live(seg)
  if not live: return  # every value the step made is gone: nothing to compute
  in_bufs = [_input_buf(x) for x in seg.inputs]
  if lazy := [j for j, u in enumerate(in_bufs) if u is None and seg.inputs[j].numel()]:
    values = [seg.inputs[j].clone() for j in lazy]
    Tensor.realize(*values)
    for j, v in zip(lazy, values):
      # the storage keeps the realized copy, so the next step reads a buffer too
      if (st := seg.input_storages[j]()) is not None and st.slot < 0 and st._value is seg.inputs[j]:
        st._value, st._buf = v.reshape(st._value.shape), None
      seg.inputs[j], in_bufs[j] = v, _input_buf(v)
    _counts["reason: " + "inputs realized first: lazy values read by the step"] += 1
  for j, x in enumerate(seg.inputs):
    # a realized input keeps its buffer at hand: the next step's key and replay read it without tinygrad's UOps
    if isinstance(x, Tensor) and in_bufs[j] is not None and (st := seg.input_storages[j]()) is not None and st.slot < 0 and st._value is x \
       and st.bound is None:
      st.bound = (in_bufs[j], tuple(x.shape))
  # an empty input has no buffer (tinygrad allocates none, not even when realized): _build runs such a step uncaptured
  in_sig = tuple((x.dtype, 0, _shape_of(x)) if b is None else (b.dtype, b.size, _shape_of(x)) for b, x in zip(in_bufs, seg.inputs))
  first: dict[tuple, int] = {}
  equal = tuple(first.setdefault(_bits(v), i) for i, v in enumerate(seg.scalars))
  live_slots = tuple(k for k, _ in live)
  key = _Key((tuple(seg.keys), in_sig, live_slots, equal), hash((seg.h, in_sig, live_slots, equal)))
  graph = _graphs.get(key)
  if isinstance(graph, replay.Graph):
    _graphs.move_to_end(key)
    _counts["replays"] += 1
    _replay(graph, seg, in_bufs, live)
    return
  in_uops = [_input_uop(x) for x in seg.inputs]
  last, _last_key[0] = _last_key[0], key
  ks = GlobalCounters.kernel_count
  vals, scalar_reads, reason = _materialize(seg)
  outs = [_fresh(vals[k]) for k, _ in live]
  if reason is None and GlobalCounters.kernel_count != ks: reason = "kernels ran while the step was built"
  if reason is None and capturing: reason = "inside a TinyJit capture"
  if reason is None and isinstance(graph, str): reason = graph
  if reason is None and key not in _seen:
    # a step seen once is realized as it is and captured only if it comes again: one-off steps (a prefill, a program's
    # last partial step, a test's single step) never pay for a capture they would not replay
    _seen[key] = None
    if len(_seen) > SEEN_KEEP: _seen.popitem(last=False)
    Tensor.realize(*outs)
    for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None
    return
  if reason is None:
    try:
      _capture(key, seg, in_uops, scalar_reads, outs, live, last)
      return
    except replay.NotCapturable as e:
      reason = str(e)
      _graphs[key] = reason
  _counts["reason: " + f"not captured: {reason}"] += 1
  _counts["uncaptured"] += 1
  Tensor.realize(*outs)
  for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None


def _fresh(v: Tensor) -> Tensor:
  """`v` as a whole buffer of its own once realized (a view of a realized buffer is copied)."""
  v = on_device(v)
  base = v.uop.base
  return v.clone() if base.op is Ops.BUFFER and base.is_realized else v.contiguous()


def _shape_of(x: Any) -> tuple:
  return tuple(x.shape) if isinstance(x, Tensor) else tuple(x[1])


class _Linears:
  def __init__(self) -> None:
    self.linears: list[tuple[UOp, dict]] = []

  def add_linear(self, linear: UOp, var_vals: dict[str, int]) -> None: self.linears.append((linear, var_vals))


def _capture(key: tuple, seg: _Segment, in_uops: list[UOp], scalar_reads: list, outs: list[Tensor], live: list, last: Any) -> None:
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
    _build(key, seg, in_uops, scalar_reads, outs, live, last, cap)
  except replay.NotCapturable:
    for linear, var_vals in cap.linears: run_linear(linear, var_vals)  # the step still runs, uncaptured
    raise


def _build(key: tuple, seg: _Segment, in_uops: list[UOp], scalar_reads: list, outs: list[Tensor], live: list, last: Any, cap: _Linears) -> None:
  if any(u is None for u in in_uops): raise replay.NotCapturable("an input is empty")
  params: list[UOp] = list(in_uops)
  index = {u: i for i, u in enumerate(params)}
  scalar_specs = []
  for s, t in scalar_reads:
    u = _input_uop(t)
    if u is None: raise replay.NotCapturable("a device scalar is not a buffer")
    if u not in index:
      index[u] = len(params)
      params.append(u)
      scalar_specs.append((s.index, u.dtype, u.device))
    elif index[u] < len(in_uops): raise replay.NotCapturable("a device scalar is also an input")
    # else: equal floats read one buffer; the key's equality pattern of the scalars keeps them equal on replay
  if any(_input_uop(t, realized=False) in index for t in seg.constant_scalars):
    raise replay.NotCapturable("a device scalar is both an argument and a constant of the step")
  draw_specs = []
  for i, handed in seg.handed:
    for offset, _, counter in handed:
      u = _input_uop(counter)
      if u is None or u in index: raise replay.NotCapturable("a random counter is not a buffer of its own")
      index[u] = len(params)
      params.append(u)
      draw_specs.append((i, offset - seg.draws[i][1], u.device))  # an op's later draws are at offsets after its first
  n_fixed = len(params)
  out_specs = []
  for o in outs:
    if o.numel() == 0:  # no buffer to allocate or write: every replay hands out this one empty value
      out_specs.append(("const", o))
      continue
    u = _input_uop(o, realized=False)
    if u is None: raise replay.NotCapturable("an output is not a whole buffer")
    if u in index:
      if len(in_uops) <= index[u] < n_fixed: raise replay.NotCapturable("an output is a device scalar")
      out_specs.append(("alias", index[u], tuple(o.shape)))
    elif not u.is_realized:  # a buffer this step's schedule allocates
      index[u] = len(params)
      params.append(u)
      out_specs.append(("new", index[u], tuple(o.shape), u.dtype, u.device, u.max_numel()))
    else: out_specs.append(("const", o))
  var_vals: dict[str, int] = {}
  for _, vv in cap.linears: var_vals.update(vv)
  linear = UOp(Ops.LINEAR, src=tuple(c for lin, _ in cap.linears for c in lin.src))
  rep = replay.Replay(linear, params, var_vals, n_fixed)
  rep.run([u.buffer.ensure_allocated() for u in params])
  for (k, st), o in zip(live, outs): st._value, st.slot, st._buf = o, -1, None
  graph = replay.Graph(rep, scalar_specs, draw_specs, out_specs)
  _graphs[key] = graph
  if len(_graphs) > KEEP: _graphs.popitem(last=False)
  _counts["captured"] += 1
  if last is not None:
    _counts["recaptures"] += 1
    _counts["reason: " + f"recaptured: {_difference(key, last)}"] += 1


def _replay(graph: replay.Graph, seg: _Segment, in_bufs: list[Buffer], live: list) -> None:
  params: list[Any] = list(in_bufs)
  for index, dtype, dev in graph.scalars: params.append(replay.scalar_buffer(seg.scalars[index], dtype, dev))
  for i, rel, dev in graph.draws: params.append(replay.counter_buffer(seg.draws[i][1] + rel, dev))
  for spec in graph.out_specs:
    if spec[0] == "new": params.append(Buffer(spec[4], spec[5], spec[3]).allocate())
  graph.replay.run(params)
  for (k, st), spec in zip(live, graph.out_specs):
    st.slot, st._buf = -1, None
    if spec[0] == "const": st._value, st.bound = spec[1], None
    else: st._value, st.bound = None, (params[spec[1]], spec[2])


def _difference(key: tuple, last: tuple) -> str:
  """What makes this step's key differ from the last captured one, in words."""
  ops, in_sig, live, equal = key.parts
  lops, lin_sig, llive, lequal = last.parts
  for i, (a, b) in enumerate(zip(ops, lops)):
    if a != b:
      name = _op_name(a[0][0][1])
      if a[0][0] != b[0][0]: return f"op {i} is {name}, was {_op_name(b[0][0][1])}"
      if a[0] != b[0]: return f"op {i} ({name}): sizes, strides, dtypes or arguments changed"
      return f"op {i} ({name}) reads other storages"
  if len(ops) != len(lops): return f"{len(ops)} ops, were {len(lops)}"
  if in_sig != lin_sig: return "the inputs' shapes or dtypes changed"
  if live != llive: return "other outputs are still referenced"
  if equal != lequal: return "other float arguments are equal"
  return "evicted"


def stats() -> dict[str, Any]:
  """Captured steps, replays, recaptures, lowered and uncaptured steps, and the reasons; none while capture is off and
  has counted nothing (so the device's own counters read as before)."""
  keys = ("captured", "replays", "recaptures", "lowered", "uncaptured")
  if not enabled() and not any(_counts.get(k, 0) for k in keys): return {}
  return {"captured": _counts["captured"], "replays": _counts["replays"], "recaptures": _counts["recaptures"],
          "lowered": _counts["lowered"], "uncaptured": _counts["uncaptured"],
          "capture_reasons": {k.removeprefix("reason: "): v for k, v in _counts.items() if k.startswith("reason: ")}}


def reset() -> None:
  """Forget every captured step and learned op (tests)."""
  sync()
  _graphs.clear()
  _seen.clear()
  _metas.clear()
  _scalar_positions.clear()
  _offset_positions.clear()
  _last_key[0] = None


_installed: dict[str, Any] = {}


def install() -> None:
  """Route the device's dispatch, sync points and placeholder reads through capture. Reversible: uninstall()."""
  if _installed: return
  _installed.update(dispatch_hook=device.dispatch_hook, sync_hook=device.sync_hook, materialize_hook=device.materialize_hook)
  device.dispatch_hook, device.sync_hook, device.materialize_hook = dispatch, sync, lower
  stats_module.providers.append(stats)


def uninstall() -> None:
  if not _installed: return
  sync()
  for name, fn in _installed.items(): setattr(device, name, fn)
  stats_module.providers.remove(stats)
  _installed.clear()
